"""Where each method's lists sit between popularity and the SFT model (docs/archive/benchmarks_protocol1.md), from
the records.

For one dataset and seed of a results folder, per method: test NDCG@5, catalogue coverage, and the mean number of
items (of 10) each test list shares with Pop's list and with the SFT model's (BIGRec's) list of the same window.

    python -m studies.list_overlap --results-dir results/reference --dataset steam --seed 0

(the numbers in docs/archive/benchmarks_protocol1.md come from the protocol-1 records kept in
results/studies/list_overlap)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmark.records import dedupe, load_records, window_lists


def overlap_table(records: list[dict]) -> list[tuple[str, float, float, float, float]]:
    """[(method, NDCG@5, coverage, shared with Pop, shared with SFT)] for the non-oracle records given (one
    dataset, one seed); Pop and SFT rows are found by the records' roles."""
    pop = next(r for r in records if r["role"] == "popularity")
    sft = next(r for r in records if r["role"] == "sft")
    base = {"pop": window_lists(pop), "sft": window_lists(sft)}
    out = []
    for r in sorted(records, key=lambda r: r["display_name"].lower()):
        if r["oracle"]:
            continue
        mine = window_lists(r)
        shared = {k: float(np.mean([len(set(v) & set(b[w])) for w, v in mine.items() if w in b]))
                  for k, b in base.items()}
        out.append((r["display_name"], r["metrics"]["ndcg@5"], r["metrics"]["coverage"], shared["pop"], shared["sft"]))
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results-dir", default="results/reference")
    ap.add_argument("--dataset", default="steam")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    recs = [r for r in dedupe(load_records(Path(a.results_dir)))
            if r["dataset"] == a.dataset and r["seed"] == a.seed and r.get("predictions_file")]
    if not recs:
        raise SystemExit(f"no test records of {a.dataset} seed {a.seed} under {a.results_dir}")
    print("| method | test NDCG@5 | coverage | items shared with Pop (of 10) | items shared with SFT (of 10) |")
    print("|---|---|---|---|---|")
    for name, ndcg, cov, pop, sft in overlap_table(recs):
        print(f"| {name} | {ndcg:.4f} | {cov:.3f} | {pop:.2f} | {sft:.2f} |")


if __name__ == "__main__":
    main()
