"""The design's sanity bar: does the SFT model (record role ``sft``) beat popularity (role ``popularity``) on the
VALIDATION split? Paired user bootstrap, first seed of each."""

from __future__ import annotations

from benchmark.reporting.common import Inputs, Output, Table, by_dataset, dataset_name, signed, simple_table
from benchmark.reporting.stats import N_BOOT, paired_test


def sanity(records: list[dict], profile: str, metric: str = "ndcg@5") -> tuple[str, str, list]:
    """(Markdown, LaTeX, rows): per dataset with both runs, the difference and the verdict."""
    cache: dict = {}
    body = []
    for d, recs in by_dataset(records).items():
        sft = sorted((r for r in recs if r["role"] == "sft"), key=lambda r: r["seed"])
        pop = sorted((r for r in recs if r["role"] == "popularity"), key=lambda r: r["seed"])
        if not sft or not pop:
            continue
        a, b = sft[0], pop[0]
        res = paired_test([a], [b], metric, cache, "valid_predictions_file")
        if res is None:
            continue
        verdict = "beats Pop" if res["ci_low"] > 0 else ("loses to Pop" if res["ci_high"] < 0 else "ties Pop")
        body.append([dataset_name(d), f"{a['metrics_valid'][metric]:.4f}", f"{b['metrics_valid'][metric]:.4f}",
                     signed(res["mean"]), f"[{signed(res['ci_low'])}, {signed(res['ci_high'])}]",
                     f"{res['p_value']:.3f}", verdict])
    head = ["Dataset", f"SFT {metric}", f"Pop {metric}", "Difference", "95 % CI", "p", "Verdict"]
    md, tex = simple_table(f"# Sanity bar: the SFT model vs Pop on the validation split ({profile} profile)", head,
                           body, [f"Paired bootstrap over validation users ({N_BOOT} resamples, users weighted by "
                                  "their window count)."])
    return md, tex, body


def render(inp: Inputs) -> list:
    md, tex, body = sanity(inp.records, inp.profile)
    return [Table(md, tex, inp.records)] if body else []


OUTPUT = Output("sanity", "Sanity bar: SFT vs popularity on validation", render)
