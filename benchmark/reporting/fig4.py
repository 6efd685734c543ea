"""Figure 4: (a) Recall@5 on the alignment-validation windows every E training steps, τ = 0 (static BoN alignment)
against τ = 0.3 (BLADE), over several epochs; (b) test Recall@5 against τ. Seeds: mean ± std (band / error bars).

Paper: the static baseline "improves initially but rapidly plateaus" while BLADE "sustains a steady improvement";
Recall first rises with τ, then falls when τ is too large."""

from __future__ import annotations

from benchmark.reporting import plotting
from benchmark.reporting.common import Inputs, Output, dataset_name, lacks_curve, render_figure, series_points, step_curve

EXPERIMENT = "fig4"


def draw(d: str, pairs):
    fig, (a, b) = plotting.new_figure(plotting.PAGE_WIDTH, 2)
    for series, by_x in series_points(pairs, "a").items():
        plotting.curve_band(a, [step_curve(r) for recs in by_x.values() for r in recs], "recall@5", series)
    a.set(xlabel="training step", ylabel="align-valid Recall@5", title=f"(a) training curves ({dataset_name(d)})")
    a.legend()
    for series, by_x in series_points(pairs, "b").items():
        xs = sorted(by_x)
        plotting.errorbar(b, xs, [[r["metrics"]["recall@5"] for r in by_x[x]] for x in xs], series)
        b.set_xticks(xs)
    b.set(xlabel="τ", ylabel="test Recall@5", title="(b) sensitivity to τ")
    return fig


def render(inp: Inputs) -> list:
    return render_figure(inp, EXPERIMENT, draw, lambda d: f"Figure 4 ({dataset_name(d)}): (a) align-validation "
                         "Recall@5 during training for τ = 0 and τ = 0.3; (b) test Recall@5 against τ. Mean ± std "
                         "over seeds.", "τ", check=lambda pairs: lacks_curve(pairs, ("recall@5",), "a"))


OUTPUT = Output("fig4", "Figure 4: the dynamic coefficient τ", render)
