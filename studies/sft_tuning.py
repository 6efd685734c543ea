"""Tune the `cpu` SFT (= BIGRec = pi_ref) on VALIDATION only, and print the attempts as one table (issue 8).

Each attempt is a set of profile overrides run as ``benchmark run --methods bigrec --splits valid`` (the test split
is never decoded), with Pop and SASRec as the bars, so every number in the table comes from a record:

    python -m studies.sft_tuning --datasets steam,cds,goodreads --attempts A0,A1,A2   # runs what is missing
    python -m studies.sft_tuning --datasets steam,cds,goodreads --table               # prints the table only

Records go to results/studies/sft_tuning/ (the run id hashes the profile, so a finished attempt is skipped).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import asdict
from pathlib import Path

from benchmark.config import Profile, apply_overrides, cache_dir, data_dir
from benchmark.data import load_dataset
from benchmark.metrics import paired_bootstrap
from studies.common import dataset_records, valid_user_means

# attempt -> profile overrides on top of `cpu` (the reference SFT is A0)
# The `cpu` profile before this tuning (issue 8); every attempt is a set of overrides on it, and the `cpu` profile
# is now BASE + ATTEMPTS[CHOSEN] (tests/test_sft.py pins it).
BASE = Profile(name="cpu", attention_dropout=0.2)
CHOSEN = "A17"
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
    # GPT-NeoX: Llama's block shape with dropout on embeddings and residual branches (SASRec's regulariser: 0.5);
    # intermediate 1056 gives its 2-matrix MLP the parameters of Llama's 3-matrix 704 (3.35 M in all on steam)
    "A10": {**_H, "arch": "gpt_neox", "intermediate": "1056", "hidden_dropout": "0.2"},
    "A11": {**_H, "arch": "gpt_neox", "intermediate": "1056", "hidden_dropout": "0.5"},
    # the training users SFT never saw: windows with shorter targets (what SASRec trains on; 313 -> 920 steam users)
    "A12": {**_H, "sft_min_target": "1"},
    "A13": {**_H, "sft_min_target": "1", "sft_lr": "1e-4"},
    # the cosine schedule over 2 epochs instead of 20 (the peak comes within 1-2 epochs: anneal before it)
    "A14": {**_H, "sft_min_target": "1", "sft_max_epochs": "2"},
    "A15": {**_H, "sft_min_target": "1", "arch": "gpt_neox", "intermediate": "1056", "hidden_dropout": "0.2"},
    # SASRec's shape in the LLM (d 64, 2 blocks, 1 head, dropout 0.5, lr 1e-3): is the gap the model or the format?
    "A16": {**_H, "sft_min_target": "1", "arch": "gpt_neox", "hidden": "64", "layers": "2", "heads": "1",
            "intermediate": "256", "hidden_dropout": "0.5", "attention_dropout": "0.5", "sft_lr": "1e-3"},
    # stop on the (smooth) validation loss, keep the best-NDCG@5 checkpoint: Goodreads' ranking rises slowly with
    # flat, noisy stretches that NDCG patience stopped at 0.3-1 epochs; 20-minute cap (the budget)
    "A17": {**_H, "sft_min_target": "1", "sft_stop": "loss", "sft_max_time_s": "1200"},
    "A18": {**_H, "sft_min_target": "1", "sft_stop": "loss", "sft_max_time_s": "1200", "sft_lr": "1e-3"},
    # Goodreads on its pseudo-reader split (docs §9): A17's loss stops improving at ~4 epochs while the ranking still
    # rises; is training length the limit? Patience 40 evaluations runs to the 20-minute cap
    "A19": {**_H, "sft_min_target": "1", "sft_stop": "loss", "sft_max_time_s": "1200", "sft_patience": "40"},
}
RESULTS = Path("results/studies/sft_tuning")


def run(datasets: list[str], attempts: list[str], bars: bool, results: Path = RESULTS) -> None:
    from runners.execute import execute
    from runners.plan import plan

    profile = BASE
    for name in datasets:
        ds = load_dataset(name, data_dir())
        jobs = [(["pop", "sasrec"], {})] if bars else []
        jobs += [(["bigrec"], ATTEMPTS[a]) for a in attempts]
        for methods, sets in jobs:
            for spec in plan(methods, [ds], profile, [0], dict(sets), splits=("valid",)):
                execute(spec, results, cache_dir())


def _attempt(rec: dict, cpu) -> str:
    """The attempt whose overrides give this record's profile ("?" for none)."""
    prof = rec["config"]["profile"]  # records made before a field existed lack it: compare the fields they have
    return next((a for a, s in ATTEMPTS.items()
                 if {k: v for k, v in asdict(apply_overrides(cpu, s, "profile")).items() if k in prof} == prof), "?")


def table(datasets: list[str], results: Path = RESULTS) -> str:
    """Markdown: one row per (dataset, attempt) with the kept step, time and validation NDCG@5 / R@5, vs the bars
    (SASRec's row also gets its paired test against Pop: how far the validation users can separate two systems)."""
    cpu = BASE
    base = asdict(apply_overrides(cpu, ATTEMPTS["A2"], "profile"))
    rows = ["| dataset | attempt | changes (A0, A1: vs the old `cpu`; A3..: vs A2) | kept step (epochs) | SFT time "
            "| valid NDCG@5 | valid R@5 | / SASRec | − Pop (p) |", "|---|---|---|---|---|---|---|---|---|"]
    for name in datasets:
        recs = dataset_records(results, name)
        bar = {r["method"]: r for r in recs if r["method"] in ("pop", "sasrec")}
        cache: dict = {}
        pop_users = valid_user_means([bar["pop"]], cache) if "pop" in bar else None

        def vs(r: dict) -> str:
            m = r["metrics_valid"]["ndcg@5"]
            ratio = f"{m / bar['sasrec']['metrics_valid']['ndcg@5']:.2f}" if "sasrec" in bar else "—"
            if not pop_users:
                return f"{ratio} | — |"
            # paired user bootstrap vs Pop on the same validation windows (users weighted by their window count)
            p = paired_bootstrap(valid_user_means([r], cache)[0], pop_users[0], n_boot=10_000, seed=0,
                                 weights=pop_users[1])["p_value"]
            return f"{ratio} | {m - bar['pop']['metrics_valid']['ndcg@5']:+.4f} ({p:.3f}) |"

        tuned = sorted(((_attempt(r, cpu), r) for r in recs if r["method"] == "bigrec"),
                       key=lambda t: (len(t[0]), t[0]))
        for label, r in tuned:
            prof = r["config"]["profile"]
            ref = asdict(cpu) if label in ("A0", "A1", "?") else base
            changes = ", ".join(f"{k}={v}" for k, v in prof.items() if ref.get(k) != v and k != "name") or "—"
            sft, m = r["stats"]["sft"], r["metrics_valid"]
            rows.append(f"| {name} | {label} | {changes} | {sft['best_step']} ({sft['best_epoch']:.2f}, by "
                        f"{sft.get('selected_by', 'loss')}) | {sft['seconds']:.0f} s | {m['ndcg@5']:.4f} | "
                        f"{m['recall@5']:.4f} | {vs(r)}")
        for b in ("pop", "sasrec"):
            if b in bar:
                m = bar[b]["metrics_valid"]
                rows.append(f"| {name} | **{b}** | — | — | — | {m['ndcg@5']:.4f} | {m['recall@5']:.4f} | "
                            + (vs(bar[b]) if b == "sasrec" else "| |"))
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="steam,cds,goodreads")
    p.add_argument("--attempts", default="A0,A1,A2")
    p.add_argument("--no-bars", action="store_true", help="do not run Pop and SASRec")
    p.add_argument("--table", action="store_true", help="only print the table of the finished records")
    p.add_argument("--results-dir", default=str(RESULTS))
    a = p.parse_args(argv)
    names = a.datasets.split(",")
    if not a.table:
        run(names, a.attempts.split(","), not a.no_bars, Path(a.results_dir))
    print(table(names, Path(a.results_dir)))


if __name__ == "__main__":
    main()
