"""Tables rendered from fake records: marks, mean ± std, CIs, notes, LaTeX escapes, de-duplication."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.errors import UserError
from reports import load_records, render_all

# Four test windows: u1 has two. Every window's value is base + offset, so a run's window mean is base + 0.01.
WINDOWS = [("u1", 0.00), ("u1", 0.02), ("u2", -0.01), ("u3", 0.03)]
METRICS = ("recall@3", "ndcg@3", "recall@5", "ndcg@5")
STATS = {"users": 1234, "items": 56, "interactions": 78901, "windows": {"sft": 10, "align": 4, "valid": 2, "test": 4}}


def make_run(root: Path, method, display, category, dataset, seed, base, created="2026", run_id=None, profile="cpu"):
    """Write a record and its predictions; each window's value is base + its offset, for all four metrics."""
    run_id = run_id or f"{method}-{dataset}-{seed}"
    d = root / dataset / method
    d.mkdir(parents=True, exist_ok=True)
    rows = [
        {"user": u, "items": [1, 2], "target": [2], "metrics": {m: base + off for m in METRICS}} for u, off in WINDOWS
    ]
    (d / f"{run_id}.predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = {
        "run_id": run_id, "method": method, "display_name": display, "category": category, "dataset": dataset,
        "profile": profile, "seed": seed, "config": {}, "created": created,
        "metrics": {m: base + 0.01 for m in METRICS}, "timings": {"fit_s": 1.0, "recommend_s": 1.0}, "n_test": 4,
        "data_hash": "h1", "data_stats": STATS, "provenance": {}, "predictions_file": f"{run_id}.predictions.jsonl",
    }
    (d / f"{run_id}.json").write_text(json.dumps(record))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    for seed, shift in ((0, 0.0), (1, 0.02)):
        make_run(root, "sdpo", "S-DPO", "llm", "cds", seed, 0.10 + shift)  # window means 0.11, 0.13
        make_run(root, "blade_n", "BLADE-N", "ours", "cds", seed, 0.20 + shift)  # 0.21, 0.23
    make_run(root, "d3", "D³", "inference", "cds", 0, 0.05)  # 0.06, one seed
    make_run(root, "bon_inference", "BoN (inference)", "inference", "cds", 0, 0.50)  # 0.51, the oracle
    make_run(root, "sdpo", "S-DPO", "llm", "steam", 0, 0.30)
    make_run(root, "blade_n", "BLADE-N", "ours", "steam", 0, 0.10)
    return root


def render(results: Path, tmp_path: Path) -> dict[str, str]:
    paths = render_all(results, tmp_path / "out")
    return {p.name: p.read_text() for p in paths}


def test_files_written(results, tmp_path):
    out = render(results, tmp_path)
    # the BoN-family records (blade_n here) also give Table 1 and the paired significance tests
    assert sorted(out) == ["significance_cpu.md", "significance_cpu.tex", "table1_cpu.md", "table1_cpu.tex",
                           "table2_cpu.md", "table2_cpu.tex", "table3_cpu.md", "table3_cpu.tex"]


def test_table3_markdown(results, tmp_path):
    md = render(results, tmp_path)["table3_cpu.md"]
    lines = md.splitlines()
    # CDs before Steam; rows by category: llm (S-DPO), inference (BoN, D³ by name), ours (BLADE-N).
    assert "CDs R@3" in lines[2] and lines[2].index("CDs R@3") < lines[2].index("Steam R@3")
    order = [ln.split("|")[1].strip() for ln in lines[4:8]]
    assert order == ["S-DPO", "BoN (inference)", "D³", "BLADE-N"]
    # mean ± sample std over 2 seeds: mean(0.21, 0.23) = 0.22, std = 0.02/sqrt(2) = 0.0141. Best is bold, the
    # oracle (0.51) is not ranked, so S-DPO (0.12) is second.
    assert "**0.2200** ± 0.0141 [" in md
    assert "<u>0.1200</u> ± 0.0141 [" in md
    assert "**0.5100**" not in md and "<u>0.5100</u>" not in md
    # one seed: no std, but a CI
    assert re.search(r"\| 0\.0600 \[0\.\d{4}, 0\.\d{4}\]\s+\|", md)
    # Steam: S-DPO 0.31 best, BLADE-N 0.11 second.
    assert "**0.3100** [" in md and "<u>0.1100</u> [" in md


def test_table3_ci_contains_the_mean(results, tmp_path):
    md = render(results, tmp_path)["table3_cpu.md"]
    # D³ has one seed; its per-user means weighted by windows give back the window mean 0.06 exactly.
    lo, hi = map(float, re.search(r"0\.0600 \[(0\.\d{4}), (0\.\d{4})\]", md).groups())
    assert lo <= 0.06 <= hi and lo < hi


def test_table3_notes(results, tmp_path):
    md = render(results, tmp_path)["table3_cpu.md"]
    assert "BoN (inference) (`bon_inference`): inference-time BoN, an oracle upper bound" in md
    assert "Missing: Steam: BoN (inference), D³." in md
    # most cells have seed 0 only; the two-seed cells are named
    assert "Seeds: 0 (1 seed) for most cells" in md and "BLADE-N/CDs: 0, 1 (2 seeds)" in md


def test_table3_latex(results, tmp_path):
    tex = render(results, tmp_path)["table3_cpu.tex"]
    assert r"D$^{3}$" in tex and "D³" not in tex
    assert "S-DPO &" in tex
    assert r"\textbf{0.2200} $\pm$ 0.0141" in tex
    assert r"\underline{0.1200} $\pm$ 0.0141" in tex
    assert r"\multicolumn{4}{c}{CDs} & \multicolumn{4}{c}{Steam}" in tex
    assert r"\texttt{bon\_inference}" in tex and "oracle upper bound" in tex
    assert r"95 \% CI" in tex and "±" not in tex
    assert tex.count(r"\midrule") == 3  # header rule + 2 category boundaries (llm | inference | ours)


def test_table2(results, tmp_path):
    out = render(results, tmp_path)
    md, tex = out["table2_cpu.md"], out["table2_cpu.tex"]
    assert re.search(r"\| CDs\s+\| 1,234\s+\| 56\s+\| 78,901\s+\| 10\s+\| 4\s+\| 2\s+\| 4\s+\|", md)
    assert "Steam" in md
    assert r"CDs & 1{,}234 & 56 & 78{,}901 & 10 & 4 & 2 & 4 \\" in tex


def test_deterministic(results, tmp_path):
    assert render(results, tmp_path) == render(results, tmp_path)


def test_duplicate_runs_keep_newest_and_warn(results, tmp_path):
    # An older run of the same (method, dataset, profile, seed) with a different config: ignored, with a warning.
    make_run(results, "blade_n", "BLADE-N", "ours", "cds", 0, 0.90, created="2025", run_id="old")
    with pytest.warns(UserWarning, match="keeping the newest blade_n-cds-0.*ignoring old"):
        md = render(results, tmp_path)["table3_cpu.md"]
    assert "**0.2200** ± 0.0141" in md


def test_profiles_get_separate_tables(results, tmp_path):
    make_run(results, "sdpo", "S-DPO", "llm", "cds", 0, 0.4, profile="smoke", run_id="smoke-run")
    out = render(results, tmp_path)
    assert "table3_smoke.md" in out and "**0.4100** [" in out["table3_smoke.md"]
    assert "0.4100" not in out["table3_cpu.md"]


def test_record_without_predictions_omits_ci_with_a_note(results, tmp_path):
    rec_path = results / "cds" / "d3" / "d3-cds-0.json"
    rec = json.loads(rec_path.read_text())
    del rec["predictions_file"]  # the record names no predictions file
    rec_path.write_text(json.dumps(rec))
    md = render(results, tmp_path)["table3_cpu.md"]
    assert re.search(r"\| 0\.0600\s+\|", md)
    assert "No predictions file (CI omitted): D³/CDs." in md


def test_missing_predictions_file_is_an_error_naming_it(results, tmp_path):
    # the record names a predictions file that is gone: an error, never a table silently without its CI
    (results / "cds" / "d3" / "d3-cds-0.predictions.jsonl").unlink()
    with pytest.raises(UserError, match="missing predictions file .*d3-cds-0.predictions.jsonl"):
        render_all(results, tmp_path / "out")


def test_malformed_record_is_named(results, tmp_path):
    bad = results / "cds" / "sdpo" / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="broken.json"):
        load_records(results)
    bad.write_text(json.dumps({"run_id": "x"}))
    with pytest.raises(UserError, match="broken.json.*missing keys"):
        render_all(results, tmp_path / "out")


def test_no_records(tmp_path):
    with pytest.raises(UserError, match="no run records"):
        render_all(tmp_path, tmp_path / "out")


def test_reports_import_no_torch():
    code = "import sys, reports; bad = [m for m in ('torch', 'methods', 'runners') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def _grpo_record(method, tau, seed, grads, zero_spread, above, valid):
    log = [{"step": i + 1, "grad_norm": g, "frac_zero_spread": z, "frac_zero_spread_proxy": z,
            "frac_above_ref_max": above, "kl": 0.1} for i, (g, z) in enumerate(zip(grads, zero_spread))]
    return {"run_id": f"{method}{seed}", "method": method, "display_name": method, "dataset": "steam", "seed": seed,
            "config": {"method": {"tau": tau, "M": 64}}, "metrics_valid": {"ndcg@5": valid},
            "stats": {"train_log": log, "grpo_seconds": 10.0,
                      "valid_curve": [{"step": 0, "ndcg@5": 0.1}, {"step": 8, "ndcg@5": valid}]}}


def test_grpo_diagnostics_hand_computed():
    from reports.grpo import _decay, curve_table, diagnostics_table

    grads = [4, 4, 2, 2, 1, 1, 1, 1]  # first quarter mean 4, last quarter mean 1
    zs = [1, 1, 1, 1, 0, 0, 0, 0]
    recs = [_grpo_record("bon_static", 0.0, s, grads, zs, 0.5, v) for s, v in ((0, 0.1), (1, 0.3))]
    recs.append(_grpo_record("blade_n", 0.3, 0, [1] * 8, [0] * 8, 0.25, 0.2))
    assert _decay(recs[0]) == pytest.approx(0.25)
    assert _decay(_grpo_record("x", 0, 0, [1, 2, 3], [0] * 3, 0, 0)) is None  # < 4 steps: no quarter
    md, tex = diagnostics_table(recs, "# t")
    rows = {line.split("|")[2].strip(): [c.strip() for c in line.split("|")[1:-1]]
            for line in md.splitlines() if line.startswith("| steam")}
    static = rows["bon_static"]
    assert static[2] == "0.0" and static[3] == "0,1"  # tau is the varied column; M is not (same everywhere)
    assert static[4] == "0.2000 ± 0.1414"  # mean and sample std of 0.1 and 0.3
    assert static[5] == "0.1000 → 0.2000"
    assert static[6] == "0.500 → 0.500"  # 8 steps: first 8 and last 8 are the same 8
    assert static[8] == "0.500" and static[10] == "0.25"
    assert rows["blade_n"][-1] == "—"  # no validation predictions: no paired test
    curves, _ = curve_table(recs, "# c")
    assert "| steam     | bon_static | 0.1000   | 0.2000   |" in curves
    assert "\\hline" in tex or "\\toprule" in tex
