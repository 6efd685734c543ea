"""The GRPO trainer (methods/common/grpo.py) at its first step, on every dataset (smoke profile): the policy equals
the reference, so with constrained log-probs and every dropout off the logged KL is ~0, the importance ratio is 1
and the policy's train-mode and eval-mode log-probs agree exactly (the smoke model has attention dropout 0.1)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("steam", "cds", "goodreads")


@pytest.fixture(scope="module")
def first_steps(data_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grpo")
    # mu = 2: TRL computes the old policy's log-probs from the rollout batch, so the ratio at step 1 is measured
    # (with mu = 1 it is 1 by construction); two steps keep it fast
    cmd = [sys.executable, "-m", "benchmark", "run", "--methods", "bon_static", "--datasets", ",".join(DATASETS),
           "--profile", "smoke", "--splits", "valid", "--data-dir", str(data_dir), "--results-dir",
           str(tmp / "res"), "--cache-dir", str(tmp / "cache"), "--set", "max_steps=2", "--set", "num_iterations=2"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-4000:]
    recs = {}
    for p in (tmp / "res").glob("*/bon_static/*.json"):
        rec = json.loads(p.read_text())
        recs[rec["dataset"]] = rec
    assert sorted(recs) == sorted(DATASETS)
    return recs


@pytest.mark.parametrize("dataset", DATASETS)
def test_first_step_kl_zero_ratio_one_no_dropout(first_steps, dataset):
    rec = first_steps[dataset]
    assert rec["config"]["profile"]["attention_dropout"] > 0  # the checks below are not vacuous
    st = rec["stats"]
    first = st["train_log"][0]
    assert first["step"] == 1 and st["grpo_steps"] == 2
    assert first["kl"] < 1e-4
    assert first["ratio_max_dev"] < 1e-4
    assert st["train_eval_logp_gap"] == 0.0
    assert rec["config"]["method"]["logps"] == "constrained"
