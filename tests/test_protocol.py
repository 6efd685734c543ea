"""The paper's protocol end to end on the smoke profile: alignment prompts drawn from the SFT training windows
(`align_source = "train"`) and tau chosen from a grid on the alignment-validation windows."""

import json

import numpy as np

from runners.cli import main
from benchmark.data import load_dataset


def test_paper_alignment_source_and_tau_grid(data_dir, tmp_path):
    res, cache = tmp_path / "res", tmp_path / "cache"
    rc = main(["run", "--methods", "blade_n", "--datasets", "steam", "--profile", "smoke", "--splits", "valid",
               "--set", "align_source=train", "--set", "tau_grid=0,0.5", "--data-dir", str(data_dir),
               "--results-dir", str(res), "--cache-dir", str(cache)])
    assert rc == 0
    (path,) = (res / "steam" / "blade_n").glob("*.json")
    rec = json.loads(path.read_text())
    sel = rec["stats"]["tau_selection"]
    assert set(sel["scores"]) == {"0", "0.5"}
    assert sel["scores"][f"{sel['chosen']:g}"] == max(sel["scores"].values())
    assert rec["config"]["profile"]["align_source"] == "train"
    # the kept policy's own stats are the record's, and its final align-valid score is the one compared
    assert rec["curve"][-1]["ndcg@5"] == sel["scores"][f"{sel['chosen']:g}"]
    # both candidates trained, each in its own resumable folder; the reference set was sampled from the SFT pool
    assert sorted(p.name for p in (cache / "runs" / rec["run_id"]).glob("tau*")) == ["tau0", "tau0.5"]
    # the reference set indexes the SFT training pool (sft + align users), not the align users' windows alone
    pool = load_dataset("steam", data_dir).splits
    idx = np.load(rec["stats"]["refset_file"])["idx"]
    assert idx.max() < len(pool["sft"]) + len(pool["align"]) and idx.max() >= len(pool["align"])
