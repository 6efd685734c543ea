"""The SFT + alignment-data control (methods/sft_align.py): static BoN's windows, steps and sequences, per profile and
end to end on the smoke profile; its record carries the role the reports compare with."""

import shutil

import pytest

from benchmark.config import PROFILES
from benchmark.data import alignment_subset
from methods.sft_align import BON_FIELDS, bon_budget, training_rows, windows_hash
from runners.plan import resolve_configs

SMOKE = PROFILES["smoke"]


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_budget_and_subset_are_static_bons_in_every_profile(profile):
    p = PROFILES[profile]
    (bon,), (ctl,) = resolve_configs("bon_static", p, {}), resolve_configs("sft_align", p, {})
    assert {k: getattr(ctl, k) for k in BON_FIELDS} == {k: getattr(bon, k) for k in BON_FIELDS}
    assert bon_budget(ctl) == bon_budget(bon)


def test_cpu_budget_is_128_steps_of_64_sequences_16_passes():
    (ctl,) = resolve_configs("sft_align", PROFILES["cpu"], {})
    steps, batch = bon_budget(ctl)
    assert (steps, batch, ctl.n_align_train) == (128, 64, 512)
    assert steps * batch / ctl.n_align_train == 16


def test_set_max_steps_overrides_epochs():
    (ctl,) = resolve_configs("sft_align", SMOKE, {"max_steps": "3"})
    assert bon_budget(ctl) == (3, ctl.prompts_per_step * ctl.G)


def test_training_rows_are_seeded_whole_passes():
    wins = list(range(10))
    rows = training_rows(wins, 25, seed=0)
    assert len(rows) == 25 and rows == training_rows(wins, 25, seed=0) != training_rows(wins, 25, seed=1)
    assert sorted(rows[:10]) == wins and sorted(rows[10:20]) == wins and len(set(rows[20:])) == 5
    assert rows[:10] != rows[10:20]  # each pass its own permutation


def test_smoke_run_trains_bons_budget_on_bons_windows(steam, tmp_path):
    from runners.execute import execute
    from runners.plan import plan

    (bon,) = resolve_configs("bon_static", SMOKE, {})
    steps = -(-bon.n_align_train // bon.prompts_per_step) * bon.epochs  # TRL: ceil(prompts / per step) per epoch
    spec = plan(["sft_align"], [steam], SMOKE, [0], {})[0]
    rec = execute(spec, tmp_path / "results", tmp_path / "cache")
    st = rec["stats"]
    assert rec["role"] == "control" and rec["oracle"] is False and rec["category"] == "llm"
    assert st["train_steps"] == steps == 4
    assert st["train_sequences"] == steps * bon.prompts_per_step * bon.G == 64
    assert st["planned"] == {"steps": st["train_steps"], "sequences": st["train_sequences"]}
    assert len(st["train_curve"]) == steps and st["tokens_seen"] > 0
    bon_windows = alignment_subset(steam, bon.n_align_train, bon.n_align_valid, 0, SMOKE.align_source)[0]
    assert st["train_windows"] == len(bon_windows) and st["train_windows_hash"] == windows_hash(bon_windows)
    assert st["passes"] == 64 / 16
    assert rec["metrics"]["valid_rate"] == 1.0
    shutil.rmtree(tmp_path / "results")  # the record is gone, the trained model under the run dir is not
    again = execute(spec, tmp_path / "results", tmp_path / "cache")
    assert again["stats"]["train_curve"] == st["train_curve"] and again["metrics"] == rec["metrics"]  # reused
