"""Command line: ``python -m benchmark run | report | ls | data stats | data import``.

User errors (unknown names, malformed files, bad --set values) print one line and exit 2, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from benchmark.config import DATASETS, PROFILES, SCRATCH_ONLY, cache_dir, data_dir, get_profile, split_overrides
from benchmark.errors import UserError, unknown_name


def _datasets(arg: str) -> list[str]:
    names = [d.strip() for d in arg.split(",") if d.strip()]
    if not names:
        raise UserError(f"--datasets {arg!r} is empty. Give comma-separated names ({', '.join(DATASETS)}) or folders")
    for n in names:
        if n not in DATASETS and not Path(n).is_dir():
            raise unknown_name("dataset", n, DATASETS)
    return names


def cmd_run(a) -> int:
    from benchmark import faults
    from benchmark.data import load_dataset
    from benchmark.io import check_output_dir
    from runners.execute import execute
    from runners.plan import parse_methods, plan, resolve

    # everything the user gave is checked before any work: names, values, output places, then the data
    profile = get_profile(a.profile)
    methods = parse_methods(a.methods)
    names = _datasets(a.datasets)
    overrides = split_overrides(a.set)
    resolve(methods, profile, a.seeds, overrides)
    results_dir, cdir = Path(a.results_dir), Path(a.cache_dir) if a.cache_dir else cache_dir()
    check_output_dir(results_dir, "--results-dir")
    check_output_dir(cdir, "--cache-dir")
    dd = data_dir(a.data_dir)
    datasets = [load_dataset(n, dd) for n in names]
    specs = plan(methods, datasets, profile, a.seeds, overrides, splits=tuple(a.splits.split(",")))
    if a.dry_run:
        from runners.plan import describe

        print(describe(specs, int(os.environ.get("WORLD_SIZE", "1"))))
        return 0
    faults.install()
    logging.getLogger("benchmark").info("planned %d runs (%s x %s x seeds %s) -> %s", len(specs), ",".join(methods),
                                        ",".join(names), a.seeds, results_dir)
    t0 = time.time()
    for n, spec in enumerate(specs, 1):
        logging.getLogger("benchmark").info("[%d/%d] %.0fs elapsed", n, len(specs), time.time() - t0)
        execute(spec, results_dir, cdir)
    return 0


def cmd_report(a) -> int:
    from reports.tables import render_all

    paths = render_all(Path(a.results_dir), Path(a.out))
    for p in paths:
        print(p)
    return 0


def cmd_ls(a) -> int:
    from methods.registry import METHODS, all_methods

    print("methods:")
    for m in all_methods():
        c = METHODS[m]
        print(f"  {m:<14} {c.display_name:<14} [{c.category}] {c.paper}")
    print("datasets:", ", ".join(DATASETS), "(or a path to a folder in a canonical format)")
    print("profiles:", ", ".join(f"{p.name} ({p.model}, {p.item_repr})" for p in PROFILES.values()))
    return 0


def profiles_markdown() -> str:
    """Every profile's settings side by side, then the method settings that differ between profiles; generated
    from the `Profile` objects and each method's resolved `Config` (never typed)."""
    import dataclasses

    from tabulate import tabulate

    from methods.registry import all_methods
    from runners.plan import resolve_configs

    profiles = list(PROFILES.values())

    def cell(v):
        return "∞" if v == float("inf") else ("—" if v is None else str(v))

    def value(p, name):  # the from-scratch model's size does not apply to a pretrained model
        return "(pretrained)" if name in SCRATCH_ONLY and p.model != "scratch" else cell(getattr(p, name))

    rows = [[f.name, *(value(p, f.name) for p in profiles)] for f in dataclasses.fields(profiles[0])
            if f.name != "name"]
    out = ["Profiles (`benchmark.config.PROFILES`):", "",
           tabulate(rows, headers=["field", *(p.name for p in profiles)], tablefmt="github")]
    rows = []
    for m in all_methods():
        cfgs = [resolve_configs(m, p, {}) for p in profiles]
        for f in dataclasses.fields(cfgs[0][0]):
            vals = [", ".join(dict.fromkeys(cell(getattr(c, f.name)) for c in cs)) for cs in cfgs]
            if len(set(vals)) > 1:
                rows.append([m, f.name, *vals])
    out += ["", "Method settings that differ between profiles (each method's `profile_overrides`; the paper's "
            "values are the Config defaults):", "",
            tabulate(rows, headers=["method", "field", *(p.name for p in profiles)], tablefmt="github")]
    return "\n".join(out)


def cmd_profiles(a) -> int:
    print(profiles_markdown())
    return 0


def cmd_data_stats(a) -> int:
    from tabulate import tabulate

    from benchmark.data import load_dataset, table2_row

    dd = data_dir(a.data_dir)
    names = _datasets(a.datasets) if a.datasets else [n for n in DATASETS if (dd / n).is_dir()]
    if not names:
        raise UserError(f"no datasets found in {dd}. Set --data-dir or BENCHMARK_DATA_DIR")
    rows = [table2_row(load_dataset(n, dd)) for n in names]
    print(tabulate(rows, headers="keys", tablefmt="github", intfmt=","))
    return 0


def cmd_data_import(a) -> int:
    from benchmark.importers import import_dataset

    opts = {}
    for kv in a.option:
        if "=" not in kv:
            raise UserError(f"-o {kv!r}: expected KEY=VALUE (e.g. -o genre=poetry)")
        k, v = kv.split("=", 1)
        opts[k] = v
    out = import_dataset(a.name, Path(a.raw_dir), Path(a.out), download=a.download, **opts)
    print(f"wrote {out}/interactions.csv.gz, items.jsonl, SOURCE.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="train and evaluate methods; one record per (method, dataset, seed)")
    r.add_argument("--methods", default="all", help="comma-separated registry names, or 'all' (see `ls`)")
    r.add_argument("--datasets", default="steam", help="comma-separated names (steam, cds, goodreads) or folders")
    r.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)}")
    r.add_argument("--seeds", type=int, nargs="+", default=[0])
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile field or a method config field (repeatable)")
    r.add_argument("--data-dir", default=None, help="default: $BENCHMARK_DATA_DIR, else ./data")
    r.add_argument("--results-dir", default="results/runs")
    r.add_argument("--cache-dir", default=None, help="default: $BENCHMARK_CACHE_DIR, else ./cache")
    r.add_argument("--splits", default="valid,test", choices=["valid,test", "valid"],
                   help="'valid' for tuning and sweeps: the test split is never decoded (records carry no test "
                        "metrics; `report` renders them as a validation sweep table)")
    r.add_argument("--dry-run", action="store_true",
                   help="print the resolved plan (windows per split, steps per stage, every config) and exit; "
                        "loads no model and reaches no hub")
    r.set_defaults(fn=cmd_run)

    rep = sub.add_parser("report", help="render tables (and figures) from records only")
    rep.add_argument("--results-dir", default="results/reference")
    rep.add_argument("--out", default="reports")
    rep.set_defaults(fn=cmd_report)

    pr = sub.add_parser("profiles", help="print every profile's settings side by side (Markdown)")
    pr.set_defaults(fn=cmd_profiles)

    ls = sub.add_parser("ls", help="list methods, datasets and profiles")
    ls.set_defaults(fn=cmd_ls)

    d = sub.add_parser("data", help="dataset utilities")
    dsub = d.add_subparsers(dest="data_cmd", required=True)
    st = dsub.add_parser("stats", help="print Table 2 (statistics after preprocessing) for every dataset")
    st.add_argument("--datasets", default=None)
    st.add_argument("--data-dir", default=None)
    st.set_defaults(fn=cmd_data_stats)
    im = dsub.add_parser("import", help="convert original public raw files into the canonical format")
    im.add_argument("name", help="steam | goodreads | amazon | movielens")
    im.add_argument("--raw-dir", required=True, help="folder holding (or receiving) the raw files")
    im.add_argument("--out", required=True, help="output dataset folder")
    im.add_argument("--download", action="store_true", help="download missing raw files from their public URLs")
    im.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                    help="importer option, e.g. -o genre=poetry -o min_rating=4 -o title_keys=title")
    im.set_defaults(fn=cmd_data_import)
    return p


def _cpu_distributed_env() -> None:
    """Multi-process on CPU: `accelerate launch --multi_gpu` / `torchrun` start N processes (`accelerate launch --cpu`
    is relaunched by `main`, see `_accelerate_cpu_processes`). Without a GPU, initialise accelerate's shared state on CPU (gloo)
    before anything else creates it: the first initialisation decides the backend for the whole process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        import torch

        if not torch.cuda.is_available():
            from accelerate import PartialState

            PartialState(cpu=True)


def _accelerate_cpu_processes() -> int:
    """N when this process was started by `accelerate launch --cpu --num_processes N` (N > 1), else 1.

    Without MPI, accelerate's `--cpu` path runs its "simple" launcher: ONE process, told only ACCELERATE_USE_CPU and
    MASTER_ADDR (set when N > 1), never N or a rank. N is read back from the launcher's own command line (its parent
    process) with accelerate's own argument parser."""
    env = os.environ
    if "WORLD_SIZE" in env or "MASTER_ADDR" not in env or env.get("ACCELERATE_USE_CPU", "").lower() not in ("true",
                                                                                                          "1"):
        return 1
    try:
        argv = Path(f"/proc/{os.getppid()}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return 1
    starts = [i + 1 for i, a in enumerate(argv) if a == "launch" or a.endswith("accelerate.commands.launch")]
    if not starts:
        return 1
    from accelerate.commands.launch import launch_command_parser

    args, _ = launch_command_parser().parse_known_args([a for a in argv[starts[0]:] if a])
    return int(args.num_processes or 1) if args.cpu else 1


def _relaunch_on_cpu(n: int, argv: list[str]) -> int:
    """Start the N processes `accelerate launch --cpu --num_processes N` asked for, with torch.distributed's
    launcher (what `accelerate launch --multi_gpu` uses); each initialises gloo in `_cpu_distributed_env`."""
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(n), "--master_addr",
           os.environ["MASTER_ADDR"], "--master_port", os.environ.get("MASTER_PORT", "29500"), "-m", "benchmark",
           *argv]
    logging.getLogger("benchmark").info("accelerate launch --cpu started one process; starting %d on CPU (gloo)", n)
    return subprocess.run(cmd).returncode


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    n = _accelerate_cpu_processes()
    if n > 1:
        return _relaunch_on_cpu(n, sys.argv[1:] if argv is None else argv)
    _cpu_distributed_env()
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are recorded; re-run the same command to resume", file=sys.stderr)
        return 130
