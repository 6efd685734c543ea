"""What more than one study needs. Studies import the product (benchmark, methods, runners) and this module, never
each other; they read run records only through `benchmark.records`."""

from __future__ import annotations

from pathlib import Path

from benchmark.records import by_created, load_records
from benchmark.reporting.stats import pooled_user_means


def dataset_records(results: Path, name: str, current: str | None = None) -> list[dict]:
    """The records of dataset `name` under `results` (``<name>/<method>/<run_id>.json``, sorted by path) made on one
    split of its files: data hash `current`, or, when not given, that of the dataset's newest record (a study's
    records were all made on the split of their day). Records of an earlier split of the same files (Goodreads
    before its pseudo-reader split, docs/benchmarks.md §9) are left out."""
    recs = [r for r in load_records(Path(results)) if r["dataset"] == name]
    if current is None and recs:
        current = max(recs, key=by_created)["data_hash"]
    return [r for r in recs if r["data_hash"] == current]


def valid_user_means(recs: list[dict], cache: dict) -> tuple[dict[str, float], dict[str, float]]:
    """({user: validation NDCG@5 averaged over its windows and the records' seeds}, {user: window count})."""
    return pooled_user_means(recs, "ndcg@5", cache, "valid_predictions_file")
