"""BLADE's list reward and proxy reward, and `train_blade` (shared by blade_n, blade_r and bon_static).

Its config (`BladeConfig`) and per-profile defaults (`BON_PROFILE_OVERRIDES`, `BLADE_PROFILE_OVERRIDES`) live in
methods/common/configs.py (no torch); `BladeConfig` and `PROFILE_OVERRIDES` (the BoN family's) are re-exported here.

BLADE = GRPO (methods/common/grpo.py: constrained rollouts, completion-only log-probs, gathered groups) whose
reward is the proxy (N - 1) log F_i (Eq. 14-15) of each rollout's list reward R against the prompt's cached
reference set (methods/common/refsets.py) and, with tau > 0, its own group. tau = 0 is static BoN alignment.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from benchmark.data import Window, alignment_pool, alignment_subset
from methods.common.configs import BON_PROFILE_OVERRIDES as PROFILE_OVERRIDES
from methods.common.configs import BladeConfig
from methods.common.estimator import bayes_cdf, proxy_reward
from methods.common.grpo import check_settings, finished_grpo, train_grpo
from methods.common.llm import get_trie
from methods.common.refsets import reference_lists
from methods.common.rewards import REWARDS, list_reward
from methods.common.sft import load_sft, train_sft


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
    if cfg.reward not in REWARDS:
        raise ValueError(f"reward {cfg.reward!r} unknown; valid: {', '.join(REWARDS)}")
    check_settings(cfg)
    done = finished_grpo(ctx)
    if done is not None:
        return done
    sft_path = train_sft(ctx.data, ctx.profile, ctx.cache_dir, ctx.log, seed=ctx.seed)  # all processes, together
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


__all__ = ["BladeConfig", "PROFILE_OVERRIDES", "train_blade", "blade_group_reward", "window_reward"]
