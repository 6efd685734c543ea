"""BLADE's config, list reward and proxy reward, and `train_blade` (shared by blade_n, blade_r and bon_static).

BLADE = GRPO (methods/common/grpo.py: constrained rollouts, completion-only log-probs, gathered groups) whose
reward is the proxy (N - 1) log F_i (Eq. 14-15) of each rollout's list reward R against the prompt's cached
reference set (methods/common/refsets.py) and, with tau > 0, its own group. tau = 0 is static BoN alignment.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from benchmark.config import at_least, check_fields, one_of
from benchmark.data import Window, alignment_pool, alignment_subset
from benchmark.errors import UserError
from methods.common.estimator import bayes_cdf, proxy_reward
from methods.common.generation import ROLLOUT_REPETITION_PENALTY, ROLLOUT_TEMPERATURE
from methods.common.grpo import GRPO_RULES, check_settings, finished_grpo, train_grpo
from methods.common.llm import get_trie
from methods.common.refsets import reference_lists
from methods.common.rewards import REWARDS, list_reward
from methods.common.sft import load_sft, train_sft


@dataclass
class BladeConfig:
    """BLADE / static BoN alignment hyper-parameters. Defaults: the paper (§4.1.4) and design.md §5.

    > Objective
    reward: list reward R: "ndcg" (BLADE-N), "recall" (BLADE-R), "fair" (NDCG - lam*MGU, Eq. 18), "div"
        (NDCG + lam*ILD, Eq. 19), "neg_mgu" (-MGU: the fairness objective alone, Fig. 7).
    reward_k: the cut-off of R during training (the full list). lam: weight of the composite term.
    tau: dynamic coefficient of Eq. 14 (0 = static BoN alignment). n: the N of (N - 1) log F (Eq. 15).
    tau_grid: if set, train one policy per tau in the grid and keep the one with the best NDCG@5 on the
        alignment-validation windows (paper §4.1.4: "tuned within {0.1, 0.3, 0.5, 1.0}"); `tau` is then unused.
    smoothing: "add_one" ((k+1)/(M+1) as in vBoN's code; log F finite) or "none" (Eq. 14 verbatim; raises on log 0).
    M: reference lists sampled once per prompt from pi_ref. G: rollouts per prompt (the group).

    > GRPO (TRL GRPOConfig; every value explicit because TRL's defaults differ: beta 0, loss "dapo", lr 1e-6)
    beta: KL coefficient. epsilon: PPO clip. lr, epochs, scheduler: AdamW, linear decay.
    prompts_per_step: prompts per optimiser step (the batch is prompts_per_step x G completions).
    temperature, repetition_penalty: rollout and reference sampling (paper: 0.8 and 1.05).
    max_steps: cap on optimiser steps (-1: epochs decide).
    num_iterations: optimiser steps per generation batch (GRPO's mu; TRL's num_iterations).
    logps: "constrained" (log-probs of the policy the rollouts are sampled from: trie/history/EOS masks, repetition
        penalty, temperature, renormalised; design.md §5) or "raw" (full-vocabulary softmax: the trainer before
        issue 9, for comparison only).

    > Data and evaluation
    n_align_train / n_align_valid: the seeded alignment subset (paper: 4,096 / 512), drawn from the profile's
        `align_source` (the align users' windows, or the SFT training windows for the paper profile).
    eval_every: validation Recall@5/NDCG@5 (greedy) every E steps, for Fig. 4a-style curves.
    """

    reward: str = "ndcg"
    reward_k: int = 10
    lam: float = 0.5
    tau: float = 0.3
    tau_grid: tuple[float, ...] = ()
    n: int = 4
    smoothing: str = "add_one"
    M: int = 128
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

    def __post_init__(self):
        check_fields(self, "config", BLADE_RULES)
        if self.smoothing == "none" and self.M == 0 and self.tau == 0:
            raise UserError("config fields M = 0, tau = 0 with smoothing = 'none' make the estimator 0/0: set M >= 1, "
                            "tau > 0 or smoothing=add_one")


BLADE_RULES = {
    **GRPO_RULES, "reward": one_of(*REWARDS), "smoothing": one_of("add_one", "none"),
    **{k: at_least(1) for k in ("reward_k", "n")}, "M": at_least(0), **{k: at_least(0.0) for k in ("lam", "tau")},
    "tau_grid": ((lambda v: all(t >= 0 and t == t and t != float("inf") for t in v)), "finite taus >= 0"),
}


# Per-profile defaults for the BoN family (the paper's values are the dataclass defaults, used by `paper`;
# BLADE_PROFILE_OVERRIDES adds the paper's tau search, which static BoN (tau = 0) does not have).
PROFILE_OVERRIDES = {
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


BLADE_PROFILE_OVERRIDES = {**PROFILE_OVERRIDES, "paper": {"tau_grid": (0.1, 0.3, 0.5, 1.0)}}


def window_reward(cfg: BladeConfig, ctx, items, w: Window) -> float:
    return list_reward(cfg.reward, items, w.target, w.history, ctx.data.item_genres, ctx.data.genre_set,
                       cfg.reward_k, cfg.lam)


def blade_group_reward(cfg: BladeConfig, ref_rewards: torch.Tensor):
    """The group reward of `train_grpo`: raw group rewards -> BLADE's proxy (N - 1) log F (Eq. 14-15).

    ref_rewards: [n_prompts, M], each row the prompt's M reference rewards sorted ascending (row = training row).
    """

    def group_reward(groups: torch.Tensor, rows: torch.Tensor):
        ref = ref_rewards.to(groups.device)[rows]
        cdf = bayes_cdf(groups.float().cpu(), ref.float().cpu(), cfg.tau, cfg.smoothing)
        proxy = proxy_reward(cdf, cfg.n)
        above = (groups.cpu() > ref.cpu()[:, -1:]).float().mean() if ref.shape[1] else torch.tensor(1.0)
        return proxy, {"cdf_mean": float(cdf.mean()), "proxy_reward": float(proxy.mean()),
                       "frac_above_ref_max": float(above)}

    return group_reward


def train_blade(ctx, cfg: BladeConfig) -> Path:
    """Align the shared SFT model with GRPO + BLADE's estimator. Returns the final model folder (resumable).

    With `cfg.tau_grid`, one policy per tau (each in its own sub-folder of the run dir, each resumable) and the one
    with the best final NDCG@5 on the alignment-validation windows is returned; every candidate's score is in
    ``ctx.stats["tau_selection"]`` and the chosen policy's training stats in ``ctx.stats``."""
    if cfg.tau_grid:
        from accelerate.utils import broadcast_object_list

        if not cfg.eval_every:
            raise ValueError("tau_grid needs eval_every > 0: tau is chosen on the final alignment-validation NDCG@5")
        scores, stats = {}, {}
        for tau in cfg.tau_grid:
            sub = dataclasses.replace(ctx, run_dir=ctx.run_dir / f"tau{tau:g}", stats={})
            sub.run_dir.mkdir(parents=True, exist_ok=True)
            final = _train_blade(sub, dataclasses.replace(cfg, tau=tau, tau_grid=()))
            # only the main process evaluates; the others learn the choice from it
            scores[tau], stats[tau] = sub.stats["valid_curve"][-1].get("ndcg@5"), (final, sub.stats)
        choice = [max(cfg.tau_grid, key=lambda t: (scores[t], -t)) if None not in scores.values() else None]
        best = broadcast_object_list(choice)[0]  # ties: the smaller tau
        ctx.stats.update(stats[best][1])
        ctx.stats["tau_selection"] = {"scores": {f"{t:g}": v for t, v in scores.items()}, "chosen": best,
                                      "criterion": "final align-valid NDCG@5"}
        ctx.log.info("tau chosen on the alignment-validation windows: %g (%s)", best,
                     json.dumps(ctx.stats["tau_selection"]["scores"]))
        return stats[best][0]
    return _train_blade(ctx, cfg)


def _train_blade(ctx, cfg: BladeConfig) -> Path:
    from accelerate import PartialState

    if cfg.reward not in REWARDS:
        raise ValueError(f"reward {cfg.reward!r} unknown; valid: {', '.join(REWARDS)}")
    check_settings(cfg)
    done = finished_grpo(ctx)
    if done is not None:
        return done
    state = PartialState()
    with state.main_process_first():
        sft_path = train_sft(ctx.data, ctx.profile, ctx.cache_dir, ctx.log)
    model, tok, _ = load_sft(sft_path)
    trie = get_trie(ctx, tok)
    align = alignment_pool(ctx.data, ctx.profile.align_source)
    train_w, valid_w = alignment_subset(ctx.data, cfg.n_align_train, cfg.n_align_valid, ctx.seed,
                                        ctx.profile.align_source)
    pos = {w: i for i, w in enumerate(align)}
    train_idx = [pos[w] for w in train_w]

    # reference rewards, sorted per prompt (N_ref(<r) is a left searchsorted on them)
    ref_lists = (reference_lists(ctx, sft_path, train_idx, cfg.M, cfg.temperature, cfg.repetition_penalty)
                 if cfg.M > 0 else {})
    ref = torch.zeros(len(train_w), cfg.M)
    for r, (i, w) in enumerate(zip(train_idx, train_w)):
        if cfg.M:
            ref[r] = torch.tensor(sorted(window_reward(cfg, ctx, lst.tolist(), w) for lst in ref_lists[i]))
    ctx.stats["ref_reward_mean"] = float(ref.mean()) if cfg.M else None
    ctx.stats["ref_reward_max_mean"] = float(ref[:, -1].mean()) if cfg.M else None
    ctx.log.info("BLADE: M=%d, tau=%g, reward=%s", cfg.M, cfg.tau, cfg.reward)
    return train_grpo(ctx, cfg, sft_path=sft_path, tok=tok, trie=trie, train_w=train_w, valid_w=valid_w,
                      list_reward=lambda items, w: window_reward(cfg, ctx, items, w),
                      reward_name=f"list_{cfg.reward}@{cfg.reward_k}", group_reward=blade_group_reward(cfg, ref),
                      extra_info={"ref_reward_mean": ctx.stats.get("ref_reward_mean")})


__all__ = ["BladeConfig", "PROFILE_OVERRIDES", "BLADE_PROFILE_OVERRIDES", "train_blade", "blade_group_reward", "window_reward"]
