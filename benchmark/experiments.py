"""Named experiments: the runs one paper table or figure needs (``python -m benchmark run --experiment NAME``).

An experiment is a list of `Point`s. A point is one method (or ``"all"``) with the ``--set`` overrides that place it
in its output (panel, series, x). ``runners/experiments.py`` expands every point through the ordinary plan, so a
point is a normal run: its run id hashes its resolved config, a finished run is skipped, and a run that two outputs
share (Fig. 5's G = 16 is Fig. 4b's τ = 0.3) is trained once. The expansion also records the experiment's PLAN
(``benchmark/records.py``: ``<results_dir>/experiments/<name>_<profile>.json``, every planned run id with its point);
``report`` draws a figure only when every run of its plan has a record, and otherwise names the missing runs and the
command that makes them.

The figure experiments fix τ = 0.3 without a τ search (``tau_grid=``: BLADE-N has none; it is blade_n_tau's), so that each
point is one policy; Fig. 4b varies τ itself. Pure data: importable by reports (no torch).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from benchmark.errors import unknown_name

REFERENCE_DIR = "results/reference"  # the committed reproduction: `run` writes there only with --into-reference
PROJECT = Path(__file__).resolve().parents[1]

TAUS = (0.0, 0.1, 0.3, 0.5, 1.0)  # Fig. 4b
GROUP_SIZES = (2, 4, 8, 16)  # Fig. 5 and 6
LAMBDAS = (0.0, 0.1, 0.3, 0.5, 1.0)  # Fig. 8
FIGURE_TAU = 0.3  # BLADE's τ in Fig. 4a and Fig. 5-8
FIG4A_EPOCHS = 4.0  # several passes over the alignment subset: long enough to see whether static BoN plateaus
ALL_DATASETS = ("cds", "steam", "goodreads")


@dataclass(frozen=True)
class Point:
    """One method of an experiment and where its runs sit in the output.

    Attributes:
        method: a registry key, or ``"all"`` (every registered method; tables).
        sets: ``--set`` overrides of this method's config, as (field, value) strings.
        panel: ``"a"`` / ``"b"`` in a two-panel figure, else ``""``.
        series: the legend label of the point's series.
        x: its value on the figure's x axis (τ, G, λ); None for curves and tables.
    """

    method: str
    sets: tuple[tuple[str, str], ...] = ()
    panel: str = ""
    series: str = ""
    x: float | None = None


@dataclass(frozen=True)
class Experiment:
    """A named set of points. `parts` makes a union of other experiments (``paper``) and then `points` is empty.
    Reports keep the runs planned only by figure experiments (``table = False``) out of the tables: they vary the
    config a table row would otherwise show."""

    name: str
    output: str  # what it feeds, in words
    points: tuple[Point, ...] = ()
    datasets: tuple[str, ...] = ("cds",)  # the paper's Fig. 4 study is on CDs; --datasets replaces these
    seeds: tuple[int, ...] = (0, 1, 2)  # --seeds replaces these
    parts: tuple[str, ...] = ()
    table: bool = False  # its runs are table rows; a figure's runs (G = 2, R = -MGU, ...) never are


def _blade(tau: float = FIGURE_TAU, **sets) -> tuple[tuple[str, str], ...]:
    """BLADE-N at a fixed τ (no τ search) with `sets` on top, as --set strings."""
    return (("tau_grid", ""), ("tau", f"{tau:g}"), *((k, f"{v:g}" if isinstance(v, float) else str(v))
                                                     for k, v in sets.items()))


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("fig4", "Figure 4: (a) align-validation Recall@5 during training, tau = 0 vs 0.3; (b) test Recall@5 "
               "against tau", points=(
                   Point("blade_n", _blade(0.0, epochs=FIG4A_EPOCHS), "a", "τ = 0 (static)", 0.0),
                   Point("blade_n", _blade(FIGURE_TAU, epochs=FIG4A_EPOCHS), "a", f"τ = {FIGURE_TAU:g} (BLADE)",
                         FIGURE_TAU),
                   *(Point("blade_n", _blade(t), "b", "BLADE-N", t) for t in TAUS))),
    Experiment("fig5", "Figure 5: NDCG@5 and Recall@5 against the group size G",
               points=tuple(Point("blade_n", _blade(G=g), "", "BLADE-N", g) for g in GROUP_SIZES)),
    Experiment("fig6", "Figure 6: Recall@5 against G, BLADE vs No Prior (M = 0), with the relative improvement",
               points=(*(Point("blade_n", _blade(G=g), "", "BLADE", g) for g in GROUP_SIZES),
                       *(Point("blade_n", _blade(G=g, M=0), "", "No Prior", g) for g in GROUP_SIZES))),
    Experiment("fig7", "Figure 7: the fairness objective alone (R = -MGU): Recall@5 and MGU against training step",
               points=(Point("blade_n", _blade(reward="neg_mgu"), "", "R = −MGU"),)),
    # lambda = 0 is R = NDCG exactly (Eq. 18-19), i.e. the plain BLADE-N run, shared by both panels
    Experiment("fig8", "Figure 8: composite rewards (Eq. 18-19): (a) MGU and (b) ILD against NDCG@5, with SFT",
               points=(*(Point("bigrec", (), p, "SFT") for p in ("a", "b")),
                       *(Point("blade_n", _blade() if lam == 0 else _blade(reward=r, lam=lam), p, "BLADE-N", lam)
                         for p, r in (("a", "fair"), ("b", "div")) for lam in LAMBDAS))),
    # sft_align: the control row (SFT continued on static BoN's alignment windows, same steps and sequences)
    Experiment("table1", "Table 1: NDCG@5 and inference cost of SFT, inference-time BoN, BoN alignment and BLADE, "
               "with the SFT + alignment-data control",
               points=tuple(Point(m) for m in ("bigrec", "bon_inference", "bon_static", "blade_n", "blade_r",
                                               "sft_align")),
               datasets=ALL_DATASETS, table=True),
    # "all" is every method of the main comparison; the tau-searched BLADE-N (4 trainings) is named (in_all False)
    Experiment("table3", "Table 3: every method on every dataset", points=(Point("all"), Point("blade_n_tau")),
               datasets=ALL_DATASETS, table=True),
    Experiment("paper", "every table and figure of the paper",
               parts=("table1", "table3", "fig4", "fig5", "fig6", "fig7", "fig8")),
)}


def get_experiment(name: str) -> Experiment:
    """The experiment called `name`; an unknown name raises a UserError listing the valid ones."""
    if name not in EXPERIMENTS:
        raise unknown_name("experiment", name, EXPERIMENTS)
    return EXPERIMENTS[name]


def components(name: str) -> list[Experiment]:
    """The experiments `name` stands for: itself, or its parts (``paper``)."""
    e = get_experiment(name)
    return [get_experiment(p) for p in e.parts] if e.parts else [e]


def plan_file(name: str, profile: str) -> str:
    """The plan's file name under ``<results_dir>/experiments/``."""
    return f"{name}_{profile}.json"


def run_command(name: str, profile: str, datasets, seeds, sets: dict[str, str] | None = None,
                results_dir: str | None = None) -> str:
    """The command that (re)makes an experiment's runs, as `report` prints it for missing runs (every value quoted
    for the shell: a folder with spaces stays one argument; the committed reference needs --into-reference)."""
    q = shlex.quote
    cmd = (f"python -m benchmark run --experiment {q(name)} --profile {q(profile)} --datasets {q(','.join(datasets))} "
           f"--seeds {' '.join(str(s) for s in seeds)}")
    cmd += "".join(f" --set {q(f'{k}={v}')}" for k, v in (sets or {}).items())
    if results_dir and Path(results_dir).resolve() in (Path(REFERENCE_DIR).resolve(), PROJECT / REFERENCE_DIR):
        return cmd + " --into-reference"  # (it names the folder; --results-dir beside it would be redundant)
    return cmd + (f" --results-dir {q(str(results_dir))}" if results_dir and results_dir != "results/runs" else "")
