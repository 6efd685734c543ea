"""The run record's one owner: its schema (the required keys), writing, reading and validating records,
experiment plans and per-window predictions. Every reader of a record goes through `load_record` / `load_records`.

Run records: one JSON per finished run, written atomically, plus per-window predictions as JSONL.

Layout: ``<results_dir>/<dataset>/<method>/<run_id>.json`` and ``<run_id>.predictions.jsonl.gz`` beside it. The
record is written LAST (every file atomically, benchmark/io.py), so its presence means the run finished; the runner
skips finished runs after checking the record and its predictions are complete (`damage`); a damaged record is set
aside and its run done again.

Record fields:
    run_id: hash of (method, dataset, profile, seed, resolved configs, data hash): re-running is idempotent.
    method, display_name, category, dataset, profile, seed: what ran.
    variant: the table row: the method, or method + its swept fields (``bon_inference_n2``).
    oracle, role: the method's class flags (methods/base.py) that reports need: an oracle row is never ranked;
        role ``"sft"`` is the shared SFT model (Table 1's cost unit), ``"popularity"`` the sanity bar's floor,
        ``"control"`` the SFT + alignment-data row every aligned method is also tested against.
        Records written before these existed get them from `LEGACY_FLAGS` when read.
    curve: the validation curve of a method that logs one during training (GRPO: ``[{"step", "recall@5",
        "ndcg@5", "ndcg@10", "mgu", "ild"}, ...]``, Fig. 4a and 7), else None. (Older records: ``stats.valid_curve``.)
    config: {"method": ..., "profile": ..., "data": ...}: the fully resolved configs.
    metrics: test-split aggregate metrics at full precision (benchmark.metrics.score_lists keys).
    metrics_valid: the same on the validation split.
    timings: fit_s (training or loading), recommend_s (latency: the whole test split's lists), valid_s.
    n_test: number of test windows. data_hash, data_stats: the preprocessed dataset's hash and Table 2 numbers.
    stats: method-specific numbers (SFT curve, tokens generated, ...). artifacts: paths returned by fit.
    provenance: git SHA + dirty flag, library versions, python, machine (CPU model, torch CPU capability, a hash of
        the host name), torch threads, device, date.
    predictions_file: the sibling JSONL: {"user", "history", "target", "items", "metrics"} per test window.
    valid_predictions_file: the same for the validation windows (model selection, sanity bars).
    created: ISO timestamp.

Experiment plans (``run --experiment NAME``, benchmark/experiments.py): ``<results_dir>/experiments/<name>_<profile>
.json`` = {"experiment", "output", "profile", "datasets": {dataset: {"command", "created", "runs": [{"run_id",
"method", "dataset", "seed", "panel", "series", "x"}, ...]}}}: the runs an output needs, so that reports draw it only
from complete data. Planning a dataset again replaces that dataset's entry (a warning names the seeds it drops); other
datasets are kept.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import math
import warnings
import zlib
from pathlib import Path
from typing import Any

from benchmark.errors import UserError
from benchmark.experiments import get_experiment
from benchmark.io import atomic_write_gzip, atomic_write_text

# every record `run` writes has these keys: a record lacking one is not a finished run (`damage`) and `load_record`
# refuses it
REQUIRED_KEYS = ("run_id", "method", "display_name", "category", "dataset", "profile", "seed", "config", "metrics",
                 "metrics_valid", "n_test", "n_valid")
# the metric Table 1, the significance, sanity and GRPO tables read from every record of a decoded split (Table 3
# shows "—" for any other metric a record lacks)
REQUIRED_METRICS = ("ndcg@5",)
# The range of every metric `benchmark.metrics.score_lists` writes (a value outside is impossible, so the record is
# damaged or edited): rates in [0, 1], MGU in [0, 2] (at most 2/|C|), counts integers >= 0. A metric not named here
# must be a finite number; `mgu`/`ild` may be None (undefined on every window).
RATE = (0.0, 1.0)
METRIC_RANGES = {"mgu": (0.0, 2.0), "ild": RATE, "valid_rate": RATE, "duplicate_rate": RATE, "coverage": RATE,
                 "mean_list_len": (0.0, math.inf)}
COUNT_METRICS = ("mgu_n", "ild_n", "coverage_items", "n_windows")
OPTIONAL_METRICS = ("mgu", "ild")


def metric_problem(name: str, value: Any) -> str | None:
    """Why `value` is impossible for metric `name`, or None (see `METRIC_RANGES`)."""
    if value is None and name in OPTIONAL_METRICS:
        return None
    if name in COUNT_METRICS:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
        return None if ok else "expected an integer >= 0"
    lo, hi = RATE if name.startswith(("recall@", "ndcg@")) else METRIC_RANGES.get(name, (-math.inf, math.inf))
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return f"expected a finite number in [{lo:g}, {hi:g}]"
    if not lo <= value <= hi:
        return f"expected a number in [{lo:g}, {hi:g}]"
    return None
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


def schema_problem(rec: Any) -> str | None:
    """What makes `rec` (a parsed record) not a valid run record, or None: not an object, a key of `REQUIRED_KEYS`
    missing, a metric outside its range or not finite (`metric_problem`), or a `REQUIRED_METRICS` value missing
    from a decoded split."""
    if not isinstance(rec, dict):
        return "expected a JSON object"
    missing = [k for k in REQUIRED_KEYS if k not in rec]
    if missing:
        return f"missing keys {', '.join(missing)}"
    for field in ("metrics", "metrics_valid"):
        m = rec.get(field) or {}
        if not isinstance(m, dict):
            return f"{field} is not an object"
        for name, value in m.items():  # every value in its range, also for a split a tuning run did not decode
            bad = metric_problem(name, value)
            if bad:
                return f"{field} {name} = {value!r} is impossible: {bad}"
        if field == "metrics" and is_sweep(rec):
            continue  # a tuning record decoded no test window
        lost = [k for k in REQUIRED_METRICS if not isinstance(m.get(k), (int, float))]
        if field in rec and lost:
            return f"{field} lacks {', '.join(lost)}"
    return None


def load_record(path: Path) -> dict[str, Any]:
    """One run record: the JSON plus ``_path`` (its file, which locates the predictions), flags filled (`with_flags`).

    Raises:
        UserError: the record is not valid JSON or fails `schema_problem` (the message names the file).
    """
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"malformed run record {path}: {e}") from e
    problem = schema_problem(rec)
    if problem:
        fix = (". Run it again (delete the record) or remove it from the results folder"
               if "lacks" in problem or "impossible" in problem else "")
        raise UserError(f"malformed run record {path}: {problem}{fix}")
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


def figure_runs(plans: list[dict]) -> set[str]:
    """The run ids that only figure experiments planned (Fig. 5's G = 2, Fig. 7's R = -MGU, ...): tables leave them
    out, or a table row would show whichever config ran last."""
    ids = {True: set(), False: set()}
    for p in plans:
        ids[get_experiment(p["experiment"]).table] |= {r["run_id"] for e in p["datasets"].values() for r in e["runs"]}
    return ids[False] - ids[True]


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


def _seed_list(seeds: set[int]) -> str:
    return " ".join(map(str, sorted(seeds)))


def write_plan(results_dir: Path, plan: dict) -> Path:
    """Store an experiment's plan atomically, keeping the entries of datasets it does not plan. Returns its path."""
    path = plan_path(results_dir, plan["experiment"], plan["profile"])
    old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for d, entry in plan["datasets"].items():  # a plan of fewer seeds drops the others from what `report` draws
        new = {r["seed"] for r in entry["runs"]}
        dropped = {r["seed"] for r in old.get("datasets", {}).get(d, {}).get("runs", [])} - new
        if dropped:
            logging.getLogger("benchmark").warning(
                "the %s plan for %s now has seeds %s; it had %s too, which `report` will no longer draw for this "
                "output. To keep every seed, name them all (--seeds %s): finished runs are skipped",
                plan["experiment"], d, _seed_list(new), _seed_list(dropped), _seed_list(new | dropped))
    merged = {**plan, "datasets": {**old.get("datasets", {}), **plan["datasets"]}}
    atomic_write_text(path, json.dumps(merged, indent=1) + "\n")
    return path


def _count_lines(path: Path) -> int:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def damage(path: Path, run_id: str) -> str | None:
    """Why the record at `path` (and the predictions files it names) is not a finished run, or None if it is.

    A finished record parses, has the expected `run_id`, passes `schema_problem` (the one schema check `load_record`
    applies too), and every
    predictions file it names exists, decompresses and has one line per scored window (``n_test`` / ``n_valid``).
    """
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"unreadable record ({type(e).__name__}: {e})"
    if not isinstance(rec, dict) or rec.get("run_id") != run_id:
        return f"not a record of run {run_id}"
    problem = schema_problem(rec)
    if problem:
        return f"record {problem.replace('missing keys', 'lacks')}"
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
