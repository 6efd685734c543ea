"""Execute one run: fit (or reuse cached artefacts), recommend on valid and test, score, write the record."""

from __future__ import annotations

import dataclasses
import datetime
import logging
import random
import time
from pathlib import Path

import numpy as np
import torch

from benchmark.data import cap_windows, check_list_length
from benchmark.errors import BrokenList
from benchmark.faults import fault_point
from benchmark.io import remove_stale_tmps
from benchmark.locks import all_processes_lock
from benchmark.metrics import score_lists
from methods.base import RunContext
from methods.registry import get_method
from benchmark.records import is_finished, record_path, run_status, set_aside, write_run
from runners.plan import RunSpec
from runners.provenance import provenance

log = logging.getLogger("benchmark")


def is_main_process() -> bool:
    from accelerate import PartialState

    return PartialState().is_main_process


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def eval_windows(spec: RunSpec, split: str):
    return cap_windows(spec.data.splits[split], spec.profile.max_eval_windows, seed=0)


def check_lists(spec: RunSpec, lists, windows, split: str) -> None:
    """Under constrained decoding (the profile's ``constrained``) every list has exactly k distinct catalogue items,
    none from the window's history when ``exclude_history``. A list that breaks this (a diverged model's NaN scores,
    a broken method) fails the run before its record is written: `BrokenList`, one line naming the list."""
    p, n_items = spec.profile, spec.data.n_items
    if len(lists) != len(windows):
        raise BrokenList(f"{spec.method} on {spec.dataset}: {len(lists)} {split} lists for {len(windows)} windows. "
                         "No record was written")
    if not p.constrained:
        return  # unconstrained decoding may emit invalid or repeated items: valid_rate / duplicate_rate measure them
    for lst, w in zip(lists, windows):
        items = list(lst)
        bad = next((i for i in items if not isinstance(i, (int, np.integer)) or not 0 <= int(i) < n_items), None)
        if len(items) != p.k:
            problem = f"{len(items)} items, not k = {p.k}"
        elif bad is not None:
            shown_bad = int(bad) if isinstance(bad, (int, np.integer)) else repr(bad)
            problem = f"item {shown_bad}, not a catalogue item (0 to {n_items - 1})"
        elif len(set(map(int, items))) != len(items):
            problem = "a repeated item"
        elif p.exclude_history and set(map(int, items)) & set(w.history):
            problem = "an item of its history (exclude_history)"
        else:
            continue
        shown = ", ".join(map(str, items[:12])) + (", ..." if len(items) > 12 else "")
        raise BrokenList(f"{spec.method} on {spec.dataset} (seed {spec.seed}): the {split} list for user {w.user!r} has "
                         f"{problem}: [{shown}]. Constrained decoding forbids it (a diverged model, or a bug in the "
                         "method). No record was written")


def _score(ds, lists, windows, k):
    return score_lists(lists, windows, ds.item_genres, ds.genre_set, ds.n_items, list_len=k)


def _main_decides(value):
    """`value` as computed by the main process, on every process of the launch."""
    from accelerate import PartialState

    if PartialState().num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]


def _finished(spec: RunSpec, results_dir: Path) -> bool:
    """Decided by the main process: the run has a complete record (a damaged one is set aside: the run is redone)."""
    finished = False
    if is_main_process():
        remove_stale_tmps(record_path(results_dir, spec.dataset, spec.method, spec.run_id).parent)  # killed writes
        status = run_status(results_dir, spec.dataset, spec.method, spec.run_id)
        if status not in (None, "finished"):
            aside = set_aside(results_dir, spec.dataset, spec.method, spec.run_id)
            log.warning("%s/%s seed %d (%s): damaged record (%s), moved to %s; running it again", spec.dataset,
                        spec.method, spec.seed, spec.run_id, status, aside.name)
        finished = status == "finished"
    return _main_decides(finished)


def execute(spec: RunSpec, results_dir: Path, cache_dir: Path) -> dict | None:
    """Run `spec` unless its record exists. Returns the record (None if skipped).

    One run at a time per run id: the run holds a lock beside its state (``cache/runs/<run_id>.lock``), so an
    identical run started elsewhere waits, then finds the record and skips.
    """
    if _main_decides(is_finished(results_dir, spec.dataset, spec.method, spec.run_id)):
        log.info("skip %s/%s seed %d (%s): finished", spec.dataset, spec.method, spec.seed, spec.run_id)
        return None
    with all_processes_lock(cache_dir / "runs" / f"{spec.run_id}.lock"):
        if _finished(spec, results_dir):
            log.info("skip %s/%s seed %d (%s): finished by another process", spec.dataset, spec.method, spec.seed,
                     spec.run_id)
            return None
        return _execute(spec, results_dir, cache_dir)


def _execute(spec: RunSpec, results_dir: Path, cache_dir: Path) -> dict | None:
    cls = get_method(spec.method)
    ds, profile = spec.data, spec.profile
    check_list_length(profile.k, profile.exclude_history, ds)  # the CLI checked it already; Python callers too
    seed_everything(spec.seed)
    run_dir = cache_dir / "runs" / spec.run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(data=ds, profile=profile, seed=spec.seed, run_dir=run_dir, cache_dir=cache_dir, log=log)
    method = cls(spec.config)
    log.info("run %s on %s (profile %s, seed %d, id %s)", spec.method, ds.name, profile.name, spec.seed, spec.run_id)

    t0 = time.time()
    artifacts = method.fit(ctx) or {}
    fit_s = time.time() - t0
    fault_point("after_fit")
    if not is_main_process():  # accelerate launch: every process trains, the main one evaluates and records
        return None

    valid = eval_windows(spec, "valid")
    t0 = time.time()
    valid_lists = method.recommend(ctx, valid)
    valid_s = time.time() - t0
    check_lists(spec, valid_lists, valid, "validation")
    metrics_valid, per_window_valid = _score(ds, valid_lists, valid, profile.k)

    test, test_lists, per_window, metrics, recommend_s, test_tokens = [], [], [], {}, None, 0
    if "test" in spec.splits:
        test = eval_windows(spec, "test")
        tokens_before = ctx.stats.get("tokens_generated", 0)
        t0 = time.time()
        test_lists = method.recommend(ctx, test)
        recommend_s = time.time() - t0
        check_lists(spec, test_lists, test, "test")
        test_tokens = ctx.stats.get("tokens_generated", 0) - tokens_before
        metrics, per_window = _score(ds, test_lists, test, profile.k)
        log.info("%s/%s seed %d: test NDCG@5 %.4f R@5 %.4f (valid NDCG@5 %.4f), fit %.1fs, recommend %.1fs",
                 ds.name, spec.method, spec.seed, metrics["ndcg@5"], metrics["recall@5"], metrics_valid["ndcg@5"],
                 fit_s, recommend_s)
    else:
        log.info("%s/%s seed %d: valid NDCG@5 %.4f R@5 %.4f (test not decoded: --splits valid), fit %.1fs",
                 ds.name, spec.method, spec.seed, metrics_valid["ndcg@5"], metrics_valid["recall@5"], fit_s)

    variant = {k: getattr(spec.config, k) for e in getattr(cls, "sweep", []) for k in e}
    suffix = "".join(f"_{k}{v}" for k, v in variant.items())
    label = cls.display_name + "".join(f" {k.upper() if len(k) == 1 else k}={v}" for k, v in variant.items())
    record = {
        "run_id": spec.run_id, "method": spec.method, "variant": spec.method + suffix, "display_name": label,
        "category": cls.category, "oracle": cls.oracle, "role": cls.role, "dataset": ds.name,
        "profile": profile.name, "seed": spec.seed,
        "splits": list(spec.splits),
        "config": {"method": dataclasses.asdict(spec.config), "profile": dataclasses.asdict(profile),
                   "data": dataclasses.asdict(ds.config)},
        "metrics": metrics, "metrics_valid": metrics_valid,
        "timings": {"fit_s": fit_s, "recommend_s": recommend_s, "valid_s": valid_s},
        "tokens_generated_test": test_tokens,
        "n_test": len(test), "n_valid": len(valid), "data_hash": ds.data_hash, "data_stats": ds.stats,
        "curve": ctx.stats.pop("valid_curve", None), "stats": ctx.stats, "artifacts": artifacts,
        "provenance": provenance(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    def rows(wins, lists, per):
        return [{"user": w.user, "history": list(w.history), "target": list(w.target), "items": list(lst),
                 "metrics": m} for w, lst, m in zip(wins, lists, per)]

    path = write_run(results_dir, record, rows(test, test_lists, per_window),
                     rows(valid, valid_lists, per_window_valid))
    log.info("wrote %s", path)
    return record
