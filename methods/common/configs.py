"""Config dataclasses, per-profile defaults and constants of the shared trainers, with no heavy imports.

Everything a method module needs at import time (its `Config`, `profile_overrides`, `sweep`) lives here, so that
importing `methods` (the registry, `--dry-run`, `ls`, `profiles`, `report`) loads no torch, transformers, trl,
peft, accelerate or datasets (tests/test_layering_torch.py). The trainers that use these configs import them from
here: methods/common/grpo.py and blade.py (GRPO, BLADE), dpo.py (preference), sasrec.py (SASRec).

Field order matters beyond taste: a config's fields, in order, are what `--dry-run`, `profiles` and the records
print, and `check_fields` reports the first invalid field in that order. Dataclasses order inherited fields by
reversed MRO, so a GRPO method's config lists its own fields FIRST by naming them in a dataclass placed after
`GRPOSettings` among its bases (`BladeConfig(GRPOSettings, BladeObjective)`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from benchmark.config import Rule, above, at_least, check_fields, in_range, one_of
from benchmark.errors import UserError
from methods.common.rewards import REWARDS

# design.md §4 / the paper §4.1.4: rollouts, reference sets and inference BoN sample at temperature 0.8 with
# repetition penalty 1.05. The ONE place these defaults live; configs that expose them take their default from here.
ROLLOUT_TEMPERATURE = 0.8
ROLLOUT_REPETITION_PENALTY = 1.05

# transformers' `SchedulerType` values, in its order (the valid `lr_scheduler` values and their error message);
# written out so that configs need no transformers. tests/test_layering_torch.py checks it equals the enum.
LR_SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
                 "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
                 "warmup_stable_decay", "greedy")

LOGPS = ("constrained", "raw")  # GRPOSettings.logps

_MAX_STEPS: Rule = ((lambda v: v == -1 or v >= 1), "-1 (epochs decide) or an integer >= 1")


# ----------------------------------------------------------------------------------------------- GRPO
# Validation rules of the `GRPOSettings` fields, shared by every GRPO method's config.
GRPO_RULES: dict[str, Rule] = {
    **{k: at_least(1) for k in ("prompts_per_step", "n_align_train", "n_align_valid", "num_iterations")},
    "G": at_least(2), "eval_every": at_least(0), "beta": at_least(0.0),
    **{k: above(0.0) for k in ("epsilon", "lr", "epochs", "temperature", "repetition_penalty")},
    "lr_scheduler": one_of(*LR_SCHEDULERS), "logps": one_of(*LOGPS), "max_steps": _MAX_STEPS,
}


@dataclass
class GRPOSettings:
    """The GRPO settings `train_grpo` (methods/common/grpo.py) reads, shared by every GRPO method's config (BLADE,
    static BoN alignment, ReRe). Defaults: the BLADE paper (§4.1.4) and design.md §5; a method states its own.

    TRL GRPOConfig (every value explicit because TRL's defaults differ: beta 0, loss "dapo", lr 1e-6):
    G: rollouts per prompt (the group). beta: KL coefficient. epsilon: PPO clip. lr, epochs, lr_scheduler: AdamW.
    prompts_per_step: prompts per optimiser step (the batch is prompts_per_step x G completions).
    temperature, repetition_penalty: rollout sampling (paper: 0.8 and 1.05) and the training log-probs.
    max_steps: cap on optimiser steps (-1: epochs decide).
    num_iterations: optimiser steps per generation batch (GRPO's mu; TRL's num_iterations; > 1 computes the old
        policy's log-probs).
    logps: "constrained" (log-probs of the policy the rollouts are sampled from: trie/history/EOS masks, repetition
        penalty, temperature, renormalised; design.md §5, issue 9) or "raw" (full-vocabulary softmax: the trainer
        before issue 9, for comparison only).
    Data and evaluation:
    n_align_train / n_align_valid: the seeded alignment subset (paper: 4,096 / 512), drawn from the profile's
        `align_source` (the align users' windows, or the SFT training windows for the paper profile).
    eval_every: validation metrics (greedy) every E steps, for Fig. 4a-style curves (0: only at the start and end).

    A subclass adds its fields (before these ones: see the module docstring) and their checks to `rules`.
    """

    G: int = 16
    beta: float = 0.04
    epsilon: float = 0.2
    lr: float = 5e-6
    epochs: float = 3.0
    lr_scheduler: str = "linear"
    prompts_per_step: int = 4
    temperature: float = ROLLOUT_TEMPERATURE
    repetition_penalty: float = ROLLOUT_REPETITION_PENALTY
    max_steps: int = -1
    n_align_train: int = 4096
    n_align_valid: int = 512
    eval_every: int = 50
    num_iterations: int = 1
    logps: str = "constrained"

    rules: ClassVar[dict[str, Rule]] = GRPO_RULES  # field -> check, one pass in field order (`check_fields`)

    def __post_init__(self):
        check_fields(self, "config", self.rules)


# ----------------------------------------------------------------------------------------------- BLADE
@dataclass
class BladeObjective:
    """BLADE's own fields (the objective); the first fields of `BladeConfig`."""

    reward: str = "ndcg"
    reward_k: int = 10
    lam: float = 0.5
    tau: float = 0.3
    tau_grid: tuple[float, ...] = ()
    n: int = 4
    smoothing: str = "add_one"
    M: int = 128


# The largest reference set: M lists per prompt are sampled in one generate call (num_return_sequences = M), so an
# absurd M (1e12: 96 TB) must be refused when the config is built. 1024 = 8 x the paper's 128.
MAX_M = 1024
_M_RULE: Rule = ((lambda v: 0 <= v <= MAX_M), f"an integer in [0, {MAX_M}] (the paper: 128; each prompt samples its M "
                 "lists in one batch)")


@dataclass
class BladeConfig(GRPOSettings, BladeObjective):
    """BLADE / static BoN alignment hyper-parameters: the objective, then `GRPOSettings` (its defaults are BLADE's).
    Defaults: the paper (§4.1.4) and design.md §5.

    reward: list reward R: "ndcg" (BLADE-N), "recall" (BLADE-R), "fair" (NDCG - lam*MGU, Eq. 18), "div"
        (NDCG + lam*ILD, Eq. 19), "neg_mgu" (-MGU: the fairness objective alone, Fig. 7).
    reward_k: the cut-off of R during training (the full list). lam: weight of the composite term.
    tau: dynamic coefficient of Eq. 14 (0 = static BoN alignment). n: the N of (N - 1) log F (Eq. 15).
    tau_grid: if set, train one policy per tau in the grid and keep the one with the best NDCG@5 on the
        alignment-validation windows (paper §4.1.4: "tuned within {0.1, 0.3, 0.5, 1.0}"); `tau` is then unused.
    smoothing: "add_one" ((k+1)/(M+1) as in vBoN's code; log F finite) or "none" (Eq. 14 verbatim; raises on log 0).
    M: reference lists sampled once per prompt from pi_ref (at the rollout temperature and repetition penalty).
    eval_every: validation Recall@5/NDCG@5 (greedy) every E steps, for Fig. 4a-style curves.
    """

    rules: ClassVar[dict[str, Rule]] = {
        **GRPO_RULES, "reward": one_of(*REWARDS), "smoothing": one_of("add_one", "none"),
        **{k: at_least(1) for k in ("reward_k", "n")}, "M": _M_RULE, **{k: at_least(0.0) for k in ("lam", "tau")},
        "tau_grid": ((lambda v: all(t >= 0 and t == t and t != float("inf") for t in v)), "finite taus >= 0"),
    }

    def __post_init__(self):
        super().__post_init__()
        if self.M == 0 and self.tau == 0 and not self.tau_grid:
            raise UserError("config fields M = 0 with tau = 0 gives the estimator no evidence (0/0; with add-one "
                            "smoothing every F = 1): set M >= 1 or tau > 0")


# Per-profile defaults for the BoN family (the paper's values are the dataclass defaults, used by `paper`). BLADE-N,
# BLADE-R and static BoN share them, so the main comparison gives each ONE training run with no validation-selected
# trial (BLADE at a fixed tau); the paper's tau search is the separate row BLADE-N (tau tuned), methods/blade_n_tau.py.
BON_PROFILE_OVERRIDES = {
    "smoke": {"M": 8, "G": 4, "n_align_train": 16, "n_align_valid": 16, "epochs": 1.0, "eval_every": 2, "lr": 1e-4},
    # cpu: lr 2e-5, chosen on the validation split of all three datasets, 3 seeds, with the fixed trainer (issue 9;
    # docs/benchmarks.md §8): against 1e-4 it is higher on CDs (+0.0072 / +0.0054 NDCG@5, static / BLADE-N) and
    # Goodreads (+0.0016 / +0.0027), level on steam, none significant alone, and its KL stays small.
    # One epoch over 512 prompts (128 steps) keeps one dataset's five-method table well inside an hour.
    "cpu": {"M": 64, "G": 16, "n_align_train": 512, "n_align_valid": 256, "epochs": 1.0, "eval_every": 16,
            "lr": 2e-5},
    # smollm2: a stated, reduced scale that runs on a 2-core CPU (docs/benchmarks.md): 8 steps of 2 prompts x G = 4
    "smollm2": {"M": 4, "G": 4, "n_align_train": 16, "n_align_valid": 8, "prompts_per_step": 2, "epochs": 1.0,
                "eval_every": 4},
}

BLADE_PROFILE_OVERRIDES = BON_PROFILE_OVERRIDES


# ----------------------------------------------------------------------------------------------- preference (DPO)
@dataclass
class PreferenceConfig:
    """Settings shared by the preference methods. Defaults: the paper (§4.1.4: beta 0.1) and, where it is silent,
    upstream S-DPO (lr 1e-5, 3 epochs, effective batch 128, cosine, warm-up ratio 0.05, grad-norm clip 0.3).

    > DPO
    beta: inverse temperature of the implicit reward. lr, epochs, lr_scheduler, warmup_ratio, max_grad_norm: AdamW.
    batch_size: preference rows per optimiser step (over all processes). max_steps: a cap (-1: epochs decide).

    > SFT on the positives (the paper's warm-up before S-DPO / List DPO; SPRec's SFT step of every iteration)
    sft_epochs, sft_lr: from the given model, TRL SFTTrainer, completion-only loss (0 epochs: skipped).

    > Data
    n_align_train / n_align_valid: the seeded alignment subset (paper: 4,096 / 512), the GRPO methods' one.
    """

    beta: float = 0.1
    lr: float = 1e-5
    epochs: float = 3.0
    batch_size: int = 128
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    max_grad_norm: float = 0.3
    max_steps: int = -1
    sft_epochs: float = 1.0
    sft_lr: float = 1e-4
    n_align_train: int = 4096
    n_align_valid: int = 512

    def __post_init__(self):
        check_fields(self, "config", {
            **{k: above(0.0) for k in ("beta", "lr", "epochs", "sft_lr")}, "sft_epochs": at_least(0.0),
            **{k: at_least(1) for k in ("batch_size", "n_align_train", "n_align_valid")},
            "warmup_ratio": in_range(0.0, 1.0, hi_open=True), "max_grad_norm": above(0.0),
            "lr_scheduler": one_of(*LR_SCHEDULERS), "max_steps": _MAX_STEPS})


# Per-profile sizes (the paper's values are the dataclass defaults, used by `paper`); the alignment subset sizes are
# the BoN family's (BON_PROFILE_OVERRIDES), so every alignment method of a profile sees the same prompts.
PREFERENCE_PROFILE_OVERRIDES = {
    "smoke": {"n_align_train": 16, "n_align_valid": 16, "batch_size": 8, "epochs": 1.0, "lr": 1e-3, "sft_lr": 1e-3,
              "warmup_ratio": 0.0},
    "cpu": {"n_align_train": 512, "n_align_valid": 256, "batch_size": 32, "lr": 1e-4, "sft_lr": 1e-4},
    "smollm2": {"n_align_train": 256, "n_align_valid": 128, "batch_size": 16, "epochs": 1.0},
}


# ----------------------------------------------------------------------------------------------- SASRec
@dataclass
class SASRecConfig:
    """The ONE SASRec config: the `sasrec` row's `Config` and D³'s assistant's (same values, separate checkpoints:
    the row trains on every sft user's sequence, the assistant on the LLM's SFT windows).

    Defaults are the paper's (sparse datasets) with the deviations listed in `methods/sasrec.py`; per-profile
    values are `SASREC_PROFILE_OVERRIDES`. The seed is the caller's (see methods/common/sasrec.py `get_sasrec`).
    """

    hidden: int = 64  # paper: d = 50
    layers: int = 2  # paper: b = 2 blocks
    heads: int = 1  # paper: single head (multiple heads did not help it)
    dropout: float = 0.5  # paper: 0.5 on its sparse datasets (0.2 on MovieLens-1M)
    maxlen: int = 20  # paper: n = 50; longest input sequence, older items are truncated
    lr: float = 1e-3  # paper: 0.001, Adam
    weight_decay: float = 0.0  # coupled L2 (Adam), as upstream's l2_emb = 0.0
    batch_size: int = 256  # paper: 128
    max_epochs: int = 200  # paper: 200 epochs; here a cap for early stopping
    patience: int = 5  # epochs without a better validation NDCG@10 before stopping
    eval_every: int = 1  # epochs between validation evaluations

    def __post_init__(self):
        check_fields(self, "config", {
            **{k: at_least(1) for k in ("hidden", "layers", "heads", "maxlen", "batch_size", "max_epochs",
                                        "patience", "eval_every")},
            "dropout": in_range(0.0, 1.0, hi_open=True), "lr": above(0.0), "weight_decay": at_least(0.0)})


# Per-profile values (the `sasrec` row's `profile_overrides`; D³ resolves its assistant with the same dict).
SASREC_PROFILE_OVERRIDES: dict[str, dict] = {
    "smoke": {"hidden": 16, "layers": 1, "heads": 1, "maxlen": 10, "batch_size": 64, "max_epochs": 2},
}


def sasrec_profile_config(profile_name: str) -> SASRecConfig:
    """The `sasrec` row's default config under `profile_name` (what D³'s assistant uses, on its own data)."""
    return replace(SASRecConfig(), **SASREC_PROFILE_OVERRIDES.get(profile_name, {}))
