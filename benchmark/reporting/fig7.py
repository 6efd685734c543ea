"""Figure 7: the fairness objective alone (R = −MGU): Recall@5 and MGU on the alignment-validation windows against
the training step (mean ± std over seeds).

Paper: "Recall@5 rapidly decays toward zero, while MGU also decreases during training"."""

from __future__ import annotations

from benchmark.reporting import plotting
from benchmark.reporting.common import Inputs, Output, dataset_name, lacks_curve, render_figure, series_points, step_curve

EXPERIMENT = "fig7"
PANELS = (("recall@5", "align-valid Recall@5"), ("mgu", "align-valid MGU (lower is better)"))


def draw(d: str, pairs):
    fig, axes = plotting.new_figure(plotting.PAGE_WIDTH, 2)
    for ax, (tag, (metric, label)) in zip(axes, zip("ab", PANELS)):
        for series, by_x in series_points(pairs).items():
            plotting.curve_band(ax, [step_curve(r) for recs in by_x.values() for r in recs], metric, series)
        ax.set(xlabel="training step", ylabel=label, title=f"({tag}) {label.split(' (')[0]} ({dataset_name(d)})")
    axes[0].legend()
    return fig


def render(inp: Inputs) -> list:
    return render_figure(inp, EXPERIMENT, draw, lambda d: f"Figure 7 ({dataset_name(d)}): training with R = −MGU "
                         "alone: align-validation Recall@5 and MGU against the training step. Mean ± std over seeds.",
                         check=lambda pairs: lacks_curve(pairs, ("recall@5", "mgu")))


OUTPUT = Output("fig7", "Figure 7: the fairness objective alone", render)
