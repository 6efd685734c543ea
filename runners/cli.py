"""Command line: ``python -m benchmark run | report | profiles | ls | data stats | data import``.

User errors (unknown names, malformed files, bad --set values, bad flags) print one line and exit 2, without a
traceback, before any work.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
import time
from pathlib import Path

from benchmark.config import (
    DATASET_OVERRIDES,
    DATASETS,
    PROFILES,
    SCRATCH_ONLY,
    cache_dir,
    data_dir,
    get_profile,
    split_overrides,
)
from benchmark.errors import UserError, unknown_name

RUNS_DIR = "results/runs"  # where `run` writes by default, and what `report` renders by default
RUNS_OUT = "reports/runs"  # ... into here (not committed)
REFERENCE_DIR = "results/reference"  # the committed reproduction
REFERENCE_OUT = "reports"  # ... and its committed report (`report --reference`)
# the profiles the committed reproduction is made with (`run --into-reference`): smollm2 is its pretrained-LLM table
REFERENCE_PROFILES = ("cpu", "smollm2", "paper")
PROJECT = Path(__file__).resolve().parents[1]
# Libraries that log at INFO (fontTools' "GSUB pruned" while `report` writes PDFs, ...): WARNING and above only, so
# that a refusal is the one line on stderr.
QUIET_LOGGERS = ("datasets", "transformers", "accelerate", "urllib3", "filelock", "fontTools", "matplotlib", "PIL",
                 "huggingface_hub", "torch", "trl", "peft", "httpx")
# Cache subfolders a run writes (methods/common/: SFT checkpoints, tokenizers, reference sets, SASRec; runs: locks
# and per-run state), checked before any work like the cache folder itself.
CACHE_SUBDIRS = ("runs", "sft", "tokenizers", "refsets", "sasrec")


def _is_reference(path) -> bool:
    """`path` is the committed reproduction's folder (relative to here or to the project)."""
    p = Path(path).resolve()
    return p in (Path(REFERENCE_DIR).resolve(), PROJECT / REFERENCE_DIR)


def _datasets(arg: str) -> list[str]:
    names = [d.strip() for d in arg.split(",") if d.strip()]
    if not names:
        raise UserError(f"--datasets {arg!r} is empty. Give comma-separated names ({', '.join(DATASETS)}) or folders")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"--datasets {arg} names {', '.join(twice)} twice: each dataset is planned once. Give it "
                        f"once: --datasets {','.join(dict.fromkeys(names))}")
    for n in names:
        if n not in DATASETS and not Path(n).is_dir():
            raise unknown_name("dataset", n, DATASETS)
    return names


def cmd_run(a) -> int:
    from benchmark import faults
    from benchmark.data import load_dataset
    from benchmark.io import check_output_dir
    from runners.plan import parse_methods, plan_sets, resolve_sets, route_sets

    # everything the user gave is checked before any work: names, values, output places, then the data
    profile = get_profile(a.profile)
    results_dir = _results_dir(a)
    overrides = split_overrides(a.set)
    splits = tuple(a.splits.split(","))
    if a.experiment is not None:  # "" is an (unknown) experiment name, not "no experiment"
        from benchmark.experiments import components

        if a.methods is not None:
            raise UserError("--methods and --experiment exclude each other: the experiment names its methods")
        if splits != ("valid", "test"):
            raise UserError("--experiment runs decode the test split (the figures read it); --splits valid is for "
                            "tuning runs of --methods")
        names = _datasets(a.datasets) if a.datasets is not None else list(
            dict.fromkeys(d for e in components(a.experiment) for d in e.datasets))
    else:
        methods = parse_methods("all" if a.methods is None else a.methods)
        names = _datasets("steam" if a.datasets is None else a.datasets)
        sets = route_sets(overrides, profile, methods)  # parsed above and routed here, once
        resolve_sets(methods, profile, a.seeds or [0], sets)
    cdir = Path(a.cache_dir) if a.cache_dir else cache_dir()
    check_output_dir(results_dir, "--results-dir")
    check_output_dir(cdir, "--cache-dir")
    dd = data_dir(a.data_dir)
    datasets = [load_dataset(n, dd) for n in names]
    twice = sorted({d.name for d in datasets if [e.name for e in datasets].count(d.name) > 1})
    if twice:
        raise UserError(f"--datasets {a.datasets} gives dataset {', '.join(twice)} twice (by name and by folder): "
                        "records are kept per dataset name. Give each dataset once")
    plans = []
    if a.experiment is not None:
        from runners.experiments import expand

        specs, plans = expand(a.experiment, datasets, profile, a.seeds, overrides, str(results_dir),
                              own_datasets=a.datasets is None)
    else:
        specs = plan_sets(methods, datasets, profile, a.seeds or [0], sets, splits=splits)
    _check_specs(specs, results_dir, cdir, bool(plans))
    if a.dry_run:
        from runners.plan import describe

        print(describe(specs, int(os.environ.get("WORLD_SIZE", "1"))))
        return 0
    faults.install()
    from runners.execute import execute, is_main_process

    if is_main_process():
        from benchmark.records import write_plan

        for p in plans:  # before any run: `report` names what is still missing
            write_plan(results_dir, p)
    log = logging.getLogger("benchmark")
    log.info("planned %d runs (%s x %s) -> %s", len(specs), a.experiment if a.experiment is not None
             else ",".join(methods), ",".join(names), results_dir)
    t0 = time.time()
    for n, spec in enumerate(specs, 1):
        log.info("[%d/%d] %.0fs elapsed", n, len(specs), time.time() - t0)
        execute(spec, results_dir, cdir)
    if is_main_process():
        print(_summary(specs, results_dir))
    return 0


def _results_dir(a) -> Path:
    """`run`'s records folder. The committed reproduction (results/reference) only with --into-reference, and only
    for the profiles it is made with: a smoke or tuning run never lands there."""
    if a.into_reference:
        if a.results_dir is not None and not _is_reference(a.results_dir):
            raise UserError(f"--into-reference writes into {REFERENCE_DIR}; it excludes --results-dir "
                            f"{a.results_dir}. Give one of them")
        if a.profile not in REFERENCE_PROFILES:
            raise UserError(f"--into-reference: the committed reproduction is made with the profiles "
                            f"{', '.join(REFERENCE_PROFILES)}, not {a.profile}. Drop --into-reference "
                            f"(runs go to {RUNS_DIR}) or choose --profile {REFERENCE_PROFILES[0]}")
        if a.splits != "valid,test":
            raise UserError("--into-reference with --splits valid: tuning runs never go into the committed "
                            "reproduction. Drop --into-reference (give --results-dir results/tuning)")
        return Path(REFERENCE_DIR)
    if a.results_dir is not None and _is_reference(a.results_dir):
        raise UserError(f"--results-dir {a.results_dir} is the committed reference reproduction: add "
                        f"--into-reference to write there (profiles {', '.join(REFERENCE_PROFILES)} only), or "
                        f"choose another --results-dir (default {RUNS_DIR})")
    return Path(a.results_dir or RUNS_DIR)


def _check_specs(specs, results_dir: Path, cdir: Path, plans: bool) -> None:
    """What the planned runs need, checked before any work: each dataset can fill a list of the profile's k items,
    and every folder the runs write below --results-dir and --cache-dir is writable (not only the top folders)."""
    from benchmark.data import check_list_length
    from benchmark.io import check_output_dir

    seen = set()
    for s in specs:
        if (s.dataset, s.profile.k, s.profile.exclude_history) not in seen:
            seen.add((s.dataset, s.profile.k, s.profile.exclude_history))
            check_list_length(s.profile.k, s.profile.exclude_history, s.data)
    subdirs = dict.fromkeys([results_dir / s.dataset / s.method for s in specs]
                            + ([results_dir / "experiments"] if plans else []))
    for d in subdirs:
        check_output_dir(d, "--results-dir")
    for name in CACHE_SUBDIRS:
        check_output_dir(cdir / name, "--cache-dir")


def _summary(specs, results_dir: Path) -> str:
    """What the run produced (or found finished), as a compact table, and the command that reports it (its paths
    quoted for the shell)."""
    from benchmark.records import load_record
    from benchmark.reporting.summary import run_summary
    from benchmark.records import record_path

    records = [load_record(record_path(results_dir, s.dataset, s.method, s.run_id)) for s in specs]
    report = "python -m benchmark report"
    if _is_reference(results_dir):
        report += " --reference"
    elif results_dir.resolve() != Path(RUNS_DIR).resolve():
        report += f" --results-dir {shlex.quote(str(results_dir))}"
    return f"\n{run_summary(records)}\n\nrecords in {results_dir}; tables and figures: {report}"


def cmd_report(a) -> int:
    from benchmark.reporting.render import render_all

    if a.reference and (a.results_dir or a.out):
        raise UserError("--reference renders results/reference into reports/; give it alone, or give --results-dir "
                        "and --out without it")
    results_dir = REFERENCE_DIR if a.reference else (a.results_dir or RUNS_DIR)
    out = REFERENCE_OUT if a.reference else (a.out or RUNS_OUT)
    if not a.reference and Path(out).resolve() == Path(REFERENCE_OUT).resolve():
        raise UserError(f"{REFERENCE_OUT}/ holds the committed reference report: render it with "
                        "`python -m benchmark report --reference`, or choose another --out")
    command = "python -m benchmark report" + (" --reference" if a.reference else "".join(
        f" {flag} {shlex.quote(v)}" for flag, v in (("--results-dir", a.results_dir), ("--out", a.out)) if v))
    report = render_all(Path(results_dir), Path(out), command)
    for line in report.skipped:
        print(f"skipped {line}")
    for path in report.removed:
        print(f"removed {path}: an earlier render's output that these records no longer make")
    n_fig = sum(p.suffix == ".png" for p in report.written)
    n_tab = sum(p.suffix == ".md" and p.name != "README.md" for p in report.written)
    print(f"wrote {n_tab} table{'s' * (n_tab != 1)} and {n_fig} figure{'s' * (n_fig != 1)} from {results_dir}: open "
          f"{Path(out) / 'README.md'}")
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
    per_dataset = [f"- `{p}` on {d}: " + ", ".join(f"{k} = {v}" for k, v in sets.items())
                   for p, by_ds in DATASET_OVERRIDES.items() for d, sets in by_ds.items()]
    if per_dataset:
        out += ["", "Per-dataset values (`benchmark.config.DATASET_OVERRIDES`, chosen on that dataset's validation "
                "split; a `--set` of the same field wins):", "", *per_dataset]
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


def _experiments() -> list[str]:
    from benchmark.experiments import EXPERIMENTS

    return list(EXPERIMENTS)


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are a UserError: one line and exit 2 (not argparse's usage block)."""

    def error(self, message: str):
        raise UserError(f"{self.prog}: {message}. See `{self.prog} --help`")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m benchmark", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)

    r = sub.add_parser("run", help="train and evaluate methods; one record per (method, dataset, seed)")
    r.add_argument("--methods", default=None, help="comma-separated registry names, or 'all' (see `ls`); default all")
    r.add_argument("--experiment", default=None, metavar="NAME",
                   help="the runs a paper output needs, instead of --methods: " + ", ".join(_experiments())
                        + " (datasets and seeds default to the experiment's)")
    r.add_argument("--datasets", default=None, help="comma-separated names (steam, cds, goodreads) or folders; "
                                                    "default steam (an experiment: its own)")
    r.add_argument("--profile", default="cpu", help=f"one of {', '.join(PROFILES)}")
    r.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 (an experiment: its own, 0 1 2)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile field or a method config field (repeatable); METHOD.KEY=VALUE names the "
                        "method (a bare key that several selected methods share is an error)")
    r.add_argument("--data-dir", default=None, help="default: $BENCHMARK_DATA_DIR, else ./data")
    r.add_argument("--results-dir", default=None, help=f"where the records go (default {RUNS_DIR})")
    r.add_argument("--into-reference", action="store_true",
                   help=f"write into the committed reproduction, {REFERENCE_DIR} (cpu and paper profiles only); "
                        "--results-dir never points there without it")
    r.add_argument("--cache-dir", default=None, help="default: $BENCHMARK_CACHE_DIR, else ./cache")
    r.add_argument("--splits", default="valid,test", choices=["valid,test", "valid"],
                   help="'valid' for tuning and sweeps: the test split is never decoded (records carry no test "
                        "metrics; `report` renders them as a validation sweep table)")
    r.add_argument("--dry-run", action="store_true",
                   help="print the resolved plan (windows per split, steps per stage, every config) and exit; "
                        "loads no model and reaches no hub")
    r.set_defaults(fn=cmd_run)

    rep = sub.add_parser("report", help="render the paper's tables and figures from records only",
                         description="Render Tables 1-3 (Markdown + LaTeX), Figures 4-8 (PNG + PDF) and a README.md "
                                     "that embeds them with their records' provenance. Default: the records `run` "
                                     f"wrote ({RUNS_DIR}) into {RUNS_OUT}/. An output whose runs are missing is "
                                     "skipped with one line naming them and the command that makes them.")
    rep.add_argument("--results-dir", default=None, help=f"the records to render (default {RUNS_DIR})")
    rep.add_argument("--out", default=None, help=f"where to write (default {RUNS_OUT}; {REFERENCE_OUT}/ only with "
                                                 "--reference)")
    rep.add_argument("--reference", action="store_true",
                     help=f"render the committed reproduction, {REFERENCE_DIR}, into the committed report, "
                          f"{REFERENCE_OUT}/")
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


def _honour_cpu_flag() -> None:
    """`accelerate launch --cpu` (ACCELERATE_USE_CPU) on a machine with GPUs: hide them from this process and every
    process it starts, before torch is imported, so that each ``torch.cuda.is_available()`` (trainer devices, bf16
    autocast, SASRec) agrees with the flag. Without it the GPU was used anyway, or two ranks met on one GPU."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("true", "1"):
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


def _check_gpu_processes() -> None:
    """Refuse, in one line, more processes on this node than it has GPUs (NCCL's "Duplicate GPU detected")."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    if local <= 1:
        return
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if 0 < gpus < local:
        raise UserError(f"{local} processes on this machine but {gpus} GPU(s): one process per GPU. Launch with "
                        f"--num_processes {gpus}, or add --cpu to run the {local} processes on CPU")


def main(argv: list[str] | None = None) -> int:
    # Third-party libraries log at WARNING and above (datasets' "JAX version ... available" and the like), so that a
    # refused command prints its one-line error and nothing else; the suite's own logger ("benchmark") says INFO.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger().setLevel(logging.WARNING)  # also when the root logger already had a handler
    logging.getLogger("benchmark").setLevel(logging.INFO)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    _honour_cpu_flag()
    if not sys.stderr.isatty():  # a log file: no progress-bar redraws from the Hugging Face libraries (set before
        # they are imported; TQDM_DISABLE: transformers' GGUF conversion calls tqdm directly)
        for var in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS", "TQDM_DISABLE"):
            os.environ.setdefault(var, "1")
    n = _accelerate_cpu_processes()
    if n > 1:
        return _relaunch_on_cpu(n, sys.argv[1:] if argv is None else argv)
    try:
        _check_gpu_processes()
        _cpu_distributed_env()
        args = build_parser().parse_args(argv)
        return args.fn(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished runs are recorded; re-run the same command to resume", file=sys.stderr)
        return 130
