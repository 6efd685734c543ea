"""Figures 4-8 from fixture records and plans built from the real experiment specs: each renders (PNG + PDF) and holds
the expected series, read back from the matplotlib objects; missing runs skip a figure with one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.container import BarContainer

from benchmark.experiments import EXPERIMENTS, GROUP_SIZES, LAMBDAS, TAUS
from benchmark.reporting import fig4, fig5, fig6, fig7, fig8, plotting, render_all
from benchmark.reporting.common import Inputs, planned_runs
from benchmark.records import load_plans, load_records
from benchmark.records import write_plan

SEEDS = (0, 1)
STEPS = (0, 16, 32)


def value(row: dict, seed: int, metric: str) -> float:
    """A fixture metric: distinct per series, x and seed (seed 1 is 0.01 above seed 0)."""
    base = {"recall@5": 0.10, "ndcg@5": 0.20, "mgu": 0.30, "ild": 0.40}[metric]
    series = {"No Prior": -0.05, "SFT": -0.08, "τ = 0 (static)": -0.02}.get(row["series"], 0.0)
    x = row["x"] or 0.0
    return base + series + 0.001 * x + 0.01 * seed


def write(root: Path, name: str, profile: str = "cpu", datasets=("cds",), skip: set | None = None) -> dict:
    """The plan of experiment `name` (as `run --experiment` writes it) and a record per planned run, except the
    (series, x, seed) in `skip` on the first dataset. Points of one method and config share their runs, as in a real
    plan. Returns the plan."""
    exp = EXPERIMENTS[name]
    plan = {"experiment": name, "output": exp.output, "profile": profile, "datasets": {}}
    for d in datasets:
        rows = []
        config_index = {}
        for p in exp.points:
            i = config_index.setdefault((p.method, p.sets), len(config_index))
            for seed in SEEDS:
                row = {"run_id": f"{name}-{d}-{i}-{seed}", "method": p.method, "dataset": d, "seed": seed,
                       "panel": p.panel, "series": p.series, "x": p.x}
                rows.append(row)
                if d == datasets[0] and (p.series, p.x, seed) in (skip or set()):
                    continue
                metrics = {m: value(row, seed, m) for m in ("recall@5", "ndcg@5", "mgu", "ild")}
                curve = [{"step": s, **{m: v + s / 1000 for m, v in metrics.items()}} for s in STEPS]
                rec = {"run_id": row["run_id"], "method": p.method, "display_name": p.method, "category": "ours",
                       "dataset": d, "profile": profile, "seed": seed, "metrics": metrics, "curve": curve,
                       "metrics_valid": metrics, "n_test": 4, "n_valid": 4,
                       "config": {"method": dict(p.sets)}, "oracle": False, "role": "",
                       "timings": {"fit_s": 1.0, "recommend_s": 1.0}, "created": "2026"}
                path = root / d / p.method / f"{row['run_id']}.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps(rec))
        plan["datasets"][d] = {"command": f"python -m benchmark run --experiment {name} --datasets {d}",
                               "created": "2026", "runs": rows}
    write_plan(root, plan)
    return plan


def pairs_of(root: Path, name: str, dataset: str = "cds"):
    recs = load_records(root)
    inp = Inputs("cpu", recs, [], {r["run_id"]: r for r in recs}, {p["experiment"]: p for p in load_plans(root)})
    return dict(x for x in planned_runs(inp, name) if isinstance(x, tuple))[dataset]


def data(line) -> tuple[np.ndarray, np.ndarray]:
    """A line's (x, y) as floats (errorbar keeps object arrays)."""
    return np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)


def mean(row_like: dict, metric: str) -> float:
    return float(np.mean([value(row_like, s, metric) for s in SEEDS]))


def test_fig4_curves_and_tau_sensitivity(tmp_path):
    write(tmp_path, "fig4")
    fig = fig4.draw("cds", pairs_of(tmp_path, "fig4"))
    a, b = fig.axes
    lines = {ln.get_label(): ln for ln in a.get_lines()}
    assert set(lines) == {"τ = 0 (static)", "τ = 0.3 (BLADE)"}
    x, y = data(lines["τ = 0 (static)"])
    assert list(x) == list(STEPS)
    static = mean({"series": "τ = 0 (static)", "x": None}, "recall@5")
    np.testing.assert_allclose(y, [static + s / 1000 for s in STEPS])
    assert len(a.collections) == 2  # one ± std band per series
    x, y = data(b.get_lines()[0])
    assert list(x) == list(TAUS)
    np.testing.assert_allclose(y, [mean({"series": "BLADE-N", "x": t}, "recall@5") for t in TAUS])
    assert a.get_ylabel() == "align-valid Recall@5" and b.get_xlabel() == "τ"


def test_fig5_metrics_against_group_size(tmp_path):
    write(tmp_path, "fig5")
    fig = fig5.draw("cds", pairs_of(tmp_path, "fig5"))
    for ax, metric in zip(fig.axes, ("ndcg@5", "recall@5")):
        x, y = data(ax.get_lines()[0])
        assert list(x) == list(GROUP_SIZES)
        np.testing.assert_allclose(y, [mean({"series": "BLADE-N", "x": g}, metric) for g in GROUP_SIZES])
        assert ax.get_xscale() == "log"


def test_fig6_bars_and_relative_improvement(tmp_path):
    write(tmp_path, "fig6")
    fig = fig6.draw("cds", pairs_of(tmp_path, "fig6"))
    ax, twin = fig.axes
    blade, no_prior = [c for c in ax.containers if isinstance(c, BarContainer)]  # in legend order
    want_b = [mean({"series": "BLADE", "x": g}, "recall@5") for g in GROUP_SIZES]
    want_n = [mean({"series": "No Prior", "x": g}, "recall@5") for g in GROUP_SIZES]
    np.testing.assert_allclose([p.get_height() for p in blade.patches], want_b)
    np.testing.assert_allclose([p.get_height() for p in no_prior.patches], want_n)
    gain = twin.get_lines()[0]
    np.testing.assert_allclose(data(gain)[1], [100 * (b - n) / n for b, n in zip(want_b, want_n)])
    assert twin.get_ylabel() == "relative improvement (%)"
    assert [t.get_text() for t in ax.get_xticklabels()] == [str(g) for g in GROUP_SIZES]
    assert fig.get_size_inches()[0] == pytest.approx(3.3)  # one column


def test_fig7_recall_and_mgu_against_step(tmp_path):
    write(tmp_path, "fig7")
    fig = fig7.draw("cds", pairs_of(tmp_path, "fig7"))
    for ax, metric in zip(fig.axes, ("recall@5", "mgu")):
        x, y = data(ax.get_lines()[0])
        assert list(x) == list(STEPS)
        np.testing.assert_allclose(y, [mean({"series": "R = −MGU", "x": None}, metric) + s / 1000 for s in STEPS])
    assert "lower is better" in fig.axes[1].get_ylabel()


def test_fig8_tradeoffs_with_the_sft_point(tmp_path):
    write(tmp_path, "fig8")
    fig = fig8.draw("cds", pairs_of(tmp_path, "fig8"))
    for ax, metric in zip(fig.axes, ("mgu", "ild")):
        sft = next(ln for ln in ax.get_lines() if ln.get_marker() == "*")
        np.testing.assert_allclose(data(sft), [[mean({"series": "SFT", "x": None}, "ndcg@5")],
                                               [mean({"series": "SFT", "x": None}, metric)]])
        blade = next(ln for ln in ax.get_lines() if ln.get_marker() == "o")
        np.testing.assert_allclose(data(blade), [[mean({"series": "BLADE-N", "x": lam}, "ndcg@5") for lam in LAMBDAS],
                                                 [mean({"series": "BLADE-N", "x": lam}, metric) for lam in LAMBDAS]])
        assert [t.get_text() for t in ax.texts] == [f"λ={lam:g}" for lam in LAMBDAS]
    assert fig.axes[0].get_ylabel() == "test MGU (lower is better)"


def test_fig8_companion_tests_each_point_against_sft(tmp_path):
    write(tmp_path, "fig8")
    # per-window predictions: users u0..u3 at the record's value + 0, 0.1, 0.2, 0.3 (two windows for u3), so every
    # user's point - SFT difference is the same constant: the CI collapses on it and p is below the resolution
    for path in tmp_path.rglob("*.json"):
        if "experiments" in path.parts:
            continue
        rec = json.loads(path.read_text())
        rows = [{"user": f"u{min(i, 3)}", "metrics": {m: v + 0.1 * min(i, 3) for m, v in rec["metrics"].items()}}
                for i in range(5)]
        path.with_suffix(".predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        path.write_text(json.dumps({**rec, "predictions_file": path.with_suffix(".predictions.jsonl").name}))
    md, tex = fig8.tests("cds", pairs_of(tmp_path, "fig8"))
    rows = {tuple(c.strip() for c in ln.strip("|").split("|")[:3]): [c.strip() for c in ln.strip("|").split("|")]
            for ln in md.splitlines() if ln.startswith("| (")}
    assert list(rows) == [("(a)", "SFT", ""), ("(a)", "BLADE-N (R = NDCG)", "0"),
                          *((("(a)", "BLADE-N (R_fair)", f"{lam:g}")) for lam in LAMBDAS[1:]),
                          ("(b)", "SFT", ""), ("(b)", "BLADE-N (R = NDCG)", "0"),
                          *((("(b)", "BLADE-N (R_div)", f"{lam:g}")) for lam in LAMBDAS[1:])]
    # the tables print record means ± std over seeds 0, 1 (0.01 apart: std 0.01 / sqrt(2)): SFT NDCG@5 = 0.20 - 0.08
    # + 0.005 = 0.1250, MGU 0.2250
    assert rows[("(a)", "SFT", "")][3:] == ["0.1250 ± 0.0071", "", "", "MGU", "0.2250 ± 0.0071", "", ""]
    # BLADE-N at λ 0.5 against SFT: +0.08 + 0.001 * 0.5 on every metric, for every user, in both seeds (seed s of
    # BLADE-N paired with seed s of SFT): no spread over seeds or users, so the two-level CI collapses too
    assert rows[("(b)", "BLADE-N (R_div)", "0.5")][3:] == [
        "0.2055 ± 0.0071", "+0.0805 ± 0.0000 [+0.0805, +0.0805]", "< 0.002", "ILD", "0.4055 ± 0.0071",
        "+0.0805 ± 0.0000 [+0.0805, +0.0805]", "< 0.002"]
    assert tex.isascii() and r"$\lambda$" in tex
    # every difference is constant over seeds and users, so every standard error, and the effect each column can
    # detect, is 0; the line is in both formats
    mde = "minimum detectable effect at 80 % power: NDCG@5 ±0.0000, MGU ±0.0000, ILD ±0.0000 (CDs)"
    assert f"> {mde}" in md and "minimum detectable effect" in tex
    # records without predictions: the means stay, the tests are dashes, the detectable effect is not available
    write(tmp_path / "bare", "fig8")
    md, _ = fig8.tests("cds", pairs_of(tmp_path / "bare", "fig8"))
    line = next(ln for ln in md.splitlines() if ln.startswith("| (a)     | BLADE-N (R_fair)"))
    assert [c.strip() for c in line.strip("|").split("|")][4:6] == ["—", "—"]
    assert "> minimum detectable effect at 80 % power: not available (CDs: no point has predictions" in md


def test_point_labels_of_close_points_do_not_overlap():
    with plotting.style():
        fig, (ax,) = plotting.new_figure(plotting.COLUMN_WIDTH)
        ax.plot([0, 1], [0, 1])
        fig.canvas.draw()
        # four labels on one point: the four corner places, each box clear of the others, each anchored at its point
        anns = plotting.label_points(fig, ax, [(0.5, 0.5, f"λ={v}") for v in (0.1, 0.3, 0.5, 1)])
    renderer = fig.canvas.get_renderer()
    boxes = [a.get_window_extent(renderer) for a in anns]
    assert [a.get_text() for a in ax.texts] == ["λ=0.1", "λ=0.3", "λ=0.5", "λ=1"]  # failed tries removed
    assert [tuple(a.xyann) for a in anns] == list(plotting.LABEL_OFFSETS[:4])
    assert not any(boxes[i].overlaps(boxes[j]) for i in range(4) for j in range(i))
    assert {tuple(a.xy) for a in anns} == {(0.5, 0.5)}


def test_report_renders_every_figure_as_png_and_pdf(tmp_path):
    for name in ("fig4", "fig5", "fig6", "fig7", "fig8"):
        write(tmp_path / "res", name)
    report = render_all(tmp_path / "res", tmp_path / "out")
    names = {p.name for p in report.written}
    for name in ("fig4", "fig5", "fig6", "fig7", "fig8"):
        assert {f"{name}_cpu_cds.png", f"{name}_cpu_cds.pdf"} <= names
        assert (tmp_path / "out" / f"{name}_cpu_cds.png").read_bytes()[:4] == b"\x89PNG"
    assert [x.split(" ")[0] for x in report.skipped] == ["table1", "table2", "table3"]  # figure runs: no table rows
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "![Figure 6: the static prior at small G](fig6_cpu_cds.png)" in readme
    fig6_part = readme.split("fig6_cpu_cds.png)")[1]
    assert re.search(r"Records: 16 runs; profile cpu .*; seeds 0, 1;", fig6_part)  # fig6: 8 points x 2 seeds


def test_missing_runs_skip_the_figure_with_one_line(tmp_path):
    write(tmp_path / "res", "fig5", skip={("BLADE-N", 8, 1)})
    write(tmp_path / "res", "fig6", datasets=("cds", "steam"), skip={("No Prior", 2, 0), ("No Prior", 2, 1)})
    report = render_all(tmp_path / "res", tmp_path / "out")
    names = {p.name for p in report.written}
    assert not any(n.startswith("fig5_") for n in names)  # never drawn from partial data
    skipped = {line.split(" ")[0]: line for line in report.skipped}
    assert skipped["fig5"] == ("fig5 (cpu profile): CDs: 1 of 8 runs missing: BLADE-N, G = 8 (seed 1). Make them "
                               "with: python -m benchmark run --experiment fig5 --datasets cds")
    assert skipped["fig4"].startswith("fig4 (cpu profile): no runs planned for the cpu profile. Make them with: "
                                      "python -m benchmark run --experiment fig4 --profile cpu")
    # fig6: Steam complete is drawn, CDs is skipped
    assert "fig6_cpu_steam.png" in names and "fig6_cpu_cds.png" not in names
    assert skipped["fig6"].startswith("fig6 (cpu profile): CDs: 2 of 16 runs missing: No Prior, G = 2 (seeds 0, 1).")


def test_records_without_the_curve_metric_are_named(tmp_path):
    write(tmp_path / "res", "fig7")
    for path in (tmp_path / "res").glob("cds/*/*.json"):
        rec = json.loads(path.read_text())
        rec["curve"] = [{k: v for k, v in p.items() if k != "mgu"} for p in rec["curve"]]
        path.write_text(json.dumps(rec))
    report = render_all(tmp_path / "res", tmp_path / "out")
    assert [x for x in report.skipped if x.startswith("fig7")] == [
        "fig7 (cpu profile): CDs: the records fig7-cds-0-0, fig7-cds-0-1 carry no training curve of recall@5, mgu "
        "(recorded before the curve logged it, or eval_every = 0); delete them and run the experiment again"]


def test_plotted_values_are_read_back_from_the_figures(tmp_path):
    # fixture seeds 0 and 1 differ by 0.01: every std is 0.01 / sqrt(2) = 0.0071
    for name in ("fig5", "fig6", "fig8"):
        write(tmp_path, name)
    table = plotting.figure_points(fig5.draw("cds", pairs_of(tmp_path, "fig5")))
    assert table.splitlines()[:3] == ["| panel | series | x | y |", "|---|---|---|---|",
                                      "| (a) NDCG@5 (CDs) | BLADE-N | 2 | 0.2070 ± 0.0071 |"]  # 0.20 + 0.002 + 0.005
    assert "| (b) Recall@5 (CDs) | BLADE-N | 16 | 0.1210 ± 0.0071 |" in table
    table = plotting.figure_points(fig6.draw("cds", pairs_of(tmp_path, "fig6")))
    assert "| BLADE vs No Prior (CDs) | BLADE | 2 | 0.1070 ± 0.0071 |" in table  # bars: x from the tick labels
    assert "| BLADE vs No Prior (CDs) | No Prior | 2 | 0.0570 ± 0.0071 |" in table
    assert "| relative improvement (%) | relative improvement | 2 | 87.7193 |" in table  # 100 (0.107-0.057) / 0.057
    table = plotting.figure_points(fig8.draw("cds", pairs_of(tmp_path, "fig8")))
    assert "| (a) MGU vs accuracy (CDs) | SFT | 0.1250 ± 0.0071 | 0.2250 ± 0.0071 |" in table  # x: NDCG@5 ± std
    # each BLADE point is named by the λ annotated at it
    assert [ln.split(" | ")[1] for ln in table.splitlines() if ln.startswith("| (b)")] == [
        "SFT", *(f"BLADE-N (R_div) λ={lam}" for lam in ("0", "0.1", "0.3", "0.5", "1"))]


def test_readme_embeds_the_plotted_values(tmp_path):
    write(tmp_path / "res", "fig5")
    render_all(tmp_path / "res", tmp_path / "out")
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "<details><summary>Plotted values</summary>" in readme
    assert "| (a) NDCG@5 (CDs) | BLADE-N | 2 | 0.2070 ± 0.0071 |" in readme
