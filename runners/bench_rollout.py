"""Benchmark: rollout throughput with the constrained trie processor vs the same sampling unconstrained.

Usage: python -m runners.bench_rollout [--dataset steam] [--profile cpu] [--prompts 64] [--G 16] [--repeats 3]
Same model (the shared SFT checkpoint), prompts, batch and sampling settings (T 0.8, repetition penalty 1.05);
interleaved repeats. Reports generated tokens/s (up to and including EOS; time inside `generate` only, so the
unconstrained side is not charged for grounding) of each and the ratio.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from pathlib import Path

import torch

from benchmark.config import cache_dir, data_dir, get_profile
from benchmark.data import load_dataset
from benchmark.io import atomic_write_text
from methods.base import RunContext
from methods.common.generation import DecodingSpec
from methods.common.llm import generate_for
from methods.common.models import n_params
from methods.common.sft import load_sft, train_sft


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="steam")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--G", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    profile = get_profile(a.profile)
    ds = load_dataset(a.dataset, data_dir())
    ctx = RunContext(data=ds, profile=profile, seed=0, run_dir=Path("."), cache_dir=cache_dir())
    model, tok, _ = load_sft(train_sft(ds, profile, ctx.cache_dir))
    wins = ds.splits["align"][: a.prompts]
    rates = {True: [], False: []}
    for rep in range(a.repeats + 1):
        for constrained in (True, False):
            torch.manual_seed(rep)
            res = generate_for(ctx, model, tok, wins, DecodingSpec.rollout(a.G), constrained=constrained,
                               batch_size=max(1, 256 // a.G), progress=False)
            if rep:  # the first round warms up
                rates[constrained].append(res.tokens_generated / res.generate_seconds)
    c, u = statistics.median(rates[True]), statistics.median(rates[False])
    out = {"dataset": a.dataset, "profile": a.profile, "item_repr": profile.item_repr, "params": n_params(model),
           "rows_per_call": 256 // a.G * a.G, "constrained_tok_s": c, "unconstrained_tok_s": u, "ratio": c / u,
           "torch_threads": torch.get_num_threads()}
    print(json.dumps(out, indent=1))
    if a.out:
        atomic_write_text(Path(a.out), json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
