"""Plan: methods x datasets x seeds -> ordered, resolved run specs with deterministic run ids."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from benchmark.config import Profile, apply_overrides, check_fields, check_seeds
from benchmark.data import Dataset
from benchmark.errors import UserError
from methods.common.models import content_hash
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
    """``a,b`` or ``all``; unknown names raise with the valid ones."""
    names = all_methods() if arg.strip() == "all" else [m.strip() for m in arg.split(",") if m.strip()]
    for n in names:
        get_method(n)
    if not names:
        raise UserError("--methods is empty. Give a comma-separated list or 'all'")
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


def split_sets(overrides: dict[str, str], profile: Profile, methods: list[str]) -> tuple[Profile, dict[str, str]]:
    """Profile fields go to the profile; the rest must be a config field of at least one selected method."""
    pfields = {f.name for f in dataclasses.fields(profile)}
    profile = apply_overrides(profile, {k: v for k, v in overrides.items() if k in pfields}, "profile")
    rest = {k: v for k, v in overrides.items() if k not in pfields}
    known = set()
    for m in methods:
        known |= {f.name for f in dataclasses.fields(get_method(m).Config)}
    bad = sorted(set(rest) - known)
    if bad:
        raise UserError(f"--set {bad[0]}: not a profile field nor a config field of {', '.join(methods)}. "
                        f"Profile fields: {', '.join(sorted(pfields))}. Method fields: {', '.join(sorted(known))}")
    return profile, rest


def resolve(methods: list[str], profile: Profile, seeds: list[int], overrides: dict[str, str]
            ) -> tuple[Profile, dict[str, list]]:
    """Validate everything a plan needs except the data, before any work: the methods, the seeds, the profile with
    its --set overrides and every method's resolved configs. Returns (profile, {method: [configs]})."""
    if not methods:
        raise UserError("--methods is empty. Give a comma-separated list or 'all'")
    check_seeds(seeds)
    profile, rest = split_sets(overrides, profile, methods)
    return profile, {m: resolve_configs(m, profile, rest) for m in methods}


def make_run_id(method: str, ds: Dataset, profile: Profile, seed: int, config,
                splits: tuple[str, ...] = ("valid", "test")) -> str:
    key = {"method": method, "dataset": ds.name, "data_hash": ds.data_hash, "profile": dataclasses.asdict(profile),
           "seed": seed, "config": dataclasses.asdict(config)}
    if tuple(splits) != ("valid", "test"):  # only non-default splits enter the hash: existing ids stay valid
        key["splits"] = list(splits)
    return content_hash(key)


def plan(methods: list[str], datasets: list[Dataset], profile: Profile, seeds: list[int],
         overrides: dict[str, str], splits: tuple[str, ...] = ("valid", "test")) -> list[RunSpec]:
    """Datasets outermost (one SFT per dataset is shared by its runs), then methods in registry order, then seeds."""
    profile, configs = resolve(methods, profile, seeds, overrides)
    if not datasets:
        raise UserError("--datasets is empty. Give comma-separated names (steam, cds, goodreads) or folders")
    specs = []
    for ds in datasets:
        for m in methods:
            for cfg in configs[m]:
                for s in seeds:
                    specs.append(RunSpec(m, ds.name, profile, s, cfg, ds, make_run_id(m, ds, profile, s, cfg, splits),
                                         tuple(splits)))
    return specs
