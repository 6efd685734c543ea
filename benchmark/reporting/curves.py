"""The Fig. 4a data as a table: align-validation NDCG@5 at every evaluation step, mean over seeds, per (dataset,
method, config), for the records that logged a training curve (``curve``): test records (``curves_<profile>``) and
tuning records (``sweep_curves_<profile>``)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
from tabulate import tabulate

from benchmark.reporting.common import Inputs, Output, Table, config_groups, order_datasets, step_curve, tex_tabular


def curve_table(records: list[dict], title: str) -> tuple[str, str]:
    """(Markdown, LaTeX): align-validation NDCG@5 per evaluation step, mean over seeds (Fig. 4a data)."""
    body, steps = [], set()
    for ds in order_datasets({r["dataset"] for r in records}):
        varied, groups = config_groups([r for r in records if r["dataset"] == ds])
        per_method = Counter(k[-1] for k in groups)
        for key in sorted(groups, key=lambda k: (k[-1], k[:-1])):
            name = groups[key][0]["display_name"]
            if per_method[key[-1]] > 1:  # several configs of one method: name them by the fields that vary
                name += " (" + ", ".join(f"{k}={json.loads(v)}" for k, v in zip(varied, key)) + ")"
            by_step: dict[int, list[float]] = {}
            for r in groups[key]:
                for p in step_curve(r) or []:
                    by_step.setdefault(int(p["step"]), []).append(p["ndcg@5"])
            steps |= set(by_step)
            body.append((ds, name, by_step))
    steps_sorted = sorted(steps)
    rows = [[ds, name, *(f"{np.mean(b[s]):.4f}" if s in b else "—" for s in steps_sorted)] for ds, name, b in body]
    headers = ["dataset", "method", *(f"step {s}" for s in steps_sorted)]
    md = title + "\n\n" + tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n"
    return md, tex_tabular(headers, rows)


def render(inp: Inputs) -> list:
    recs = [r for r in inp.records if step_curve(r)]
    title = f"# Fig. 4a data ({inp.profile} profile): align-validation NDCG@5 every E steps, mean over seeds"
    return [Table(*curve_table(recs, title), recs)] if recs else []


def render_sweep(inp: Inputs) -> list:
    recs = [r for r in inp.sweeps if step_curve(r)]
    title = f"# Validation sweep curves ({inp.profile} profile): align-validation NDCG@5, mean over seeds"
    return [Table(*curve_table(recs, title), recs)] if recs else []


OUTPUT = Output("curves", "Training curves (Fig. 4a data)", render)
SWEEP = Output("sweep_curves", "Validation sweep curves", render_sweep, source="sweep")
