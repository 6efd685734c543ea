"""Shared helpers of every report output: what an output receives and returns, orders, names, number formats and
escapes, and the runs of an experiment plan. Imports nothing else in ``reports/`` (nor torch, `methods`, `runners`).

Conventions, stated once:
* datasets in `DATASET_ORDER` (the paper's: CDs, Steam, Goodreads), methods by their record's ``category`` in
  `CATEGORY_ORDER`, then display name;
* numbers with 4 decimals (seconds with 2); mean ± sample std (ddof = 1) over seeds, the std only with ≥ 2 seeds;
* an oracle row (record flag ``oracle``) is shown but never ranked or tested;
* a missing value is "—" in Markdown and "--" in LaTeX.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tabulate import tabulate

from benchmark.experiments import get_experiment, run_command

CATEGORY_ORDER = ("llm", "inference", "listwise", "ours", "reference")
DATASET_ORDER = ("cds", "steam", "goodreads")
DATASET_NAMES = {"cds": "CDs", "steam": "Steam", "goodreads": "Goodreads"}
MISSING = {"md": "—", "tex": "--"}
P_SIGNIFICANT = 0.05


# --- what an output receives and returns ----------------------------------------------------------------------

@dataclass
class Inputs:
    """Everything an output may read for one profile.

    Attributes:
        profile: the profile's name.
        records: its de-duplicated records that decoded the test split, less the runs only figure experiments
            planned (the tables' rows).
        sweeps: its tuning records (``run --splits valid``).
        by_id: every record of the results folder by run id (figures take theirs from a plan).
        plans: its experiment plans by experiment name.
        results_dir: the folder the records came from (named in the commands of skip lines).
    """

    profile: str
    records: list[dict] = field(default_factory=list)
    sweeps: list[dict] = field(default_factory=list)
    by_id: dict[str, dict] = field(default_factory=dict)
    plans: dict[str, dict] = field(default_factory=dict)
    results_dir: str = "results/runs"


@dataclass
class Table:
    """A rendered table: ``<name>_<profile>[_<suffix>].md`` and ``.tex``; `records` are the runs it shows
    (provenance); `title` replaces the output's title in the README (a companion table)."""

    md: str
    tex: str
    records: list[dict]
    suffix: str = ""
    title: str = ""


@dataclass
class Figure:
    """A rendered matplotlib figure: ``<name>_<profile>[_<suffix>].png`` and ``.pdf``."""

    figure: Any
    records: list[dict]
    caption: str
    suffix: str = ""


@dataclass
class Skip:
    """An output (or one dataset of it) that was not rendered: one line saying why and how to make it."""

    reason: str


@dataclass(frozen=True)
class Output:
    """One table or figure of the report.

    Attributes:
        name: the file stem (``table3`` -> ``table3_<profile>.md``).
        title: the heading in reports/README.md.
        source: ``"test"`` (rendered for profiles with test records or plans) or ``"sweep"`` (profiles with tuning
            records).
        render: Inputs -> the rendered pieces and skip lines; an empty list when the output does not apply.
    """

    name: str
    title: str
    render: Callable[[Inputs], list]
    source: str = "test"


# --- names, orders and formats ---------------------------------------------------------------------------------

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "¹": r"$^{1}$", "²": r"$^{2}$", "³": r"$^{3}$",
    "±": r"$\pm$", "≥": r"$\geq$", "−": "-", "→": r"$\rightarrow$", "×": r"$\times$", "τ": r"$\tau$",
    "—": "--", "–": "--", "λ": r"$\lambda$", "†": r"$^{\dagger}$", "‡": r"$^{\ddagger}$", "<": r"$<$", ">": r"$>$",
}


def tex_escape(text: str) -> str:
    """Escape LaTeX specials and turn the few Unicode symbols the reports print into math (``D³`` ->
    ``D$^{3}$``), so the LaTeX compiles with pdflatex and no extra package but booktabs."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))


def esc(text: str, fmt: str) -> str:
    """`text` for a cell of format `fmt` (``"md"``: pipes escaped; ``"tex"``: `tex_escape`)."""
    return tex_escape(text) if fmt == "tex" else str(text).replace("|", r"\|")


def code(text: str, fmt: str) -> str:
    return rf"\texttt{{{tex_escape(text)}}}" if fmt == "tex" else f"`{text}`"


def num(x: float, digits: int = 4) -> str:
    return f"{x:.{digits}f}"


def tex_tabular(headers: list[str], rows: list[list], align: str = "") -> str:
    """A booktabs tabular of plain-text cells (each `tex_escape`d here; columns left-aligned unless `align`)."""
    def line(cells):
        return " & ".join(tex_escape(str(c)) for c in cells) + r" \\"

    return "\n".join([rf"\begin{{tabular}}{{{align or 'l' * len(headers)}}}", r"\toprule", line(headers), r"\midrule",
                      *(line(r) for r in rows), r"\bottomrule", r"\end{tabular}"]) + "\n"


def simple_table(title: str, headers: list[str], rows: list[list], notes: list[str]) -> tuple[str, str]:
    """(Markdown: the title, a pipe table and ``>`` notes; LaTeX: the booktabs tabular) of plain-text cells."""
    md = [title, "", tabulate(rows, headers, tablefmt="pipe", disable_numparse=True), "", *(f"> {n}" for n in notes)]
    return "\n".join(md) + "\n", tex_tabular(headers, rows)


def tex_notes(notes: list[str]) -> list[str]:
    """The lines that put `notes` (already LaTeX) under a tabular, in small type, one note per line."""
    return [r"\par\smallskip\footnotesize", " \\\\\n".join(notes)] if notes else []


def tex_line(text: str) -> str:
    """A plain-text line (`tex_escape`d here) in small type under a tabular, e.g. a table's minimum detectable
    effect."""
    return rf"\par\smallskip{{\footnotesize {tex_escape(text)}}}\par" + "\n"


def signed(x: float, digits: int = 4) -> str:
    """``+0.1234`` / ``-0.1234``; a value that rounds to zero prints as ``+0.0000``, never ``-0.0000``."""
    text = f"{x:+.{digits}f}"
    return f"{0.0:+.{digits}f}" if float(text) == 0 else text


def dataset_name(d: str) -> str:
    return DATASET_NAMES.get(d, d)


def order_datasets(names) -> list[str]:
    known = [d for d in DATASET_ORDER if d in names]
    return known + sorted(set(names) - set(known))


def category_rank(category: str) -> int:
    return CATEGORY_ORDER.index(category) if category in CATEGORY_ORDER else len(CATEGORY_ORDER)


def mean_of(xs: list, digits: int = 3) -> str:
    """The mean of the finite values in `xs` at `digits` decimals; "—" when there are none."""
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    return f"{np.mean(xs):.{digits}f}" if xs else "—"


def median_of(xs: list, digits: int = 1) -> str:
    """The median of the finite values in `xs` at `digits` decimals; "—" when there are none. For timings over seeds:
    one run slowed by a shared machine does not set it (Table 1's cost column uses the median for the same reason)."""
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    return f"{np.median(xs):.{digits}f}" if xs else "—"


def mean_std(vals: list[float], digits: int = 4) -> str:
    """``mean ± sample std`` over seeds (ddof=1), the mean alone for one value, "—" for none."""
    if not vals:
        return "—"
    m = float(np.mean(vals))
    return f"{m:.{digits}f} ± {np.std(vals, ddof=1):.{digits}f}" if len(vals) > 1 else f"{m:.{digits}f}"


def diff_std(res: dict, digits: int = 4) -> str:
    """A two-level bootstrap result's mean (signed) ± the sample std of its per-seed values (the std with ≥ 2
    seeds)."""
    text = signed(res["mean"], digits)
    return text + (f" ± {res['seed_std']:.{digits}f}" if res.get("seed_std") is not None else "")


def seeds_paired(res: dict, n_a: int, n_b: int) -> str:
    """The number of seeds a paired test used, with each side's count when a seed was unpaired (dropped)."""
    return str(res["n_seeds"]) + ("" if n_a == n_b == res["n_seeds"] else f" of {n_a}/{n_b}")


def seeds_text(seeds) -> str:
    seeds = sorted(seeds)
    return f"seed{'s' if len(seeds) != 1 else ''} {', '.join(str(s) for s in seeds)}"


def by_dataset(records: list[dict]) -> dict[str, list[dict]]:
    """Records grouped by dataset, datasets in table order."""
    out: dict[str, list[dict]] = {d: [] for d in order_datasets({r["dataset"] for r in records})}
    for r in records:
        out[r["dataset"]].append(r)
    return out


def step_curve(record: dict) -> list[dict] | None:
    """The record's training curve when it is indexed by optimiser step (GRPO's ``[{"step", metric: value}]``;
    the preference methods log theirs per iteration and stage), else None."""
    curve = record.get("curve")
    return curve if curve and all("step" in p for p in curve) else None


def config_groups(recs: list[dict]) -> tuple[list[str], dict[tuple, list[dict]]]:
    """Group one dataset's records by (the method-config fields that vary among them, method); returns (the varied
    fields, {(json value of each varied field..., method): records}). A record without a method config has none."""
    cfgs = [(r.get("config") or {}).get("method") or {} for r in recs]
    keys = sorted({k for c in cfgs for k in c})
    varied = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in cfgs}) > 1]
    groups: dict[tuple, list[dict]] = {}
    for r, cfg in zip(recs, cfgs):
        groups.setdefault((*(json.dumps(cfg.get(k)) for k in varied), r["method"]), []).append(r)
    return varied, groups


# --- the runs of an experiment plan ----------------------------------------------------------------------------

def experiment_command(inp: Inputs, name: str) -> str:
    """The command that plans and runs experiment `name` on its default datasets and seeds into `inp`'s folder."""
    e = get_experiment(name)
    return run_command(name, inp.profile, e.datasets, e.seeds, results_dir=inp.results_dir)


def _point_label(row: dict, x_name: str) -> str:
    x = row.get("x")
    return row["series"] + (f", {x_name} = {x:g}" if x_name and x is not None else "")


def planned_runs(inp: Inputs, experiment: str, x_name: str = "") -> list:
    """Per dataset of the profile's plan of `experiment`: ``(dataset, [(plan row, record), ...])`` when every
    planned run has a record, else a `Skip` naming the missing runs (by point and seed) and the command that makes
    them. Without a plan, one `Skip` with the command that plans and runs the experiment.

    Args:
        inp: the profile's inputs.
        experiment: the experiment's name (benchmark/experiments.py).
        x_name: the name of the points' x value in the skip line (``"G"``), "" to leave x out.
    """
    plan = inp.plans.get(experiment)
    if plan is None:
        return [Skip(f"no runs planned for the {inp.profile} profile. Make them with: "
                     f"{experiment_command(inp, experiment)}")]
    out = []
    for d in order_datasets(plan["datasets"]):
        entry = plan["datasets"][d]
        rows = entry["runs"]
        lacking: dict[str, set[int]] = {}
        for row in rows:
            if row["run_id"] not in inp.by_id:
                lacking.setdefault(_point_label(row, x_name), set()).add(row["seed"])
        if lacking:
            missing = {r["run_id"] for r in rows if r["run_id"] not in inp.by_id}
            what = "; ".join(f"{label} ({seeds_text(s)})" for label, s in lacking.items())
            out.append(Skip(f"{dataset_name(d)}: {len(missing)} of {len({r['run_id'] for r in rows})} runs missing: "
                            f"{what}. Make them with: {entry['command']}"))
        else:
            out.append((d, [(row, inp.by_id[row["run_id"]]) for row in rows]))
    return out


def series_points(pairs: list[tuple[dict, dict]], panel: str | None = None) -> dict[str, dict]:
    """``{series: {x: [records over seeds]}}`` of a plan's (row, record) pairs, in plan order (x None for curves);
    only the rows of `panel` when given."""
    out: dict[str, dict] = {}
    for row, rec in pairs:
        if panel is None or row.get("panel", "") == panel:
            out.setdefault(row["series"], {}).setdefault(row.get("x"), []).append(rec)
    return out


def lacks_curve(pairs: list[tuple[dict, dict]], metrics: tuple[str, ...], panel: str | None = None) -> str | None:
    """Why some records of `pairs` (of `panel`) cannot give a step curve of `metrics`, or None."""
    bad = sorted({rec["run_id"] for row, rec in pairs if panel is None or row.get("panel", "") == panel
                  if not (c := step_curve(rec)) or any(p.get(m) is None for p in c for m in metrics)})
    if not bad:
        return None
    return (f"the records {', '.join(bad)} carry no training curve of {', '.join(metrics)} (recorded before the "
            "curve logged it, or eval_every = 0); delete them and run the experiment again")


def render_figure(inp: Inputs, experiment: str, draw: Callable, caption: Callable[[str], str], x_name: str = "",
                  check: Callable | None = None, companion: Callable | None = None) -> list:
    """The figure of every dataset whose planned runs all have records (`planned_runs`), drawn by
    ``draw(dataset, pairs)``; a `Skip` for the others, and for a dataset whose records fail ``check(pairs)`` (a
    reason, or None). With `companion`, each figure is followed by ``companion(dataset, pairs, records)`` (a `Table`
    drawn from the same runs)."""
    out = []
    for item in planned_runs(inp, experiment, x_name):
        if isinstance(item, Skip):
            out.append(item)
            continue
        d, pairs = item
        problem = check(pairs) if check else None
        if problem:
            out.append(Skip(f"{dataset_name(d)}: {problem}"))
            continue
        records = list({rec["run_id"]: rec for _, rec in pairs}.values())
        out.append(Figure(draw(d, pairs), records, caption(d), suffix=d))
        if companion:
            out.append(companion(d, pairs, records))
    return out
