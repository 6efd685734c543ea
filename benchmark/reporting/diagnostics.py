"""GRPO diagnostics (what explains a BoN-family result), one row per (dataset, method, config) over seeds, for the
records that trained with GRPO (``stats.train_log``): the test records (``grpo_<profile>``) and the tuning records of a
validation sweep (``sweep_<profile>``, ``run --splits valid``).

The columns are the method-config fields that vary among the dataset's records (e.g. τ, M, reward), validation
NDCG@5 (mean ± sample std over seeds), and the training signals: NDCG@5 on the alignment-validation subset at the
first and last evaluation (the ends of the Fig. 4a curve), the fraction of groups whose raw reward has zero spread
(first 8 → last 8 steps), the fraction whose PROXY reward has zero spread (no learning signal; a static estimator
that saturates shows up here above the raw fraction), the fraction of rollouts above their prompt's best reference
reward (where τ acts), KL over the last 8 steps, gradient decay (mean gradient norm over the last quarter of steps /
the first quarter), GRPO wall time (median over seeds), and the paired difference in validation NDCG@5 against the
run with the same config but τ = 0 (static BoN alignment), by the two-level paired bootstrap over seeds and validation
users (`stats.paired_test`).
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from tabulate import tabulate

from benchmark.reporting.common import (
    Inputs,
    Output,
    Table,
    config_groups,
    mean_of,
    mean_std,
    median_of,
    order_datasets,
    step_curve,
    tex_tabular,
)
from benchmark.records import figure_runs
from benchmark.reporting.stats import paired_test

EDGE = 8  # steps averaged at the start and at the end of training


def is_grpo(record: dict[str, Any]) -> bool:
    return bool(record.get("stats", {}).get("train_log"))


@dataclass(frozen=True)
class TrainLogSummary:
    """One signal of the GRPO training log (a key of the per-step dicts of ``stats.train_log``: ``kl``,
    ``grad_norm``, ``frac_zero_spread``, ...) over the steps that logged it, in step order."""

    values: list[float]

    def mean(self, part: slice = slice(None)) -> float | None:
        """The mean over the steps `part` selects (``slice(-EDGE, None)``: the last `EDGE`); None when it is empty."""
        xs = self.values[part]
        return float(np.mean(xs)) if xs else None

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    def quarters(self) -> tuple[float | None, float | None]:
        """The means over the first and the last quarter of the steps (at least one step each)."""
        q = max(1, len(self.values) // 4)
        return self.mean(slice(None, q)), self.mean(slice(-q, None))


def train_log_summary(records: dict[str, Any] | Iterable[dict[str, Any]], key: str) -> TrainLogSummary:
    """`key` of the training log of one record, or of several (seeds) with their steps pooled in order: the one
    reader of ``stats.train_log`` (this report's columns and the GRPO studies' tables)."""
    recs = [records] if isinstance(records, dict) else records
    return TrainLogSummary([h[key] for r in recs for h in (r.get("stats", {}).get("train_log") or []) if key in h])


def _log(rec: dict, key: str, part: slice = slice(None)) -> float | None:
    return train_log_summary(rec, key).mean(part)


def _ends(group: list[dict], key: str) -> str:
    """`key` of the train log averaged over the first `EDGE` and the last `EDGE` steps (then over seeds)."""
    return (f"{mean_of([_log(r, key, slice(None, EDGE)) for r in group])} → "
            f"{mean_of([_log(r, key, slice(-EDGE, None)) for r in group])}")


def _decay(rec: dict) -> float | None:
    """Mean gradient norm over the last quarter of the steps / the first quarter (None under 4 steps)."""
    g = train_log_summary(rec, "grad_norm")
    if len(g.values) < 4:
        return None
    first, last = g.quarters()
    return None if first == 0 else last / first


def _vs_static(group: list[dict], twin: list[dict] | None, cache: dict, metric: str = "ndcg@5") -> str:
    """Two-level paired bootstrap (`stats.paired_test`: seeds paired, then validation users) of this row minus its
    τ = 0 twin (same config otherwise)."""
    if not twin:
        return "—"
    res = paired_test(group, twin, metric, cache, "valid_predictions_file")
    if res is None:
        return "—"
    return f"{res['mean']:+.4f} (p {res['p_value']:.2f})"


def _twin(groups: dict[tuple, list[dict]], key: tuple, varied: list[str]) -> list[dict] | None:
    """The records of the same config with τ = 0 (static BoN alignment), if there are any."""
    if "tau" not in varied:
        return None
    t = varied.index("tau")
    if json.loads(key[t]) in (None, 0.0):  # None: a GRPO method without τ (ReRe)
        return None
    same = [g for k, g in groups.items()
            if json.loads(k[t]) == 0.0 and k[:t] + k[t + 1:-1] == key[:t] + key[t + 1:-1]]
    return same[0] if len(same) == 1 else None


def diagnostics_table(records: list[dict[str, Any]], title: str) -> tuple[str, str]:
    """(Markdown, LaTeX): one row per (dataset, config, method) of GRPO-trained records, over seeds."""
    cache: dict = {}  # per-record validation user means, shared by every row's paired test
    rows, header_sets = [], []  # rows: [dataset, method, {varied field: value}, *cells]
    for ds in order_datasets({r["dataset"] for r in records}):
        varied, groups = config_groups([r for r in records if r["dataset"] == ds])
        header_sets.append(varied)
        for key in sorted(groups, key=lambda k: (k[-1], k[:-1])):
            g = sorted(groups[key], key=lambda r: r["seed"])
            curves = [c for r in g if (c := step_curve(r))]
            curve = (f"{np.mean([c[0]['ndcg@5'] for c in curves]):.4f} → "
                     f"{np.mean([c[-1]['ndcg@5'] for c in curves]):.4f}") if curves else "—"
            rows.append([ds, g[0]["display_name"], {k: json.loads(v) for k, v in zip(varied, key)},
                         ",".join(str(r["seed"]) for r in g),
                         mean_std([r["metrics_valid"]["ndcg@5"] for r in g]), curve,
                         _ends(g, "frac_zero_spread"),
                         _ends(g, "frac_zero_spread_proxy"), _ends(g, "frac_above_ref_max"),
                         mean_of([_log(r, "kl", slice(-EDGE, None)) for r in g]),
                         mean_of([_decay(r) for r in g], 2),
                         median_of([r["stats"].get("grpo_seconds") for r in g], 0),
                         _vs_static(g, _twin(groups, key, varied), cache)])
    cols = sorted({k for v in header_sets for k in v})
    headers = ["dataset", "method", *cols, "seeds", "valid N@5", "align-valid N@5 first → last",
               "zero-spread raw, first 8 → last 8", "zero-spread proxy, first 8 → last 8",
               "above ref max, first 8 → last 8", "KL last 8",
               "grad decay", "GRPO s", "Δ valid N@5 vs τ = 0"]
    body = [[r[0], r[1], *(r[2].get(c, "") for c in cols), *r[3:]] for r in rows]
    md = title + "\n\n" + tabulate(body, headers=headers, tablefmt="github", disable_numparse=True) + "\n"
    tex = tex_tabular(headers, body)
    return md, tex


def render(inp: Inputs) -> list:
    grpo = [r for r in inp.records if is_grpo(r)]
    return [Table(*diagnostics_table(grpo, f"# GRPO diagnostics ({inp.profile} profile)"), grpo)] if grpo else []


def render_sweep(inp: Inputs) -> list:
    if not inp.sweeps:
        return []
    title = (f"# Validation sweep ({inp.profile} profile)\n\nTuning runs (`--splits valid`): the test split was not "
             "decoded.")
    return [Table(*diagnostics_table(inp.sweeps, title), inp.sweeps)]


def render_figure_runs(inp: Inputs) -> list:
    """The same diagnostics for the GRPO runs that only figure experiments planned (Fig. 4a's long runs, Fig. 5's G,
    Fig. 6's M = 0, Fig. 7-8's rewards): the tables leave them out, the training signals are what explains a figure."""
    ids = figure_runs(list(inp.plans.values()))
    grpo = [inp.by_id[i] for i in sorted(ids) if i in inp.by_id and str(inp.by_id[i]["profile"]) == inp.profile
            and is_grpo(inp.by_id[i])]
    title = (f"# GRPO diagnostics of the figure runs ({inp.profile} profile)\n\nThe runs planned only by figure "
             "experiments (their configs vary what a table row fixes).")
    return [Table(*diagnostics_table(grpo, title), grpo)] if grpo else []


OUTPUT = Output("grpo", "GRPO diagnostics", render)
FIGURE_RUNS = Output("grpo_figures", "GRPO diagnostics of the figure runs", render_figure_runs)
SWEEP = Output("sweep", "Validation sweep", render_sweep, source="sweep")
