"""How much room a cached reference set leaves the static estimator: per alignment prompt, the rewards of its M
reference lists (the same sets, rewards and subset the GRPO runs use; sampled and cached if missing).

Usage: python -m studies.refset_stats [--datasets steam,cds,goodreads] [--profile cpu] [--seed 0] [--reward ndcg]
Prints, per dataset: prompts, M, the fraction of prompts whose reference rewards are ALL zero (any rollout that
scores above zero then beats every reference list and gets the static F = 1, whatever its rank), the mean
reference reward and the mean per-prompt maximum.
"""

from __future__ import annotations

import argparse
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
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    profile = get_profile(a.profile)
    cfg = apply_overrides(BladeConfig(), {**PROFILE_OVERRIDES.get(profile.name, {}), "reward": a.reward},
                          "BLADE config")
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
        print(json.dumps({"dataset": name, "profile": profile.name, "seed": a.seed, "reward": a.reward,
                          "prompts": len(train_w), "M": cfg.M,
                          "frac_prompts_all_zero": round(float((rewards.max(1) == 0).mean()), 4),
                          "mean_ref_reward": round(float(rewards.mean()), 4),
                          "mean_ref_max": round(float(rewards.max(1).mean()), 4)}))


if __name__ == "__main__":
    main()
