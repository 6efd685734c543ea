"""Table 1: accuracy (NDCG@5) against inference cost, per dataset: the SFT model (record role ``sft``, the cost unit),
the control row (role ``control``: SFT continued on the alignment data, when it was run), the oracle rows
(inference-time BoN), then the list-wise alignment methods and ours (categories ``listwise`` and ``ours``). Rows are
chosen by the records' flags and categories, never by method name."""

from __future__ import annotations

import re

import numpy as np
from tabulate import tabulate

from benchmark.reporting.common import (
    Inputs,
    Output,
    Skip,
    Table,
    by_dataset,
    category_rank,
    dataset_name,
    experiment_command,
    mean_std,
    tex_line,
    tex_tabular,
)
from benchmark.records import row_key
from benchmark.reporting.stats import MDE_NOTE, mde_line

ALIGNMENT = ("listwise", "ours")  # the categories of Table 1's trained rows
BASES = ("sft", "control")  # the roles of the rows aligned methods are compared with, in table order


def _natural(key: str) -> list:
    """``bon_inference_n4`` before ``bon_inference_n16``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def table1_rows(records: list[dict]) -> list[tuple[str, list[dict]]]:
    """``[(row key, records over seeds)]`` of one dataset in table order: SFT, the control, oracles, alignment
    methods."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        if r["role"] in BASES or r["oracle"] or r["category"] in ALIGNMENT:
            groups.setdefault(row_key(r), []).append(r)

    def order(key):
        r = groups[key][0]
        stage = BASES.index(r["role"]) if r["role"] in BASES else (2 if r["oracle"] else 3)
        return stage, category_rank(r["category"]), _natural(key)

    return [(k, sorted(groups[k], key=lambda r: r["seed"])) for k in sorted(groups, key=order)]


def median_range(vals: list[float], digits: int = 2) -> str:
    """``median (min–max)`` over seeds, the value alone for one, "—" for none: a timing's centre that one run
    slowed by a shared machine cannot move."""
    if not vals:
        return "—"
    m = f"{float(np.median(vals)):.{digits}f}"
    return f"{m} ({min(vals):.{digits}f}–{max(vals):.{digits}f})" if len(vals) > 1 else m


def _tokens(group: list[dict]) -> float | None:
    """The mean number of tokens a row generated for the test split, None if a record does not say."""
    vals = [r.get("tokens_generated_test") for r in group]
    return float(np.mean(vals)) if vals and None not in vals else None


def table1(records: list[dict], profile: str, all_records: list[dict] | None = None) -> tuple[str, str]:
    """(Markdown, LaTeX): NDCG@5 (mean ± std over seeds), test-split latency (s, median and range over seeds), the
    measured cost relative to the SFT model (ratio of medians) and the generated tokens relative to it (the same on
    every machine), per dataset, with the dataset's minimum detectable effect (`stats.mde`, from `all_records`: every
    test record of the profile, so that Tables 1 and 3 and the significance table state the same number; default
    `records`)."""
    md, tex = [f"# Table 1: accuracy vs inference cost ({profile} profile)", ""], []
    head = ["Method", "NDCG@5", "Time (s)", "Inference cost", "Tokens"]
    cache: dict = {}
    everything = by_dataset(all_records if all_records is not None else records)
    for d, recs in by_dataset(records).items():
        rows = table1_rows(recs)
        base = next((g for _, g in rows if g[0]["role"] == "sft"), None)
        base_t = float(np.median([r["timings"]["recommend_s"] for r in base])) if base else None
        base_tok = _tokens(base) if base else None
        body = []
        for _, group in rows:
            t = [r["timings"]["recommend_s"] for r in group]
            tok = _tokens(group)
            name = group[0]["display_name"]
            label = name + (", oracle" if group[0]["oracle"] and "oracle" not in name.lower() else "")
            body.append([label, mean_std([r["metrics"]["ndcg@5"] for r in group]), median_range(t),
                         f"{np.median(t) / base_t:.2f}×" if base_t else "—",
                         f"{tok / base_tok:.2f}×" if tok is not None and base_tok else "—"])
        n_test = rows[0][1][0].get("n_test", "?")
        note = (f"Time: seconds to produce the lists of the whole test split ({n_test} windows), same batch size for "
                "every method, median (min–max) over seeds; inference cost = median time / the SFT model's median "
                "time, measured (the median, so that one run slowed by a shared machine does not set it); tokens = "
                "tokens generated for the test split / the SFT model's, the same on every machine. Oracle rows "
                "select with the test target: an upper bound, not a deployable method.")
        if base is None:
            note += " No run of the SFT model (role sft) on this dataset: no cost unit."
        control = next((g[0]["display_name"] for _, g in rows if g[0]["role"] == "control"), None)
        if control:
            note += (f" {control} (role control): the SFT model trained further on the alignment methods' data, "
                     "with static BoN alignment's steps and sequences: aligned − it separates the objective from the "
                     "data.")
        power = mde_line(everything.get(d, recs), dataset_name(d), cache)
        md += [f"## {dataset_name(d)}", "", tabulate(body, head, tablefmt="pipe", disable_numparse=True), "",
               f"> {note}", f"> {power}", ""]
        tex += [f"% {dataset_name(d)}", tex_tabular(head, body, "lrrrr") + tex_line(power)]
    md += [f"> {MDE_NOTE}", ""]
    tex.append(tex_line(MDE_NOTE))
    return "\n".join(md), "\n".join(tex)


def render(inp: Inputs) -> list:
    recs = [r for r in inp.records if r["oracle"] or r["category"] in ALIGNMENT]
    if not recs:
        return [Skip("no runs of inference-time BoN, BoN alignment or BLADE. Make them with: "
                     + experiment_command(inp, "table1"))]
    used = [r for r in inp.records if r["role"] in BASES or r in recs]
    return [Table(*table1(used, inp.profile, inp.records), used)]


OUTPUT = Output("table1", "Table 1: accuracy vs inference cost", render)
