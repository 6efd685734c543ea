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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", type=Path, default=RESULTS / "before")
    ap.add_argument("--after", type=Path, default=RESULTS / "after")
    ap.add_argument("--datasets", nargs="+", default=["steam", "cds"])
    a = ap.parse_args(argv)
    print(table(a.before, a.after, a.datasets))


if __name__ == "__main__":
    main()
