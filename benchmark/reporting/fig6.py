"""Figure 6: test Recall@5 against G for BLADE and "No Prior" (M = 0, no reference set): bars (left axis, mean ±
std over seeds) and the relative improvement of BLADE over No Prior (right axis, from the means).

Paper: BLADE "consistently outperforms the No Prior baseline", most at small G; the gap narrows as G grows."""

from __future__ import annotations

import numpy as np

from benchmark.reporting import plotting
from benchmark.reporting.common import Inputs, Output, dataset_name, render_figure, series_points

EXPERIMENT = "fig6"
BLADE, NO_PRIOR = "BLADE", "No Prior"
WIDTH = 0.38


def relative_improvement(blade: float, no_prior: float) -> float:
    """(BLADE − No Prior) / No Prior in %, NaN when No Prior is 0."""
    return 100.0 * (blade - no_prior) / no_prior if no_prior else float("nan")


def draw(d: str, pairs):
    fig, (ax,) = plotting.new_figure(plotting.COLUMN_WIDTH, height=2.6)
    pts = series_points(pairs)
    gs = sorted(pts[BLADE])
    pos = np.arange(len(gs))
    means = {}
    for i, series in enumerate((BLADE, NO_PRIOR)):
        stats = [plotting.mean_std([r["metrics"]["recall@5"] for r in pts[series][g]]) for g in gs]
        means[series] = [m for m, _ in stats]
        ax.bar(pos + (i - 0.5) * WIDTH, means[series], WIDTH, yerr=[s for _, s in stats], capsize=2, label=series)
    ax.set_xticks(pos, [f"{g:g}" for g in gs])
    ax.set(xlabel="group size G", ylabel="test Recall@5", title=f"BLADE vs No Prior ({dataset_name(d)})")
    twin = ax.twinx()
    twin.spines["right"].set_visible(True)
    gain = [relative_improvement(b, n) for b, n in zip(means[BLADE], means[NO_PRIOR])]
    twin.plot(pos, gain, color="black", marker="s", label="relative improvement")
    twin.set_ylabel("relative improvement (%)")
    handles = ax.get_legend_handles_labels()
    extra = twin.get_legend_handles_labels()
    fig.legend(handles[0] + extra[0], handles[1] + extra[1], loc="outside lower center", ncols=3)
    return fig


def render(inp: Inputs) -> list:
    return render_figure(inp, EXPERIMENT, draw, lambda d: f"Figure 6 ({dataset_name(d)}): test Recall@5 against G "
                         "for BLADE and No Prior (M = 0); bars: mean ± std over seeds (left axis); line: relative "
                         "improvement of BLADE (right axis).", "G")


OUTPUT = Output("fig6", "Figure 6: the static prior at small G", render)
