"""The paper's findings against ours: each claim the paper makes that one paired comparison can test, tested with
the two-level bootstrap of every other table (`stats.paired_test`: seeds paired, users paired within a seed), with
the sign of the difference in each seed and a verdict.

A claim names the paper's methods, so its sides name registry keys (a table row: method or variant) or the points of
a figure experiment's plan (series, x, panel); the other outputs never select by name. Claims about a curve's shape
(Fig. 4a's "static BoN plateaus while BLADE keeps rising") are tested where the curve ends: the test split after the
last step. A claim is evaluated on every dataset where both sides have records; the note lists the others."""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.experiments import FIGURE_TAU, GROUP_SIZES, LAMBDAS
from benchmark.records import row_key
from benchmark.reporting.common import (
    P_SIGNIFICANT,
    Inputs,
    Output,
    Table,
    dataset_name,
    diff_std,
    order_datasets,
    simple_table,
    tex_line,
)
from benchmark.reporting.stats import BOOTSTRAP_NOTE, MDE_NOTE, mde_line, metric_label, p_label, paired_test, seed_signs


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a table row (`row`: a record's method, or variant) or a planned point of a figure
    experiment (`experiment` with the plan row's `series`, `x` and `panel`)."""

    row: str = ""
    experiment: str = ""
    series: str = ""
    x: float | None = None
    panel: str = ""

    def records(self, inp: Inputs, dataset: str) -> list[dict] | None:
        """This side's records on `dataset` over seeds, or None when it has none (or a planned run lacks one)."""
        if self.row:
            recs = [r for r in inp.records if r["dataset"] == dataset and row_key(r) == self.row]
        else:
            entry = (inp.plans.get(self.experiment) or {}).get("datasets", {}).get(dataset)
            rows = [p for p in (entry or {}).get("runs", []) if p.get("series") == self.series
                    and p.get("x") == self.x and p.get("panel", "") == self.panel]
            if not rows or any(p["run_id"] not in inp.by_id for p in rows):
                return None
            recs = list({p["run_id"]: inp.by_id[p["run_id"]] for p in rows}.values())
        return sorted(recs, key=lambda r: r["seed"]) or None


@dataclass(frozen=True)
class Claim:
    """The paper says `a` is above (`sign` +1) or below (−1) `b` on `metric`; `label` names the comparison."""

    source: str
    paper: str
    a: Side
    b: Side
    label: str
    sign: int = 1
    metric: str = "ndcg@5"


SFT, STATIC, BLADE = Side("bigrec"), Side("bon_static"), Side("blade_n")


def _fig(experiment: str, series: str, x: float | None = None, panel: str = "") -> Side:
    return Side(experiment=experiment, series=series, x=x, panel=panel)


_T1, _T3 = "Table 1", "Table 3"
CLAIMS: tuple[Claim, ...] = (
    Claim(_T1, "inference-time BoN improves with N", Side("bon_inference_n4"), Side("bon_inference_n2"),
          "BoN N=4 − N=2"),
    Claim(_T1, "inference-time BoN improves on SFT", Side("bon_inference_n4"), SFT, "BoN N=4 − BIGRec"),
    Claim(_T1, "BoN alignment improves on SFT at 1× cost", STATIC, SFT, "static BoN − BIGRec"),
    Claim(_T1, "BLADE-N improves on static BoN alignment", BLADE, STATIC, "BLADE-N − static BoN"),
    Claim(_T1, "BLADE-R improves on static BoN alignment", Side("blade_r"), STATIC, "BLADE-R − static BoN"),
    Claim(_T1, "the alignment objective, not its data, makes the gain", STATIC, Side("sft_align"),
          "static BoN − SFT + align data"),
    *(Claim(_T3, "BLADE-N is above every baseline", BLADE, Side(key), f"BLADE-N − {name}")
      for key, name in (("bigrec", "BIGRec"), ("beam", "Beam Search"), ("d3", "D³"), ("sdpo", "S-DPO"),
                        ("rere", "ReRe"), ("sprec", "SPRec"), ("list_dpo", "List DPO"), ("sasrec", "SASRec"),
                        ("pop", "Pop"))),
    Claim(_T3, "Beam Search falls far below BIGRec (near-duplicate titles)", Side("beam"), SFT, "Beam Search − BIGRec",
          sign=-1),
    Claim("Fig. 4a", "static BoN plateaus while BLADE keeps rising (after 4 epochs)",
          _fig("fig4", f"τ = {FIGURE_TAU:g} (BLADE)", FIGURE_TAU, "a"), _fig("fig4", "τ = 0 (static)", 0.0, "a"),
          f"τ {FIGURE_TAU:g} − τ 0, 4 epochs", metric="recall@5"),
    *(Claim("Fig. 4b", "an intermediate τ beats the extremes (inverted U)", _fig("fig4", "BLADE-N", FIGURE_TAU, "b"),
            _fig("fig4", "BLADE-N", t, "b"), f"τ {FIGURE_TAU:g} − τ {t:g}", metric="recall@5") for t in (0.0, 1.0)),
    *(Claim("Fig. 5", "NDCG@5 and Recall@5 rise with G", _fig("fig5", "BLADE-N", max(GROUP_SIZES)),
            _fig("fig5", "BLADE-N", min(GROUP_SIZES)), f"G {max(GROUP_SIZES)} − G {min(GROUP_SIZES)}", metric=m)
      for m in ("ndcg@5", "recall@5")),
    *(Claim("Fig. 6", "the static prior helps, most at small G", _fig("fig6", "BLADE", g), _fig("fig6", "No Prior", g),
            f"BLADE − No Prior, G {g}", metric="recall@5") for g in GROUP_SIZES),
    Claim("Fig. 7", "a fairness-only reward (R = −MGU) collapses recall", _fig("fig7", "R = −MGU"), BLADE,
          "R = −MGU − BLADE-N", sign=-1, metric="recall@5"),
    *(Claim("Fig. 8", f"every λ point is {better} SFT", _fig("fig8", "BLADE-N", lam, panel), _fig("fig8", "SFT", None,
                                                                                                 panel),
            f"{reward}, λ {lam:g} − SFT", sign=sign, metric=metric)
      for panel, reward, metric, sign, better in (
          ("a", "R_fair", "ndcg@5", 1, "more accurate than"), ("a", "R_fair", "mgu", -1, "fairer (lower MGU) than"),
          ("b", "R_div", "ndcg@5", 1, "more accurate than"), ("b", "R_div", "ild", 1, "more diverse (ILD) than"))
      for lam in LAMBDAS if lam),
    # the paper's finding against the unconstrained case: "introducing λ significantly reduces MGU compared to λ = 0"
    # (a), and "even a minimal coefficient (λ = 0.1)" boosts ILD (b); λ 0 is R = NDCG, the same runs in both panels
    *(Claim("Fig. 8", "introducing λ lowers MGU below λ 0 (R = NDCG)", _fig("fig8", "BLADE-N", lam, "a"),
            _fig("fig8", "BLADE-N", 0.0, "a"), f"R_fair, λ {lam:g} − λ 0", sign=-1, metric="mgu")
      for lam in LAMBDAS if lam),
    Claim("Fig. 8", "even the smallest λ raises ILD above λ 0 (R = NDCG)",
          _fig("fig8", "BLADE-N", min(lam for lam in LAMBDAS if lam), "b"), _fig("fig8", "BLADE-N", 0.0, "b"),
          f"R_div, λ {min(lam for lam in LAMBDAS if lam):g} − λ 0", metric="ild"),
)


def verdict(res: dict, sign: int) -> str:
    """``holds`` (p < 0.05 in the claimed direction), ``reversed`` (p < 0.05 against it) or ``not significant``."""
    if res["p_value"] >= P_SIGNIFICANT:
        return "not significant"
    return "holds" if (res["mean"] > 0) == (sign > 0) else "reversed"


def _untested(untested: list[Claim], claim_list: tuple[Claim, ...]) -> str:
    """The untested claims by source: ``Fig. 5 (all 2 comparisons)`` when none of a source's was tested, else their
    labels."""
    parts = []
    for source in dict.fromkeys(c.source for c in untested):
        mine = [c for c in untested if c.source == source]
        total = sum(c.source == source for c in claim_list)
        parts.append(f"{source} (all {total} comparisons)" if len(mine) == total and total > 1 else
                     f"{source}: " + ", ".join(f"{c.label} ({metric_label(c.metric)})" for c in mine))
    return "; ".join(parts)


def claims(inp: Inputs, claim_list: tuple[Claim, ...] = CLAIMS) -> tuple[str, str, list, list]:
    """(Markdown, LaTeX, rows, the records compared) of every claim on every dataset where both its sides have
    records."""
    cache: dict = {}
    datasets = order_datasets({r["dataset"] for r in inp.records}
                              | {d for p in inp.plans.values() for d in p.get("datasets", {})})
    body, untested, used = [], [], {}
    for c in claim_list:
        tested = False
        for d in datasets:
            a, b = c.a.records(inp, d), c.b.records(inp, d)
            res = paired_test(a, b, c.metric, cache) if a and b else None
            if res is None:
                continue
            tested = True
            used.update({r["run_id"]: r for r in a + b})
            body.append([c.source, c.paper, dataset_name(d), c.label, metric_label(c.metric),
                         "a > b" if c.sign > 0 else "a < b", diff_std(res),
                         p_label(res['p_value']), seed_signs(res), verdict(res, c.sign)])
        if not tested:
            untested.append(c)
    mdes = [mde_line([r for r in inp.records if r["dataset"] == d], dataset_name(d), cache) for d in datasets
            if any(r["dataset"] == d for r in inp.records)]
    head = ["Source", "Paper", "Dataset", "Comparison a − b", "Metric", "Paper says", "a − b (mean ± std over seeds)",
            "p", "Sign per seed", "Verdict"]
    notes = [f"Test split. Paired {BOOTSTRAP_NOTE}; p two-sided. Verdict: holds / reversed when p < {P_SIGNIFICANT} "
             "with the difference in / against the paper's direction, else not significant (the sign per seed says "
             "how consistent it is). Figure claims compare the planned points of the figure's runs; a curve's claim "
             "is tested where the curve ends (the test split after the last step).", *mdes, MDE_NOTE]
    if untested:
        notes.append("Not tested (a side has no records on any dataset): " + _untested(untested, claim_list) + ".")
    md, tex = simple_table(f"# The paper's claims, tested ({inp.profile} profile)", head, body, notes)
    return md, tex + "".join(tex_line(line) for line in mdes), body, list(used.values())


def render(inp: Inputs) -> list:
    md, tex, body, used = claims(inp)
    return [Table(md, tex, used)] if body else []


OUTPUT = Output("claims", "The paper's claims, tested", render)
