"""Plan: methods x datasets x seeds -> ordered, resolved run specs with deterministic run ids."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from benchmark.config import Profile, apply_overrides, check_fields, check_seeds, profile_for
from benchmark.data import ALIGN_SPLIT, Dataset, alignment_pool, alignment_subset, cap_windows, sft_windows
from benchmark.errors import UserError
from benchmark.io import content_hash
from methods.registry import all_methods, get_method


@dataclass
class RunSpec:
    method: str
    dataset: str
    profile: Profile
    seed: int
    config: Any  # the method's resolved Config dataclass
    data: Dataset
    run_id: str = ""
    splits: tuple[str, ...] = ("valid", "test")  # ("valid",): tuning run, the test split is not decoded


def parse_methods(arg: str) -> list[str]:
    """``a,b`` or ``all`` (every method whose class says `in_all`); unknown or repeated names raise (an unknown one
    with the valid ones)."""
    names = ([m for m in all_methods() if get_method(m).in_all] if arg.strip() == "all"
             else [m.strip() for m in arg.split(",") if m.strip()])
    for n in names:
        get_method(n)
    if not names:
        raise UserError("--methods is empty. Give a comma-separated list or 'all'")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"--methods {arg} names {', '.join(twice)} twice: each method is planned once. Give it once: "
                        f"--methods {','.join(dict.fromkeys(names))}")
    return names


def resolve_configs(method: str, profile: Profile, overrides: dict[str, str]) -> list:
    """Method Config defaults -> the class's profile_overrides[profile] -> each entry of its `sweep` (e.g.
    inference BoN's n = 2 and 4; skipped when --set fixes a swept key) -> --set overrides (known keys only)."""
    cls = get_method(method)
    base = apply_overrides(cls.Config(), getattr(cls, "profile_overrides", {}).get(profile.name, {}),
                           f"{method} config")
    names = {f.name for f in dataclasses.fields(base)}
    mine = {k: v for k, v in overrides.items() if k in names}
    sweep = getattr(cls, "sweep", [{}])
    if any(k in mine for entry in sweep for k in entry):
        sweep = [{}]
    out = [apply_overrides(apply_overrides(base, entry, f"{method} config"), mine, f"{method} config")
           for entry in sweep]
    for cfg in out:  # types and NaN for every method (its own __post_init__ checks its ranges)
        check_fields(cfg, f"{method} config")
    return out


@dataclass(frozen=True)
class Sets:
    """The user's ``--set`` items, routed once (`route_sets`): profile fields, and each selected method's fields."""

    profile: dict[str, str]
    methods: dict[str, dict[str, str]]


def route_sets(overrides: dict[str, str], profile: Profile, methods: list[str]) -> Sets:
    """Route every parsed ``--set`` item to its owner, once.

    * ``method.key=value`` sets that selected method's config field; ``profile.key=value`` the profile's;
    * a bare key sets the profile field or the config field of the ONE selected method that has it. A bare key that
      several owners share is an error naming them all, never a silent choice: two selected methods (``lr``: SASRec's
      and BLADE's), or the profile and a method (``sft_lr``: the shared SFT's and S-DPO's own warm-up SFT; ``hidden``:
      the LLM's and SASRec's). Name one: ``--set blade_n.lr=...``, ``--set profile.sft_lr=...``.
    """
    pfields = {f.name for f in dataclasses.fields(profile)}
    fields_of = {m: {f.name for f in dataclasses.fields(get_method(m).Config)} for m in methods}
    profile_sets, per_method = {}, {m: {} for m in methods}
    for key, value in overrides.items():
        if key.startswith("profile."):
            field = key.split(".", 1)[1]
            if field not in pfields:
                raise UserError(f"--set {key}: not a profile field. Profile fields: {', '.join(sorted(pfields))}")
            profile_sets[field] = value
            continue
        shared = [m for m in methods if key in fields_of[m]] if key in pfields else []
        if shared:
            raise UserError(f"--set {key}: a profile field and a config field of {', '.join(shared)}. Name one: "
                            f"--set profile.{key}={value}" + "".join(f", --set {m}.{key}={value}" for m in shared))
        if "." in key:
            m, field = key.split(".", 1)
            if m not in fields_of:
                raise UserError(f"--set {key}: {m!r} is not a selected method ({', '.join(methods)})")
            if field not in fields_of[m]:
                raise UserError(f"--set {key}: not a config field of {m}. Its fields: "
                                f"{', '.join(sorted(fields_of[m])) or 'none'}")
            per_method[m][field] = value
        elif key in pfields:
            profile_sets[key] = value
        else:
            owners = [m for m in methods if key in fields_of[m]]
            if not owners:
                known = sorted(set().union(*fields_of.values()))
                raise UserError(f"--set {key}: not a profile field nor a config field of {', '.join(methods)}. "
                                f"Profile fields: {', '.join(sorted(pfields))}. Method fields: {', '.join(known)}")
            if len(owners) > 1:
                raise UserError(f"--set {key}: a config field of several selected methods ({', '.join(owners)}). "
                                f"Name one: {', '.join(f'--set {m}.{key}={value}' for m in owners)}")
            per_method[owners[0]][key] = value
    return Sets(profile_sets, per_method)


def resolve_sets(methods: list[str], profile: Profile, seeds: list[int], sets: Sets
                 ) -> tuple[Profile, dict[str, list]]:
    """Validate everything a plan needs except the data, before any work: the methods, the seeds, the profile with
    its routed --set values and every method's resolved configs. Returns (profile, {method: [configs]})."""
    if not methods:
        raise UserError("--methods is empty. Give a comma-separated list or 'all'")
    check_seeds(seeds)
    profile = apply_overrides(profile, sets.profile, "profile")
    return profile, {m: resolve_configs(m, profile, sets.methods.get(m, {})) for m in methods}


def resolve(methods: list[str], profile: Profile, seeds: list[int], overrides: dict[str, str]
            ) -> tuple[Profile, dict[str, list]]:
    """`resolve_sets` of the parsed ``--set`` items, routed here (`route_sets`)."""
    if not methods:
        raise UserError("--methods is empty. Give a comma-separated list or 'all'")
    return resolve_sets(methods, profile, seeds, route_sets(overrides, profile, methods))


# Enters every run id (from version 2 on): a change of the protocol that no config field records makes earlier
# records not count as finished runs of today's code. 2 (issue 22): MGU of a list that leaves the genre space, "No
# Prior" (M = 0) as Eq. 14, preference prompts tokenised as evaluation's, SPRec never trains on validation windows,
# D³'s assistant trained on the LLM's SFT windows. 3 (issue 23): the run seed drives SFT, and only users with a full
# window are shared out across align / valid / test (benchmark.data).
PROTOCOL = 3


def make_run_id(method: str, ds: Dataset, profile: Profile, seed: int, config,
                splits: tuple[str, ...] = ("valid", "test")) -> str:
    key = {"method": method, "dataset": ds.name, "data_hash": ds.data_hash, "profile": dataclasses.asdict(profile),
           "seed": seed, "config": dataclasses.asdict(config), "protocol": PROTOCOL}
    if tuple(splits) != ("valid", "test"):  # only non-default splits enter the hash: existing ids stay valid
        key["splits"] = list(splits)
    if hasattr(config, "n_align_train"):  # methods with an alignment subset: how it is split (benchmark.data)
        key["align_split"] = ALIGN_SPLIT
    return content_hash(key)


def plan(methods: list[str], datasets: list[Dataset], profile: Profile, seeds: list[int],
         overrides: dict[str, str], splits: tuple[str, ...] = ("valid", "test")) -> list[RunSpec]:
    """`plan_sets` of the parsed ``--set`` items, routed here (`route_sets`)."""
    if not methods:
        raise UserError("--methods is empty. Give a comma-separated list or 'all'")
    return plan_sets(methods, datasets, profile, seeds, route_sets(overrides, profile, methods), splits)


def plan_sets(methods: list[str], datasets: list[Dataset], profile: Profile, seeds: list[int], sets: Sets,
              splits: tuple[str, ...] = ("valid", "test")) -> list[RunSpec]:
    """Datasets outermost, then methods in registry order, then seeds (one SFT per dataset and seed: its runs share it).

    `profile` is the profile before ``--set``: each dataset gets its own values (config.DATASET_OVERRIDES), then the
    routed profile sets on top."""
    _, configs = resolve_sets(methods, profile, seeds, sets)  # every --set validated before the data
    if not datasets:
        raise UserError("--datasets is empty. Give comma-separated names (steam, cds, goodreads) or folders")
    specs = []
    for ds in datasets:
        dprofile = apply_overrides(profile_for(profile, ds.name), sets.profile, "profile")
        for m in methods:
            for cfg in configs[m]:
                for s in seeds:
                    specs.append(RunSpec(m, ds.name, dprofile, s, cfg, ds,
                                         make_run_id(m, ds, dprofile, s, cfg, splits), tuple(splits)))
    return specs


def _source(profile: Profile) -> str:
    return "sft users" if profile.align_source == "align" else "every training user (sft + align)"


def stages(spec: RunSpec, n_processes: int = 1) -> list[str]:
    """The work `spec` will do, in words and numbers, computed from its configs without loading any model.

    Stages are read from the config fields the shared trainers use (SFT: the profile's `sft_*`; alignment:
    `n_align_train` / `n_align_valid`, `M`, `prompts_per_step`, `G`, `epochs`, `max_steps`), so a new method that
    uses them is described with no edit here. Raises the same UserError the run would (e.g. an alignment subset
    larger than its pool)."""
    cls, p, c, ds = get_method(spec.method), spec.profile, spec.config, spec.data
    out = []
    if cls.uses_sft:
        n = len(cap_windows(sft_windows(ds, p.align_source, p.sft_min_target), p.max_sft_windows))
        per_epoch = math.ceil(n / (p.sft_batch * n_processes))
        steps = math.ceil(per_epoch * p.sft_max_epochs)
        cap = f" or {p.sft_max_time_s / 60:g} min" if math.isfinite(p.sft_max_time_s) else ""
        watched = "validation loss" if p.sft_stop == "loss" or p.sft_select == "loss" else "it"
        stop = (f"{steps:,} steps, last checkpoint" if p.sft_select == "last" else
                f"at most {steps:,} steps{cap}, checkpoint by validation "
                f"{'NDCG@5' if p.sft_select == 'ndcg' else 'loss'} every {p.sft_eval_every} steps, stopping after "
                f"{p.sft_patience} evaluations without a better {watched}")
        short = " (shorter-target ones too)" if p.sft_min_target is not None else ""
        base = (f"seed {spec.seed}" if p.sft_seed is None else f"pinned seed {p.sft_seed}")
        out.append(f"SFT ({base}, shared by that seed's LLM methods): {n:,} windows{short} of {_source(p)}, "
                   f"batch {p.sft_batch} x "
                   f"{n_processes} process(es), {p.sft_max_epochs:g} epochs at lr {p.sft_lr:g} = {stop}")
    if hasattr(c, "n_align_train"):
        pool = alignment_pool(ds, p.align_source)
        alignment_subset(ds, c.n_align_train, c.n_align_valid, spec.seed, p.align_source)  # fits, or UserError
        what = "align-user windows (never seen by SFT)" if p.align_source == "align" else "SFT training windows"
        out.append(f"alignment subset (seed {spec.seed}): {c.n_align_train:,} train + {c.n_align_valid:,} valid "
                   f"windows sampled from the {len(pool):,} {what}; valid and train users disjoint")
        if getattr(c, "M", 0):
            out.append(f"reference set: M = {c.M} lists x {c.n_align_train:,} prompts sampled once from pi_ref "
                       f"(cached per SFT checkpoint and M: per seed, shared by sweeps)")
        if hasattr(c, "prompts_per_step"):
            steps = c.max_steps if getattr(c, "max_steps", -1) > 0 else math.ceil(
                math.ceil(c.n_align_train / c.prompts_per_step) * c.epochs)
            control = getattr(cls, "role", "") == "control"  # SFT on target lists, at static BoN's budget
            group = (f" x {c.G} target lists (static BoN's rollouts)" if control else f" x G = {c.G} rollouts"
                     ) if hasattr(c, "G") else ""
            grid = getattr(c, "tau_grid", ())
            runs = (f", once per tau in {', '.join(f'{t:g}' for t in grid)} (kept: the best align-valid NDCG@5)"
                    if grid else "")
            out.append(f"training: {c.prompts_per_step} prompts{group} per step, {c.epochs:g} epochs at lr "
                       f"{c.lr:g} = {steps:,} steps{runs}")
        elif hasattr(c, "batch_size") and hasattr(c, "sft_epochs"):  # the preference (DPO) family
            steps = c.max_steps if getattr(c, "max_steps", -1) > 0 else math.ceil(
                math.ceil(c.n_align_train / c.batch_size) * c.epochs)
            times = f", {c.iterations} self-play iterations" if hasattr(c, "iterations") else ""
            out.append(f"training{times}: SFT on the alignment positives ({c.sft_epochs:g} epochs at lr "
                       f"{c.sft_lr:g}), then DPO (beta {c.beta:g}) on at most {c.n_align_train:,} preference rows, "
                       f"{c.batch_size} rows per step, {c.epochs:g} epochs at lr {c.lr:g} = at most {steps:,} steps")
    n_valid = len(cap_windows(ds.splits["valid"], p.max_eval_windows))
    n_test = len(cap_windows(ds.splits["test"], p.max_eval_windows))
    test = f", test {n_test:,} windows" if "test" in spec.splits else " (test not decoded)"
    out.append(f"evaluation (greedy unless the method says otherwise): valid {n_valid:,}{test}")
    return out


def describe(specs: list[RunSpec], n_processes: int = 1) -> str:
    """The resolved plan as text (`benchmark run --dry-run`): per dataset its windows, then per run its stages and
    its full configs. Nothing is loaded but the datasets."""
    lines, shown, seen_data = [], None, set()
    for spec in specs:
        ds = spec.data
        if ds.name not in seen_data:
            seen_data.add(ds.name)
            prof = dataclasses.asdict(spec.profile)
            if prof != shown:  # once, and again for a dataset with its own values (config.DATASET_OVERRIDES)
                lines.append(f"profile {spec.profile.name}{f' for {ds.name}' if shown else ''}: {json.dumps(prof)}")
                shown = prof
            w = ds.stats["windows"]
            lines += ["", f"dataset {ds.name} ({ds.fmt}, data hash {ds.data_hash}): {ds.n_items:,} items; windows "
                      + ", ".join(f"{k} {v:,}" for k, v in w.items())
                      + f"; mean target length {ds.stats['mean_target_len']['test']:g}",
                      f"  data config: {json.dumps(dataclasses.asdict(ds.config))}"]
        lines.append(f"  run {spec.method} seed {spec.seed} (id {spec.run_id})")
        lines += [f"    - {s}" for s in stages(spec, n_processes)]
        lines.append(f"    config: {json.dumps(dataclasses.asdict(spec.config))}")
    lines.append(f"\n{len(specs)} runs planned; nothing was trained (--dry-run)")
    return "\n".join(lines)
