"""Issue 22 ("Fair comparisons"): the validation NDCG@5 of the rows its fixes change, before and after.

Before: the reference as committed with run-id protocol 1 (its validation records of these rows and BIGRec, copied to
results/studies/fair_comparisons/before). After: the protocol-2 records under .../after, made on the same data and the same shared SFT draw as the reference (both predate
issue 23's per-seed SFT), with

    python -m benchmark run --methods sprec,d3,sft_align --datasets steam,cds --seeds 0 1 2 --splits valid \\
        --results-dir results/studies/fair_comparisons/after

Every difference is the two-level paired bootstrap of the reports (seeds paired, users within a seed), on
validation. S-DPO, List DPO, BLADE-N and static BoN are unchanged by construction on `cpu` (one tokenisation: the
`cpu` tokenizer adds no BOS; one BLADE-N run was already the `cpu` row) and were not re-run.

    python studies/fair_comparisons.py [--before DIR] [--after DIR]
    python studies/fair_comparisons.py --reward-cost      # item 10: the reward's item genres built once
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the project root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.reporting.stats import paired_test
from studies.common import dataset_records

RESULTS = Path(__file__).resolve().parents[1] / "results" / "studies" / "fair_comparisons"
FIELD = "valid_predictions_file"
METHODS = ("sprec", "d3", "sft_align")


def _seeds(recs: list[dict]) -> str:
    vals = [r["metrics_valid"]["ndcg@5"] for r in sorted(recs, key=lambda r: r["seed"])]
    return " / ".join(f"{v:.4f}" for v in vals) + f" ({sum(vals) / len(vals):.4f})" if vals else "—"


def _diff(a: list[dict], b: list[dict], cache: dict) -> str:
    res = paired_test(a, b, "ndcg@5", cache, FIELD) if a and b else None
    return "—" if res is None else f"{res['mean']:+.4f} (p {res['p_value']:.3f})"


def table(before: Path, after: Path, datasets: list[str]) -> str:
    cache: dict = {}
    out = ["| dataset | method | before: seeds 0 / 1 / 2 (mean) | after: seeds 0 / 1 / 2 (mean) | after − before | "
           "after − BIGRec |", "|---|---|---|---|---|---|"]
    for d in datasets:
        old, new = dataset_records(before, d), dataset_records(after, d)
        bigrec = [r for r in old if r["method"] == "bigrec" and r["profile"] == "cpu"]
        for m in METHODS:
            b = [r for r in old if r["method"] == m and r["profile"] == "cpu"]
            a = [r for r in new if r["method"] == m and r["profile"] == "cpu"]
            out.append(f"| {d} | {m} | {_seeds(b)} | {_seeds(a)} | {_diff(a, b, cache)} | "
                       f"{_diff(a, bigrec, cache)} |")
    return "\n".join(out)


def reward_cost(dataset: str = "steam", calls: int = 2000) -> dict:
    """Item 10: seconds per BLADE reward call (`list_reward`, R = NDCG) with the item genres rebuilt on every call, as
    before, against `Dataset.item_genres` built once, on one process, interleaved; and what that is over the 40,960
    reward calls of a steam `cpu` BLADE-N run (128 steps x 4 prompts x G 16 + 512 prompts x M 64 reference lists)."""
    import time

    from benchmark.config import data_dir
    from benchmark.data import load_dataset
    from methods.common.rewards import list_reward

    ds = load_dataset(dataset, data_dir())
    wins = ds.splits["align"][:calls]
    lists = [list(w.target) for w in wins]
    genres = {"rebuilt": lambda: tuple(frozenset(it.genres) for it in ds.items), "once": lambda: ds.item_genres}
    per = {k: [] for k in genres}
    for _ in range(3):  # interleaved rounds: the machine's noise falls on both
        for name, get in genres.items():
            t0 = time.perf_counter()
            for lst, w in zip(lists, wins):
                list_reward("ndcg", lst, w.target, w.history, get(), ds.genre_set, 10, 0.0)
            per[name].append((time.perf_counter() - t0) / len(wins))
    before, after = min(per["rebuilt"]), min(per["once"])
    n = 128 * 4 * 16 + 512 * 64
    return {"before_ms": before * 1e3, "after_ms": after * 1e3, "ratio": before / after,
            "saved_s_per_run": (before - after) * n, "calls_per_run": n}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, default=RESULTS / "before")
    ap.add_argument("--after", type=Path, default=RESULTS / "after")
    ap.add_argument("--datasets", nargs="+", default=["steam", "cds"])
    ap.add_argument("--reward-cost", action="store_true", help="time item 10 (the reward's item genres) instead")
    a = ap.parse_args(argv)
    if a.reward_cost:
        for d in a.datasets:
            print(d, reward_cost(d))
        return
    print(table(a.before, a.after, a.datasets))


if __name__ == "__main__":
    main()
