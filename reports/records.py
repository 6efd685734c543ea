"""Read run records and their per-window predictions (no torch, no `methods`/`runners` imports).

A record is ``<results_dir>/<dataset>/<method>/<run_id>.json``; its per-window predictions are the sibling JSONL
named by ``predictions_file`` (one line per test window: ``{"user", "items", "target", "metrics"}``).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import warnings
import zlib
from pathlib import Path
from typing import Any

from benchmark.errors import UserError

REQUIRED_KEYS = ("run_id", "method", "display_name", "category", "dataset", "profile", "seed", "metrics")
# the metric Table 1, the significance, sanity and GRPO tables read from every record of a decoded split (Table 3
# shows "—" for any other metric a record lacks)
REQUIRED_METRICS = ("ndcg@5",)


@contextlib.contextmanager
def _readable(path: Path):
    """A truncated, non-gzip or non-UTF-8 predictions file is one UserError that names it."""
    try:
        yield
    except (EOFError, OSError, zlib.error, UnicodeDecodeError) as e:
        raise UserError(f"damaged predictions file {path} ({type(e).__name__}: {e}). Delete its record and run it "
                        "again") from None


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    """Load every run record under `results_dir`, sorted by path.

    Each returned dict is the JSON record plus ``_path`` (its file), which locates the predictions file.

    Args:
        results_dir: the directory holding ``<dataset>/<method>/<run_id>.json``.

    Returns:
        The records (duplicates not yet resolved; see `dedupe`).

    Raises:
        UserError: a record is not valid JSON, not an object, or lacks a required key (the message names the file).
    """
    records = []
    for path in sorted(Path(results_dir).glob("*/*/*.json")):
        if path.name.endswith(".predictions.jsonl"):  # defensive: the glob already excludes .jsonl
            continue
        try:
            rec = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"malformed run record {path}: {e}") from e
        if not isinstance(rec, dict):
            raise UserError(f"malformed run record {path}: expected a JSON object")
        missing = [k for k in REQUIRED_KEYS if k not in rec]
        if missing:
            raise UserError(f"malformed run record {path}: missing keys {', '.join(missing)}")
        for field in ("metrics", "metrics_valid"):
            m = rec.get(field) or {}
            if field == "metrics" and "test" not in rec.get("splits", ["valid", "test"]):
                continue  # a tuning record decoded no test window
            lost = [k for k in REQUIRED_METRICS if not isinstance(m.get(k), (int, float))]
            if field in rec and lost:
                raise UserError(f"malformed run record {path}: {field} lacks {', '.join(lost)}. Run it again "
                                "(delete the record) or remove it from the results folder")
        rec["_path"] = str(path)
        records.append(rec)
    return records


def row_key(record: dict[str, Any]) -> str:
    """The table row of a record: its method, or method + variant for swept configs (inference BoN's n)."""
    return record.get("variant") or record["method"]


def by_created(record: dict[str, Any]) -> tuple[str, str]:
    """Sort key, oldest first: the ISO-8601 ``created`` timestamp (sorts as a string), then ``run_id`` for ties."""
    return str(record.get("created", "")), record["run_id"]


def dedupe(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep one record per (method, dataset, profile, seed): the newest by its ``created`` timestamp.

    Run ids hash the resolved config, so two ids for one key mean the config or the data changed between runs.
    Reports never choose silently: every dropped record is named in a warning.
    """
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((row_key(r), r["dataset"], r["profile"], r["seed"]), []).append(r)
    kept = []
    for key in sorted(groups, key=str):
        group = sorted(groups[key], key=by_created)
        kept.append(group[-1])
        if len(group) > 1:
            dropped = ", ".join(r["run_id"] for r in group[:-1])
            warnings.warn(
                f"{len(group)} runs for method={key[0]} dataset={key[1]} profile={key[2]} seed={key[3]}: "
                f"keeping the newest {group[-1]['run_id']} (created {group[-1].get('created', '?')}), "
                f"ignoring {dropped}",
                stacklevel=2,
            )
    return kept


def load_predictions(record: dict[str, Any], field: str = "predictions_file") -> list[dict[str, Any]] | None:
    """Read a record's predictions JSONL (test; ``field="valid_predictions_file"`` for validation); None if the
    record names none.

    Raises:
        UserError: the file the record names is missing, truncated or not gzip, a line is not valid JSON or lacks
            ``user``/``metrics``.
    """
    name = record.get(field)
    if not name:
        return None
    path = Path(record["_path"]).parent / name
    if not path.exists():
        raise UserError(f"missing predictions file {path} (named by {record['_path']}). Copy it back, or delete the "
                        "record and run it again")
    rows = []
    opener = gzip.open if path.name.endswith(".gz") else open
    with _readable(path), opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"malformed predictions file {path}, line {n}: {e}") from e
            if "user" not in row or "metrics" not in row:
                raise UserError(f"malformed predictions file {path}, line {n}: needs 'user' and 'metrics'")
            rows.append(row)
    return rows

