"""Figure helpers shared by fig4-fig8: a paper-sized matplotlib figure (Agg, no pyplot state), seeds drawn as mean ±
std (bands for curves, error bars for points), and atomic PNG + PDF output. Imports nothing else in ``reports/``.

Sizes: one column of a two-column paper is `COLUMN_WIDTH` inches, the page `PAGE_WIDTH`; fonts are 7-8 pt, so a
figure is readable printed at its own size. PNGs are `DPI` dpi; PDFs carry no creation date (byte-stable).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.container import BarContainer, ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from matplotlib.ticker import MaxNLocator

from benchmark.io import atomic_write

COLUMN_WIDTH = 3.3  # inches
PAGE_WIDTH = 7.0
HEIGHT = 2.3
DPI = 300
STYLE = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7, "xtick.labelsize": 7,
    "ytick.labelsize": 7, "lines.linewidth": 1.2, "lines.markersize": 4, "axes.spines.top": False,
    "axes.spines.right": False, "legend.frameon": False, "pdf.fonttype": 42, "svg.hashsalt": "blade-bench",
}
BAND_ALPHA = 0.2


@contextlib.contextmanager
def style():
    """Draw and save inside this: the paper-sized fonts and lines (text sizes are read when artists are made)."""
    with matplotlib.rc_context(STYLE):
        yield


def new_figure(width: float, ncols: int = 1, height: float = HEIGHT) -> tuple[Figure, list]:
    """A Figure (Agg canvas, constrained layout) with `ncols` axes side by side."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample std over seeds); the std is 0 for a single seed."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def curve_band(ax, curves: list[list[dict]], metric: str, label: str, **kw):
    """Mean over seeds of `metric` at every step all seeds evaluated, with a ± std band. Returns the mean line."""
    steps = sorted(set.intersection(*({p["step"] for p in c if p.get(metric) is not None} for c in curves)))
    at = [{p["step"]: p[metric] for p in c} for c in curves]
    stats = [mean_std([a[s] for a in at]) for s in steps]
    mean = np.array([m for m, _ in stats])
    std = np.array([s for _, s in stats])
    (line,) = ax.plot(steps, mean, label=label, **kw)
    ax.fill_between(steps, mean - std, mean + std, alpha=BAND_ALPHA, color=line.get_color(), linewidth=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps
    return line


# Where a point label may go, in points from its point, tried in this order: right-above, right-below, left-above,
# left-below, above, below.
LABEL_OFFSETS = ((3, 3), (3, -9), (-3, 3), (-3, -9), (0, 6), (0, -12))


def label_points(fig: Figure, ax, points: Sequence[tuple[float, float, str]]) -> list:
    """Annotate each (x, y, text) in small type at the first of `LABEL_OFFSETS` whose text box overlaps no label
    placed before it (the first offset when all overlap), so that close points keep legible labels that stay next to
    their own point. Returns the annotations."""
    renderer = fig.canvas.get_renderer()

    def put(x, y, text, offset):
        dx = offset[0]
        ann = ax.annotate(text, (x, y), textcoords="offset points", xytext=offset, fontsize=6,
                          ha="left" if dx > 0 else "right" if dx < 0 else "center")
        return ann, ann.get_window_extent(renderer)

    placed, out = [], []
    for x, y, text in points:
        for offset in LABEL_OFFSETS:
            ann, box = put(x, y, text, offset)
            if not any(box.overlaps(b) for b in placed):
                break
            ann.remove()
        else:  # nowhere free: the first place, as drawn without this search
            ann, box = put(x, y, text, LABEL_OFFSETS[0])
        placed.append(box)
        out.append(ann)
    return out


def errorbar(ax, xs: Sequence[float], per_x: Sequence[Sequence[float]], label: str, **kw):
    """Mean over seeds at each x with ± std error bars; returns the container (its line holds the means)."""
    stats = [mean_std(v) for v in per_x]
    return ax.errorbar(list(xs), [m for m, _ in stats], yerr=[s for _, s in stats], label=label, marker="o",
                       capsize=2, **kw)


def encode(fig: Figure) -> dict[str, bytes]:
    """The figure as PNG and PDF bytes, without dates or software versions (identical figures, identical bytes)."""
    out = {}
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None})):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=DPI, metadata=meta)
        out[ext] = buf.getvalue()
    return out


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write ``<stem>.png`` and ``<stem>.pdf`` atomically; returns both paths."""
    return [atomic_write(Path(f"{stem}.{ext}"), lambda f, data=data: f.write(data))
            for ext, data in encode(fig).items()]


def _half_lengths(container: ErrorbarContainer | None, axis: int) -> list[float] | None:
    """The ± of each point of an error-bar container along `axis` (0 = x, 1 = y), read from its bar segments; None
    when it has no bars on that axis."""
    if container is None or not (container.has_xerr if axis == 0 else container.has_yerr):
        return None
    cols = container.lines[2]
    col = cols[0] if axis == 0 or not container.has_xerr else cols[1]  # x bars come first
    return [abs(float(seg[1][axis] - seg[0][axis])) / 2 for seg in col.get_segments()]


def _tick(ticks: dict[float, str], x: float, nearest: bool = False) -> str:
    """x as its tick label: the label at x (or, `nearest`, at the closest tick: bars sit beside theirs), else x."""
    if nearest and ticks:
        return ticks[min(ticks, key=lambda t: abs(t - x))]
    return ticks.get(float(x)) or f"{x:.6g}"


def _noted(notes: dict[tuple[float, float], str], label: str, x: float, y: float) -> str:
    """A series label, then the annotation drawn at (x, y) if there is one."""
    note = notes.get((float(x), float(y)))
    return f"{label} {note}" if note else label


def figure_points(fig: Figure) -> str:
    """The values a figure plots, read back from its artists (not from the records), as a Markdown table with one row
    per point: panel (the axes' title, else its y label), series (the legend label, then the point's annotation where
    one is drawn at it: Fig. 8's "λ=0.1"), x (the tick label where there is one) and y, with "± std" where the figure
    draws an error bar. Curves (lines with a band) give their mean line."""
    def num(v: float, err: float | None) -> str:
        return f"{v:.4f}" + (f" ± {err:.4f}" if err is not None else "")

    rows = []
    for ax in fig.axes:
        panel = ax.get_title() or ax.get_ylabel()
        ticks = {float(t): lab.get_text() for t, lab in zip(ax.get_xticks(), ax.get_xticklabels()) if lab.get_text()}
        notes = {(float(a.xy[0]), float(a.xy[1])): a.get_text() for a in ax.texts if isinstance(a, Annotation)}
        drawn = set()
        for c in ax.containers:
            if isinstance(c, ErrorbarContainer):
                drawn.update(id(a) for a in (c.lines[0], *c.lines[1]))
                if c.get_label().startswith("_"):
                    continue
                xs, ys = c.lines[0].get_xdata(), c.lines[0].get_ydata()
                xe, ye = _half_lengths(c, 0), _half_lengths(c, 1)
                rows += [(panel, _noted(notes, c.get_label(), x, y), num(x, xe[i]) if xe else _tick(ticks, x),
                          num(y, ye[i] if ye else None)) for i, (x, y) in enumerate(zip(xs, ys))]
            elif isinstance(c, BarContainer) and not c.get_label().startswith("_"):
                ye = _half_lengths(c.errorbar, 1)
                rows += [(panel, c.get_label(), _tick(ticks, b.get_x() + b.get_width() / 2, nearest=True),
                          num(b.get_height(), ye[i] if ye else None)) for i, b in enumerate(c.patches)]
        for line in ax.get_lines():
            if id(line) not in drawn and not line.get_label().startswith("_"):
                rows += [(panel, line.get_label(), _tick(ticks, x), num(y, None))
                         for x, y in zip(line.get_xdata(), line.get_ydata())]
    return "\n".join(["| panel | series | x | y |", "|---|---|---|---|"] + [f"| {' | '.join(r)} |" for r in rows])
