"""SFT checkpoint selection (`sft_select`): the kept checkpoint is the one the criterion names."""

import dataclasses

import pytest

from benchmark.config import get_profile
from benchmark.errors import UserError
from methods.common.sft import load_sft, train_sft


def test_ndcg_selection_keeps_the_best_ranking_checkpoint(steam, tmp_path):
    profile = dataclasses.replace(get_profile("smoke"), sft_select="ndcg", sft_completion_only=False,
                                  sft_patience=100)
    _, _, info = load_sft(train_sft(steam, profile, tmp_path))
    curve = info["eval_curve"]
    assert all("eval_ndcg@5" in c and "eval_loss" in c for c in curve)
    best = max(curve, key=lambda c: c["eval_ndcg@5"])  # first maximum, as transformers keeps it
    assert info["best_step"] == best["step"] and info["best_metric"] == pytest.approx(best["eval_ndcg@5"])
    assert info["selected_by"] == "ndcg"


def test_last_selection_keeps_the_last_step(steam, tmp_path):
    profile = dataclasses.replace(get_profile("smoke"), sft_select="last", sft_max_epochs=1.0)
    _, _, info = load_sft(train_sft(steam, profile, tmp_path))
    assert info["best_step"] == info["steps"] and info["best_metric"] is None


def test_unknown_selection_is_refused():
    with pytest.raises(UserError, match="sft_select = 'best' is invalid: expected one of loss, ndcg, last"):
        dataclasses.replace(get_profile("smoke"), sft_select="best")
