"""GRPO diagnostics (what explains a BoN-family result) and validation sweeps, from run records only.

* ``diagnostics_table``: one row per (dataset, method, config) over seeds, for records that trained with GRPO. The
  columns are the method-config fields that vary among the dataset's records (e.g. τ, M, reward), validation
  NDCG@5 (mean ± sample std over seeds), and the training signals: NDCG@5 on the alignment-validation subset at the
  first and last evaluation (the ends of the Fig. 4a curve), the fraction of groups whose raw reward has zero spread
  (first 8 → last 8 steps), the fraction whose PROXY reward has zero spread (no learning signal; a static estimator
  that saturates shows up here above the raw fraction), the fraction of rollouts above their prompt's best
  reference reward (where τ acts), KL over the last 8 steps, gradient decay (mean gradient norm over the last quarter
  of steps / the first quarter), GRPO wall time, and the paired difference in validation NDCG@5 against the run with
  the same config but τ = 0 (static BoN alignment), bootstrapped over validation users.
* ``curve_table``: the Fig. 4a data, align-validation NDCG@5 at every evaluation step, mean over seeds.

Tuning runs (``benchmark run --splits valid``) never decode the test split; ``render_all`` renders them here only.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
from tabulate import tabulate

from benchmark.metrics import paired_bootstrap
from reports.tables import N_BOOT, _order_datasets, mean_std, pooled_user_means

EDGE = 8  # steps averaged at the start and at the end of training


def is_sweep(record: dict[str, Any]) -> bool:
    """A tuning record: the test split was not decoded."""
    return "test" not in record.get("splits", ["valid", "test"])


def is_grpo(record: dict[str, Any]) -> bool:
    return bool(record.get("stats", {}).get("train_log"))


def _fmt(xs: list, digits: int = 3) -> str:
    xs = [x for x in xs if x is not None and np.isfinite(x)]
    return f"{np.mean(xs):.{digits}f}" if xs else "—"


def _log(rec: dict, key: str, part: slice = slice(None)) -> float | None:
    xs = [h[key] for h in (rec.get("stats", {}).get("train_log") or []) if key in h][part]
    return float(np.mean(xs)) if xs else None


def _decay(rec: dict) -> float | None:
    g = [h["grad_norm"] for h in (rec.get("stats", {}).get("train_log") or []) if "grad_norm" in h]
    q = len(g) // 4
    if q == 0 or np.mean(g[:q]) == 0:
        return None
    return float(np.mean(g[-q:]) / np.mean(g[:q]))


def _vs_static(group: list[dict], twin: list[dict] | None, cache: dict, metric: str = "ndcg@5") -> str:
    """Paired bootstrap over validation users of this row minus its τ = 0 twin (same config otherwise); each side's
    users are pooled over seeds (a user's windows averaged, then averaged over seeds)."""
    if not twin:
        return "—"
    a, w = pooled_user_means(group, metric, cache, "valid_predictions_file")
    b, _ = pooled_user_means(twin, metric, cache, "valid_predictions_file")
    if a is None or b is None or set(a) != set(b):
        return "—"
    res = paired_bootstrap(a, b, n_boot=N_BOOT, seed=0, weights=w)
    return f"{res['mean']:+.4f} (p {res['p_value']:.2f})"


def _groups(recs: list[dict]) -> tuple[list[str], dict[tuple, list[dict]]]:
    """Group one dataset's records by (method-config fields that vary, method); returns (varied fields, groups)."""
    cfgs = [r["config"]["method"] for r in recs]
    keys = sorted({k for c in cfgs for k in c})
    varied = [k for k in keys if len({json.dumps(c.get(k), sort_keys=True) for c in cfgs}) > 1]
    groups: dict[tuple, list[dict]] = {}
    for r in recs:
        cfg = r["config"]["method"]
        groups.setdefault((*(json.dumps(cfg.get(k)) for k in varied), r["method"]), []).append(r)
    return varied, groups


def _twin(groups: dict[tuple, list[dict]], key: tuple, varied: list[str]) -> list[dict] | None:
    """The records of the same config with τ = 0 (static BoN alignment), if there are any."""
    if "tau" not in varied:
        return None
    t = varied.index("tau")
    if float(json.loads(key[t])) == 0.0:
        return None
    same = [g for k, g in groups.items()
            if float(json.loads(k[t])) == 0.0 and k[:t] + k[t + 1:-1] == key[:t] + key[t + 1:-1]]
    return same[0] if len(same) == 1 else None


def diagnostics_table(records: list[dict[str, Any]], title: str) -> tuple[str, str]:
    """(Markdown, LaTeX): one row per (dataset, config, method) of GRPO-trained records, over seeds."""
    cache: dict = {}  # per-record validation user means, shared by every row's paired test
    rows, header_sets = [], []  # rows: [dataset, method, {varied field: value}, *cells]
    for ds in _order_datasets({r["dataset"] for r in records}):
        varied, groups = _groups([r for r in records if r["dataset"] == ds])
        header_sets.append(varied)
        for key in sorted(groups, key=lambda k: (k[-1], k[:-1])):
            g = sorted(groups[key], key=lambda r: r["seed"])
            curves = [r["stats"]["valid_curve"] for r in g if r.get("stats", {}).get("valid_curve")]
            curve = (f"{np.mean([c[0]['ndcg@5'] for c in curves]):.4f} → "
                     f"{np.mean([c[-1]['ndcg@5'] for c in curves]):.4f}") if curves else "—"
            rows.append([ds, g[0]["display_name"], {k: json.loads(v) for k, v in zip(varied, key)},
                         ",".join(str(r["seed"]) for r in g),
                         mean_std([r["metrics_valid"]["ndcg@5"] for r in g]), curve,
                         f"{_fmt([_log(r, 'frac_zero_spread', slice(None, EDGE)) for r in g])} → "
                         f"{_fmt([_log(r, 'frac_zero_spread', slice(-EDGE, None)) for r in g])}",
                         _fmt([_log(r, "frac_zero_spread_proxy") for r in g]),
                         _fmt([_log(r, "frac_above_ref_max") for r in g]),
                         _fmt([_log(r, "kl", slice(-EDGE, None)) for r in g]),
                         _fmt([_decay(r) for r in g], 2),
                         _fmt([r["stats"].get("grpo_seconds") for r in g], 0),
                         _vs_static(g, _twin(groups, key, varied), cache)])
    cols = sorted({k for v in header_sets for k in v})
    headers = ["dataset", "method", *cols, "seeds", "valid N@5", "align-valid N@5 first → last",
               "zero-spread raw, first 8 → last 8", "zero-spread proxy", "above ref max", "KL last 8",
               "grad decay", "GRPO s", "Δ valid N@5 vs τ = 0"]
    body = [[r[0], r[1], *(r[2].get(c, "") for c in cols), *r[3:]] for r in rows]
    md = title + "\n\n" + tabulate(body, headers=headers, tablefmt="github", disable_numparse=True) + "\n"
    tex = tabulate(body, headers=headers, tablefmt="latex", disable_numparse=True) + "\n"
    return md, tex


def curve_table(records: list[dict[str, Any]], title: str) -> tuple[str, str]:
    """(Markdown, LaTeX): align-validation NDCG@5 per evaluation step, mean over seeds (Fig. 4a data)."""
    body, steps = [], set()
    for ds in _order_datasets({r["dataset"] for r in records}):
        varied, groups = _groups([r for r in records if r["dataset"] == ds])
        per_method = Counter(k[-1] for k in groups)
        for key in sorted(groups, key=lambda k: (k[-1], k[:-1])):
            name = groups[key][0]["display_name"]
            if per_method[key[-1]] > 1:  # several configs of one method: name them by the fields that vary
                name += " (" + ", ".join(f"{k}={json.loads(v)}" for k, v in zip(varied, key)) + ")"
            by_step: dict[int, list[float]] = {}
            for r in groups[key]:
                for p in r.get("stats", {}).get("valid_curve") or []:
                    by_step.setdefault(int(p["step"]), []).append(p["ndcg@5"])
            steps |= set(by_step)
            body.append((ds, name, by_step))
    steps_sorted = sorted(steps)
    rows = [[ds, name, *(f"{np.mean(b[s]):.4f}" if s in b else "—" for s in steps_sorted)] for ds, name, b in body]
    headers = ["dataset", "method", *(f"step {s}" for s in steps_sorted)]
    md = title + "\n\n" + tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True) + "\n"
    return md, tabulate(rows, headers=headers, tablefmt="latex", disable_numparse=True) + "\n"
