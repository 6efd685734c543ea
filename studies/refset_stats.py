"""How much room a cached reference set leaves the static estimator: per alignment prompt, the rewards of its M
reference lists (the same sets, rewards and subset the GRPO runs use; sampled and cached if missing).

Usage: python -m studies.refset_stats [--datasets steam,cds,goodreads] [--profile cpu] [--seed 0] [--reward ndcg]
                                      [--lam 0.5]
Prints, per dataset: prompts, M, the fraction of prompts whose reference rewards are ALL zero (any rollout that
scores above zero then beats every reference list and gets the static F = 1, whatever its rank), the mean
reference reward and the mean per-prompt maximum.

For a composite reward (``fair``: NDCG − λ·MGU, ``div``: NDCG + λ·ILD, Eq. 18–19) it also splits each list's reward
into its NDCG term and its list-wise term (reward − NDCG) and prints how they compare inside a prompt's set, which is
what the estimator ranks: the fraction of prompts whose NDCG terms are all equal, the fraction of a prompt's list
pairs that NDCG leaves tied (the list-wise term alone orders them), the fraction of the pairs NDCG orders whose order
the composite reward reverses (the term outweighing relevance), the median over the prompts with an NDCG spread of
std(list-wise term) / std(NDCG term), and how often the set's best list by the composite reward is not a best list by
NDCG, with the mean NDCG of the composite's best against the mean NDCG maximum.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

import numpy as np

from benchmark.config import apply_overrides, cache_dir, data_dir, get_profile
from benchmark.data import alignment_subset, load_dataset
from methods.base import RunContext
from methods.common.blade import PROFILE_OVERRIDES, BladeConfig, window_reward
from methods.common.refsets import reference_lists
from methods.common.sft import train_sft


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="steam,cds,goodreads")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0, help="which seeded alignment subset")
    ap.add_argument("--reward", default="ndcg")
    ap.add_argument("--lam", type=float, default=None, help="λ of a composite reward (default: BladeConfig's)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    profile = get_profile(a.profile)
    cfg = apply_overrides(BladeConfig(), {**PROFILE_OVERRIDES.get(profile.name, {}), "reward": a.reward,
                                          **({} if a.lam is None else {"lam": a.lam})}, "BLADE config")
    ndcg_cfg = dataclasses.replace(cfg, reward="ndcg")
    for name in a.datasets.split(","):
        ds = load_dataset(name, data_dir())
        ctx = RunContext(data=ds, profile=profile, seed=a.seed, run_dir=Path("."), cache_dir=cache_dir(),
                         log=logging.getLogger("benchmark"))
        sft = train_sft(ds, profile, ctx.cache_dir, seed=a.seed)
        train_w, _ = alignment_subset(ds, cfg.n_align_train, cfg.n_align_valid, a.seed)
        pos = {w: i for i, w in enumerate(ds.splits["align"])}
        idx = [pos[w] for w in train_w]
        lists = reference_lists(ctx, sft, idx, cfg.M, cfg.temperature, cfg.repetition_penalty)
        rewards = np.array([[window_reward(cfg, ctx, lst.tolist(), w) for lst in lists[i]]
                            for i, w in zip(idx, train_w)])
        out = {"dataset": name, "profile": profile.name, "seed": a.seed, "reward": a.reward,
               "prompts": len(train_w), "M": cfg.M,
               "frac_prompts_all_zero": round(float((rewards.max(1) == 0).mean()), 4),
               "mean_ref_reward": round(float(rewards.mean()), 4),
               "mean_ref_max": round(float(rewards.max(1).mean()), 4)}
        if a.reward in COMPOSITE:
            ndcg = np.array([[window_reward(ndcg_cfg, ctx, lst.tolist(), w) for lst in lists[i]]
                             for i, w in zip(idx, train_w)])
            out |= {"lam": cfg.lam, **composite_split(ndcg, rewards)}
        print(json.dumps(out))


COMPOSITE = ("fair", "div")


def composite_split(ndcg: np.ndarray, reward: np.ndarray) -> dict[str, float | None]:
    """How the list-wise term (`reward` − `ndcg`) of a composite reward compares with its NDCG term inside each
    prompt's set (rows: prompts, columns: its lists); the fields the module docstring names. A ratio or best-list
    field is None when no prompt has an NDCG spread."""
    term = reward - ndcg
    spread = ndcg.std(1) > 0
    best = ndcg[np.arange(len(ndcg)), reward.argmax(1)]  # the NDCG of the composite's best list (first on ties)
    ratio = term.std(1)[spread] / ndcg.std(1)[spread]
    m = ndcg.shape[1]
    tied = [sum(c * (c - 1) for c in np.unique(row, return_counts=True)[1]) / (m * (m - 1)) for row in ndcg]
    d_ndcg = ndcg[:, :, None] - ndcg[:, None, :]  # every ordered pair of a prompt's lists
    d_reward = reward[:, :, None] - reward[:, None, :]
    ordered = d_ndcg > 0
    return {"frac_prompts_ndcg_flat": round(float(1 - spread.mean()), 4),
            "frac_pairs_ndcg_tied": round(float(np.mean(tied)), 4),
            "frac_ordered_pairs_reversed": round(float((d_reward[ordered] < 0).mean()), 4) if ordered.any() else None,
            "median_std_ratio": round(float(np.median(ratio)), 4) if spread.any() else None,
            "frac_best_not_ndcg_best": round(float((best < ndcg.max(1))[spread].mean()), 4) if spread.any() else None,
            "mean_ndcg_of_best": round(float(best.mean()), 4),
            "mean_ndcg_max": round(float(ndcg.max(1).mean()), 4)}


if __name__ == "__main__":
    main()
