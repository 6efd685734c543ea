"""Greedy against sampled lists of the SFT model and of aligned policies (issue 9 item 3: why does GRPO lower
greedy validation NDCG@5 while the reward of its sampled rollouts rises?).

For the SFT model and each record of `--methods` under ``<results>/<dataset>/`` whose final model is still in the
cache (``<cache>/runs/<run_id>/final``), on the validation split (or a seeded subset of `--max-windows`):
NDCG@5 of the greedy list (how every method is evaluated) and the mean NDCG@5 over `--samples` lists sampled at the
rollout settings (T 0.8, repetition penalty 1.05: the distribution GRPO trains), and how far the greedy list moved
from the SFT model's (same first item; items shared of K).

    python -m studies.greedy_vs_sample --dataset goodreads --seeds 0 --max-windows 600 \
        --out results/studies/greedy_vs_sample/goodreads.json
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from pathlib import Path

import torch

from benchmark.config import cache_dir, data_dir, get_profile
from benchmark.data import load_dataset
from benchmark.metrics import score_lists
from methods.base import RunContext
from methods.common.generation import DecodingSpec
from methods.common.llm import generate_for
from methods.common.sft import load_sft, sft_dir
from studies.common import dataset_records

RESULTS = Path("results/studies/grpo_tuning")  # the aligned policies' records (studies/grpo_tuning.py's runs)
OUT = Path("results/studies/greedy_vs_sample")  # where the measured tables are kept (--out OUT/<dataset>.json)


def measure(ctx, path: Path, windows, samples: int, seed: int = 0) -> dict:
    """Greedy and sampled NDCG@5 of the model at `path` on `windows`, and its greedy lists."""
    model, tok, _ = load_sft(path)
    d = ctx.data

    def ndcg5(lists):
        return score_lists(lists, windows, d.item_genres, d.genre_set, d.n_items, list_len=ctx.profile.k)[0]["ndcg@5"]

    greedy = [s[0] for s in generate_for(ctx, model, tok, windows, progress=False).lists]
    torch.manual_seed(seed)
    sampled = generate_for(ctx, model, tok, windows, DecodingSpec.rollout(samples), progress=False).lists
    return {"greedy": greedy, "greedy_ndcg@5": ndcg5(greedy),
            "sampled_ndcg@5": statistics.mean(ndcg5([s[j] for s in sampled]) for j in range(samples))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--results-dir", type=Path, default=RESULTS)
    ap.add_argument("--methods", default="bon_static,blade_n")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds of the aligned records to measure")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--max-windows", type=int, default=0, help="a seeded subset of the validation windows (0: all)")
    ap.add_argument("--out", type=Path, help=f"also write the rows as JSON here (kept as {OUT}/<dataset>.json)")
    a = ap.parse_args(argv)
    profile = get_profile(a.profile)
    ds = load_dataset(a.dataset, data_dir())
    windows = ds.splits["valid"]
    if a.max_windows and len(windows) > a.max_windows:
        windows = random.Random(0).sample(windows, a.max_windows)
    ctx = RunContext(data=ds, profile=profile, seed=0, run_dir=Path("/nonexistent"), cache_dir=cache_dir())
    seeds = {int(s) for s in a.seeds.split(",")}
    models = [("SFT", "", "", sft_dir(ds, profile, ctx.cache_dir) / "model")]
    for r in dataset_records(a.results_dir, a.dataset, ds.data_hash):  # never an earlier split's policies
        final = ctx.cache_dir / "runs" / r["run_id"] / "final"
        if r["method"] in a.methods.split(",") and r["seed"] in seeds and r["profile"] == a.profile and final.exists():
            models.append((r["method"], r["seed"], r["config"]["method"]["lr"], final))
    rows, base = [], None
    for name, seed, lr, path in models:
        m = measure(ctx, path, windows, a.samples)
        base = base or m["greedy"]
        same_first = statistics.mean(g[0] == b[0] for g, b in zip(m["greedy"], base))
        shared = statistics.mean(len(set(g) & set(b)) for g, b in zip(m["greedy"], base))
        rows.append({"model": name, "seed": seed, "lr": lr, "greedy_ndcg@5": m["greedy_ndcg@5"],
                     "sampled_ndcg@5": m["sampled_ndcg@5"], "same_first_as_sft": same_first,
                     "shared_with_sft": shared})
        print(f"| {name} | {seed} | {lr} | {m['greedy_ndcg@5']:.4f} | {m['sampled_ndcg@5']:.4f} | {same_first:.3f} | "
              f"{shared:.2f} |", flush=True)
    if a.out:
        a.out.write_text(json.dumps({"dataset": a.dataset, "n_windows": len(windows), "samples": a.samples,
                                     "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
