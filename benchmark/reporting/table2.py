"""Table 2: dataset statistics after preprocessing, copied from the records' ``data_stats`` (computed by the data
pipeline, never typed)."""

from __future__ import annotations

import warnings
from typing import Any

from tabulate import tabulate

from benchmark.reporting.common import (
    MISSING,
    Inputs,
    Output,
    Skip,
    Table,
    dataset_name,
    esc,
    experiment_command,
    order_datasets,
    tex_escape,
    tex_notes,
)
from benchmark.records import by_created, load_predictions
from benchmark.reporting.stats import MDE_NOTE, mde_line

COLUMNS = (
    ("Users", ("users",)),
    ("Items", ("items",)),
    ("Interactions", ("interactions",)),
    ("SFT windows", ("windows", "sft")),
    ("Align windows", ("windows", "align")),
    ("Valid windows", ("windows", "valid")),
    ("Test windows", ("windows", "test")),
    ("Test users", ("test_users",)),
)
NOTE = ("Computed by the data pipeline and copied from the run records; windows per user-disjoint split. Test users "
        "(Goodreads: pseudo-readers) are the units the bootstraps resample.")


def _get(stats: dict, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(stats, dict) or k not in stats:
            return None
        stats = stats[k]
    return stats


def _sft_windows_note(dataset: str, recs: list[dict], task_windows: Any) -> str | None:
    """Why the SFT log's window count differs from the table's SFT windows, from the newest record that trained on
    the shared SFT (``stats.sft.train_windows``): the profile's shorter-target windows or its cap."""
    with_sft = [r for r in recs if isinstance(_get(r.get("stats") or {}, ("sft", "train_windows")), int)]
    if not with_sft or not isinstance(task_windows, int):
        return None
    rec = with_sft[-1]
    n, prof = rec["stats"]["sft"]["train_windows"], (rec.get("config") or {}).get("profile") or {}
    if n == task_windows:
        return None
    why = []
    if prof.get("sft_min_target") is not None:
        why.append(f"sft_min_target = {prof['sft_min_target']} also trains on the sft users' shorter-target windows "
                   "(the ends of their sequences; evaluation keeps full targets)")
    if prof.get("max_sft_windows") is not None and n <= prof["max_sft_windows"]:
        why.append(f"max_sft_windows = {prof['max_sft_windows']} caps them")
    if prof.get("align_source") == "train":
        why.append("align_source = train adds the align users' windows")
    return (f"{dataset_name(dataset)}: the SFT (one per seed, shared by its methods) trained on {n:,} windows, not "
            f"the {task_windows:,} SFT windows above: {'; '.join(why) or 'see the record config'}.")


def _eval_cap_note(dataset: str, rec: dict) -> str | None:
    """When the profile caps evaluation (``max_eval_windows``), the windows and test users its runs scored, which
    the bootstraps resample, beside the split's totals in the row."""
    test, valid = _get(rec.get("data_stats") or {}, ("windows", "test")), _get(rec.get("data_stats") or {},
                                                                               ("windows", "valid"))
    n_test, n_valid = rec.get("n_test"), rec.get("n_valid")
    if not isinstance(test, int) or not isinstance(n_test, int) or n_test >= test:
        return None
    cap = ((rec.get("config") or {}).get("profile") or {}).get("max_eval_windows")
    preds = load_predictions(rec)
    users = f" ({len({p['user'] for p in preds}):,} test users)" if preds else ""
    return (f"{dataset_name(dataset)}: runs score a seeded sample of {n_test:,} of the {test:,} test windows{users} "
            f"and {n_valid:,} of the {valid:,} valid windows (max_eval_windows = {cap}).")


def table2(records: list[dict], profile: str) -> tuple[str, str]:
    """(Markdown, LaTeX) of the profile's dataset statistics. When records of one dataset disagree (different
    ``data_hash``), the newest record's statistics are shown and the note and a warning say so."""
    notes, rows, cache, mdes = [NOTE], [], {}, []
    for d in order_datasets({r["dataset"] for r in records}):
        recs = sorted((r for r in records if r["dataset"] == d), key=by_created)
        mdes.append(mde_line(recs, dataset_name(d), cache))
        hashes = sorted({str(r.get("data_hash")) for r in recs})
        if len(hashes) > 1:
            msg = f"{d}: records disagree on the data ({len(hashes)} data hashes); showing the newest record's stats"
            warnings.warn(msg, stacklevel=2)
            notes.append(msg + ".")
        stats = recs[-1].get("data_stats") or {}
        values = [_get(stats, path) for _, path in COLUMNS]
        note = _sft_windows_note(d, recs, _get(stats, ("windows", "sft")))
        notes += [n for n in (note, _eval_cap_note(d, recs[-1])) if n]
        rows.append((d, [f"{v:,}" if isinstance(v, int) else (str(v) if v is not None else None) for v in values]))

    notes += [*mdes, MDE_NOTE]  # what these test splits can resolve
    headers = ["Dataset"] + [c for c, _ in COLUMNS]
    md_rows = [[esc(dataset_name(d), "md")] + [v or MISSING["md"] for v in vals] for d, vals in rows]
    md = f"# Table 2: dataset statistics ({profile} profile)\n\n"
    md += tabulate(md_rows, headers=headers, tablefmt="pipe", disable_numparse=True) + "\n\n"
    md += "".join(f"> {n}\n" for n in notes)

    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{Dataset statistics ({tex_escape(profile)} profile).}}",
        r"\begin{tabular}{l" + "r" * len(COLUMNS) + "}",
        r"\toprule",
        " & ".join(headers) + r" \\",
        r"\midrule",
    ]
    for d, vals in rows:
        cells = [tex_escape(dataset_name(d))] + [(v or MISSING["tex"]).replace(",", "{,}") for v in vals]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", *tex_notes([tex_escape(n) for n in notes]), r"\end{table}"]
    return md, "\n".join(lines) + "\n"


def render(inp: Inputs) -> list:
    if not inp.records:
        return [Skip(f"no test runs. Make them with: {experiment_command(inp, 'table3')}")]
    return [Table(*table2(inp.records, inp.profile), inp.records)]


OUTPUT = Output("table2", "Table 2: dataset statistics", render)
