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
    assert info["best_step"] == info["steps"] and info["best_metric"] is None and info["stopped_by"] == "step cap"


def test_the_time_cap_stops_training_and_says_so(steam, tmp_path, caplog):
    """A wall-time cap shorter than one step: training ends after its first step, the info says "time cap" (reports
    flag it: the kept checkpoint depends on the machine's speed) and the log warns with the setting to change."""
    import logging

    profile = dataclasses.replace(get_profile("smoke"), sft_select="last", sft_max_time_s=1e-6)
    with caplog.at_level(logging.WARNING):
        _, _, info = load_sft(train_sft(steam, profile, tmp_path, log=logging.getLogger("benchmark")))
    assert info["steps"] == 1 and info["stopped_by"] == "time cap"
    assert "stopped at the wall-time cap (sft_max_time_s = 1e-06) at step 1" in caplog.text
    assert "--set sft_max_time_s=SECONDS" in caplog.text


def test_unknown_selection_is_refused():
    with pytest.raises(UserError, match="sft_select = 'best' is invalid: expected one of loss, ndcg, last"):
        dataclasses.replace(get_profile("smoke"), sft_select="best")


def test_ndcg_selection_stops_early_when_ranking_stops_improving(steam, tmp_path, monkeypatch):
    """Early stopping must see eval_ndcg@5: with a ranking that only falls, training stops after `patience`
    evaluations past the first one, which is kept (it once ran all epochs: the metric reached the callbacks late)."""
    import methods.common.sft as sft

    scores = iter([0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01, 0.0] + [0.0] * 1000)
    monkeypatch.setattr(sft, "_ranking_eval", lambda *a, **k: (lambda model: next(scores)))
    profile = dataclasses.replace(get_profile("smoke"), sft_select="ndcg", sft_patience=2, sft_max_epochs=20.0)
    _, _, info = load_sft(train_sft(steam, profile, tmp_path))
    every = profile.sft_eval_every
    assert [c["eval_ndcg@5"] for c in info["eval_curve"]] == [0.5, 0.4, 0.3]
    assert info["best_step"] == every and info["steps"] == 3 * every and info["best_metric"] == 0.5
    assert info["stopped_by"] == "patience"


def test_gpt_neox_architecture_trains_and_hidden_dropout_needs_it(steam, tmp_path):
    from transformers import GPTNeoXForCausalLM

    profile = dataclasses.replace(get_profile("smoke"), arch="gpt_neox", hidden_dropout=0.2, sft_max_epochs=1.0)
    model, _, info = load_sft(train_sft(steam, profile, tmp_path))
    assert isinstance(model, GPTNeoXForCausalLM) and model.config.hidden_dropout == 0.2
    assert info["train_curve"][0]["loss"] > info["train_curve"][-1]["loss"]
    with pytest.raises(UserError, match="hidden_dropout = 0.2 needs arch = 'gpt_neox'"):
        dataclasses.replace(get_profile("smoke"), hidden_dropout=0.2)


def test_loss_patience_keeps_training_while_the_loss_falls_and_keeps_the_best_ranking(steam, tmp_path, monkeypatch):
    """sft_stop = "loss": a ranking that only falls does not stop training (the loss still falls); the checkpoint is
    still the best-ranking one. The stop itself is checked on the callback with a hand-made log history."""
    import methods.common.sft as sft
    from transformers import TrainerControl, TrainerState

    scores = iter([0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01] + [0.0] * 1000)
    monkeypatch.setattr(sft, "_ranking_eval", lambda *a, **k: (lambda model: next(scores)))
    profile = dataclasses.replace(get_profile("smoke"), sft_select="ndcg", sft_stop="loss", sft_patience=2,
                                  sft_max_epochs=2.0)
    _, _, info = load_sft(train_sft(steam, profile, tmp_path))
    losses = [c["eval_loss"] for c in info["eval_curve"]]
    assert losses == sorted(losses, reverse=True) and len(losses) > 3  # the loss fell throughout: no stop
    assert info["epochs"] == pytest.approx(2.0)  # stopping on the ranking would have ended at the third evaluation
    assert info["best_step"] == profile.sft_eval_every and info["best_metric"] == 0.5

    cb, state = sft._LossPatience(2), TrainerState()
    for loss, stop in [(5.0, False), (4.0, False), (4.5, False), (4.2, True)]:  # 2 evaluations without a new low
        state.log_history.append({"eval_loss": loss})
        control = TrainerControl()
        cb.on_evaluate(None, state, control)
        assert control.should_training_stop is stop
    with pytest.raises(UserError, match="sft_stop = 'never' is invalid: expected one of select, loss"):
        dataclasses.replace(get_profile("smoke"), sft_stop="never")


def test_cpu_profile_is_the_attempt_chosen_on_validation():
    """The `cpu` SFT is studies/sft_tuning.py's chosen attempt on the pre-tuning profile (docs/benchmarks.md §7), so
    its checkpoints are the tuning run's and the table's labels stay true."""
    from dataclasses import asdict

    from benchmark.config import apply_overrides
    from studies.sft_tuning import ATTEMPTS, BASE, CHOSEN

    assert asdict(apply_overrides(BASE, ATTEMPTS[CHOSEN], "profile")) == asdict(get_profile("cpu"))


def test_the_run_seed_drives_the_sft_and_a_profile_can_pin_one_base(steam, tmp_path):
    """Issue 23: every seed trained the SAME SFT (SFT_SEED = 0), so BIGRec and every row built on it had no seed
    spread from the base. Now the run seed is the SFT's seed (init, data order, seeded caps); `sft_seed` pins one."""
    import torch

    from methods.common.sft import sft_dir

    profile = dataclasses.replace(get_profile("smoke"), max_sft_windows=64, sft_max_epochs=1.0, sft_select="last")
    assert sft_dir(steam, profile, tmp_path, 0) != sft_dir(steam, profile, tmp_path, 1)
    m0, _, _ = load_sft(train_sft(steam, profile, tmp_path, seed=0))
    m1, _, _ = load_sft(train_sft(steam, profile, tmp_path, seed=1))
    w0, w1 = m0.state_dict(), m1.state_dict()
    assert any(not torch.equal(w0[k], w1[k]) for k in w0)  # two seeds, two bases
    pinned = dataclasses.replace(profile, sft_seed=0)
    assert sft_dir(steam, pinned, tmp_path, 0) == sft_dir(steam, pinned, tmp_path, 5)  # one shared base
