"""Run records: one JSON per finished run, written atomically, plus per-window predictions as JSONL.

Layout: ``<results_dir>/<dataset>/<method>/<run_id>.json`` and ``<run_id>.predictions.jsonl.gz`` beside it. The
record is written LAST, so its presence means the run finished; the runner skips finished runs.

Record fields:
    run_id: hash of (method, dataset, profile, seed, resolved configs, data hash): re-running is idempotent.
    method, display_name, category, dataset, profile, seed: what ran.
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
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder + os.replace: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_gzip(path: Path, text: str) -> None:
    """Like `atomic_write_text`, gzip-compressed (mtime 0, so identical content gives identical bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(text.encode("utf-8"))
    os.replace(tmp, path)


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


def is_finished(results_dir: Path, dataset: str, method: str, run_id: str) -> bool:
    return record_path(results_dir, dataset, method, run_id).exists()
