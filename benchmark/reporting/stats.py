"""Per-user values of run records, and the bootstrap CIs and paired tests every report uses.

Bootstrap convention (every CI and paired test of the reports, design.md §3): a record is one seed of a cell (every
seed re-trains the whole pipeline, SFT included); a user's windows are averaged within a record, and
`benchmark.metrics.two_level_bootstrap` resamples seeds (those both sides share: seed s of a is paired with seed s
of b) and users (weight = window count, one user resample shared by the drawn seeds), `N_BOOT` times. The statistic
is the mean over seeds of each seed's window mean, the number the tables print. `mde` turns the standard errors of
a dataset's paired differences into its minimum detectable effect.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from benchmark.metrics import two_level_bootstrap
from benchmark.records import load_predictions, row_key

# the metrics whose per-user values feed the CIs and paired tests
USER_METRICS = ("recall@3", "ndcg@3", "recall@5", "ndcg@5", "recall@10", "ndcg@10", "mgu", "ild")
N_BOOT = 1000
# z_0.975 + z_0.80: a true difference of Z_POWER × SE is detected by a two-sided 5 % test with 80 % power
Z_POWER = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.80)
BOOTSTRAP_NOTE = (f"two-level bootstrap ({N_BOOT} resamples; each draws the seeds with replacement, then the users "
                  "with replacement, one user draw shared by the drawn seeds, users weighted by their window count; "
                  "the statistic is the mean over seeds of the window mean; a paired test pairs seed with seed and "
                  "user with user, leaving out a seed one side lacks)")


def mde_note(split: str = "test") -> str:
    """What the minimum-detectable-effect lines mean, for the `split` they were computed on."""
    return ("Minimum detectable effect at 80 % power (two-sided test at the 5 % level): (z_0.975 + z_0.80) × SE "
            f"= {Z_POWER:.2f} × SE, with SE the median, over the dataset's non-oracle rows, of the two-level "
            f"bootstrap standard error of the paired NDCG@5 difference row − SFT model ({split} split).")


MDE_NOTE = mde_note()


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
    """Pool seeds for a one-level user bootstrap (the studies' validation comparisons; the reports use
    `seed_user_values` and the two-level bootstrap): each user's value averaged across the records (seeds), and its
    window count averaged likewise (the bootstrap weight). Every seed evaluates the same windows, so the records must
    agree on the users; (None, None) when they do not, when a record has no predictions, or when there are no
    users."""
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


def seed_user_values(recs: list[dict], metric: str, cache: dict, field: str = "predictions_file"
                     ) -> tuple[dict, dict] | tuple[None, None]:
    """A cell's records (one per seed) as ``({seed: {user: mean over its windows}}, {seed: {user: window count}})``
    for `two_level_bootstrap`; (None, None) when a record has no predictions, two records share a seed, or a seed
    has no user with a value."""
    vals: dict = {}
    counts: dict = {}
    for r in recs:
        uv = user_values(r, cache, field)
        if uv is None or r["seed"] in vals or not uv[metric][0]:
            return None, None
        means, cnt = uv[metric]
        vals[r["seed"]] = means
        counts[r["seed"]] = {u: cnt[u] for u in means}
    return (vals, counts) if vals else (None, None)


def cell_bootstrap(recs: list[dict], metric: str, cache: dict, field: str = "predictions_file") -> dict | None:
    """The two-level bootstrap of the cell's mean (`two_level_bootstrap` without b: mean, ci_low, ci_high, se,
    seed_std, n_seeds, ...); None without predictions."""
    vals, w = seed_user_values(recs, metric, cache, field)
    if vals is None:
        return None
    key = ("cell", tuple(r["_path"] for r in recs), metric, field)
    if key not in cache:
        cache[key] = two_level_bootstrap(vals, n_boot=N_BOOT, seed=0, weights=w)
    return cache[key]


def cell_ci(recs: list[dict], metric: str, cache: dict,
            field: str = "predictions_file") -> tuple[float, float] | None:
    """95 % two-level bootstrap CI of the cell's mean (over seeds of the window mean); None without predictions."""
    res = cell_bootstrap(recs, metric, cache, field)
    return None if res is None else (res["ci_low"], res["ci_high"])


def paired_test(a: list[dict], b: list[dict], metric: str, cache: dict,
                field: str = "predictions_file") -> dict | None:
    """Two-level paired bootstrap of a − b (`two_level_bootstrap`; a's window counts weight the users): seeds paired
    (a seed on one side only is dropped: ``dropped_seeds``), users paired within a seed. None when a side lacks
    predictions, the sides share no seed, or a shared seed's users differ. Returns mean, ci_low, ci_high, se,
    p_value, per_seed, seed_std, n_seeds, seeds, dropped_seeds, n_users."""
    va, w = seed_user_values(a, metric, cache, field)
    vb, _ = seed_user_values(b, metric, cache, field)
    if va is None or vb is None:
        return None
    common = set(va) & set(vb)
    if not common or any(set(va[s]) != set(vb[s]) for s in common):
        return None
    key = ("paired", tuple(r["_path"] for r in a), tuple(r["_path"] for r in b), metric, field)
    if key not in cache:
        cache[key] = two_level_bootstrap(va, vb, n_boot=N_BOOT, seed=0, weights=w)
    return cache[key]


def mde(records: list[dict], cache: dict, metric: str = "ndcg@5", field: str = "predictions_file") -> dict | None:
    """The minimum detectable effect at 80 % power of one dataset's records (`field`: test predictions, or
    ``valid_predictions_file`` for validation; `MDE_NOTE`):
    ``{"mde": Z_POWER × SE, "se": SE, "n_tests": ...}`` with SE the median two-level bootstrap standard error of
    the paired `metric` difference of every non-oracle row (row key) against the SFT model (role ``sft``); None
    without an SFT model or a row it can be paired with."""
    rows: dict[str, list[dict]] = {}
    for r in sorted(records, key=lambda r: (r["seed"], r["run_id"])):
        rows.setdefault(row_key(r), []).append(r)
    sft = next((rows[k] for k in sorted(rows) if rows[k][0]["role"] == "sft"), None)
    if sft is None:
        return None
    ses = [t["se"] for k in sorted(rows) if rows[k] is not sft and not rows[k][0]["oracle"]
           if (t := paired_test(rows[k], sft, metric, cache, field)) is not None]
    if not ses:
        return None
    se = float(np.median(ses))
    return {"mde": Z_POWER * se, "se": se, "n_tests": len(ses)}


def metric_label(metric: str) -> str:
    """``ndcg@5`` -> ``NDCG@5``, ``recall@5`` -> ``Recall@5``, ``mgu`` -> ``MGU``."""
    name, _, k = metric.partition("@")
    return {"ndcg": "NDCG", "recall": "Recall"}.get(name, name.upper()) + (f"@{k}" if k else "")


def p_label(p: float) -> str:
    """A bootstrap p-value as the tables print it: three decimals, or ``< 0.002`` when no resample crossed 0 (the
    p-value is 2 × a fraction of `N_BOOT` resamples, so 0 means below its resolution, not zero)."""
    return f"< {2 / N_BOOT:.3f}" if p == 0 else f"{p:.3f}"


def seed_signs(res: dict) -> str:
    """The sign of a paired test's a − b in each paired seed (`paired_test`'s ``per_seed``), seeds in order:
    "+ + − +" ("0" for an exact tie)."""
    return " ".join("+" if v > 0 else "−" if v < 0 else "0" for _, v in sorted(res["per_seed"].items()))


def mde_line(records: list[dict], dataset: str, cache: dict, metric: str = "ndcg@5",
             field: str = "predictions_file") -> str:
    """``minimum detectable effect at 80 % power: NDCG@5 ±0.0123 (CDs)`` for one dataset's records (`dataset`: its
    display name; `field` ``valid_predictions_file``: on validation, said in the line), or the reason it is not
    available."""
    label = metric_label(metric) + (" (validation)" if field == "valid_predictions_file" else "")
    res = mde(records, cache, metric, field)
    if res is None:
        return (f"minimum detectable effect at 80 % power: {label} not available ({dataset}: no SFT model run "
                "with predictions to pair the other rows with)")
    return f"minimum detectable effect at 80 % power: {label} ±{res['mde']:.4f} ({dataset})"
