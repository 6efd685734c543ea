"""Table 3: overall performance, R@3 N@3 R@5 N@5 on the test split per method (rows) and dataset (column groups).

The paper's layout, one cell per (method, dataset, metric): the mean over seeds of each run's window mean with its
sample std over seeds beside it (every seed re-trains the whole pipeline), the best mean per column in bold
and the second underlined (compared at the printed 4 decimals; ties share the mark; oracle rows not ranked), and a
marker on the rows of our methods (category ``ours``) where the paired test against the column's best baseline (the
best non-oracle row outside ``ours``) is significant: † better, ‡ worse (p < 0.05; two-level paired bootstrap over
seeds and users, `stats.paired_test`). The notes state each dataset's minimum detectable effect (`stats.mde`). The
spread goes to a companion table (``table3_<profile>_ci``): mean ± sample std over seeds with the 95 % two-level
bootstrap CI of the cell's mean, and every paired test behind a marker.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from tabulate import tabulate

from benchmark.metrics import HIGHER_IS_BETTER
from benchmark.reporting.common import (
    MISSING,
    P_SIGNIFICANT,
    Inputs,
    Output,
    Skip,
    Table,
    category_rank,
    code,
    dataset_name,
    diff_std,
    esc,
    experiment_command,
    num,
    order_datasets,
    seeds_paired,
    signed,
    tex_escape,
    tex_notes,
)
from benchmark.records import by_created, row_key
from benchmark.reporting.stats import (BOOTSTRAP_NOTE, MDE_NOTE, cell_ci, mde_line, p_label, paired_test,
                                       user_values)

COLUMNS = (("R@3", "recall@3"), ("N@3", "ndcg@3"), ("R@5", "recall@5"), ("N@5", "ndcg@5"))
MARKS = {"better": "†", "worse": "‡"}


@dataclass
class Grid:
    """Everything both tables show, computed once: rows in table order, datasets, and per (row, dataset) its
    records, per (row, dataset, metric) its cell, per (dataset, metric) the best/second marks, per marked cell its
    paired test."""

    rows: list[dict]
    datasets: list[str]
    recs: dict[tuple[str, str], list[dict]]
    cells: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    marks: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    tests: dict[tuple[str, str, str], dict] = field(default_factory=dict)
    no_predictions: list[tuple[str, str]] = field(default_factory=list)  # (row, dataset) cells without a CI
    mde: dict[str, str] = field(default_factory=dict)  # per dataset: its minimum detectable effect line


def _rows(records: list[dict]) -> list[dict]:
    """One row per table row key: name, category and oracle flag from its newest record, in table order."""
    newest = {}
    for r in sorted(records, key=by_created):
        newest[row_key(r)] = r
    rows = [{"key": k, "name": r["display_name"] or k, "category": r["category"], "oracle": bool(r["oracle"])}
            for k, r in newest.items()]
    return sorted(rows, key=lambda x: (category_rank(x["category"]), x["name"].lower(), x["key"]))


def _marks(cells: dict[str, dict], metric: str) -> dict[str, str]:
    """``{row: "best" | "second"}`` at the printed precision over the non-oracle cells of one column."""
    higher = HIGHER_IS_BETTER.get(metric, True)
    shown = {k: round(c["mean"], 4) for k, c in cells.items()}
    ranked = sorted(set(shown.values()), reverse=higher)
    return {k: ("best" if v == ranked[0] else "second") for k, v in shown.items() if v in ranked[:2]}


def grid(records: list[dict]) -> Grid:
    """Cells, marks and paired tests of one profile's de-duplicated test records."""
    g = Grid(_rows(records), order_datasets({r["dataset"] for r in records}), {})
    for r in sorted(records, key=lambda r: (r["seed"], r["run_id"])):
        g.recs.setdefault((row_key(r), r["dataset"]), []).append(r)
    cache: dict = {}
    oracle = {row["key"] for row in g.rows if row["oracle"]}
    ours = [row["key"] for row in g.rows if row["category"] == "ours" and not row["oracle"]]
    for d in g.datasets:
        for _, metric in COLUMNS:
            col = {}
            for row in g.rows:
                recs = g.recs.get((row["key"], d), [])
                vals = [r["metrics"].get(metric) for r in recs]
                if recs and None not in vals:
                    col[row["key"]] = g.cells[(row["key"], d, metric)] = {
                        "mean": float(np.mean(vals)), "std": float(np.std(vals, ddof=1)) if len(vals) > 1 else None,
                        "ci": cell_ci(recs, metric, cache), "seeds": [r["seed"] for r in recs]}
            ranked = {k: c for k, c in col.items() if k not in oracle}
            g.marks[(d, metric)] = _marks(ranked, metric) if ranked else {}
            baselines = {k: c for k, c in ranked.items() if k not in ours}
            if not baselines:
                continue
            sign = 1 if HIGHER_IS_BETTER.get(metric, True) else -1
            best = max(baselines, key=lambda k: sign * baselines[k]["mean"])  # ties: the first row
            for k in ours:
                if k in col:
                    res = paired_test(g.recs[(k, d)], g.recs[(best, d)], metric, cache)
                    if res is not None:
                        g.tests[(k, d, metric)] = {"baseline": best, **res}
    g.no_predictions = sorted({(row_key(r), r["dataset"]) for r in records if user_values(r, cache) is None})
    for d in g.datasets:
        g.mde[d] = mde_line([r for r in records if r["dataset"] == d], dataset_name(d), cache)
    return g


def _marker(test: dict | None, metric: str) -> str:
    if test is None or test["p_value"] >= P_SIGNIFICANT:
        return ""
    better = (test["mean"] > 0) == HIGHER_IS_BETTER.get(metric, True)
    return MARKS["better" if better else "worse"]


def _main_cell(g: Grid, key: str, d: str, metric: str, fmt: str) -> str:
    cell = g.cells.get((key, d, metric))
    if cell is None:
        return MISSING[fmt]
    text, mark = num(cell["mean"]), g.marks[(d, metric)].get(key)
    if mark == "best":
        text = rf"\textbf{{{text}}}" if fmt == "tex" else f"**{text}**"
    elif mark == "second":
        text = rf"\underline{{{text}}}" if fmt == "tex" else f"<u>{text}</u>"
    if cell["std"] is not None:  # the spread over seeds (each seed its own SFT): LaTeX sets it small
        text += (rf"{{\scriptsize$\pm${num(cell['std'])}}}" if fmt == "tex" else f" ± {num(cell['std'])}")
    return text + esc(_marker(g.tests.get((key, d, metric)), metric), fmt)


def _seed_note(g: Grid, names: dict[str, str], fmt: str) -> str:
    def show(seeds: tuple) -> str:
        return f"{', '.join(str(s) for s in seeds)} ({len(seeds)} seed{'s' if len(seeds) != 1 else ''})"

    seed_sets = {k: tuple(r["seed"] for r in v) for k, v in g.recs.items()}
    # the most frequent seed set (ties broken by the set itself, for deterministic output)
    common = max(Counter(seed_sets.values()).items(), key=lambda kv: (kv[1], kv[0]))[0]
    odd = [f"{esc(names[k], fmt)}/{esc(dataset_name(d), fmt)}: {show(s)}"
           for (k, d), s in sorted(seed_sets.items()) if s != common]
    if not odd:
        return f"Seeds: {show(common)} per cell."
    return f"Seeds: {show(common)} for most cells; " + "; ".join(odd) + "."


def _main_notes(g: Grid, profile: str, fmt: str) -> list[str]:
    names = {row["key"]: row["name"] for row in g.rows}
    notes = [
        esc("Test split. Cells: the mean ± sample std over seeds (every seed re-trains the whole pipeline, its SFT "
            "included); best mean per column in bold, second underlined. † / ‡: significantly "
            f"better / worse than the column's best baseline (the best non-oracle row outside our methods), paired "
            f"{BOOTSTRAP_NOTE}, p < {P_SIGNIFICANT:g}. 95 % CIs and the tests behind the markers: ", fmt)
        + code(f"table3_{profile}_ci", fmt) + ".",
        _seed_note(g, names, fmt),
        *(esc(g.mde[d], fmt) for d in g.datasets),
        esc(MDE_NOTE, fmt),
    ]
    oracles = [row["key"] for row in g.rows if row["oracle"]]
    if oracles:
        rows = ", ".join(f"{esc(names[k], fmt)} ({code(k, fmt)})" for k in oracles)
        notes.append(f"{rows}: selects with the test target, an oracle upper bound; not ranked.")
    d3_recs = [r for recs in g.recs.values() for r in recs if r["method"] == "d3"]
    if d3_recs or any(r["method"] == "sasrec" for recs in g.recs.values() for r in recs):
        note = (f"SASRec ({code('sasrec', fmt)}) " + esc("is the classical reference, trained on every sft user's "
                "full sequence; D³'s ", fmt) + f"({code('d3', fmt)}) " + esc("text-free assistant is a separate "
                "SASRec trained on exactly the LLM's SFT training windows, as upstream DecodingMatters'", fmt))
        if any((r.get("config") or {}).get("method", {}).get("assistant_data") != "sft_windows" for r in d3_recs):
            note += (esc("; D³ records without ", fmt) + code("assistant_data", fmt) + " = " +
                     code("sft_windows", fmt) + esc(" used the SASRec row's checkpoint", fmt))
        notes.append(note + ".")
    missing = []
    for d in g.datasets:
        absent = [esc(row["name"], fmt) for row in g.rows if (row["key"], d) not in g.recs]
        if absent:
            missing.append(f"{esc(dataset_name(d), fmt)}: {', '.join(absent)}")
    notes.append("Missing: " + ("; ".join(missing) if missing else "none") + ".")
    return notes


def table3(records: list[dict], profile: str, g: Grid | None = None) -> tuple[str, str]:
    """(Markdown, LaTeX) of the main table: mean ± std per cell, marks and markers (module docstring)."""
    g = g or grid(records)
    body = {fmt: [[esc(row["name"], fmt)] + [_main_cell(g, row["key"], d, m, fmt) for d in g.datasets
                                              for _, m in COLUMNS] for row in g.rows] for fmt in ("md", "tex")}
    headers = ["Method"] + [f"{dataset_name(d)} {c}" for d in g.datasets for c, _ in COLUMNS]
    md = f"# Table 3: overall performance ({profile} profile)\n\n"
    md += tabulate(body["md"], headers=headers, tablefmt="pipe", disable_numparse=True) + "\n\n"
    md += "".join(f"> {n}\n" for n in _main_notes(g, profile, "md"))

    ncol = len(COLUMNS)
    groups = " & ".join(rf"\multicolumn{{{ncol}}}{{c}}{{{tex_escape(dataset_name(d))}}}" for d in g.datasets)
    rules = " ".join(rf"\cmidrule(lr){{{2 + i * ncol}-{1 + (i + 1) * ncol}}}" for i in range(len(g.datasets)))
    lines = [
        r"\begin{table*}[t]",
        r"\centering\small\setlength{\tabcolsep}{4pt}",
        rf"\caption{{Overall performance ({tex_escape(profile)} profile). $R@k$/$N@k$: Recall@$k$/NDCG@$k$.}}",
        r"\begin{tabular}{l" + ("c" * ncol) * len(g.datasets) + "}",
        r"\toprule",
        rf"Method & {groups} \\",
        rules,
        " & " + " & ".join(c for _ in g.datasets for c, _ in COLUMNS) + r" \\",
        r"\midrule",
    ]
    prev = None
    for row, cells in zip(g.rows, body["tex"]):
        if prev is not None and row["category"] != prev:
            lines.append(r"\midrule")  # the paper separates method categories
        prev = row["category"]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", *tex_notes(_main_notes(g, profile, "tex")), r"\end{table*}"]
    return md, "\n".join(lines) + "\n"


def _spread_cell(cell: dict | None, fmt: str) -> str:
    if cell is None:
        return MISSING[fmt]
    text = num(cell["mean"]) + (esc(" ± ", fmt) + num(cell["std"]) if cell["std"] is not None else "")
    if cell["ci"] is not None:
        ci = f"[{num(cell['ci'][0])}, {num(cell['ci'][1])}]"
        # LaTeX: the CI on a second line of the cell (\shortstack is in the LaTeX kernel)
        text = rf"\shortstack{{{text}\\{{\scriptsize {ci}}}}}" if fmt == "tex" else f"{text} {ci}"
    return text


def table3_ci(records: list[dict], profile: str, g: Grid | None = None) -> tuple[str, str]:
    """(Markdown, LaTeX) of the companion: per (dataset, method) each metric's mean ± std [95 % CI], then the paired
    tests of our methods against the column's best baseline."""
    g = g or grid(records)
    names = {row["key"]: row["name"] for row in g.rows}
    spread = {fmt: [[esc(dataset_name(d), fmt), esc(row["name"], fmt),
                     ", ".join(str(r["seed"]) for r in g.recs[(row["key"], d)])]
                    + [_spread_cell(g.cells.get((row["key"], d, m)), fmt) for _, m in COLUMNS]
                    for d in g.datasets for row in g.rows if (row["key"], d) in g.recs] for fmt in ("md", "tex")}
    tests = {fmt: [[esc(dataset_name(d), fmt), c, esc(names[k], fmt), esc(names[t["baseline"]], fmt),
                    esc(diff_std(t), fmt), f"[{signed(t['ci_low'])}, {signed(t['ci_high'])}]", f"{t['se']:.4f}",
                    p_label(t['p_value']),
                    seeds_paired(t, len(g.recs[(k, d)]), len(g.recs[(t["baseline"], d)])),
                    esc(_marker(t, m), fmt) or MISSING[fmt]]
                   for d in g.datasets for c, m in COLUMNS for k in names if (t := g.tests.get((k, d, m)))]
             for fmt in ("md", "tex")}
    h1 = ["Dataset", "Method", "Seeds", *(c for c, _ in COLUMNS)]
    h2 = ["Dataset", "Metric", "Method", "Best baseline", "Difference ± std (seeds)", "95 % CI", "SE", "p", "Seeds",
          "Marker"]
    notes = {fmt: [esc(f"Cells: mean ± sample std over seeds (std with ≥ 2 seeds) and the 95 % CI of the cell's mean "
                       f"by a {BOOTSTRAP_NOTE}. Paired tests: the same bootstrap of the difference (seeds: "
                       "\"k of a/b\" when a row has a seed the other lacks), mean ± std over the paired seeds, bootstrap "
                       "SE, two-sided p.", fmt), *(esc(g.mde[d], fmt) for d in g.datasets), esc(MDE_NOTE, fmt)]
             for fmt in ("md", "tex")}
    if g.no_predictions:
        for fmt in notes:
            notes[fmt].append("No predictions file (no CI, no test): " + ", ".join(
                f"{esc(names[k], fmt)}/{esc(dataset_name(d), fmt)}" for k, d in g.no_predictions) + ".")
    md = (f"# Table 3, companion: spread and paired tests ({profile} profile)\n\n"
          + tabulate(spread["md"], headers=h1, tablefmt="pipe", disable_numparse=True) + "\n\n"
          + (tabulate(tests["md"], headers=h2, tablefmt="pipe", disable_numparse=True) + "\n\n"
             if tests["md"] else "")
          + "".join(f"> {n}\n" for n in notes["md"]))
    lines = [r"\begin{table*}[t]", r"\centering\small\setlength{\tabcolsep}{4pt}",
             rf"\caption{{Overall performance ({tex_escape(profile)} profile): spread over seeds, 95\% CIs and "
             r"paired tests.}", r"\begin{tabular}{lll" + "c" * len(COLUMNS) + "}", r"\toprule",
             " & ".join(h1) + r" \\", r"\midrule", *(" & ".join(r) + r" \\" for r in spread["tex"]),
             r"\bottomrule", r"\end{tabular}"]
    if tests["tex"]:
        lines += [r"\par\medskip", r"\begin{tabular}{lllllllllc}", r"\toprule",
                  " & ".join(esc(h, "tex") for h in h2) + r" \\", r"\midrule",
                  *(" & ".join(r) + r" \\" for r in tests["tex"]), r"\bottomrule", r"\end{tabular}"]
    lines += [*tex_notes(notes["tex"]), r"\end{table*}"]
    return md, "\n".join(lines) + "\n"


def render(inp: Inputs) -> list:
    if not inp.records:
        return [Skip(f"no test runs. Make them with: {experiment_command(inp, 'table3')}")]
    g = grid(inp.records)
    return [Table(*table3(inp.records, inp.profile, g), inp.records),
            Table(*table3_ci(inp.records, inp.profile, g), inp.records, suffix="ci",
                  title="Table 3, companion: spread over seeds, CIs and paired tests")]


OUTPUT = Output("table3", "Table 3: overall performance", render)
