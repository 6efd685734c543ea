"""`python -m benchmark report`: render every output in `OUTPUTS` from the records (and experiment plans) of one
results folder, then write ``README.md`` beside them, which embeds every table and figure with the provenance of its
records and lists, one line each, what was not rendered and the command that makes it.

Files: ``<output>_<profile>[_<suffix>].{md,tex}`` for tables (suffix ``ci``: Table 3's companion) and
``.{png,pdf}`` for figures (suffix: the dataset). Output is deterministic (sorted records, seeded bootstrap, PDFs
without dates), so re-rendering unchanged records changes no file. An earlier render's output that these records no
longer make (its runs left, or a figure is now skipped) is removed, so every output in the folder is current.

Everything is rendered in memory first and written only when every output rendered: a refused report (a damaged
record or predictions file) writes nothing.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from benchmark.errors import UserError
from benchmark.io import atomic_write, check_output_dir
from benchmark.locks import file_lock
from benchmark.reporting import (
    claims,
    curves,
    decoding,
    diagnostics,
    fig4,
    fig5,
    fig6,
    fig7,
    fig8,
    plotting,
    preference,
    sanity,
    significance,
    table1,
    table2,
    table3,
)
from benchmark.reporting.common import Figure, Inputs, Output, Skip, Table
from benchmark.records import dedupe, figure_runs, is_sweep, load_plans, load_records

LOCK_NAME = ".report.lock"  # held in the output folder while a render writes it (benchmark/locks.py)

# Everything `report` renders, in README order. A new output is a module with an `Output` and a line here.
OUTPUTS: tuple[Output, ...] = (
    table1.OUTPUT, table2.OUTPUT, table3.OUTPUT, fig4.OUTPUT, fig5.OUTPUT, fig6.OUTPUT, fig7.OUTPUT, fig8.OUTPUT,
    significance.OUTPUT, claims.OUTPUT, sanity.OUTPUT, diagnostics.OUTPUT, preference.OUTPUT, decoding.OUTPUT,
    curves.OUTPUT, diagnostics.FIGURE_RUNS, diagnostics.SWEEP, curves.SWEEP,
)


@dataclass
class Report:
    """What `render_all` did: the files it wrote (sorted, README.md included), one line per output (or dataset of
    a figure) it skipped, and the stale files of earlier renders it removed (see `remove_stale`)."""

    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)


def provenance(records: list[dict]) -> str:
    """One line: how many runs, their profile and model, seeds, creation dates and git SHAs."""
    def values(get):
        return sorted({str(get(r)) for r in records})

    models = values(lambda r: f"{r['config']['profile']['model']}, {r['config']['profile']['item_repr']}"
                    if isinstance(r.get("config", {}).get("profile"), dict) else "?")
    dates = values(lambda r: str(r.get("created", "?"))[:10])
    shas = values(lambda r: (r.get("provenance") or {}).get("git_sha", "?")[:7]
                  + (" (dirty)" if (r.get("provenance") or {}).get("git_dirty") else ""))
    seeds = ", ".join(map(str, sorted({r["seed"] for r in records})))
    runs = f"{len(records)} run{'s' if len(records) != 1 else ''}"
    hosts = {(r.get("provenance") or {}).get("host") for r in records} - {None}  # recorded since 2026-12-06
    where = ""
    if hosts:
        where = f"; {len(hosts)} host{'s' if len(hosts) != 1 else ''}"
        if any("host" not in (r.get("provenance") or {}) for r in records):
            where += " and runs from before hosts were recorded"
    return (f"{runs}; profile {', '.join(values(lambda r: r['profile']))} (model {'; '.join(models)}); seeds {seeds}; "
            f"created {dates[0] + (' to ' + dates[-1] if len(dates) > 1 else '')}; git {', '.join(shas)}{where}")


def compute(records: list[dict]) -> str:
    """One line: the compute the records measured, in hours: the sum of their `fit_s`, `recommend_s` and `valid_s`.
    The run that trains an SFT checkpoint (the first that needs it) counts its training in its `fit_s`, and later
    runs load it from the cache, so the line names the checkpoints' share of training (each distinct one's
    ``stats.sft.seconds``, which every record on it repeats, once) without adding it again. Reference sets or
    checkpoints built before these runs, in a cache they did not fill, are not counted."""
    def hours(s: float) -> str:
        return f"{s / 3600:.2f} h"

    t = {k: sum((r.get("timings") or {}).get(k) or 0.0 for r in records) for k in ("fit_s", "recommend_s", "valid_s")}
    sft = {(r["dataset"], r.get("data_hash"), (r.get("stats") or {}).get("sft", {}).get("seconds"))
           for r in records if isinstance((r.get("stats") or {}).get("sft"), dict)}
    sft_s = sum(s for *_, s in sft if s)
    return (f"{hours(sum(t.values()))} in all: training {hours(t['fit_s'])} (of it {len(sft)} SFT checkpoint"
            f"{'s' if len(sft) != 1 else ''}, {hours(sft_s)}), decoding test {hours(t['recommend_s'])} and "
            f"validation {hours(t['valid_s'])}")


def _embed(md: str) -> str:
    """A table's Markdown under a README heading: its own title dropped, its sub-headings demoted."""
    lines = md.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join("##" + ln if ln.startswith("## ") else ln for ln in lines).strip()


def render_all(results_dir: Path, out_dir: Path, command: str = "") -> Report:
    """Render every output for every profile found under `results_dir` into `out_dir`, then its README.md (which
    names `command`, default ``python -m benchmark report --results-dir <results_dir> --out <out_dir>``).

    Raises:
        UserError: no records and no plans, a malformed record, plan or predictions file, or `out_dir` is a file or
            not writable.
    """
    out_dir = Path(out_dir)
    check_output_dir(out_dir, "report --out")
    loaded = load_records(Path(results_dir))
    plans = load_plans(Path(results_dir))
    if not loaded and not plans:
        raise UserError(f"no run records under {results_dir} (expected <dataset>/<method>/<run_id>.json). Make some "
                        "with `python -m benchmark run`, or render the committed reproduction: "
                        "`python -m benchmark report --reference`")
    report, files = _render_all(Path(results_dir), loaded, plans, out_dir, command)  # in memory: may still refuse
    # one render per folder: another's stale-file removal never races ours; the lock file goes when we are done
    with file_lock(out_dir / LOCK_NAME, remove=True):
        for path, data in files:
            report.written.append(atomic_write(path, lambda f, data=data: f.write(data)))
        report.written.sort()
        report.removed = remove_stale(out_dir, report.written)
    return report


def _render_all(results_dir: Path, loaded: list[dict], plans: list[dict], out_dir: Path, command: str
                ) -> tuple[Report, list[tuple[Path, bytes]]]:
    """Render every output and the README in memory: (the report's skip lines, [(file, bytes), ...] to write)."""
    sweeps = [r for r in loaded if is_sweep(r)]  # tuning runs: validation only, never in the test tables
    figure_only = figure_runs(plans)
    tests = dedupe([r for r in loaded if not is_sweep(r) and r["run_id"] not in figure_only])
    by_id = {r["run_id"]: r for r in loaded}
    sources = {"test": {str(r["profile"]) for r in tests} | {p["profile"] for p in plans},
               "sweep": {str(r["profile"]) for r in sweeps}}
    report, readme, files = Report(), [], []
    for profile in sorted(sources["test"] | sources["sweep"]):
        inp = Inputs(profile, [r for r in tests if str(r["profile"]) == profile],
                     [r for r in sweeps if str(r["profile"]) == profile], by_id,
                     {p["experiment"]: p for p in plans if p["profile"] == profile}, Path(results_dir).as_posix())
        readme += ["", f"## {profile} profile", "",
                   f"Compute of its records: {compute([r for r in loaded if str(r['profile']) == profile])}.", ""]
        for output in OUTPUTS:
            if profile not in sources[output.source]:
                continue
            with plotting.style():
                items = output.render(inp)
                readme += _prepare(output, profile, items, out_dir, report, files)
    source = Path(results_dir).as_posix()
    command = command or (f"python -m benchmark report --results-dir {shlex.quote(source)} "
                          f"--out {shlex.quote(out_dir.as_posix())}")
    head = [f"# Report: {source}", "",
            f"Rendered by `{command}` from the {len(loaded)} run records and {len(plans)} experiment plans under "
            f"`{source}`: every number and figure below is computed from them "
            "(regenerate, never edit). Each output names the runs it was drawn from"
            + (f"; the {len(figure_only)} runs planned only for figures are left out of the tables." if figure_only
               else "."), "", f"Compute measured by these records: {compute(loaded)}.", ""]
    if report.skipped:
        head += ["Not rendered (one line each: why, and the command that makes the missing runs):", ""]
        head += [f"- {line}" for line in report.skipped] + [""]
    files.append((out_dir / "README.md", ("\n".join(head + readme).rstrip() + "\n").encode("utf-8")))
    return report, files


def remove_stale(out_dir: Path, written: list[Path]) -> list[Path]:
    """Delete the files of `out_dir` (top level) that an earlier render wrote and this one did not: named as
    `render_all` names its outputs, ``<output>_<profile>[_<suffix>].{md,tex,png,pdf}`` for an output in `OUTPUTS` and
    a profile of benchmark/config.py. Such a file is a table or figure whose records or runs have since left the
    results folder (or a figure now skipped for missing runs); kept, it would sit beside fresh outputs as if current.
    Any other file (``fig4_draft.png``, ``notes.md``) is left alone. Returns the removed paths, sorted."""
    from benchmark.config import PROFILES

    keep = {Path(p).resolve() for p in written}
    stems = tuple(f"{o.name}_{profile}" for o in OUTPUTS for profile in PROFILES)

    def ours(p: Path) -> bool:
        return p.suffix in (".md", ".tex", ".png", ".pdf") and any(
            p.stem == stem or p.stem.startswith(stem + "_") for stem in stems)

    stale = sorted(p for p in Path(out_dir).iterdir() if p.is_file() and ours(p) and p.resolve() not in keep)
    for p in stale:
        p.unlink()
    return stale


def _prepare(output: Output, profile: str, items: list, out_dir: Path, report: Report,
             files: list[tuple[Path, bytes]]) -> list[str]:
    """One output's pieces as files (appended to `files`, not yet written); returns its README lines and records its
    skip lines in `report`."""
    lines = []
    for item in items:
        if isinstance(item, Skip):
            report.skipped.append(f"{output.name} ({profile} profile): {item.reason}")
            continue
        stem = out_dir / "_".join(s for s in (output.name, profile, item.suffix) if s)
        if isinstance(item, Table):
            files += [(stem.with_name(stem.name + ".md"), item.md.encode("utf-8")),
                      (stem.with_name(stem.name + ".tex"), item.tex.encode("utf-8"))]
            lines += [f"### {item.title or output.title}", "", _embed(item.md), "",
                      f"LaTeX: [{stem.name}.tex]({stem.name}.tex). Records: {provenance(item.records)}.", ""]
        elif isinstance(item, Figure):
            files += [(stem.with_name(f"{stem.name}.{ext}"), data) for ext, data in plotting.encode(item.figure).items()]
            lines += [f"### {output.title} ({item.suffix})", "", f"![{output.title}]({stem.name}.png)", "",
                      f"{item.caption} PDF: [{stem.name}.pdf]({stem.name}.pdf). Records: "
                      f"{provenance(item.records)}.", "", "<details><summary>Plotted values</summary>", "",
                      plotting.figure_points(item.figure), "", "</details>", ""]
    return lines
