"""Figure 5: BLADE's NDCG@5 and Recall@5 on the test split against the group size G (mean ± std over seeds).

Paper: "both NDCG@5 and Recall@5 improve consistently as G increases from 2 to 16"."""

from __future__ import annotations

from benchmark.reporting import plotting
from benchmark.reporting.common import Inputs, Output, dataset_name, render_figure, series_points

EXPERIMENT = "fig5"
PANELS = (("ndcg@5", "NDCG@5"), ("recall@5", "Recall@5"))


def draw(d: str, pairs):
    fig, axes = plotting.new_figure(plotting.PAGE_WIDTH, 2)
    for ax, (tag, (metric, label)) in zip(axes, zip("ab", PANELS)):
        for series, by_x in series_points(pairs).items():
            xs = sorted(by_x)
            plotting.errorbar(ax, xs, [[r["metrics"][metric] for r in by_x[x]] for x in xs], series)
            ax.set_xscale("log", base=2)
            ax.set_xticks(xs, [f"{x:g}" for x in xs])
        ax.set(xlabel="group size G", ylabel=f"test {label}", title=f"({tag}) {label} ({dataset_name(d)})")
    return fig


def render(inp: Inputs) -> list:
    return render_figure(inp, EXPERIMENT, draw, lambda d: f"Figure 5 ({dataset_name(d)}): test NDCG@5 and Recall@5 "
                         "against the group size G. Mean ± std over seeds.", "G")


OUTPUT = Output("fig5", "Figure 5: the group size G", render)
