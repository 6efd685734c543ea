"""Tables rendered from fixture records: golden Markdown and LaTeX, marks and markers, notes, flags instead of method
names, de-duplication, the README, errors.

Golden files live in tests/golden/; after an intended change, regenerate them with
``UPDATE_GOLDEN=1 python -m pytest tests/test_reports.py`` and review the diff."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.errors import UserError
from benchmark.reporting import load_records, render_all
from benchmark.reporting.render import compute
from benchmark.reporting.summary import run_summary

GOLDEN = Path(__file__).resolve().parent / "golden"
# Four test windows: u1 has two. Every window's value is base + offset, so a run's window mean is base + 0.01.
WINDOWS = [("u1", 0.00), ("u1", 0.02), ("u2", -0.01), ("u3", 0.03)]
METRICS = ("recall@3", "ndcg@3", "recall@5", "ndcg@5")
STATS = {"users": 1234, "items": 56, "interactions": 78901, "windows": {"sft": 10, "align": 4, "valid": 2, "test": 4}}


def make_run(root: Path, method, display, category, dataset, seed, base, created="2026", run_id=None, profile="cpu",
             offsets=None, **extra):
    """Write a record and its predictions; each window's value is base + its offset, for all four metrics. Records
    carry no `oracle`/`role` flags unless given in `extra` (as records written before the flags existed)."""
    run_id = run_id or f"{method}-{dataset}-{seed}"
    d = root / dataset / method
    d.mkdir(parents=True, exist_ok=True)
    offsets = offsets or [off for _, off in WINDOWS]
    rows = [{"user": u, "items": [1, 2], "target": [2], "metrics": {m: base + off for m in METRICS}}
            for (u, _), off in zip(WINDOWS, offsets)]
    (d / f"{run_id}.predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = {
        "run_id": run_id, "method": method, "display_name": display, "category": category, "dataset": dataset,
        "profile": profile, "seed": seed, "config": {"profile": {"model": "scratch", "item_repr": "item_token"}},
        "created": created, "metrics": {m: base + sum(offsets) / 4 for m in METRICS},
        "metrics_valid": {m: base + sum(offsets) / 4 for m in METRICS}, "n_valid": 4,
        "timings": {"fit_s": 1.0, "recommend_s": 1.0 + seed}, "n_test": 4, "data_hash": "h1", "data_stats": STATS,
        "provenance": {"git_sha": "0123456789ab", "git_dirty": False},
        "predictions_file": f"{run_id}.predictions.jsonl",
        **extra,
    }
    (d / f"{run_id}.json").write_text(json.dumps(record))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    for seed, shift in ((0, 0.0), (1, 0.02)):
        make_run(root, "sdpo", "S-DPO", "llm", "cds", seed, 0.10 + shift)  # window means 0.11, 0.13
        make_run(root, "blade_n", "BLADE-N", "ours", "cds", seed, 0.20 + shift)  # 0.21, 0.23
        make_run(root, "bigrec", "BIGRec", "llm", "cds", seed, 0.05)  # 0.06
    make_run(root, "d3", "D³", "inference", "cds", 0, 0.05)  # 0.06, one seed
    make_run(root, "bon_inference", "BoN (oracle) N=4", "inference", "cds", 0, 0.50)  # 0.51, the oracle
    # BLADE-R on CDs: 0.12 = S-DPO's mean, and per user 0, +0.06, -0.06 from it: a tie for second, no marker
    make_run(root, "blade_r", "BLADE-R", "ours", "cds", 0, 0.12, offsets=[0.05, -0.05, 0.04, -0.04])
    make_run(root, "sdpo", "S-DPO", "llm", "steam", 0, 0.30)
    # BLADE-N on Steam: 0.11 on average but worse than S-DPO (0.31) for every user: a significant ‡
    make_run(root, "blade_n", "BLADE-N", "ours", "steam", 0, 0.10)
    return root


def render(results: Path, tmp_path: Path) -> dict[str, str]:
    report = render_all(results, tmp_path / "out")
    return {p.name: p.read_text() for p in report.written if p.suffix in (".md", ".tex")}


def test_files_written(results, tmp_path):
    out = render(results, tmp_path)
    assert sorted(out) == ["README.md", "claims_cpu.md", "claims_cpu.tex", "significance_cpu.md",
                           "significance_cpu.tex", "table1_cpu.md", "table1_cpu.tex", "table2_cpu.md",
                           "table2_cpu.tex", "table3_cpu.md", "table3_cpu.tex", "table3_cpu_ci.md", "table3_cpu_ci.tex"]


@pytest.mark.parametrize("name", ["table1_cpu.md", "table1_cpu.tex", "table2_cpu.md", "table2_cpu.tex",
                                  "table3_cpu.md", "table3_cpu.tex", "table3_cpu_ci.md", "table3_cpu_ci.tex",
                                  "significance_cpu.md", "significance_cpu.tex", "claims_cpu.md", "claims_cpu.tex"])
def test_golden(results, tmp_path, name):
    text = render(results, tmp_path)[name]
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), f"{name} differs from tests/golden/{name} (UPDATE_GOLDEN=1 to regenerate)"


def _cells(md: str, label: str) -> list[str]:
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {label} "))
    return [c.strip() for c in line.strip("|").split("|")]


def test_table3_mean_and_std_per_cell_marks_and_markers(results, tmp_path):
    md = render(results, tmp_path)["table3_cpu.md"]
    lines = md.splitlines()
    assert "CDs R@3" in lines[2] and lines[2].index("CDs R@3") < lines[2].index("Steam R@3")
    # rows by category: llm (BIGRec, S-DPO), inference (BoN, D³ by name), ours (BLADE-N)
    assert [ln.split("|")[1].strip() for ln in lines[4:10]] == ["BIGRec", "S-DPO", "BoN (oracle) N=4", "D³",
                                                                 "BLADE-N", "BLADE-R"]
    blade, sdpo, oracle = _cells(md, "BLADE-N"), _cells(md, "S-DPO"), _cells(md, "BoN (oracle) N=4")
    # CDs: BLADE-N 0.22 best (bold) and better than the best baseline (S-DPO) for every user: †. S-DPO and BLADE-R
    # tie at 0.12 for second; BLADE-R (seed 0 only) against S-DPO's seed 0 is +0.01, far from significant: no marker.
    # The oracle (0.51) is never ranked.
    # CDs has two seeds for BLADE-N and S-DPO (std 0.0141) and BIGRec (0.0000); a one-seed cell has no std
    assert blade[1:5] == ["**0.2200** ± 0.0141†"] * 4 and sdpo[1:5] == ["<u>0.1200</u> ± 0.0141"] * 4
    assert oracle[1] == "0.5100" and _cells(md, "BIGRec")[1] == "0.0600 ± 0.0000"
    assert _cells(md, "BLADE-R")[1:5] == ["<u>0.1200</u>"] * 4
    # Steam: S-DPO best, BLADE-N second and worse for every user: ‡
    assert sdpo[5] == "**0.3100**" and blade[5] == "<u>0.1100</u>‡"
    assert "[" not in "".join(lines[4:10])  # the CIs live in the companion
    assert max(len(ln) for ln in lines[:10]) < 250


def test_table3_companion_has_spread_cis_and_tests(results, tmp_path):
    md = render(results, tmp_path)["table3_cpu_ci.md"]
    # mean ± sample std over 2 seeds: mean(0.21, 0.23) = 0.22, std = 0.02/sqrt(2) = 0.0141, and a CI
    assert re.search(r"\| CDs\s+\| BLADE-N\s+\| 0, 1\s+\| 0\.2200 ± 0\.0141 \[0\.\d{4}, 0\.\d{4}\]", md)
    # one seed: no std; D³'s per-user means weighted by windows give back the window mean 0.06 inside its CI
    lo, hi = map(float, re.search(r"\| D³\s+\| 0\s+\| 0\.0600 \[(0\.\d{4}), (0\.\d{4})\]", md).groups())
    assert lo <= 0.06 <= hi and lo < hi
    test = next(ln for ln in md.splitlines() if ln.startswith("| Steam     | R@3"))
    assert "BLADE-N" in test and "S-DPO" in test and "-0.2000" in test and "‡" in test
    # BLADE-R has seed 0 only: paired with S-DPO's seed 0 (0.11), S-DPO's seed 1 left out ("1 of 1/2"); per user
    # (weights 2, 1, 1) the differences are +0.01, +0.07, -0.05: +0.01 on the window mean, no marker
    test = next(ln for ln in md.splitlines() if ln.startswith("| CDs       | R@3      | BLADE-R"))
    cells = [c.strip() for c in test.strip(" |").split("|")]
    assert cells[4] == "+0.0100" and float(cells[7]) > 0.05 and cells[8] == "1 of 1/2" and cells[9] == "—"
    # two paired seeds: the difference's std over seeds (0.02 - 0.02 = 0: BLADE-N and S-DPO move together) and SE
    test = next(ln for ln in md.splitlines() if ln.startswith("| CDs       | R@3      | BLADE-N"))
    cells = [c.strip() for c in test.strip(" |").split("|")]
    assert cells[4] == "+0.1000 ± 0.0000" and cells[6] == "0.0000" and cells[8] == "2" and cells[9] == "†"


def test_table3_notes(results, tmp_path):
    md = render(results, tmp_path)["table3_cpu.md"]
    assert "BoN (oracle) N=4 (`bon_inference`): selects with the test target, an oracle upper bound" in md
    assert "Missing: Steam: BIGRec, BoN (oracle) N=4, D³, BLADE-R." in md
    assert "Seeds: 0 (1 seed) for most cells; BIGRec/CDs: 0, 1 (2 seeds); BLADE-N/CDs: 0, 1 (2 seeds)" in md


def test_latex_uses_only_article_and_booktabs(results, tmp_path):
    """What pdflatex needs to compile each table in \\documentclass{article} with \\usepackage{booktabs}: known
    commands only, balanced braces and environments, no raw Unicode, the same number of cells in every row."""
    allowed = {"begin", "end", "centering", "small", "setlength", "tabcolsep", "caption", "toprule", "midrule",
               "bottomrule", "cmidrule", "multicolumn", "textbf", "underline", "texttt", "scriptsize", "footnotesize",
               "par", "smallskip", "medskip", "shortstack", "pm", "geq", "dagger", "ddagger", "times", "tau",
               "lambda", "rightarrow", "textbackslash", "textasciitilde", "textasciicircum", "_", "%", "&", "#",
               "$", "{", "}"}
    for name, tex in render(results, tmp_path).items():
        if not name.endswith(".tex"):
            continue
        assert set(re.findall(r"\\([A-Za-z]+|.)", tex.replace("\\\\", ""))) <= allowed, name
        plain = tex.replace("\\\\", "")  # line breaks, so that \\{ is not read as an escaped brace
        assert plain.count("{") - plain.count(r"\{") == plain.count("}") - plain.count(r"\}"), name
        assert re.findall(r"\\begin\{(\w+\*?)\}", tex) == re.findall(r"\\end\{(\w+\*?)\}", tex)[::-1] or \
            sorted(re.findall(r"\\begin\{(\w+\*?)\}", tex)) == sorted(re.findall(r"\\end\{(\w+\*?)\}", tex)), name
        assert tex.isascii(), name
        for cols, body in re.findall(r"\\begin\{tabular\}\{(\w+)\}(.*?)\\end\{tabular\}", tex, re.S):
            rows = [r for r in body.split("\\\\\n") if "&" in r]
            assert {_width(r) for r in rows} == {len(cols)}, name


def _width(row: str) -> int:
    """The columns a LaTeX table row spans (a \\multicolumn{n} cell counts n)."""
    cells = re.split(r"(?<!\\)&", row)
    return sum(int(m.group(1)) if (m := re.search(r"\\multicolumn\{(\d+)\}", c)) else 1 for c in cells)


def test_latex_compiles_if_a_tex_engine_is_installed(results, tmp_path):
    import shutil

    engine = shutil.which("pdflatex")
    if engine is None:
        pytest.skip("no pdflatex on PATH (the static checks above stand in)")
    out = render(results, tmp_path)
    body = "\n".join(t for n, t in sorted(out.items()) if n.endswith(".tex"))
    doc = tmp_path / "doc.tex"
    doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + body
                   + "\n\\end{document}\n")
    r = subprocess.run([engine, "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:]


def test_flags_not_names_decide(results, tmp_path):
    """A new method needs no edit in reports/: an oracle is an oracle by its record's flag, not by its name."""
    make_run(results, "seer", "Seer", "inference", "cds", 0, 0.9, oracle=True, role="")
    make_run(results, "my_sft", "My SFT", "llm", "steam", 0, 0.2, oracle=False, role="sft")
    out = render(results, tmp_path)
    assert "0.9100" in out["table3_cpu.md"] and "**0.9100**" not in out["table3_cpu.md"]
    assert "Seer (`seer`): selects with the test target" in out["table3_cpu.md"]
    t1 = out["table1_cpu.md"]
    assert "| Seer, oracle " in t1 and "| BoN (oracle) N=4 " in t1  # "oracle" is said once
    steam = t1.split("## Steam")[1]
    assert "| My SFT " in steam and "1.00×" in steam  # the record with role sft is Steam's cost unit


def test_table1_rows_and_cost(results, tmp_path):
    t1 = render(results, tmp_path)["table1_cpu.md"]
    cds = t1.split("## CDs")[1].split("## Steam")[0]
    # SFT first (role sft), then oracles, then alignment categories; S-DPO (llm) and D³ are not Table 1 rows
    labels = [ln.split("|")[1].strip() for ln in cds.splitlines() if ln.startswith("| ") and "Method" not in ln]
    assert labels == ["BIGRec", "BoN (oracle) N=4", "BLADE-N", "BLADE-R"]
    assert "| BIGRec " in cds and "1.50 (1.00–2.00)" in cds and "1.00×" in cds  # recommend_s 1 and 2 over 2 seeds
    assert "No run of the SFT model (role sft) on this dataset" in t1.split("## Steam")[1]


def test_table1_cost_is_robust_to_one_slowed_run_and_counts_tokens(tmp_path):
    """Time is the median over seeds, so one run slowed 150x by a shared machine (5, 5, 760 s) leaves the cost unit
    at 5 s; tokens are the generated tokens relative to the SFT model's (machine-independent)."""
    root = tmp_path / "results"
    for seed, (t_sft, t_bon) in enumerate(((5.0, 20.0), (5.0, 22.0), (760.0, 21.0))):
        make_run(root, "bigrec", "BIGRec", "llm", "cds", seed, 0.05, role="sft",
                 timings={"fit_s": 0.0, "recommend_s": t_sft}, tokens_generated_test=1000)
        make_run(root, "bon_inference", "BoN (oracle) N=4", "inference", "cds", seed, 0.5, oracle=True,
                 timings={"fit_s": 0.0, "recommend_s": t_bon}, tokens_generated_test=4000)
        make_run(root, "blade_n", "BLADE-N", "ours", "cds", seed, 0.2, timings={"fit_s": 9.0, "recommend_s": 6.0})
    t1 = render(root, tmp_path)["table1_cpu.md"]
    assert _cells(t1, "BIGRec")[2:] == ["5.00 (5.00–760.00)", "1.00×", "1.00×"]
    assert _cells(t1, "BoN (oracle) N=4")[2:] == ["21.00 (20.00–22.00)", "4.20×", "4.00×"]
    assert _cells(t1, "BLADE-N")[2:] == ["6.00 (6.00–6.00)", "1.20×", "—"]  # its records name no token count


def test_control_row_is_compared_with_every_aligned_method(tmp_path):
    """A record with role ``control`` (SFT continued on the alignment data, methods/sft_align.py): Table 1 lists it
    after the SFT model, and the significance report tests every aligned row (its config names an alignment subset)
    against it as well as against the SFT model, and the control against the SFT model; Pop is not compared with it.
    Without control records nothing changes (the goldens have none)."""
    root = tmp_path / "results"
    aligned = {"config": {"profile": {"model": "scratch", "item_repr": "item_token"}, "method": {"n_align_train": 8}}}
    for seed, shift in ((0, 0.0), (1, 0.02)):
        make_run(root, "bigrec", "BIGRec", "llm", "cds", seed, 0.05)
        make_run(root, "ctl", "SFT + align data", "llm", "cds", seed, 0.08 + shift, oracle=False, role="control",
                 **aligned)
        make_run(root, "bon_static", "BoN Alignment", "listwise", "cds", seed, 0.10 + shift, **aligned)
        make_run(root, "blade_n", "BLADE-N", "ours", "cds", seed, 0.20 + shift, **aligned)
        make_run(root, "sdpo", "S-DPO", "llm", "cds", seed, 0.12, **aligned)
    make_run(root, "pop", "Pop", "reference", "cds", 0, 0.01)
    out = render(root, tmp_path)
    sig = out["significance_cpu.md"]
    rows = [[c.strip().split(" ± ")[0] for c in ln.split("|")[2:4]] for ln in sig.splitlines()
            if ln.startswith("| CDs")]
    assert rows == [["BLADE-N − BIGRec", "+0.1600"], ["BLADE-N − BoN Alignment", "+0.1000"],
                    ["BLADE-N − SFT + align data", "+0.1200"], ["BoN Alignment − BIGRec", "+0.0600"],
                    ["BoN Alignment − SFT + align data", "+0.0200"], ["SFT + align data − BIGRec", "+0.0400"],
                    ["Pop − BIGRec", "-0.0400"], ["S-DPO − BIGRec", "+0.0700"],
                    ["S-DPO − SFT + align data", "+0.0300"]]
    assert "SFT + align data (role control)" in sig
    t1 = out["table1_cpu.md"]
    labels = [ln.split("|")[1].strip() for ln in t1.splitlines() if ln.startswith("| ") and "Method" not in ln]
    assert labels == ["BIGRec", "SFT + align data", "BoN Alignment", "BLADE-N"]
    assert "SFT + align data (role control)" in t1
    # without the control: the same tests minus those against it, and no note
    for p in (root / "cds" / "ctl").iterdir():
        p.unlink()
    sig = render(root, tmp_path)["significance_cpu.md"]
    assert "SFT + align data" not in sig and "BoN Alignment − BIGRec" in sig and "S-DPO − BIGRec" in sig


def test_deterministic(results, tmp_path):
    assert render(results, tmp_path) == render(results, tmp_path)


def test_readme_embeds_tables_with_provenance_and_skips(results, tmp_path):
    readme = render(results, tmp_path)["README.md"]
    assert "### Table 3: overall performance" in readme and "| BLADE-N " in readme
    assert "[table3_cpu.tex](table3_cpu.tex)" in readme
    assert "Records: 11 runs; profile cpu (model scratch, item_token); seeds 0, 1; created 2026; git 0123456" in readme
    # no experiment plan: every figure is one skip line with the command that makes it
    for fig in ("fig4", "fig5", "fig6", "fig7", "fig8"):
        assert re.search(rf"^- {fig} \(cpu profile\): no runs planned for the cpu profile\. Make them with: "
                         rf"python -m benchmark run --experiment {fig} --profile cpu --datasets cds --seeds 0 1 2 "
                         rf"--results-dir .*results$", readme, re.M), fig


def test_duplicate_runs_keep_newest_and_warn(results, tmp_path):
    # An older run of the same (method, dataset, profile, seed) with a different config: ignored, with a warning.
    make_run(results, "blade_n", "BLADE-N", "ours", "cds", 0, 0.90, created="2025", run_id="old")
    with pytest.warns(UserWarning, match="keeping the newest blade_n-cds-0.*ignoring old"):
        md = render(results, tmp_path)["table3_cpu_ci.md"]
    assert "0.2200 ± 0.0141" in md


def test_profiles_get_separate_tables(results, tmp_path):
    make_run(results, "sdpo", "S-DPO", "llm", "cds", 0, 0.4, profile="smoke", run_id="smoke-run")
    out = render(results, tmp_path)
    assert "table3_smoke.md" in out and "**0.4100**" in out["table3_smoke.md"]
    assert "0.4100" not in out["table3_cpu.md"]
    assert "## smoke profile" in out["README.md"] and "## cpu profile" in out["README.md"]
    # each profile states its own compute (a pretrained-LLM table's cost is not the cpu profile's)
    sections = out["README.md"].split("## smoke profile")
    assert "Compute of its records:" in sections[1] and "Compute of its records:" in sections[0].split("## cpu profile")[1]


def test_stale_outputs_of_an_earlier_render_are_removed(results, tmp_path):
    # A profile's records leave the results folder: its tables of the earlier render go, the rest stays.
    make_run(results, "sdpo", "S-DPO", "llm", "cds", 0, 0.4, profile="smoke", run_id="smoke-run")
    out = tmp_path / "out"
    first = render_all(results, out)
    assert (out / "table3_smoke.md").exists() and first.removed == []
    (out / "notes.md").write_text("mine")  # not named after an output and a profile: never touched
    (out / "fig4_draft.png").write_bytes(b"mine")
    (out / "fig8_cpu_cds.png").write_bytes(b"old")  # a figure now skipped for missing runs: removed
    for p in results.rglob("smoke-run*"):
        p.unlink()
    second = render_all(results, out)
    names = sorted(p.name for p in second.removed)
    assert names == ["fig8_cpu_cds.png", "table2_smoke.md",
                     "table2_smoke.tex", "table3_smoke.md", "table3_smoke.tex", "table3_smoke_ci.md",
                     "table3_smoke_ci.tex"]
    assert not any(p.exists() for p in second.removed) and (out / "notes.md").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == sorted([p.name for p in second.written] + ["fig4_draft.png", "notes.md"])


def test_a_render_waits_for_another_render_of_the_same_folder(results, tmp_path):
    import threading

    from benchmark.locks import file_lock
    from benchmark.reporting.render import LOCK_NAME

    out = tmp_path / "out"
    done = []
    with file_lock(out / LOCK_NAME):  # another render holds the folder
        worker = threading.Thread(target=lambda: done.append(render_all(results, out)))
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive() and not (out / "README.md").exists()  # waiting, nothing written
    worker.join(timeout=60)
    assert done and (out / "README.md").exists()
    # no records: refused before the folder is locked or written
    with pytest.raises(UserError, match="no run records"):
        render_all(tmp_path / "empty", tmp_path / "out2")
    assert not (tmp_path / "out2" / LOCK_NAME).exists()


def test_run_summary_gives_each_config_of_a_method_its_row(results, tmp_path):
    # An experiment's points: BLADE-N on CDs at two lambdas (seed 0, 1 each); S-DPO has one config: one row.
    for seed in (0, 1):
        for lam, base in ((0.1, 0.30), (1.0, 0.40)):
            make_run(results, "blade_n", "BLADE-N", "ours", "cds", seed, base, run_id=f"b{lam}-{seed}",
                     config={"profile": {}, "method": {"reward": "fair", "lam": lam, "G": 16}})
    recs = [r for r in load_records(results) if r["dataset"] == "cds" and r["method"] in ("blade_n", "sdpo")
            and r["run_id"].startswith(("b0", "b1", "sdpo"))]
    lines = run_summary(recs).splitlines()
    assert [ln.split()[:2] for ln in lines[2:]] == [["S-DPO", "CDs"], ["BLADE-N", "(lam=0.1)"],
                                                    ["BLADE-N", "(lam=1.0)"]]
    # window means: base + 0.01 (the offsets average 0.01), over seeds 0 and 1
    assert lines[3].split()[3:6] == ["0,1", "test", "0.3100"] and lines[4].split()[5] == "0.4100"
    assert lines[2].split()[2:5] == ["0,1", "test", "0.1200"]


def test_record_without_predictions_omits_ci_with_a_note(results, tmp_path):
    rec_path = results / "cds" / "d3" / "d3-cds-0.json"
    rec = json.loads(rec_path.read_text())
    del rec["predictions_file"]  # the record names no predictions file
    rec_path.write_text(json.dumps(rec))
    md = render(results, tmp_path)["table3_cpu_ci.md"]
    assert re.search(r"\| D³\s+\| 0\s+\| 0\.0600\s+\|", md)
    assert "No predictions file (no CI, no test): D³/CDs." in md


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
    with pytest.raises(UserError, match="no run records.*report --reference"):
        render_all(tmp_path, tmp_path / "out")


def test_reports_import_no_torch():
    code = "import sys, benchmark.reporting; bad = [m for m in ('torch', 'methods', 'runners') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


def test_shared_helpers_import_nothing_else_in_reports():
    """stats.py, common.py and plotting.py are the leaves every output builds on: no cycles."""
    root = Path(__file__).resolve().parents[1] / "benchmark" / "reporting"
    for leaf in ("stats", "common", "plotting"):
        src = (root / f"{leaf}.py").read_text()
        assert not re.search(r"^\s*(from|import) benchmark\.reporting", src, re.M), leaf
    for path in root.glob("*.py"):  # outputs never import the renderer (which imports them all)
        if path.stem not in ("render", "__init__"):
            assert not re.search(r"^\s*from benchmark\.reporting(\.render| import render)", path.read_text(), re.M)


def test_legacy_records_get_flags_and_curve(results):
    (rec,) = [r for r in load_records(results) if r["method"] == "bon_inference"]
    assert rec["oracle"] is True and rec["role"] == "" and rec["curve"] is None
    (rec,) = [r for r in load_records(results) if r["method"] == "bigrec" and r["seed"] == 0]
    assert rec["role"] == "sft" and rec["oracle"] is False


def _grpo_record(method, tau, seed, grads, zero_spread, above, valid):
    log = [{"step": i + 1, "grad_norm": g, "frac_zero_spread": z, "frac_zero_spread_proxy": z,
            "frac_above_ref_max": above, "kl": 0.1} for i, (g, z) in enumerate(zip(grads, zero_spread))]
    return {"run_id": f"{method}{seed}", "method": method, "display_name": method, "dataset": "steam", "seed": seed,
            "config": {"method": {"tau": tau, "M": 64}}, "metrics_valid": {"ndcg@5": valid},
            "curve": [{"step": 0, "ndcg@5": 0.1}, {"step": 8, "ndcg@5": valid}],
            "stats": {"train_log": log, "grpo_seconds": 10.0}}


def test_grpo_diagnostics_hand_computed():
    from benchmark.reporting.curves import curve_table
    from benchmark.reporting.diagnostics import _decay, diagnostics_table

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
    assert static[7] == "0.500 → 0.500"  # proxy zero spread: 8 steps, so the first 8 and the last 8 are all of them
    assert static[8] == "0.500 → 0.500" and static[10] == "0.25"
    assert rows["blade_n"][-1] == "—"  # no validation predictions: no paired test
    curves, _ = curve_table(recs, "# c")
    assert "| steam     | bon_static | 0.1000   | 0.2000   |" in curves
    assert "\\hline" in tex or "\\toprule" in tex


def test_grpo_diagnostics_tolerate_a_grpo_method_without_tau():
    from benchmark.reporting.diagnostics import diagnostics_table

    recs = [_grpo_record("bon_static", 0.0, 0, [1] * 4, [0] * 4, 0.5, 0.1),
            _grpo_record("rere", None, 0, [1] * 4, [0] * 4, 0.5, 0.2)]  # ReRe's config has no τ
    md, _ = diagnostics_table(recs, "# t")
    assert "| rere " in md


def _dpo_log(losses: list[float], margins: list[float]) -> list[dict]:
    return [{"step": i + 1, "loss": lo, "rewards/margins": m, "rewards/accuracies": float(m > 0),
             "rewards/chosen": m / 2, "rewards/rejected": -m / 2} for i, (lo, m) in enumerate(zip(losses, margins))]


def test_preference_signals_hand_computed(tmp_path):
    from benchmark.reporting.preference import preference_table

    def rec(seed, kept, losses, margins, iterations=1):
        its = [{"iteration": t + 1, "pairs_kept": kept, "dpo_steps": len(losses), "dpo_seconds": 10.0 + t,
                "train_log": _dpo_log(losses, margins)} for t in range(iterations)]
        curve = [{"iteration": 0, "stage": "sft_checkpoint", "ndcg@5": 0.1}]
        for t in range(iterations):
            curve += [{"iteration": t + 1, "stage": "sft", "ndcg@5": 0.2 + t},
                      {"iteration": t + 1, "stage": "dpo", "ndcg@5": 0.3 + t}]
        name = "List DPO" if iterations == 1 else "SPRec"
        return {"run_id": f"r{seed}{iterations}", "method": name, "display_name": name,
                "dataset": "steam", "seed": seed, "stats": {"iterations": its}, "curve": curve,
                "timings": {"fit_s": 100.0 + seed, "recommend_s": 2.0}}

    # 6 steps: loss log 2 at step 1, the last 5 average to 0.5; margin 0 -> mean of the last five 0.2
    losses, margins = [0.6931, 0.5, 0.5, 0.5, 0.5, 0.5], [0.0, 0.1, 0.1, 0.2, 0.3, 0.3]
    recs = [rec(0, 0.75, losses, margins), rec(1, 0.25, losses, margins), rec(0, 1.0, losses, margins, 2)]
    _, _, body = preference_table(recs, "cpu")
    lst = next(r for r in body if r[1] == "List DPO")
    assert lst[2:7] == ["", "0,1", "0.500", "6", "0.693 → 0.500"]
    assert lst[7] == "0.000 → 0.200" and lst[8] == "1.000" and lst[9] == "0.100 / -0.100"
    assert lst[10] == "0.200 → 0.300" and lst[11] == "10" and lst[12] == "100" and lst[13] == "2.0"
    sprec = [r for r in body if r[1] == "SPRec"]
    assert [r[2] for r in sprec] == ["1", "2"] and sprec[1][10] == "1.200 → 1.300" and sprec[1][12] == ""


def test_decoding_diagnostics_hand_computed(tmp_path):
    from benchmark.reporting.decoding import decoding_table

    d = tmp_path / "steam"
    d.mkdir()

    def rec(run_id, role, lists, beams=None):
        rows = [{"user": f"u{i}", "history": [9], "target": [1], "items": items, "metrics": {}}
                for i, items in enumerate(lists)]
        (d / f"{run_id}.p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        scores = [{"n_windows": 5, "mean_score_by_rank": [9.0] * 10},  # validation, then test
                  {"n_windows": 2, "mean_score_by_rank": [-1.0 - k for k in range(10)]}]
        stats = {"beam_scores": scores} if beams else {}
        return {"run_id": run_id, "method": run_id, "display_name": run_id, "role": role, "dataset": "steam",
                "seed": 0,
                "metrics": {"ndcg@5": 0.1, "duplicate_rate": 0.0, "coverage": 0.5, "ild": 0.6, "mgu": 0.07},
                "tokens_generated_test": 40, "timings": {"recommend_s": 3.0}, "stats": stats,
                "predictions_file": f"{run_id}.p.jsonl", "_path": str(d / f"{run_id}.json")}

    sft = rec("SFT", "sft", [[1, 2, 3], [4, 5, 6]])
    beam = rec("Beam", "", [[1, 3, 7], [6, 5, 4]], beams=True)  # shares 2 and 3 items; same first item once
    _, _, body = decoding_table([beam, sft], "cpu")
    assert [r[1] for r in body] == ["SFT", "Beam"]
    assert body[1][8:13] == ["2.50", "0.500", "40", "3.0", "-1.000 / -5.000 / -10.000"]
    assert body[0][8] == "—"


def test_list_overlap_hand_computed(tmp_path):
    from studies.list_overlap import overlap_table

    def rec(name, role, lists, oracle=False):
        rows = [{"user": f"u{i}", "history": [9], "target": [1], "items": items, "metrics": {}}
                for i, items in enumerate(lists)]
        (tmp_path / f"{name}.p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return {"run_id": name, "display_name": name, "role": role, "oracle": oracle, "predictions_file":
                f"{name}.p.jsonl", "_path": str(tmp_path / f"{name}.json"),
                "metrics": {"ndcg@5": 0.5, "coverage": 0.25}}

    recs = [rec("Pop", "popularity", [[1, 2, 3], [1, 2, 3]]), rec("SFT", "sft", [[1, 4, 5], [6, 7, 8]]),
            rec("M", "", [[1, 2, 4], [6, 2, 9]]), rec("Oracle", "", [[1, 2, 3], [1, 2, 3]], oracle=True)]
    rows = {r[0]: r for r in overlap_table(recs)}
    assert "Oracle" not in rows
    assert rows["M"][3:] == (1.5, 1.5)  # with Pop: 2 and 1 items; with SFT: 2 and 1
    assert rows["Pop"][3:] == (3.0, 0.5) and rows["SFT"][3:] == (0.5, 3.0)


def test_compute_counts_runs_once_and_names_each_sft_checkpoint_once():
    sft = {"seconds": 1800.0}
    recs = [  # two runs on one checkpoint (the first trained it: its 1800 s are inside its fit_s), one on another
        {"dataset": "cds", "data_hash": "h1", "timings": {"fit_s": 3600.0, "recommend_s": 360.0, "valid_s": 36.0},
         "stats": {"sft": sft}},
        {"dataset": "cds", "data_hash": "h1", "timings": {"fit_s": 0.0, "recommend_s": 360.0, "valid_s": None},
         "stats": {"sft": dict(sft)}},
        {"dataset": "steam", "data_hash": "h2", "timings": {"fit_s": 1800.0}, "stats": {"sft": {"seconds": 900.0}}},
        {"dataset": "steam", "data_hash": "h2", "timings": {}},
    ]
    # runs 3600 + 1800 + 720 + 36 = 6156 s = 1.71 h; the SFT's 1800 + 900 s = 0.75 h are part of the 5400 s training
    assert compute(recs) == ("1.71 h in all: training 1.50 h (of it 2 SFT checkpoints, 0.75 h), decoding test "
                             "0.20 h and validation 0.01 h")
    assert compute([]).startswith("0.00 h in all") and "0 SFT checkpoints" in compute([])


def test_grpo_diagnostics_of_figure_runs_only(tmp_path):
    from benchmark.reporting.common import Inputs
    from benchmark.reporting.diagnostics import render_figure_runs

    table_run = _grpo_record("blade_n", 0.3, 0, [1] * 16, [1] * 8 + [0] * 8, 0.25, 0.2)
    fig_run = {**_grpo_record("blade_n", 0.3, 1, [1] * 16, [1] * 8 + [0] * 8, 0.25, 0.2), "run_id": "g2",
               "profile": "cpu", "config": {"method": {"tau": 0.3, "M": 64, "G": 2}}}
    plans = {"table1": {"experiment": "table1", "datasets": {"steam": {"runs": [{"run_id": "blade_n0"}]}}},
             "fig5": {"experiment": "fig5", "datasets": {"steam": {"runs": [
                 {"run_id": "blade_n0"}, {"run_id": "g2"}, {"run_id": "missing"}]}}}}
    inp = Inputs("cpu", [table_run], [], {"blade_n0": table_run, "g2": fig_run}, plans)
    (table,) = render_figure_runs(inp)
    assert [r["run_id"] for r in table.records] == ["g2"]  # the table run and the missing run are not rows
    row = next(line for line in table.md.splitlines() if line.startswith("| steam"))
    assert "1.000 → 0.000" in row  # zero spread over the first 8 and the last 8 of 16 steps
    assert render_figure_runs(Inputs("cpu", [table_run], [], {"blade_n0": table_run}, {})) == []


def test_each_dataset_states_its_minimum_detectable_effect(results, tmp_path):
    """MDE = (z_0.975 + z_0.80) × SE, SE the median two-level SE of the paired NDCG@5 differences of every non-oracle
    row against the SFT model (BIGRec, role sft): the same line in Table 1, Table 3 and the significance table."""
    import numpy as np

    from benchmark.reporting.common import tex_escape
    from benchmark.reporting.stats import Z_POWER, paired_test

    assert Z_POWER == pytest.approx(2.8016, abs=1e-4)
    out = render(results, tmp_path)
    rows: dict[str, list[dict]] = {}
    for r in sorted(load_records(results), key=lambda r: r["seed"]):
        if r["dataset"] == "cds" and not r["oracle"]:
            rows.setdefault(r["method"], []).append(r)
    cache: dict = {}
    ses = [paired_test(rows[m], rows["bigrec"], "ndcg@5", cache)["se"] for m in ("sdpo", "blade_n", "d3", "blade_r")]
    line = f"minimum detectable effect at 80 % power: NDCG@5 ±{Z_POWER * float(np.median(ses)):.4f} (CDs)"
    for name in ("table1_cpu.md", "table2_cpu.md", "table3_cpu.md", "table3_cpu_ci.md", "significance_cpu.md",
                 "claims_cpu.md"):
        assert line in out[name], name
        assert "Steam: no SFT model run" in out[name] and "(z_0.975 + z_0.80) × SE = 2.80 × SE" in out[name]
    assert tex_escape(line) in out["table1_cpu.tex"] and tex_escape(line) in out["significance_cpu.tex"]


def test_sanity_bar_pairs_the_seeds_of_sft_and_pop(tmp_path):
    """The SFT model vs Pop on validation: seed s with seed s (Pop's seed 2 has no partner: "2 of 2/3"); per user the
    difference is constant within a seed (0.04 in seed 0, 0.06 in seed 1), so the spread is the seeds'."""
    root = tmp_path / "results"
    for seed, base in ((0, 0.05), (1, 0.07)):
        make_run(root, "bigrec", "BIGRec", "llm", "cds", seed, base, valid_predictions_file=f"bigrec-cds-{seed}"
                 ".predictions.jsonl")
    for seed in (0, 1, 2):
        make_run(root, "pop", "Pop", "reference", "cds", seed, 0.01, valid_predictions_file=f"pop-cds-{seed}"
                 ".predictions.jsonl")
    md = render(root, tmp_path)["sanity_cpu.md"]
    cells = _cells(md, "CDs")
    assert cells[1:4] == ["0.0700 ± 0.0141", "0.0200 ± 0.0000", "+0.0500 ± 0.0141"]
    assert cells[4] == "[+0.0400, +0.0600]" and cells[6] == "2 of 2/3" and cells[7] == "beats Pop"
    assert "wall-time cap (sft_max_time_s; the kept checkpoint then depends on the machine's speed and load): none." in md
    # its minimum detectable effect, on validation: the one non-oracle row (Pop) against the SFT model
    from benchmark.reporting.stats import Z_POWER, paired_test

    recs = sorted(load_records(root), key=lambda r: r["seed"])
    se = paired_test([r for r in recs if r["method"] == "pop"], [r for r in recs if r["method"] == "bigrec"],
                     "ndcg@5", {}, "valid_predictions_file")["se"]
    assert f"minimum detectable effect at 80 % power: NDCG@5 (validation) ±{Z_POWER * se:.4f} (CDs)" in md
    assert "row − SFT model (validation split)" in md


def test_sanity_bar_names_the_sfts_stopped_by_the_time_cap(tmp_path):
    """An SFT that ends at its wall-time cap is load-dependent: the sanity bar names it, from `stopped_by`, or for a
    record from before that field, from its training seconds reaching the profile's cap."""
    from benchmark.reporting.sanity import time_capped

    root = tmp_path / "results"
    sft = {0: {"stopped_by": "patience", "seconds": 5000.0}, 1: {"stopped_by": "time cap", "seconds": 10.0},
           2: {"seconds": 1200.0}, 3: {"seconds": 1199.0}}
    for seed, info in sft.items():
        make_run(root, "bigrec", "BIGRec", "llm", "cds", seed, 0.05, role="sft", stats={"sft": info},
                 config={"profile": {"model": "scratch", "item_repr": "item_token", "sft_max_time_s": 1200.0}},
                 valid_predictions_file=f"bigrec-cds-{seed}.predictions.jsonl")
        make_run(root, "pop", "Pop", "reference", "cds", seed, 0.01, role="popularity",
                 valid_predictions_file=f"pop-cds-{seed}.predictions.jsonl")
    assert [time_capped({"stats": {"sft": i}, "config": {"profile": {"sft_max_time_s": 1200.0}}})
            for i in sft.values()] == [False, True, True, False]
    assert not time_capped({"stats": {}, "config": {}})  # no SFT info: nothing to flag
    md = render(root, tmp_path)["sanity_cpu.md"]
    assert "speed and load): CDs seed 1, CDs seed 2." in md


def test_significance_gives_the_sign_in_each_seed():
    """Issue 23: the claim table gives, for each claim, the sign in each seed beside the two-level p-value."""
    from benchmark.reporting.stats import seed_signs

    assert seed_signs({"per_seed": {2: -0.01, 0: 0.02, 1: 0.0, 3: 1e-9}}) == "+ 0 − +"  # seeds in order


def test_provenance_line_counts_the_hosts():
    """Two machines of one kind differ in the last digits: the records' line says how many hosts made them."""
    from benchmark.reporting.render import provenance

    def rec(seed, **prov):
        return {"seed": seed, "profile": "cpu", "created": "2026-12-06", "config": {},
                "provenance": {"git_sha": "0123456789ab", **prov}}

    assert provenance([rec(0), rec(1)]).endswith("git 0123456")  # no host recorded: nothing said
    assert provenance([rec(0, host="aa"), rec(1, host="aa")]).endswith("git 0123456; 1 host")
    two = provenance([rec(0, host="aa"), rec(1, host="bb"), rec(2)])
    assert two.endswith("git 0123456; 2 hosts and runs from before hosts were recorded")
