"""Per-user values of run records pooled over seeds, and the bootstrap CIs and paired tests every report uses.

Bootstrap convention (every CI and paired test of the reports): a user's windows are averaged, each user's value is
averaged over seeds (the records of one cell), and users are resampled `N_BOOT` times with weight = their window
count, so the bootstrapped statistic is the window mean the tables print.
"""

from __future__ import annotations

import numpy as np

from benchmark.metrics import paired_bootstrap
from benchmark.records import load_predictions

# the metrics whose per-user values are pooled for CIs and paired tests
USER_METRICS = ("recall@3", "ndcg@3", "recall@5", "ndcg@5", "recall@10", "ndcg@10", "mgu", "ild")
N_BOOT = 1000

def user_values(record: dict, cache: dict,
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
        out = {}
        for metric in USER_METRICS:
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


def pooled_user_means(recs: list[dict], metric: str, cache: dict, field: str = "predictions_file"
                      ) -> tuple[dict[str, float], dict[str, float]] | tuple[None, None]:
    """Pool seeds for a user bootstrap: each user's value averaged across the records (seeds), and its window count
    averaged likewise (the bootstrap weight). Every seed evaluates the same windows, so the records must agree on the
    users; (None, None) when they do not, when a record has no predictions, or when there are no users."""
    per_seed = [user_values(r, cache, field) for r in recs]
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


def pooled_ci(recs: list[dict], metric: str, cache: dict,
              field: str = "predictions_file") -> tuple[float, float] | None:
    """95 % user-bootstrap CI of the cell's window mean (seeds pooled as in `pooled_user_means`); None without
    predictions."""
    means, weights = pooled_user_means(recs, metric, cache, field)
    if means is None:
        return None
    res = paired_bootstrap(means, n_boot=N_BOOT, seed=0, weights=weights)
    return res["ci_low"], res["ci_high"]


def paired_test(a: list[dict], b: list[dict], metric: str, cache: dict,
                field: str = "predictions_file") -> dict[str, float] | None:
    """Paired user bootstrap of a − b (each side's seeds pooled); None when a side lacks predictions or the users
    differ. Returns `paired_bootstrap`'s dict (mean, ci_low, ci_high, p_value, n_users)."""
    ua, w = pooled_user_means(a, metric, cache, field)
    ub, _ = pooled_user_means(b, metric, cache, field)
    if ua is None or ub is None or set(ua) != set(ub):
        return None
    return paired_bootstrap(ua, ub, n_boot=N_BOOT, seed=0, weights=w)
