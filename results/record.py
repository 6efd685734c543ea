"""Run records: one JSON per finished run, written atomically, plus per-window predictions as JSONL.

Layout: ``<results_dir>/<dataset>/<method>/<run_id>.json`` and ``<run_id>.predictions.jsonl.gz`` beside it. The
record is written LAST (every file atomically, benchmark/io.py), so its presence means the run finished; the runner
skips finished runs after checking the record and its predictions are complete (`damage`); a damaged record is set
aside and its run done again.

Record fields:
    run_id: hash of (method, dataset, profile, seed, resolved configs, data hash): re-running is idempotent.
    method, display_name, category, dataset, profile, seed: what ran.
    variant: the table row: the method, or method + its swept fields (``bon_inference_n2``).
    oracle, role: the method's class flags (methods/base.py) that reports need: an oracle row is never ranked;
        role ``"sft"`` is the shared SFT model (Table 1's cost unit), ``"popularity"`` the sanity bar's floor.
        Records written before these existed get them from `reports.records.LEGACY_FLAGS` when read.
    curve: the validation curve of a method that logs one during training (GRPO: ``[{"step", "recall@5",
        "ndcg@5", "ndcg@10", "mgu", "ild"}, ...]``, Fig. 4a and 7), else None. (Older records: ``stats.valid_curve``.)
    config: {"method": ..., "profile": ..., "data": ...}: the fully resolved configs.
    metrics: test-split aggregate metrics at full precision (benchmark.metrics.score_lists keys).
    metrics_valid: the same on the validation split.
    timings: fit_s (training or loading), recommend_s (latency: the whole test split's lists), valid_s.
    n_test: number of test windows. data_hash, data_stats: the preprocessed dataset's hash and Table 2 numbers.
    stats: method-specific numbers (SFT curve, tokens generated, ...). artifacts: paths returned by fit.
    provenance: git SHA + dirty flag, library versions, python, machine, torch threads, device, date.
    predictions_file: the sibling JSONL: {"user", "history", "target", "items", "metrics"} per test window.
    valid_predictions_file: the same for the validation windows (model selection, sanity bars).
    created: ISO timestamp.

Experiment plans (``run --experiment NAME``, benchmark/experiments.py): ``<results_dir>/experiments/<name>_<profile>
.json`` = {"experiment", "output", "profile", "datasets": {dataset: {"command", "created", "runs": [{"run_id",
"method", "dataset", "seed", "panel", "series", "x"}, ...]}}}: the runs an output needs, so that reports draw it only
from complete data. Planning a dataset again replaces that dataset's entry; other datasets are kept.
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path

from benchmark.io import atomic_write_gzip, atomic_write_text

RECORD_KEYS = ("run_id", "method", "dataset", "profile", "seed", "config", "metrics", "metrics_valid", "n_test",
               "n_valid")


def record_path(results_dir: Path, dataset: str, method: str, run_id: str) -> Path:
    return Path(results_dir) / dataset / method / f"{run_id}.json"


def write_run(results_dir: Path, record: dict, predictions: list[dict], valid_predictions: list[dict] = ()) -> Path:
    """Write predictions (test, then validation), then the record (the commit marker). Returns the record path."""
    path = record_path(results_dir, record["dataset"], record["method"], record["run_id"])
    if predictions:  # a validation-only (tuning) run decodes no test window
        pred = path.with_name(f"{record['run_id']}.predictions.jsonl.gz")
        atomic_write_gzip(pred, "".join(json.dumps(p) + "\n" for p in predictions))
        record["predictions_file"] = pred.name
    if valid_predictions:
        vpred = path.with_name(f"{record['run_id']}.valid.jsonl.gz")
        atomic_write_gzip(vpred, "".join(json.dumps(p) + "\n" for p in valid_predictions))
        record["valid_predictions_file"] = vpred.name
    atomic_write_text(path, json.dumps(record, indent=1, default=str) + "\n")
    return path


def plan_path(results_dir: Path, experiment: str, profile: str) -> Path:
    return Path(results_dir) / "experiments" / f"{experiment}_{profile}.json"


def write_plan(results_dir: Path, plan: dict) -> Path:
    """Store an experiment's plan atomically, keeping the entries of datasets it does not plan. Returns its path."""
    path = plan_path(results_dir, plan["experiment"], plan["profile"])
    old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    merged = {**plan, "datasets": {**old.get("datasets", {}), **plan["datasets"]}}
    atomic_write_text(path, json.dumps(merged, indent=1) + "\n")
    return path


def _count_lines(path: Path) -> int:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def damage(path: Path, run_id: str) -> str | None:
    """Why the record at `path` (and the predictions files it names) is not a finished run, or None if it is.

    A finished record parses, is an object with the expected `run_id` and the keys `RECORD_KEYS`, and every
    predictions file it names exists, decompresses and has one line per scored window (``n_test`` / ``n_valid``).
    """
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"unreadable record ({type(e).__name__}: {e})"
    if not isinstance(rec, dict) or rec.get("run_id") != run_id:
        return f"not a record of run {run_id}"
    missing = [k for k in RECORD_KEYS if k not in rec]
    if missing:
        return f"record lacks {', '.join(missing)}"
    for field, n_key in (("predictions_file", "n_test"), ("valid_predictions_file", "n_valid")):
        if rec.get(field):
            pred = Path(path).with_name(rec[field])
            try:
                n = _count_lines(pred)
            except (OSError, EOFError, zlib.error, UnicodeDecodeError) as e:
                return f"{pred.name} unreadable ({type(e).__name__}: {e})"
            if n != rec[n_key]:
                return f"{pred.name} has {n} lines, the record scored {rec[n_key]} windows"
    return None


def run_status(results_dir: Path, dataset: str, method: str, run_id: str) -> str | None:
    """``None`` (not run), ``"finished"``, or the damage of an existing record (see `damage`)."""
    path = record_path(results_dir, dataset, method, run_id)
    if not path.exists():
        return None
    return damage(path, run_id) or "finished"


def is_finished(results_dir: Path, dataset: str, method: str, run_id: str) -> bool:
    return run_status(results_dir, dataset, method, run_id) == "finished"


def set_aside(results_dir: Path, dataset: str, method: str, run_id: str) -> Path:
    """Rename a damaged record to ``<run_id>.json.damaged`` (kept for inspection; reports read only ``*.json``)."""
    path = record_path(results_dir, dataset, method, run_id)
    aside = path.with_name(path.name + ".damaged")
    path.replace(aside)
    return aside
