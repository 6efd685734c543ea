"""Render the paper's tables from run records only (Markdown + LaTeX). pandas/tabulate only; never torch.

* Table 2: dataset statistics, from each record's ``data_stats``.
* Table 3: R@3 N@3 R@5 N@5 on the test split per method (rows) and dataset (column groups). A cell is the mean over
  seeds ± the sample std (ddof=1, shown only with ≥ 2 seeds) and a 95 % percentile CI from a user bootstrap: each
  user's windows are pooled (weighted by window count, so the CI is for the same window mean as the cell), each
  user's value is averaged over seeds, then users are resampled. The best value per column is bold, the second
  underlined, compared at the printed 4 decimals (ties share the mark). Oracle rows (`ORACLE_METHODS`) are not ranked.

Output is deterministic: records, rows and columns are sorted, floats have 4 decimals, the bootstrap is seeded.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from tabulate import tabulate

from benchmark.errors import UserError
from benchmark.io import atomic_write_text, check_output_dir
from benchmark.metrics import HIGHER_IS_BETTER, paired_bootstrap
from reports.records import by_created, dedupe, load_predictions, load_records, row_key

CATEGORY_ORDER = ("llm", "inference", "listwise", "ours", "reference")
DATASET_ORDER = ("cds", "steam", "goodreads")
DATASET_NAMES = {"cds": "CDs", "steam": "Steam", "goodreads": "Goodreads"}
TABLE3_COLUMNS = (("R@3", "recall@3"), ("N@3", "ndcg@3"), ("R@5", "recall@5"), ("N@5", "ndcg@5"))
# Inference-time BoN picks the best of N lists with the target in hand: an upper bound, not a competitor.
ORACLE_METHODS = ("bon_inference",)


def is_oracle(row: str) -> bool:
    """Rows of oracle methods (also their variants, e.g. ``bon_inference_n2``) are never ranked."""
    return any(row == m or row.startswith(m + "_") for m in ORACLE_METHODS)
N_BOOT = 1000
MISSING = {"md": "—", "tex": "--"}

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "¹": r"$^{1}$",
    "²": r"$^{2}$",
    "³": r"$^{3}$",
}


def tex_escape(text: str) -> str:
    """Escape LaTeX specials and turn superscript digits into math (``D³`` -> ``D$^{3}$``)."""
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))


def _esc(text: str, fmt: str) -> str:
    return tex_escape(text) if fmt == "tex" else str(text).replace("|", r"\|")


def _code(text: str, fmt: str) -> str:
    return rf"\texttt{{{tex_escape(text)}}}" if fmt == "tex" else f"`{text}`"


def _num(x: float) -> str:
    return f"{x:.4f}"


def _order_datasets(names) -> list[str]:
    known = [d for d in DATASET_ORDER if d in names]
    return known + sorted(set(names) - set(known))


def _category_rank(category: str) -> int:
    return CATEGORY_ORDER.index(category) if category in CATEGORY_ORDER else len(CATEGORY_ORDER)


def _methods(records: list[dict]) -> list[dict]:
    """One row per method: key, display name and category (from its newest record), in table order."""
    newest: dict[str, dict] = {}
    for r in sorted(records, key=by_created):
        newest[row_key(r)] = r
    rows = [{"method": m, "name": r["display_name"] or m, "category": r["category"]} for m, r in newest.items()]
    return sorted(rows, key=lambda x: (_category_rank(x["category"]), x["name"].lower(), x["method"]))


# --- per-user values for the bootstrap ------------------------------------------------------------------------

def _user_values(record: dict, cache: dict,
                 field: str = "predictions_file") -> dict[str, tuple[dict[str, float], dict[str, int]]] | None:
    """``{metric: (user -> mean over the user's windows, user -> number of windows)}``; None without predictions.

    `field` names the predictions file: ``predictions_file`` (test) or ``valid_predictions_file`` (validation).
    `cache` (per rendering, keyed by record path and field) avoids re-reading a predictions file for every column.
    """
    if not record.get(field):  # the record names no predictions file
        return None
    key = (record["_path"], field)
    if key not in cache:
        rows = load_predictions(record, field)
        if rows is None:
            cache[key] = None
        else:
            out = {}
            for _, metric in TABLE3_COLUMNS:
                sums: dict[str, float] = {}
                counts: dict[str, int] = {}
                for row in rows:
                    v = row["metrics"].get(metric)
                    if v is not None:
                        sums[row["user"]] = sums.get(row["user"], 0.0) + float(v)
                        counts[row["user"]] = counts.get(row["user"], 0) + 1
                out[metric] = ({u: sums[u] / counts[u] for u in sorted(sums)}, counts)
            cache[key] = out
    return cache[key]


def pooled_user_means(recs: list[dict], metric: str, cache: dict,
                      field: str = "predictions_file") -> tuple[dict[str, float], dict[str, float]] | tuple[None, None]:
    """Pool seeds for a user bootstrap: each user's value averaged across the records (seeds), and its window count
    averaged likewise (the bootstrap weight). Every seed evaluates the same windows, so the records must agree on the
    users; (None, None) when they do not, when a record has no predictions, or when there are no users."""
    per_seed = [_user_values(r, cache, field) for r in recs]
    if not per_seed or any(p is None for p in per_seed):
        return None, None
    if len({frozenset(p[metric][0]) for p in per_seed}) > 1:
        return None, None
    vals: dict[str, list[float]] = {}
    cnts: dict[str, list[int]] = {}
    for p in per_seed:
        means, counts = p[metric]
        for u, v in means.items():
            vals.setdefault(u, []).append(v)
            cnts.setdefault(u, []).append(counts[u])
    if not vals:
        return None, None
    users = sorted(vals)
    return {u: float(np.mean(vals[u])) for u in users}, {u: float(np.mean(cnts[u])) for u in users}


def mean_std(vals: list[float], digits: int = 4) -> str:
    """``mean ± sample std`` over seeds (ddof=1), the mean alone for one value, "—" for none."""
    if not vals:
        return "—"
    m = float(np.mean(vals))
    return f"{m:.{digits}f} ± {np.std(vals, ddof=1):.{digits}f}" if len(vals) > 1 else f"{m:.{digits}f}"


def _pooled_ci(recs: list[dict], metric: str, cache: dict) -> tuple[float, float] | None:
    """95 % user-bootstrap CI, pooling seeds by averaging each user's value (and window count) across seeds."""
    means, weights = pooled_user_means(recs, metric, cache)
    if means is None:
        return None
    res = paired_bootstrap(means, n_boot=N_BOOT, seed=0, weights=weights)
    return res["ci_low"], res["ci_high"]


# --- Table 3 --------------------------------------------------------------------------------------------------


def _cell(recs: list[dict], metric: str, cache: dict) -> dict[str, Any] | None:
    vals = [r["metrics"].get(metric) for r in recs]
    if not recs or any(v is None for v in vals):
        return None
    return {
        "mean": float(np.mean(vals)),
        "std": float(np.std(vals, ddof=1)) if len(vals) >= 2 else None,
        "ci": _pooled_ci(recs, metric, cache),
    }


def _marks(cells: dict[str, dict | None], metric: str) -> dict[str, str]:
    """``{method: "best" | "second"}`` at the printed precision; oracle rows and empty cells are not ranked."""
    higher = HIGHER_IS_BETTER.get(metric, True)
    shown = {m: round(c["mean"], 4) for m, c in cells.items() if c is not None and not is_oracle(m)}
    ranked = sorted(set(shown.values()), reverse=higher)
    marks = {}
    for m, v in shown.items():
        if v == ranked[0]:
            marks[m] = "best"
        elif len(ranked) > 1 and v == ranked[1]:
            marks[m] = "second"
    return marks


def _fmt_cell(cell: dict | None, mark: str | None, fmt: str) -> str:
    if cell is None:
        return MISSING[fmt]
    mean = _num(cell["mean"])
    if mark == "best":
        mean = rf"\textbf{{{mean}}}" if fmt == "tex" else f"**{mean}**"
    elif mark == "second":
        mean = rf"\underline{{{mean}}}" if fmt == "tex" else f"<u>{mean}</u>"
    pm = r" $\pm$ " if fmt == "tex" else " ± "
    text = mean + (pm + _num(cell["std"]) if cell["std"] is not None else "")
    if cell["ci"] is not None:
        ci = f"[{_num(cell['ci'][0])}, {_num(cell['ci'][1])}]"
        text += rf" {{\scriptsize {ci}}}" if fmt == "tex" else f" {ci}"
    return text


def _seed_note(seed_sets: dict[tuple[str, str], tuple], names: dict[str, str], fmt: str) -> str:
    def show(seeds: tuple) -> str:
        return f"{', '.join(str(s) for s in seeds)} ({len(seeds)} seed{'s' if len(seeds) != 1 else ''})"

    # the most frequent seed set (ties broken by the set itself, for deterministic output)
    common = max(Counter(seed_sets.values()).items(), key=lambda kv: (kv[1], kv[0]))[0]
    odd = [
        f"{_esc(names[m], fmt)}/{_esc(DATASET_NAMES.get(d, d), fmt)}: {show(s)}"
        for (m, d), s in sorted(seed_sets.items())
        if s != common
    ]
    if not odd:
        return f"Seeds: {show(common)} per cell."
    return f"Seeds: {show(common)} for most cells; " + "; ".join(odd) + "."


def _table3_notes(records, methods, datasets, seed_sets, cache, fmt: str) -> list[str]:
    names = {m["method"]: m["name"] for m in methods}
    pm, ge, pct = (r"$\pm$", r"$\geq$", r"\%") if fmt == "tex" else ("±", "≥", "%")
    notes = [
        f"Test split. Cells: mean over seeds {pm} std (when {ge} 2 seeds) and a 95 {pct} CI from a user bootstrap "
        f"({N_BOOT} resamples); best per column in bold, second underlined.",
        _seed_note(seed_sets, names, fmt),
    ]
    oracles = [m for m in names if is_oracle(m)]
    if oracles:
        rows = ", ".join(f"{_esc(names[m], fmt)} ({_code(m, fmt)})" for m in oracles)
        notes.append(f"{rows}: inference-time BoN, an oracle upper bound (it selects with the target); not ranked.")
    else:
        notes.append(f"Inference-time BoN ({_code('bon_inference', fmt)}) would be an oracle upper bound; none here.")
    missing = []
    for d in datasets:
        absent = [names[m["method"]] for m in methods if (m["method"], d) not in seed_sets]
        if absent:
            missing.append(f"{_esc(DATASET_NAMES.get(d, d), fmt)}: {', '.join(_esc(a, fmt) for a in absent)}")
    notes.append("Missing: " + ("; ".join(missing) if missing else "none") + ".")
    no_ci = sorted(
        f"{_esc(names[r['method']], fmt)}/{_esc(DATASET_NAMES.get(r['dataset'], r['dataset']), fmt)}"
        for r in records
        if _user_values(r, cache) is None
    )
    if no_ci:
        notes.append("No predictions file (CI omitted): " + ", ".join(sorted(set(no_ci))) + ".")
    return notes


def table3(records: list[dict], profile: str) -> tuple[str, str]:
    """Render Table 3 for one profile.

    Args:
        records: de-duplicated records of that profile.
        profile: the profile name (for the caption).

    Returns:
        ``(markdown, latex)``.
    """
    methods = _methods(records)
    datasets = _order_datasets({r["dataset"] for r in records})
    by_cell: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(records, key=lambda r: (r["seed"], r["run_id"])):
        by_cell.setdefault((row_key(r), r["dataset"]), []).append(r)
    seed_sets = {k: tuple(r["seed"] for r in v) for k, v in by_cell.items()}
    cache: dict = {}

    cells = {
        (d, metric): {m["method"]: _cell(by_cell.get((m["method"], d), []), metric, cache) for m in methods}
        for d in datasets
        for _, metric in TABLE3_COLUMNS
    }
    marks = {key: _marks(col, key[1]) for key, col in cells.items()}

    def body(fmt: str) -> list[list[str]]:
        return [
            [_esc(m["name"], fmt)]
            + [
                _fmt_cell(cells[(d, metric)][m["method"]], marks[(d, metric)].get(m["method"]), fmt)
                for d in datasets
                for _, metric in TABLE3_COLUMNS
            ]
            for m in methods
        ]

    # Markdown has one header row, so the dataset goes into each column name.
    headers = ["Method"] + [f"{DATASET_NAMES.get(d, d)} {c}" for d in datasets for c, _ in TABLE3_COLUMNS]
    md = f"# Table 3: overall performance ({profile} profile)\n\n"
    md += tabulate(body("md"), headers=headers, tablefmt="pipe", disable_numparse=True) + "\n\n"
    md += "".join(f"> {n}\n" for n in _table3_notes(records, methods, datasets, seed_sets, cache, "md"))

    ncol = len(TABLE3_COLUMNS)
    groups = " & ".join(rf"\multicolumn{{{ncol}}}{{c}}{{{tex_escape(DATASET_NAMES.get(d, d))}}}" for d in datasets)
    rules = " ".join(rf"\cmidrule(lr){{{2 + i * ncol}-{1 + (i + 1) * ncol}}}" for i in range(len(datasets)))
    lines = [
        r"\begin{table*}[t]",
        r"\centering",
        rf"\caption{{Overall performance ({tex_escape(profile)} profile). $R@k$/$N@k$: Recall@$k$/NDCG@$k$.}}",
        r"\begin{tabular}{l" + ("c" * ncol) * len(datasets) + "}",
        r"\toprule",
        rf"Method & {groups} \\",
        rules,
        " & " + " & ".join(c for _ in datasets for c, _ in TABLE3_COLUMNS) + r" \\",
        r"\midrule",
    ]
    prev = None
    for m, row in zip(methods, body("tex")):
        if prev is not None and m["category"] != prev:
            lines.append(r"\midrule")  # the paper separates method categories
        prev = m["category"]
        lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip\footnotesize"]
    lines += [n + r"\\" for n in _table3_notes(records, methods, datasets, seed_sets, cache, "tex")]
    lines.append(r"\end{table*}")
    return md, "\n".join(lines) + "\n"


# --- Table 2 --------------------------------------------------------------------------------------------------

TABLE2_COLUMNS = (
    ("Users", ("users",)),
    ("Items", ("items",)),
    ("Interactions", ("interactions",)),
    ("SFT windows", ("windows", "sft")),
    ("Align windows", ("windows", "align")),
    ("Valid windows", ("windows", "valid")),
    ("Test windows", ("windows", "test")),
)


def _get(stats: dict, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(stats, dict) or k not in stats:
            return None
        stats = stats[k]
    return stats


def table2(records: list[dict], profile: str) -> tuple[str, str]:
    """Render Table 2 (dataset statistics) for one profile from the records' ``data_stats``.

    When records of one dataset disagree (different ``data_hash``), the newest record's statistics are shown and
    the table's note and a warning say so.

    Returns:
        ``(markdown, latex)``.
    """
    notes_md, notes_tex, rows = [], [], []
    for d in _order_datasets({r["dataset"] for r in records}):
        recs = sorted((r for r in records if r["dataset"] == d), key=by_created)
        hashes = sorted({str(r.get("data_hash")) for r in recs})
        if len(hashes) > 1:
            msg = f"{d}: records disagree on the data ({len(hashes)} data hashes); showing the newest record's stats"
            warnings.warn(msg, stacklevel=2)
            notes_md.append(msg + ".")
            notes_tex.append(tex_escape(msg) + ".")
        stats = recs[-1].get("data_stats") or {}
        values = [_get(stats, path) for _, path in TABLE2_COLUMNS]
        rows.append((d, [f"{v:,}" if isinstance(v, int) else (str(v) if v is not None else None) for v in values]))

    note = "Computed by the data pipeline and copied from the run records; windows per user-disjoint split."
    headers = ["Dataset"] + [c for c, _ in TABLE2_COLUMNS]
    md_rows = [[_esc(DATASET_NAMES.get(d, d), "md")] + [v or MISSING["md"] for v in vals] for d, vals in rows]
    md = f"# Table 2: dataset statistics ({profile} profile)\n\n"
    md += tabulate(md_rows, headers=headers, tablefmt="pipe", disable_numparse=True) + "\n\n"
    md += "".join(f"> {n}\n" for n in [note] + notes_md)

    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{Dataset statistics ({tex_escape(profile)} profile).}}",
        r"\begin{tabular}{l" + "r" * len(TABLE2_COLUMNS) + "}",
        r"\toprule",
        " & ".join(headers) + r" \\",
        r"\midrule",
    ]
    for d, vals in rows:
        cells = [tex_escape(DATASET_NAMES.get(d, d))] + [(v or MISSING["tex"]).replace(",", "{,}") for v in vals]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip\footnotesize"]
    lines += [n + r"\\" for n in [note] + notes_tex]
    lines.append(r"\end{table}")
    return md, "\n".join(lines) + "\n"


# --- entry point ----------------------------------------------------------------------------------------------


def render_all(results_dir: Path, out_dir: Path) -> list[Path]:
    """Render Tables 2 and 3 (Markdown + LaTeX) for every profile found in the records, Table 1 and the paired
    significance table when BoN-family runs are present, GRPO diagnostics and Fig. 4a curves (``grpo_``/``curves_``)
    for GRPO-trained runs, and ``sweep_``/``sweep_curves_<profile>`` for tuning records (`--splits valid`).

    Args:
        results_dir: root of ``<dataset>/<method>/<run_id>.json`` records.
        out_dir: where ``table{2,3}_<profile>.{md,tex}`` are written (created if needed).

    Returns:
        The written paths, sorted.

    Raises:
        UserError: no records, a malformed record or predictions file, or `out_dir` is a file or not writable.
    """
    from reports.grpo import curve_table, diagnostics_table, is_grpo, is_sweep  # both import this module
    from reports.table1 import sanity, significance, table1

    out_dir = Path(out_dir)
    check_output_dir(out_dir, "report --out")
    loaded = load_records(Path(results_dir))
    if not loaded:
        raise UserError(f"no run records under {results_dir} (expected <dataset>/<method>/<run_id>.json)")
    sweeps = [r for r in loaded if is_sweep(r)]  # tuning runs: validation only, never in the test tables
    records = dedupe([r for r in loaded if not is_sweep(r)])
    written = []

    def write(name, md_tex):
        for ext, text in zip(("md", "tex"), md_tex):
            written.append(atomic_write_text(out_dir / f"{name}.{ext}", text))

    for profile in sorted({str(r["profile"]) for r in sweeps}):
        recs = [r for r in sweeps if str(r["profile"]) == profile]
        write(f"sweep_{profile}", diagnostics_table(recs, f"# Validation sweep ({profile} profile)\n\nTuning runs "
                                                          "(`--splits valid`): the test split was not decoded."))
        grpo = [r for r in recs if is_grpo(r)]
        if grpo:
            write(f"sweep_curves_{profile}", curve_table(grpo, f"# Validation sweep curves ({profile} profile): "
                                                               "align-validation NDCG@5, mean over seeds"))
    for profile in sorted({str(r["profile"]) for r in records}):
        recs = [r for r in records if str(r["profile"]) == profile]
        tables = [("table2", table2(recs, profile)), ("table3", table3(recs, profile))]
        keys = {row_key(r) for r in recs}
        if {"bigrec", "pop"} <= keys:
            tables.append(("sanity", sanity(recs, profile)))
        if keys & {"bon_static", "blade_n", "bon_inference_n2", "bon_inference_n4"}:
            tables += [("table1", table1(recs, profile)), ("significance", significance(recs, profile))]
        grpo = [r for r in recs if is_grpo(r)]
        if grpo:
            tables += [("grpo", diagnostics_table(grpo, f"# GRPO diagnostics ({profile} profile)")),
                       ("curves", curve_table(grpo, f"# Fig. 4a data ({profile} profile): align-validation NDCG@5 "
                                                    "every E steps, mean over seeds"))]
        for name, md_tex in tables:
            write(f"{name}_{profile}", md_tex)
    return sorted(written)
