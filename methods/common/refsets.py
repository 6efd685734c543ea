"""Cached reference sets: M lists per alignment prompt sampled once from pi_ref (the SFT model), design.md §5.

Shared by every method that scores rollouts against samples of the reference policy (BLADE, static BoN alignment).
The sets are stored as grounded item lists (not rewards), so every reward kind can be recomputed from them.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from benchmark.data import alignment_pool
from benchmark.io import atomic_write, content_hash
from benchmark.locks import main_lock
from methods.common.generation import DecodingSpec
from methods.common.llm import generate_for
from methods.common.sft import load_sft


def reference_lists(ctx, sft_path: Path, align_idx: list[int], M: int, temperature: float,
                    repetition_penalty: float) -> dict[int, np.ndarray]:
    """M lists per alignment prompt sampled once from pi_ref (the SFT model) with the rollout settings.

    Cached per (dataset, profile, SFT checkpoint, M, sampling settings) as grounded item lists (not rewards), so
    every reward kind can be recomputed from them; filled lazily, so seeds whose subsets overlap share samples.

    Args:
        ctx: the run context (data, profile, cache dir, stats).
        sft_path: the SFT checkpoint (pi_ref).
        align_idx: indices into the alignment pool (`benchmark.data.alignment_pool` of the profile's
            ``align_source``) of the prompts that need a set.
        M: lists per prompt.
        temperature, repetition_penalty: the sampling settings (the rollouts').

    Returns:
        {pool window index: int32 array [M, K]}.
    """
    from accelerate import PartialState

    sft = Path(sft_path)  # keyed relative to the cache, so a moved or copied cache keeps its reference sets
    sft_key = str(sft.relative_to(ctx.cache_dir)) if sft.is_relative_to(ctx.cache_dir) else str(sft)
    key = content_hash({"sft": sft_key, "M": M, "T": temperature, "rp": repetition_penalty,
                        "k": ctx.profile.k, "excl": ctx.profile.exclude_history, "data": ctx.data.data_hash,
                        **({"pool": ctx.profile.align_source} if ctx.profile.align_source != "align" else {})})
    path = ctx.cache_dir / "refsets" / f"{ctx.data.name}-{ctx.profile.name}-{key}.npz"
    state = PartialState()
    with state.main_process_first(), main_lock(path.with_name(path.name + ".lock")):
        have: dict[int, np.ndarray] = {}
        if path.exists():
            z = np.load(path)
            have = dict(zip(z["idx"].tolist(), z["lists"]))
        missing = [i for i in align_idx if i not in have]
        if missing and state.is_main_process:
            model, tok, _ = load_sft(sft_path)
            pool = alignment_pool(ctx.data, ctx.profile.align_source)
            wins = [pool[i] for i in missing]
            ctx.log.info("reference set: sampling %d lists for %d prompts (M=%d)", M * len(wins), len(wins), M)
            torch.manual_seed(0)  # the reference set does not depend on the run seed
            t0 = time.time()
            res = generate_for(ctx, model, tok, wins, DecodingSpec.rollout(M, temperature, repetition_penalty),
                               batch_size=max(1, 1024 // M))
            ctx.stats["refset_sample_s"] = ctx.stats.get("refset_sample_s", 0.0) + time.time() - t0
            for i, lists in zip(missing, res.lists):
                have[i] = np.asarray(lists, dtype=np.int32)
            idx = np.asarray(sorted(have), dtype=np.int64)
            lists = np.stack([have[i] for i in idx.tolist()])
            atomic_write(path, lambda f: np.savez(f, idx=idx, lists=lists))
    if missing and not state.is_main_process:
        z = np.load(path)
        have = dict(zip(z["idx"].tolist(), z["lists"]))
    ctx.stats["refset_file"] = str(path)
    return {i: have[i] for i in align_idx}
