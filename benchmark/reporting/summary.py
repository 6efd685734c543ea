"""The compact table `benchmark run` prints when it ends: one row per (method, dataset, config) of the runs it planned,
NDCG@5 (mean ± std over seeds) with its 95 % two-level (seed, then user) bootstrap CI (`stats.cell_ci`), and the mean
fit and test-decoding seconds. Runs of one method on one dataset that differ in config (an experiment's points:
Fig. 8's λ, Fig. 5's G) get a row each, labelled with the fields that differ. Tuning runs (``--splits valid``) show
the validation split instead."""

from __future__ import annotations

import json

import numpy as np
from tabulate import tabulate

from benchmark.reporting.common import category_rank, config_groups, dataset_name, mean_std, order_datasets
from benchmark.records import row_key
from benchmark.reporting.stats import cell_ci


def run_summary(records: list[dict]) -> str:
    """The table of `records` (each with its ``_path``, as `load_records` gives them)."""
    runs: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(records, key=lambda r: (r["seed"], r["run_id"])):
        runs.setdefault((row_key(r), r["dataset"]), []).append(r)
    cells: dict[tuple[str, str, str], list[dict]] = {}
    for (key, d), recs in runs.items():
        varied, groups = config_groups(recs)
        for values, group in groups.items():
            label = ", ".join(f"{k}={json.loads(v) if v != 'null' else '—'}" for k, v in zip(varied, values))
            cells[(key, d, label)] = group
    datasets = order_datasets({d for _, d, _ in cells})

    def order(key):
        r = cells[key][0]
        return datasets.index(key[1]), category_rank(r["category"]), r["display_name"].lower(), key[0], key[2]

    cache: dict = {}
    rows = []
    for key in sorted(cells, key=order):
        recs = cells[key]
        test = "test" in recs[0].get("splits", ["valid", "test"])
        metrics, field = ("metrics", "predictions_file") if test else ("metrics_valid", "valid_predictions_file")
        ci = cell_ci(recs, "ndcg@5", cache, field)
        decode = [r["timings"]["recommend_s" if test else "valid_s"] for r in recs]
        name = recs[0]["display_name"] + (f" ({key[2]})" if key[2] else "")
        rows.append([name, dataset_name(key[1]), ",".join(str(r["seed"]) for r in recs), "test" if test else "valid",
                     mean_std([r[metrics]["ndcg@5"] for r in recs]),
                     f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "—",
                     f"{np.mean([r['timings']['fit_s'] for r in recs]):.1f}", f"{np.mean(decode):.1f}"])
    return tabulate(rows, headers=["method", "dataset", "seeds", "split", "NDCG@5", "95 % CI", "fit s", "decode s"],
                    tablefmt="simple", disable_numparse=True)
