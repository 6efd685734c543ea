"""Every registered method, end to end through the runner on the `smoke` profile (steam): K valid, distinct,
history-free items per list, a record with every metric key, and (for trained methods) parameters that moved.

One cache folder for the whole session, so the SFT checkpoint (and tokenizer, reference sets) is trained once and
shared by every method, as in a real `benchmark run`.
"""

import gzip
import json

import pytest
import torch

from benchmark.config import get_profile
from benchmark.metrics import HIGHER_IS_BETTER
from methods.registry import all_methods
from runners.execute import execute
from runners.plan import plan

PROFILE = get_profile("smoke")


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("smoke_cache")


def _read(path):
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def _before_after(rec, steam, cache):
    """(state dict before training, after) of the run's trained artefact; None for a method that trains nothing."""
    from transformers import AutoModelForCausalLM

    from methods.common.models import build_model, get_tokenizer
    from methods.common.sft import sft_dir

    art = rec["artifacts"]
    if "model" in art:  # an aligned policy: it starts from the shared SFT checkpoint
        before = AutoModelForCausalLM.from_pretrained(sft_dir(steam, PROFILE, cache, rec["seed"]) / "model")
        return before.state_dict(), AutoModelForCausalLM.from_pretrained(art["model"]).state_dict()
    if "sft_checkpoint" in art:  # the SFT model itself: it starts from the seeded initialisation
        before = build_model(PROFILE, get_tokenizer(steam, PROFILE, cache), cache, rec["seed"])
        return before.state_dict(), AutoModelForCausalLM.from_pretrained(art["sft_checkpoint"]).state_dict()
    if "checkpoint" in art:  # SASRec: trained from its seeded initialisation
        from methods.common.sasrec import SASRecConfig, SASRecModel

        blob = torch.load(art["checkpoint"], weights_only=True, map_location="cpu")  # saved from a GPU too
        torch.manual_seed(rec["seed"])
        return SASRecModel(blob["n_items"], SASRecConfig(**blob["cfg"])).state_dict(), blob["state_dict"]
    return None


@pytest.mark.parametrize("name", all_methods())
def test_method_runs_on_smoke(name, steam, smoke_cache, tmp_path):
    spec = plan([name], [steam], PROFILE, [0], {})[0]  # the first variant of a swept method
    rec = execute(spec, tmp_path / "results", smoke_cache)
    assert rec is not None and rec["method"] == name
    for metrics in (rec["metrics"], rec["metrics_valid"]):
        assert set(HIGHER_IS_BETTER) <= set(metrics)
    assert rec["metrics"]["valid_rate"] == 1.0 and rec["metrics"]["duplicate_rate"] == 0.0
    folder = tmp_path / "results" / "steam" / name
    for split in ("predictions_file", "valid_predictions_file"):
        rows = _read(folder / rec[split])
        assert len(rows) == (rec["n_test"] if split == "predictions_file" else rec["n_valid"]) > 0
        for row in rows:
            items = row["items"]
            assert len(items) == PROFILE.k == len(set(items)), (name, items)
            assert all(0 <= i < steam.n_items for i in items), (name, items)
            assert not set(items) & set(row["history"]), (name, items, row["history"])
    pair = _before_after(rec, steam, smoke_cache)
    if pair is not None:
        before, after = pair
        changed = [not torch.equal(before[k], after[k]) for k in before]
        assert sum(changed) >= len(changed) // 2, f"{name}: only {sum(changed)}/{len(changed)} tensors changed"
