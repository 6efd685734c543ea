"""Tune the `cpu` SFT (= BIGRec = pi_ref) on VALIDATION only, and print the attempts as one table (issue 8).

Each attempt is a set of profile overrides run as ``benchmark run --methods bigrec --splits valid`` (the test split
is never decoded), with Pop and SASRec as the bars, so every number in the table comes from a record:

    python -m runners.sft_tuning --datasets steam,cds,goodreads --attempts A0,A1,A2   # runs what is missing
    python -m runners.sft_tuning --datasets steam,cds,goodreads --table               # prints the table only

Records go to results/sft_tuning/ (the run id hashes the profile, so a finished attempt is skipped).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from pathlib import Path

from benchmark.config import apply_overrides, cache_dir, data_dir, get_profile
from benchmark.data import load_dataset

# attempt -> profile overrides on top of `cpu` (the reference SFT is A0)
_H = {"sft_completion_only": "false", "sft_select": "ndcg", "sft_max_epochs": "20"}  # A2: the base of A3..
ATTEMPTS: dict[str, dict[str, str]] = {
    "A0": {},
    "A1": {"sft_completion_only": "false"},
    "A2": _H,
    "A3": {**_H, "attention_dropout": "0.3"},
    "A4": {**_H, "sft_lr": "1e-3"},
    "A5": {**_H, "sft_label_smoothing": "0.1"},
    "A6": {**_H, "sft_batch": "64"},
    "A7": {**_H, "hidden": "512", "intermediate": "1408", "heads": "8"},
    "A8": {**_H, "sft_lr": "1e-4"},
    "A9": {**_H, "hidden": "128", "intermediate": "352"},
}
RESULTS = Path("results/sft_tuning")


def run(datasets: list[str], attempts: list[str], bars: bool) -> None:
    from runners.execute import execute
    from runners.plan import plan

    profile = get_profile("cpu")
    for name in datasets:
        ds = load_dataset(name, data_dir())
        jobs = [(["pop", "sasrec"], {})] if bars else []
        jobs += [(["bigrec"], ATTEMPTS[a]) for a in attempts]
        for methods, sets in jobs:
            for spec in plan(methods, [ds], profile, [0], dict(sets), splits=("valid",)):
                execute(spec, RESULTS, cache_dir())


def table(datasets: list[str]) -> str:
    """Markdown: one row per (dataset, attempt) with the kept step, time and validation NDCG@5 / R@5, vs the bars."""
    cpu = get_profile("cpu")
    defaults = asdict(cpu)
    rows = ["| dataset | attempt | changes vs `cpu` | kept step (epochs) | selected by | SFT time | valid NDCG@5 "
            "| valid R@5 | / SASRec | − Pop |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in datasets:
        recs = [json.loads(p.read_text()) for p in sorted((RESULTS / name).glob("*/*.json"))]
        bar = {r["method"]: r["metrics_valid"] for r in recs if r["method"] in ("pop", "sasrec")}
        for r in recs:
            if r["method"] != "bigrec":
                continue
            prof = r["config"]["profile"]
            changes = {k: v for k, v in prof.items() if defaults.get(k) != v}
            label = next((a for a, s in ATTEMPTS.items()  # the attempt whose overrides give this record's profile
                          if asdict(apply_overrides(cpu, s, "profile")) == prof), "?")
            sft, m = r["stats"]["sft"], r["metrics_valid"]
            ratio = m["ndcg@5"] / bar["sasrec"]["ndcg@5"] if "sasrec" in bar else float("nan")
            diff = m["ndcg@5"] - bar["pop"]["ndcg@5"] if "pop" in bar else float("nan")
            rows.append(f"| {name} | {label} | {', '.join(f'{k}={v}' for k, v in changes.items()) or '—'} | "
                        f"{sft['best_step']} ({sft['best_epoch']:.2f}) | {sft.get('selected_by', 'loss')} | "
                        f"{sft['seconds']:.0f} s | {m['ndcg@5']:.4f} | {m['recall@5']:.4f} | {ratio:.2f} | "
                        f"{diff:+.4f} |")
        for b in ("pop", "sasrec"):
            if b in bar:
                rows.append(f"| {name} | {b} | — | — | — | — | {bar[b]['ndcg@5']:.4f} | {bar[b]['recall@5']:.4f} "
                            f"| | |")
    return "\n".join(rows)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="steam,cds,goodreads")
    p.add_argument("--attempts", default="A0,A1,A2")
    p.add_argument("--no-bars", action="store_true", help="do not run Pop and SASRec")
    p.add_argument("--table", action="store_true", help="only print the table of the finished records")
    a = p.parse_args()
    names = a.datasets.split(",")
    if not a.table:
        run(names, a.attempts.split(","), not a.no_bars)
    print(table(names))


if __name__ == "__main__":
    main()
