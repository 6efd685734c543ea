"""Read run records, experiment plans and per-window predictions; pool per-user values for the bootstrap.

A record is ``<results_dir>/<dataset>/<method>/<run_id>.json``; its per-window predictions are the sibling JSONL
named by ``predictions_file`` (one line per test window: ``{"user", "items", "target", "metrics"}``). Plans are
``<results_dir>/experiments/<name>_<profile>.json`` (results/record.py). This module imports nothing else in
``reports/`` (and no torch, `methods` or `runners`).

Bootstrap convention (every CI and paired test of the reports): a user's windows are averaged, each user's value is
averaged over seeds (the records of one cell), and users are resampled `N_BOOT` times with weight = their window
count, so the bootstrapped statistic is the window mean the tables print.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import UserError
from benchmark.experiments import get_experiment
from benchmark.metrics import paired_bootstrap

REQUIRED_KEYS = ("run_id", "method", "display_name", "category", "dataset", "profile", "seed", "metrics")
# the metric Table 1, the significance, sanity and GRPO tables read from every record of a decoded split (Table 3
# shows "—" for any other metric a record lacks)
REQUIRED_METRICS = ("ndcg@5",)
# the metrics whose per-user values are pooled for CIs and paired tests
USER_METRICS = ("recall@3", "ndcg@3", "recall@5", "ndcg@5", "recall@10", "ndcg@10", "mgu", "ild")
N_BOOT = 1000
# The method flags of records written before records carried them (`oracle`, `role`: methods/base.py). The ONE place
# that knows methods by name; tests/test_registry.py checks it against the classes. Newer records carry the flags.
LEGACY_FLAGS = {
    **{m: {"oracle": False, "role": ""} for m in ("sasrec", "sdpo", "rere", "sprec", "beam", "d3", "list_dpo",
                                                  "bon_static", "blade_n", "blade_r")},
    "bigrec": {"oracle": False, "role": "sft"}, "pop": {"oracle": False, "role": "popularity"},
    "bon_inference": {"oracle": True, "role": ""},
}

# Categories corrected after records were written: S-DPO's and SPRec's records written before this table (2026-11-30,
# 4c18f16) say "listwise"; the paper's Table 3 groups them with the LLM-based methods, as the classes now do.
RECATEGORISED = {"sdpo": "llm", "sprec": "llm"}


def with_flags(record: dict[str, Any]) -> dict[str, Any]:
    """Fill what older records lack: ``oracle``/``role`` (`LEGACY_FLAGS`, else False/"") and ``curve`` (it was
    ``stats.valid_curve``), and correct the category of `RECATEGORISED` methods."""
    for key, value in {"oracle": False, "role": "", **LEGACY_FLAGS.get(record.get("method"), {})}.items():
        record.setdefault(key, value)
    if record.get("method") in RECATEGORISED:
        record["category"] = RECATEGORISED[record["method"]]
    record.setdefault("curve", (record.get("stats") or {}).get("valid_curve"))
    return record


@contextlib.contextmanager
def _readable(path: Path):
    """A truncated, non-gzip or non-UTF-8 predictions file is one UserError that names it."""
    try:
        yield
    except (EOFError, OSError, zlib.error, UnicodeDecodeError) as e:
        raise UserError(f"damaged predictions file {path} ({type(e).__name__}: {e}). Delete its record and run it "
                        "again") from None


def load_record(path: Path) -> dict[str, Any]:
    """One run record: the JSON plus ``_path`` (its file, which locates the predictions), flags filled (`with_flags`).

    Raises:
        UserError: the record is not valid JSON, not an object, or lacks a required key (the message names the file).
    """
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"malformed run record {path}: {e}") from e
    if not isinstance(rec, dict):
        raise UserError(f"malformed run record {path}: expected a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in rec]
    if missing:
        raise UserError(f"malformed run record {path}: missing keys {', '.join(missing)}")
    for field in ("metrics", "metrics_valid"):
        m = rec.get(field) or {}
        if field == "metrics" and is_sweep(rec):
            continue  # a tuning record decoded no test window
        lost = [k for k in REQUIRED_METRICS if not isinstance(m.get(k), (int, float))]
        if field in rec and lost:
            raise UserError(f"malformed run record {path}: {field} lacks {', '.join(lost)}. Run it again "
                            "(delete the record) or remove it from the results folder")
    rec["_path"] = str(path)
    return with_flags(rec)


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    """Every run record under `results_dir` (``<dataset>/<method>/<run_id>.json``), sorted by path (`load_record`
    each; duplicates not yet resolved, see `dedupe`)."""
    return [load_record(path) for path in sorted(Path(results_dir).glob("*/*/*.json"))]


def is_sweep(record: dict[str, Any]) -> bool:
    """A tuning record (``run --splits valid``): the test split was not decoded."""
    return "test" not in record.get("splits", ["valid", "test"])


def load_plans(results_dir: Path) -> list[dict[str, Any]]:
    """Every experiment plan under ``<results_dir>/experiments/``, sorted by file name.

    Raises:
        UserError: a plan is not valid JSON or lacks ``experiment``/``profile``/``datasets``.
    """
    plans = []
    for path in sorted((Path(results_dir) / "experiments").glob("*.json")):
        try:
            plan = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"malformed experiment plan {path}: {e}. Delete it and plan again (run --experiment)"
                            ) from e
        if not isinstance(plan, dict) or not {"experiment", "profile", "datasets"} <= set(plan):
            raise UserError(f"malformed experiment plan {path}: needs experiment, profile and datasets")
        plans.append(plan)
    return plans


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



def window_lists(record: dict[str, Any]) -> dict[tuple, list[int]]:
    """{(user, history, target): the record's list} from its test predictions ({} without a predictions file): what
    compares two methods' lists window by window."""
    return {(r["user"], tuple(r.get("history") or ()), tuple(r.get("target") or ())): r["items"]
            for r in load_predictions(record) or []}


def user_values(record: dict, cache: dict,
                field: str = "predictions_file") -> dict[str, tuple[dict[str, float], dict[str, int]]] | None:
    """``{metric: (user -> mean over the user's windows, user -> number of windows)}``; None without predictions.

    `field` names the predictions file: ``predictions_file`` (test) or ``valid_predictions_file`` (validation).
    `cache` (per rendering, keyed by record path and field) avoids re-reading a predictions file for every column.
    """
    if not record.get(field):  # the record names no predictions file
        return None
    key = (record["_path"], field)
    if key not in cache:
        rows = load_predictions(record, field)
        out = {}
        for metric in USER_METRICS:
            sums: dict[str, float] = {}
            counts: dict[str, int] = {}
            for row in rows:
                v = row["metrics"].get(metric)
                if v is not None:
                    sums[row["user"]] = sums.get(row["user"], 0.0) + float(v)
                    counts[row["user"]] = counts.get(row["user"], 0) + 1
            out[metric] = ({u: sums[u] / counts[u] for u in sorted(sums)}, counts)
        cache[key] = out
    return cache[key]


def pooled_user_means(recs: list[dict], metric: str, cache: dict, field: str = "predictions_file"
                      ) -> tuple[dict[str, float], dict[str, float]] | tuple[None, None]:
    """Pool seeds for a user bootstrap: each user's value averaged across the records (seeds), and its window count
    averaged likewise (the bootstrap weight). Every seed evaluates the same windows, so the records must agree on the
    users; (None, None) when they do not, when a record has no predictions, or when there are no users."""
    per_seed = [user_values(r, cache, field) for r in recs]
    if not per_seed or any(p is None for p in per_seed):
        return None, None
    if len({frozenset(p[metric][0]) for p in per_seed}) > 1:
        return None, None
    vals: dict[str, list[float]] = {}
    cnts: dict[str, list[int]] = {}
    for p in per_seed:
        means, counts = p[metric]
        for u, v in means.items():
            vals.setdefault(u, []).append(v)
            cnts.setdefault(u, []).append(counts[u])
    if not vals:
        return None, None
    users = sorted(vals)
    return {u: float(np.mean(vals[u])) for u in users}, {u: float(np.mean(cnts[u])) for u in users}


def pooled_ci(recs: list[dict], metric: str, cache: dict,
              field: str = "predictions_file") -> tuple[float, float] | None:
    """95 % user-bootstrap CI of the cell's window mean (seeds pooled as in `pooled_user_means`); None without
    predictions."""
    means, weights = pooled_user_means(recs, metric, cache, field)
    if means is None:
        return None
    res = paired_bootstrap(means, n_boot=N_BOOT, seed=0, weights=weights)
    return res["ci_low"], res["ci_high"]


def paired_test(a: list[dict], b: list[dict], metric: str, cache: dict,
                field: str = "predictions_file") -> dict[str, float] | None:
    """Paired user bootstrap of a − b (each side's seeds pooled); None when a side lacks predictions or the users
    differ. Returns `paired_bootstrap`'s dict (mean, ci_low, ci_high, p_value, n_users)."""
    ua, w = pooled_user_means(a, metric, cache, field)
    ub, _ = pooled_user_means(b, metric, cache, field)
    if ua is None or ub is None or set(ua) != set(ub):
        return None
    return paired_bootstrap(ua, ub, n_boot=N_BOOT, seed=0, weights=w)


def figure_runs(plans: list[dict]) -> set[str]:
    """The run ids that only figure experiments planned (Fig. 5's G = 2, Fig. 7's R = -MGU, ...): tables leave them
    out, or a table row would show whichever config ran last."""
    ids = {True: set(), False: set()}
    for p in plans:
        ids[get_experiment(p["experiment"]).table] |= {r["run_id"] for e in p["datasets"].values() for r in e["runs"]}
    return ids[False] - ids[True]
