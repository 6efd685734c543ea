"""Expand a named experiment (benchmark/experiments.py) into run specs and its plan (the runs each output needs).

Every point goes through the ordinary `plan`, so its runs are ordinary runs: ids hash the resolved configs, finished
runs are skipped, and a run two points share is planned once. The user's ``--set`` overrides apply to every point
(a bare key shared by several of the experiment's methods must be qualified, as for `run --methods`); a key that a
point itself sets cannot be overridden (it is what the experiment varies or fixes).
"""

from __future__ import annotations

import datetime

from benchmark.config import Profile
from benchmark.data import Dataset
from benchmark.errors import UserError
from benchmark.experiments import Experiment, Point, components, run_command
from runners.plan import RunSpec, Sets, parse_methods, plan_sets, route_sets


def _point_sets(exp: Experiment, point: Point, methods: list[str], user: Sets) -> Sets:
    """The point's own sets (for its method) on top of the user's routed sets of its methods."""
    own = {k: v for k, v in point.sets}
    per_method = {}
    for m in methods:
        for k, v in user.methods.get(m, {}).items():
            if k in own:
                raise UserError(f"--set {m}.{k}={v}: experiment {exp.name} sets {k} itself ({k}={own[k]} for "
                                f"{point.series or m}); run the methods directly to change it")
        per_method[m] = {**user.methods.get(m, {}), **(own if m == point.method else {})}
    return Sets(user.profile, per_method)


def expand(names: str, datasets: list[Dataset], profile: Profile, seeds: list[int] | None,
           overrides: dict[str, str], results_dir: str | None = None,
           own_datasets: bool = False) -> tuple[list[RunSpec], list[dict]]:
    """The run specs of experiment `names` (each finished run is skipped later by `execute`) and one plan per
    component experiment (``paper`` has several).

    Args:
        names: an experiment name (``fig5``, ``paper``, ...).
        datasets: the loaded datasets: the user's, or the union of the experiments' defaults.
        own_datasets: the user chose no datasets: each component experiment runs on those of `datasets` it names
            (``paper``: the tables on all three, the figures on CDs), not on the union.
        profile: the profile before ``--set``.
        seeds: the user's seeds, or None for each experiment's default seeds.
        overrides: the user's ``--set`` items (``method.key`` or bare).
        results_dir: where the records go (named in the plan's command when it is not the default).

    Returns:
        (specs without duplicates, datasets outermost; plans as `benchmark.records.write_plan` stores them).
    """
    parts = components(names)
    methods_of = {p.method: parse_methods(p.method) for e in parts for p in e.points}  # "all" -> every method
    every = list(dict.fromkeys(m for ms in methods_of.values() for m in ms))
    user = route_sets(overrides, profile, every)  # routes every key once, against all the methods
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    specs: dict[str, RunSpec] = {}
    plans = []
    for exp in parts:
        exp_seeds = list(seeds) if seeds else list(exp.seeds)
        exp_datasets = [d for d in datasets if d.name in exp.datasets] if own_datasets else datasets
        rows = []
        for point in exp.points:
            sets = _point_sets(exp, point, methods_of[point.method], user)
            for spec in plan_sets(methods_of[point.method], exp_datasets, profile, exp_seeds, sets):
                specs.setdefault(spec.run_id, spec)
                rows.append({"run_id": spec.run_id, "method": spec.method, "dataset": spec.dataset,
                             "seed": spec.seed, "panel": point.panel, "series": point.series, "x": point.x})
        plans.append({
            "experiment": exp.name, "output": exp.output, "profile": profile.name,
            "datasets": {d.name: {"command": run_command(exp.name, profile.name, [d.name], exp_seeds, overrides,
                                                         results_dir),
                                  "created": created, "runs": [r for r in rows if r["dataset"] == d.name]}
                         for d in exp_datasets},
        })
    order = {d.name: i for i, d in enumerate(datasets)}
    return sorted(specs.values(), key=lambda s: order[s.dataset]), plans

