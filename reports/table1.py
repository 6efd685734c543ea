"""Table 1 (accuracy vs inference cost of BoN sampling, BoN alignment and BLADE) and the paired significance tests
behind the paper's claim BLADE-N > static BoN > SFT. Records only; no torch."""

from __future__ import annotations

import numpy as np
from tabulate import tabulate

from benchmark.metrics import paired_bootstrap
from reports.records import row_key
from reports.tables import DATASET_NAMES, N_BOOT, _order_datasets, mean_std, pooled_user_means, tex_escape

# (row key, label) in the paper's order
TABLE1_ROWS = (("bigrec", "Base (SFT)"), ("bon_inference_n2", "BoN (N = 2), oracle"),
               ("bon_inference_n4", "BoN (N = 4), oracle"), ("bon_static", "BoN Alignment"), ("blade_n", "BLADE"))
# (a, b): is a better than b on NDCG@5, paired over test users
COMPARISONS = (("blade_n", "bon_static"), ("bon_static", "bigrec"), ("blade_n", "bigrec"), ("blade_r", "bon_static"),
               ("blade_r", "bigrec"))
NAMES = {"bigrec": "SFT", "bon_static": "BoN Alignment", "blade_n": "BLADE-N", "blade_r": "BLADE-R"}


def _by_row(records, dataset):
    out: dict[str, list[dict]] = {}
    for r in records:
        if r["dataset"] == dataset:
            out.setdefault(row_key(r), []).append(r)
    return out


def table1(records: list[dict], profile: str) -> tuple[str, str]:
    """NDCG@5 (mean ± std over seeds), test-split latency (s) and measured cost relative to SFT, per dataset."""
    md, tex = [f"# Table 1: accuracy vs inference cost ({profile} profile)", ""], []
    for d in _order_datasets({r["dataset"] for r in records}):
        rows = _by_row(records, d)
        base = rows.get("bigrec")
        base_t = float(np.mean([r["timings"]["recommend_s"] for r in base])) if base else None
        body = []
        for key, label in TABLE1_ROWS:
            recs = rows.get(key)
            if not recs:
                body.append([label, "—", "—", "—"])
                continue
            t = [r["timings"]["recommend_s"] for r in recs]
            cost = f"{np.mean(t) / base_t:.2f}×" if base_t else "—"
            body.append([label, mean_std([r["metrics"]["ndcg@5"] for r in recs]), mean_std(t, 2), cost])
        head = ["Method", "NDCG@5", "Time (s)", "Inference cost"]
        n_test = (base or next(iter(rows.values()), [{}]))[0].get("n_test", "?")
        md += [f"## {DATASET_NAMES.get(d, d)}", "", tabulate(body, head, tablefmt="pipe"), "",
               f"> Time: seconds to produce the lists of the whole test split ({n_test} windows), same batch size for "
               "every method; cost = time / SFT time, measured. BoN rows select with the test target: an oracle "
               "upper bound, not a deployable method.", ""]
        tex += [f"% {DATASET_NAMES.get(d, d)}", tabulate([[tex_escape(c) for c in row] for row in body], head,
                                                            tablefmt="latex_booktabs"), ""]
    return "\n".join(md), "\n".join(tex)


def significance(records: list[dict], profile: str, metric: str = "ndcg@5") -> tuple[str, str]:
    """Paired user-bootstrap tests of the paper's ordering claims (differences a - b on the test split)."""
    cache: dict = {}
    md = [f"# Paired significance on {metric} ({profile} profile)", ""]
    body = []
    for d in _order_datasets({r["dataset"] for r in records}):
        rows = _by_row(records, d)
        for a, b in COMPARISONS:
            if a not in rows or b not in rows:
                continue
            ua, w = pooled_user_means(rows[a], metric, cache)
            ub, _ = pooled_user_means(rows[b], metric, cache)
            if ua is None or ub is None or set(ua) != set(ub):
                continue
            res = paired_bootstrap(ua, ub, n_boot=N_BOOT, seed=0, weights=w)
            seeds = f"{len(rows[a])}/{len(rows[b])}"
            body.append([DATASET_NAMES.get(d, d), f"{NAMES[a]} − {NAMES[b]}", f"{res['mean']:+.4f}",
                         f"[{res['ci_low']:+.4f}, {res['ci_high']:+.4f}]", f"{res['p_value']:.3f}", seeds,
                         len(ua)])
    head = ["Dataset", "Difference", "Mean", "95 % CI", "p (two-sided)", "Seeds", "Users"]
    md += [tabulate(body, head, tablefmt="pipe"), "",
           f"> Paired bootstrap over test users ({N_BOOT} resamples; a user's windows averaged, then its value averaged "
           "over seeds; users weighted by their window count, so the mean is the window mean shown in the tables).", ""]
    tex = tabulate([[tex_escape(str(c)) for c in row] for row in body], head, tablefmt="latex_booktabs")
    return "\n".join(md), tex


def sanity(records: list[dict], profile: str, metric: str = "ndcg@5") -> tuple[str, str]:
    """The design's sanity bar: does BIGRec (the SFT model) beat Pop on VALIDATION? Paired user bootstrap."""
    cache: dict = {}
    body = []
    for d in _order_datasets({r["dataset"] for r in records}):
        rows = _by_row(records, d)
        if "bigrec" not in rows or "pop" not in rows:
            continue
        a, b = min(rows["bigrec"], key=lambda r: r["seed"]), min(rows["pop"], key=lambda r: r["seed"])
        ua, w = pooled_user_means([a], metric, cache, "valid_predictions_file")
        ub, _ = pooled_user_means([b], metric, cache, "valid_predictions_file")
        if ua is None or ub is None or set(ua) != set(ub):
            continue
        res = paired_bootstrap(ua, ub, n_boot=N_BOOT, seed=0, weights=w)
        verdict = "beats Pop" if res["ci_low"] > 0 else ("loses to Pop" if res["ci_high"] < 0 else "ties Pop")
        body.append([DATASET_NAMES.get(d, d), f"{a['metrics_valid'][metric]:.4f}", f"{b['metrics_valid'][metric]:.4f}",
                     f"{res['mean']:+.4f}", f"[{res['ci_low']:+.4f}, {res['ci_high']:+.4f}]", f"{res['p_value']:.3f}",
                     verdict])
    head = ["Dataset", f"BIGRec {metric}", f"Pop {metric}", "Difference", "95 % CI", "p", "Verdict"]
    md = [f"# Sanity bar: BIGRec vs Pop on the validation split ({profile} profile)", "",
          tabulate(body, head, tablefmt="pipe"), "",
          f"> Paired bootstrap over validation users ({N_BOOT} resamples, users weighted by their window count).", ""]
    return "\n".join(md), tabulate([[tex_escape(str(c)) for c in row] for row in body], head,
                                   tablefmt="latex_booktabs")
