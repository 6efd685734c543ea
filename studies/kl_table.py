"""GRPO numerics of run records side by side (issue 9): KL per step, validation NDCG@5, the align-valid curve,
zero-spread fractions and the fraction of rollouts above the reference max.

Usage: python -m studies.kl_table LABEL=RESULTS_DIR [LABEL=RESULTS_DIR ...] [--dataset goodreads] [--baseline DIR]
Prints one Markdown row per GRPO record (label, method, lr, seed), in the order the directories are given. With
--baseline (a results dir holding one record per dataset, e.g. the SFT model's), each row also gets its validation
NDCG@5 minus the baseline's, with a paired bootstrap over validation users (95 % CI and two-sided p).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tabulate import tabulate

from benchmark.metrics import paired_bootstrap
from benchmark.records import load_records
from benchmark.reporting.diagnostics import is_grpo, train_log_summary
from benchmark.reporting.stats import N_BOOT
from studies.common import valid_user_means

COLUMNS = ["run", "method", "lr", "seed", "KL step 1", "KL median", "KL max", "valid NDCG@5",
           "align-valid NDCG@5 (first → best@step → last)", "zero spread raw", "zero spread proxy",
           "above ref max", "train/eval gap"]


def row(label: str, rec: dict) -> list:
    kl = train_log_summary(rec, "kl")
    curve = rec["curve"]
    best = max(curve, key=lambda c: c["ndcg@5"])

    def mean(key):
        m = train_log_summary(rec, key).mean()
        return "—" if m is None else f"{m:.3f}"

    gap = rec["stats"].get("train_eval_logp_gap")
    return [label, rec["method"], f"{rec['config']['method']['lr']:g}", rec["seed"], f"{kl.values[0]:.3g}",
            f"{kl.median:.3g}", f"{kl.max:.3g}", f"{rec['metrics_valid']['ndcg@5']:.4f}",
            f"{curve[0]['ndcg@5']:.4f} → {best['ndcg@5']:.4f}@{best['step']} → {curve[-1]['ndcg@5']:.4f}",
            mean("frac_zero_spread"), mean("frac_zero_spread_proxy"), mean("frac_above_ref_max"),
            "—" if gap is None else f"{gap:.3g}"]


def vs_baseline(rec: dict, base: dict, cache: dict) -> str:
    a, wa = valid_user_means([rec], cache)
    b, _ = valid_user_means([base], cache)
    if a is None or b is None or set(a) != set(b):
        return "—"
    r = paired_bootstrap(a, b, n_boot=N_BOOT, weights=wa)
    return f"{r['mean']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] p {r['p_value']:.2g}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="LABEL=RESULTS_DIR")
    ap.add_argument("--dataset", default=None, help="only this dataset")
    ap.add_argument("--baseline", default=None, help="results dir of the record to compare validation NDCG@5 with")
    a = ap.parse_args(argv)
    base = {r["dataset"]: r for r in load_records(Path(a.baseline))} if a.baseline else {}
    cache: dict = {}
    rows = []
    for spec in a.runs:
        label, _, d = spec.partition("=")
        if not d:
            raise SystemExit(f"{spec!r}: expected LABEL=RESULTS_DIR")
        recs = [r for r in load_records(Path(d)) if is_grpo(r) and a.dataset in (None, r["dataset"])]
        if not recs:
            raise SystemExit(f"{d}: no GRPO records" + (f" for {a.dataset}" if a.dataset else ""))
        recs.sort(key=lambda r: (r["dataset"], r["method"], r["config"]["method"]["lr"], r["seed"]))
        rows += [row(label, r) + ([vs_baseline(r, base[r["dataset"]], cache)] if base else []) for r in recs]
    headers = COLUMNS + (["valid NDCG@5 − baseline [95 % CI] p"] if base else [])
    print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))


if __name__ == "__main__":
    main()
