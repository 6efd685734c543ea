"""Re-tune the fixed GRPO trainer (issue 9 item 3) on VALIDATION only: static BoN and BLADE-N with the same settings.

Each setting is a set of method overrides run for ``bon_static`` and ``blade_n`` (``--splits valid``; the test split
is never decoded) on the `cpu` profile, 3 seeds, with the SFT model (``bigrec``) as the baseline of every delta:

    python -m studies.grpo_tuning --datasets steam,cds,goodreads --settings G0,G1 --seeds 0,1,2  # runs what is missing
    python -m studies.grpo_tuning --datasets steam,cds,goodreads --table                       # prints the table only
    python -m studies.grpo_tuning --table --compare R0,G0     # and paired tests: G0 - R0, BLADE-N - static

Records go to results/studies/grpo_tuning/ (run ids hash the configs, so finished runs are skipped). The table has, per
(dataset, setting, method), means over the seeds found: validation NDCG@5 and its difference from SFT (paired user
bootstrap with seeds pooled per user), KL (median and max over steps and seeds), the zero-spread fraction of the raw
reward and of the proxy, the fraction of rollouts above their prompt's best reference reward in the first and last
quarter of training, and the step where the seed-mean align-valid NDCG@5 curve peaks (what chooses the step count).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
from dataclasses import asdict
from pathlib import Path

from benchmark.config import cache_dir, data_dir, get_profile, profile_for
from benchmark.data import load_dataset
from benchmark.metrics import paired_bootstrap
from benchmark.reporting.diagnostics import train_log_summary
from studies.common import dataset_records, valid_user_means

METHODS = ("bon_static", "blade_n")
# setting -> overrides of both methods' configs on top of their `cpu` values (G0: the landed lr 1e-4, beta 0.04)
SETTINGS: dict[str, dict[str, str]] = {
    "G0": {"lr": "1e-4"},  # the cpu default before this re-tune (now 2e-5, G1's)
    "G1": {"lr": "2e-5"},
    "G2": {"lr": "2e-5", "beta": "0.1"},
    "G3": {"lr": "5e-5"},
    # "before" (issue 9): the old trainer's full-vocabulary log-probs at its lr; dropout stays off (it has no switch)
    "R0": {"lr": "1e-4", "logps": "raw"},
}
RESULTS = Path("results/studies/grpo_tuning")


def run(datasets: list[str], settings: list[str], seeds: list[int], profile_name: str = "cpu",
        results: Path = RESULTS) -> None:
    from runners.execute import execute
    from runners.plan import plan

    profile = get_profile(profile_name)
    for name in datasets:
        ds = load_dataset(name, data_dir())
        specs = plan(["bigrec"], [ds], profile, [0], {}, splits=("valid",))
        for s in settings:  # a setting's runs finish before the next setting starts
            sets = {f"{m}.{k}": v for m in METHODS for k, v in SETTINGS[s].items()}  # both methods, named
            specs += plan(list(METHODS), [ds], profile, seeds, sets, splits=("valid",))
        for spec in specs:
            execute(spec, results, cache_dir())


def _as_recorded(cfg) -> dict:
    """A config dataclass as a record stores it (JSON: tuples become lists)."""
    return json.loads(json.dumps(asdict(cfg)))


def _setting(rec: dict) -> str:
    """The setting whose resolved method config equals this record's ("?" for none)."""
    from runners.plan import resolve_configs

    def resolved(sets: dict) -> dict:
        return _as_recorded(resolve_configs(rec["method"], get_profile(rec["profile"]), sets)[0])

    return next((name for name, sets in SETTINGS.items() if resolved(dict(sets)) == rec["config"]["method"]), "?")


def _groups(name: str, results: Path) -> tuple[dict | None, dict[tuple[str, str], list[dict]]]:
    """The SFT record and {(setting, method): records sorted by seed} of one dataset, keeping only the records on
    its current SFT base: its data hash and the profile `run` resolves for it now (Goodreads' records on the A17 SFT
    left when its per-dataset patience became 40, docs/benchmarks.md §9)."""
    current = _as_recorded(profile_for(get_profile("cpu"), name))
    recs = [r for r in dataset_records(results, name)
            if all(current.get(k, v) == v for k, v in r["config"]["profile"].items())]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(recs, key=lambda r: r["seed"]):
        if r["method"] in METHODS:
            groups.setdefault((_setting(r), r["method"]), []).append(r)
    return next((r for r in recs if r["method"] == "bigrec"), None), groups


def _diff(a: list[dict], b: list[dict], cache: dict) -> str:
    """Paired user bootstrap of records `a` − records `b` (validation NDCG@5, seeds pooled per user)."""
    ua, ub = valid_user_means(a, cache), valid_user_means(b, cache)
    r = paired_bootstrap(ua[0], ub[0], n_boot=10_000, seed=0, weights=ub[1])
    return f"{r['mean']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] p {r['p_value']:.3f}"


def compare(datasets: list[str], before: str, after: str, results: Path = RESULTS) -> str:
    """Paired user bootstraps (validation NDCG@5, seeds pooled per user): `after` − `before` for each method, and
    BLADE-N − static BoN within each of the two settings."""
    rows = ["| dataset | comparison | difference [95 % CI] p |", "|---|---|---|"]
    for name in datasets:
        _, groups = _groups(name, results)
        cache: dict = {}
        pairs = [(f"{m}: {after} − {before}", groups.get((after, m)), groups.get((before, m))) for m in METHODS]
        pairs += [(f"{s}: blade_n − bon_static", groups.get((s, "blade_n")), groups.get((s, "bon_static")))
                  for s in (before, after)]
        rows += [f"| {name} | {label} | {_diff(a, b, cache)} |" for label, a, b in pairs if a and b]
    return "\n".join(rows)


def table(datasets: list[str], results: Path = RESULTS) -> str:
    rows = ["| dataset | setting | method | seeds | valid NDCG@5 | − SFT [95 % CI] p | KL median / max "
            "| zero spread raw / proxy | above ref max first → last ¼ | align-valid peak step |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name in datasets:
        # only the records on the dataset's current SFT base: its data hash and the profile `run` resolves for it now
        # (Goodreads' records on the A17 SFT left the table when its per-dataset patience became 40, §9)
        sft, groups = _groups(name, results)
        cache: dict = {}
        base = valid_user_means([sft], cache) if sft else None
        if sft:
            rows.append(f"| {name} | — | SFT (bigrec) | 1 | {sft['metrics_valid']['ndcg@5']:.4f} | | | | | |")
        for (setting, method), rs in sorted(groups.items()):
            ndcg = statistics.mean(r["metrics_valid"]["ndcg@5"] for r in rs)
            delta = "—"
            if base:  # pool seeds per user (same windows), then a paired bootstrap against the SFT model
                b = paired_bootstrap(valid_user_means(rs, cache)[0], base[0], n_boot=10_000, seed=0, weights=base[1])
                delta = f"{b['mean']:+.4f} [{b['ci_low']:+.4f}, {b['ci_high']:+.4f}] p {b['p_value']:.3f}"
            kl = train_log_summary(rs, "kl")  # every step of every seed
            zs = train_log_summary(rs, "frac_zero_spread").mean()
            zp = train_log_summary(rs, "frac_zero_spread_proxy").mean()
            above = [train_log_summary(r, "frac_above_ref_max").quarters() for r in rs]
            curves = [{c["step"]: c["ndcg@5"] for c in r["curve"]} for r in rs]
            steps = sorted(set.intersection(*(set(c) for c in curves)))
            mean_curve = {s: statistics.mean(c[s] for c in curves) for s in steps}
            peak = max(steps, key=lambda s: mean_curve[s])
            rows.append(f"| {name} | {setting} | {method} | {len(rs)} | {ndcg:.4f} | {delta} | "
                        f"{kl.median:.3g} / {kl.max:.3g} | {zs:.3f} / {zp:.3f} | "
                        f"{statistics.mean(a for a, _ in above):.3f} → {statistics.mean(b for _, b in above):.3f} | "
                        f"{peak} ({mean_curve[steps[0]]:.4f} → {mean_curve[peak]:.4f} → "
                        f"{mean_curve[steps[-1]]:.4f}) |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="steam,cds,goodreads")
    p.add_argument("--settings", default="G0,G1")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--profile", default="cpu", help="smoke: a quick check of this runner")
    p.add_argument("--results-dir", default=str(RESULTS))
    p.add_argument("--table", action="store_true", help="only print the table of the finished records")
    p.add_argument("--compare", metavar="BEFORE,AFTER", help="with --table: also the paired tests of AFTER - BEFORE "
                   "per method and of BLADE-N - static within each (e.g. R0,G0)")
    a = p.parse_args(argv)
    names = a.datasets.split(",")
    if not a.table:
        run(names, a.settings.split(","), [int(s) for s in a.seeds.split(",")], a.profile, Path(a.results_dir))
    print(table(names, Path(a.results_dir)))
    if a.compare:
        before, after = a.compare.split(",")
        print("\n" + compare(names, before, after, Path(a.results_dir)))


if __name__ == "__main__":
    main()
