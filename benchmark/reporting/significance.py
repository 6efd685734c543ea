"""Paired significance on the test split: the paper's ordering claims (BLADE > static BoN alignment > SFT: every
non-oracle row of Table 1 against every row of a lower stage, SFT model < list-wise alignment < ours), then every other
non-oracle row of Table 3 (the baselines outside Table 1, Pop and SASRec) against the SFT model.

When the control row was run (record role ``control``: SFT continued on the alignment methods' data with static BoN's
steps and sequences, methods/sft_align.py), every aligned row (one whose config names an alignment subset,
``n_align_train``: static BoN, BLADE, the DPO family, ReRe) is also tested against it, right after its test against
the SFT model, and the control against the SFT model: aligned − control is the objective's share of aligned − SFT,
the rest is data. Without control records the report is as before."""

from __future__ import annotations

from benchmark.reporting.common import (
    Inputs,
    Output,
    Table,
    by_dataset,
    dataset_name,
    diff_std,
    seeds_paired,
    signed,
    simple_table,
    tex_line,
)
from benchmark.records import row_key
from benchmark.reporting.stats import BOOTSTRAP_NOTE, MDE_NOTE, mde_line, p_label, paired_test, seed_signs
from benchmark.reporting.table1 import table1_rows


def _stage(r: dict) -> int | None:
    """0 the SFT model, 1 list-wise alignment, 2 ours; None for rows outside the ordering (oracles, never compared;
    the control, compared with the aligned rows and the SFT model on its own)."""
    if r["oracle"] or r["role"] == "control":
        return None
    return 0 if r["role"] == "sft" else {"listwise": 1, "ours": 2}.get(r["category"])


def _aligned(r: dict) -> bool:
    """Trained on the alignment windows (its config names an alignment subset), hence compared with the control."""
    return (not r["oracle"] and r["role"] not in ("sft", "control")
            and "n_align_train" in ((r.get("config") or {}).get("method") or {}))


def significance(records: list[dict], profile: str, metric: str = "ndcg@5") -> tuple[str, str, list]:
    """(Markdown, LaTeX, rows): two-level paired bootstrap tests of a − b for every compared pair (a of a higher
    stage), and each dataset's minimum detectable effect."""
    cache: dict = {}
    body = []
    mdes = []

    def test(a: list[dict], b: list[dict]) -> None:
        res = paired_test(a, b, metric, cache)
        if res is not None:
            body.append([dataset_name(d), f"{a[0]['display_name']} − {b[0]['display_name']}", diff_std(res),
                         f"[{signed(res['ci_low'])}, {signed(res['ci_high'])}]", f"{res['se']:.4f}",
                         p_label(res['p_value']), seeds_paired(res, len(a), len(b)), seed_signs(res), res["n_users"]])

    controls = {r["display_name"] for r in records if r["role"] == "control"}
    for d, recs in by_dataset(records).items():
        mdes.append(mde_line(recs, dataset_name(d), cache, metric))
        table1 = table1_rows(recs)
        rows = [(g, s) for _, g in table1 if (s := _stage(g[0])) is not None]
        control = next((g for _, g in table1 if g[0]["role"] == "control"), None)
        for a, sa in sorted(rows, key=lambda x: -x[1]):
            for b, sb in rows:
                if sb < sa:
                    test(a, b)
            if control and _aligned(a[0]):
                test(a, control)
        sft = next((g for g, s in rows if s == 0), None)
        if control and sft:
            test(control, sft)
        others: dict[str, list[dict]] = {}
        for r in sorted(recs, key=lambda r: r["seed"]):
            others.setdefault(row_key(r), []).append(r)
        for key in sorted(set(others) - {k for k, _ in table1}, key=lambda k: others[k][0]["display_name"].lower()):
            if sft and not others[key][0]["oracle"]:
                test(others[key], sft)
            if control and _aligned(others[key][0]):
                test(others[key], control)
    head = ["Dataset", "Difference", "Mean ± std (seeds)", "95 % CI", "SE", "p (two-sided)", "Seeds", "Sign per seed",
            "Users"]
    notes = [f"Test split. Paired {BOOTSTRAP_NOTE}. Mean: the mean over the paired seeds of the per-seed difference "
             "of window means, ± its sample std over those seeds; SE: the bootstrap standard error; p: two-sided, "
             "2 × the fraction of resamples on the other side of 0. Seeds: the seeds both rows share (\"k of a/b\" "
             "when a row has a seed the other lacks). Sign per seed: the sign of the difference in each paired seed, seeds "
             "in order (0: exactly equal).",
             *mdes, MDE_NOTE]
    if controls:
        notes.append(f"{', '.join(sorted(controls))} (role control): the SFT model trained further on the alignment "
                     "methods' data with static BoN alignment's steps and sequences. Each aligned method (its config "
                     "names an alignment subset) is tested against it as well as against the SFT model: aligned − "
                     "control is what the objective adds beyond the extra data.")
    md, tex = simple_table(f"# Paired significance on {metric} ({profile} profile)", head, body, notes)
    return md, tex + "".join(tex_line(line) for line in mdes), body


def render(inp: Inputs) -> list:
    md, tex, body = significance(inp.records, inp.profile)
    return [Table(md, tex, inp.records)] if body else []


OUTPUT = Output("significance", "Paired significance of the ordering claims", render)
