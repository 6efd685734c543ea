"""Figure 8: composite rewards (Eq. 18-19) with λ ∈ {0, 0.1, 0.3, 0.5, 1.0}: (a) MGU against NDCG@5 for R_fair =
NDCG − λ·MGU, (b) ILD against NDCG@5 for R_div = NDCG + λ·ILD, each with the SFT model's point; test split, mean ±
std over seeds in both directions. λ = 0 is R = NDCG (the plain BLADE-N run).

Paper: every λ lies right of and below (a) / above (b) the SFT point (better accuracy and fairness / diversity).
A companion table tests each point against SFT (two-level paired bootstrap over seeds and users,
`stats.paired_test`) on NDCG@5 and on MGU / ILD, and states the effect each column can detect (its
minimum-detectable-effect line, from the same tests)."""

from __future__ import annotations

from statistics import median

from benchmark.reporting import plotting
from benchmark.reporting.common import (
    Inputs,
    Output,
    Table,
    dataset_name,
    diff_std,
    mean_std,
    render_figure,
    series_points,
    signed,
    simple_table,
    tex_line,
)
from benchmark.reporting.stats import BOOTSTRAP_NOTE, Z_POWER, metric_label, p_label, paired_test

EXPERIMENT = "fig8"
SFT = "SFT"
PANELS = (("a", "mgu", "MGU (lower is better)", "R_fair"), ("b", "ild", "ILD (higher is better)", "R_div"))


def draw(d: str, pairs):
    fig, axes = plotting.new_figure(plotting.PAGE_WIDTH, 2)
    labels = {}
    for ax, (panel, metric, label, reward) in zip(axes, PANELS):
        for series, by_x in series_points(pairs, panel).items():
            xs = sorted(by_x, key=lambda x: -1 if x is None else x)
            acc = [plotting.mean_std([r["metrics"]["ndcg@5"] for r in by_x[x]]) for x in xs]
            val = [plotting.mean_std([r["metrics"][metric] for r in by_x[x]]) for x in xs]
            kw = {"marker": "*", "markersize": 9, "linestyle": "none"} if series == SFT else {"marker": "o"}
            ax.errorbar([m for m, _ in acc], [m for m, _ in val], xerr=[s for _, s in acc],
                        yerr=[s for _, s in val], capsize=2, label=series if series == SFT else f"{series} ({reward})",
                        **kw)
            labels.setdefault(id(ax), []).extend((ma, mv, f"λ={x:g}") for x, (ma, _), (mv, _) in zip(xs, acc, val)
                                                 if x is not None)
        ax.set(xlabel="test NDCG@5", ylabel=f"test {label}", title=f"({panel}) {label.split(' (')[0]} vs accuracy "
               f"({dataset_name(d)})")
        ax.legend()
    fig.canvas.draw()  # lay the figure out first: labels are placed against the final axes
    for ax in axes:
        plotting.label_points(fig, ax, labels.get(id(ax), []))
    return fig


def undefined(pairs) -> str | None:
    """MGU / ILD are None when no window of the test split had a genre-bearing list: such a run has no point."""
    bad = sorted({rec["run_id"] for row, rec in pairs for panel, metric, _, _ in PANELS
                  if row["panel"] == panel and rec["metrics"].get(metric) is None})
    return f"the records {', '.join(bad)} have no test MGU/ILD (no genre-bearing list)" if bad else None


def tests(d: str, pairs) -> tuple[str, str]:
    """(Markdown, LaTeX): every BLADE point of both panels against the SFT point, on NDCG@5 and on the panel's
    metric: mean ± std over seeds, and the two-level paired bootstrap of point − SFT (seeds paired, users paired).
    Its minimum-detectable-effect line is, per metric, Z_POWER × the median standard error of those tests (each point
    once: λ 0 is in both panels)."""
    cache: dict = {}
    ses: dict[str, dict[tuple, float]] = {}

    def diff(a, b, metric):
        t = paired_test(a, b, metric, cache)
        if t is None:
            return ["—", "—"]
        ses.setdefault(metric, {})[tuple(r["run_id"] for r in a)] = t["se"]
        return [f"{diff_std(t)} [{signed(t['ci_low'])}, {signed(t['ci_high'])}]", p_label(t["p_value"])]

    def mean(recs, metric):
        return mean_std([r["metrics"][metric] for r in recs])

    rows = []
    for panel, metric, label, reward in PANELS:
        points = series_points(pairs, panel)
        sft = next(iter(points.pop(SFT).values()))
        rows.append([f"({panel})", "SFT", "", mean(sft, "ndcg@5"), "", "", label.split(" (")[0], mean(sft, metric),
                     "", ""])
        for series, by_x in points.items():
            for x in sorted(by_x):
                recs = by_x[x]
                rows.append([f"({panel})", f"{series} ({'R = NDCG' if x == 0 else reward})", f"{x:g}",
                             mean(recs, "ndcg@5"), *diff(recs, sft, "ndcg@5"), label.split(" (")[0],
                             mean(recs, metric), *diff(recs, sft, metric)])
    head = ["Panel", "Model", "λ", "NDCG@5", "− SFT ± std [95 % CI]", "p", "Metric", "Value", "− SFT ± std [95 % CI]",
            "p"]
    note = (f"Test split; values: mean ± std over seeds; differences: the mean over the paired seeds of the per-seed "
            f"difference ± its std, and the 95 % CI of a paired {BOOTSTRAP_NOTE}; p two-sided. Lower MGU is better, "
            "higher ILD is better. λ = 0 is R = NDCG, the same runs in both panels.")
    name = dataset_name(d)
    detectable = ", ".join(f"{metric_label(m)} ±{Z_POWER * median(v.values()):.4f}" for m, v in ses.items())
    mde = "minimum detectable effect at 80 % power: " + (
        f"{detectable} ({name})" if ses else f"not available ({name}: no point has predictions to pair with SFT)")
    mde_note = (f"Minimum detectable effect at 80 % power (two-sided test at the 5 % level): {Z_POWER:.2f} × SE, with "
                "SE the median, over this table's points, of the standard error of the point − SFT test above.")
    md, tex = simple_table(f"# Figure 8, companion: each point against SFT ({name})", head, rows,
                           [note, mde, mde_note])
    return md, tex + tex_line(mde)


def companion(d: str, pairs, records: list[dict]) -> Table:
    """The `tests` table of dataset `d`, rendered after its figure (``fig8_<profile>_<d>_tests``)."""
    return Table(*tests(d, pairs), records, suffix=f"{d}_tests",
                 title=f"Figure 8, companion: each point against SFT ({dataset_name(d)})")


def render(inp: Inputs) -> list:
    return render_figure(inp, EXPERIMENT, draw, lambda d: f"Figure 8 ({dataset_name(d)}): composite rewards, λ ∈ "
                         "{0, 0.1, 0.3, 0.5, 1.0}: (a) MGU (lower is better) and (b) ILD against NDCG@5, with the SFT "
                         "model. Mean ± std over seeds.", "λ", check=undefined, companion=companion)


OUTPUT = Output("fig8", "Figure 8: fairness and diversity rewards", render)
