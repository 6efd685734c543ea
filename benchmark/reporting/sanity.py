"""The design's sanity bar: does the SFT model (record role ``sft``) beat popularity (role ``popularity``) on the
VALIDATION split? Two-level paired bootstrap over the seeds both have and the validation users
(`stats.paired_test`)."""

from __future__ import annotations

from benchmark.reporting.common import (
    Inputs,
    Output,
    Table,
    by_dataset,
    dataset_name,
    diff_std,
    mean_std,
    seeds_paired,
    signed,
    simple_table,
    tex_line,
)
from benchmark.reporting.stats import BOOTSTRAP_NOTE, mde_line, mde_note, p_label, paired_test


def time_capped(record: dict) -> bool:
    """Whether the SFT behind an SFT-role record stopped at its wall-time cap (``sft_max_time_s``): its kept checkpoint
    then depends on the machine's speed and load. Records from before ``stopped_by`` existed: the SFT's training
    seconds reached the cap."""
    info = (record.get("stats") or {}).get("sft") or {}
    if "stopped_by" in info:
        return info["stopped_by"] == "time cap"
    cap = ((record.get("config") or {}).get("profile") or {}).get("sft_max_time_s")
    return cap is not None and info.get("seconds") is not None and info["seconds"] >= cap


def sanity(records: list[dict], profile: str, metric: str = "ndcg@5") -> tuple[str, str, list]:
    """(Markdown, LaTeX, rows): per dataset with both runs, each side's mean ± std over seeds, the difference and the
    verdict."""
    cache: dict = {}
    body, capped, mdes = [], [], []
    for d, recs in by_dataset(records).items():
        capped += [f"{dataset_name(d)} seed {r['seed']}" for r in recs if r["role"] == "sft" and time_capped(r)]
        sft = sorted((r for r in recs if r["role"] == "sft"), key=lambda r: r["seed"])
        pop = sorted((r for r in recs if r["role"] == "popularity"), key=lambda r: r["seed"])
        if not sft or not pop:
            continue
        res = paired_test(sft, pop, metric, cache, "valid_predictions_file")
        if res is None:
            continue
        mdes.append(mde_line(recs, dataset_name(d), cache, field="valid_predictions_file"))
        verdict = "beats Pop" if res["ci_low"] > 0 else ("loses to Pop" if res["ci_high"] < 0 else "ties Pop")
        body.append([dataset_name(d), mean_std([r["metrics_valid"][metric] for r in sft]),
                     mean_std([r["metrics_valid"][metric] for r in pop]), diff_std(res),
                     f"[{signed(res['ci_low'])}, {signed(res['ci_high'])}]", p_label(res['p_value']),
                     seeds_paired(res, len(sft), len(pop)), verdict])
    head = ["Dataset", f"SFT {metric}", f"Pop {metric}", "Difference", "95 % CI", "p", "Seeds", "Verdict"]
    md, tex = simple_table(f"# Sanity bar: the SFT model vs Pop on the validation split ({profile} profile)", head,
                           body, [f"Validation split; values: mean ± std over seeds. Paired {BOOTSTRAP_NOTE}; p "
                                  "two-sided. Seeds: the seeds both rows share (\"k of a/b\" when a row has a seed "
                                  "the other lacks).",
                                  "SFT stopped at its wall-time cap (sft_max_time_s; the kept checkpoint then depends "
                                  "on the machine's speed and load): " + (", ".join(capped) or "none") + ".",
                                  *mdes, mde_note("validation")])
    return md, tex + "".join(tex_line(line) for line in mdes), body


def render(inp: Inputs) -> list:
    md, tex, body = sanity(inp.records, inp.profile)
    return [Table(md, tex, inp.records)] if body else []


OUTPUT = Output("sanity", "Sanity bar: SFT vs popularity on validation", render)
