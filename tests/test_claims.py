"""The claim table (benchmark/reporting/claims.py): hand-built records whose per-window differences are constant, so
every bootstrap resample gives the same difference and the p-value and verdict are known; a figure side found through
its experiment plan; claims without records named in the note."""

from __future__ import annotations

import json
from pathlib import Path

from benchmark.reporting.claims import Claim, Side, claims, verdict
from benchmark.reporting.common import Inputs
from benchmark.records import load_records
from benchmark.reporting.stats import N_BOOT, p_label

USERS = ("u1", "u1", "u2", "u3")  # four test windows; u1 has two


def write(root: Path, method: str, seed: int, values: list[float], category: str = "llm", **extra) -> None:
    run_id = extra.pop("run_id", f"{method}-{seed}")
    d = root / "cds" / method
    d.mkdir(parents=True, exist_ok=True)
    rows = [{"user": u, "metrics": {"ndcg@5": v, "recall@5": v}} for u, v in zip(USERS, values)]
    (d / f"{run_id}.p.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rec = {"run_id": run_id, "method": method, "display_name": method, "category": category, "dataset": "cds",
           "profile": "cpu", "seed": seed, "config": {}, "created": "2026", "predictions_file": f"{run_id}.p.jsonl",
           "metrics": {"ndcg@5": sum(values) / 4, "recall@5": sum(values) / 4}, "metrics_valid": {"ndcg@5": 0.0},
           "n_test": 4, "n_valid": 0, **extra}
    (d / f"{run_id}.json").write_text(json.dumps(rec))


def inputs(root: Path, plans: dict | None = None) -> Inputs:
    recs = load_records(root)
    table = [r for r in recs if not r["run_id"].startswith("fig")]
    return Inputs("cpu", records=table, by_id={r["run_id"]: r for r in recs}, plans=plans or {})


def test_verdict_needs_significance_and_reads_the_direction():
    assert verdict({"p_value": 0.01, "mean": 0.02}, 1) == "holds"
    assert verdict({"p_value": 0.01, "mean": 0.02}, -1) == "reversed"
    assert verdict({"p_value": 0.01, "mean": -0.02}, -1) == "holds"
    assert verdict({"p_value": 0.05, "mean": 0.02}, 1) == "not significant"  # p < 0.05 is significant, 0.05 not


def test_p_label_names_the_bootstrap_resolution():
    """p = 2 × a fraction of N_BOOT resamples: 0 means fewer than one crossing, printed as a bound, not as 0."""
    assert N_BOOT == 1000
    assert p_label(0.0) == "< 0.002"
    assert p_label(0.002) == "0.002" and p_label(0.0495) == "0.050" and p_label(1.0) == "1.000"


def test_claims_hand_computed(tmp_path):
    base = [0.10, 0.20, 0.30, 0.40]
    for seed, shift in ((0, 0.0), (1, 0.1)):
        write(tmp_path, "bigrec", seed, [v + shift for v in base])
        write(tmp_path, "bon_static", seed, [v + shift - 0.02 for v in base], "listwise")  # −0.02 for every user
        write(tmp_path, "blade_n", seed, [v + shift + 0.05 for v in base], "ours")  # +0.05 for every user
    # Beam Search − BIGRec: +0.04 in seed 0, −0.04 in seed 1 (every user), so the seeds disagree
    write(tmp_path, "beam", 0, [v + 0.04 for v in base])
    write(tmp_path, "beam", 1, [v + 0.1 - 0.04 for v in base])
    md, tex, body, used = claims(inputs(tmp_path))
    rows = {(r[3], r[4]): r for r in body}
    assert rows[("static BoN − BIGRec", "NDCG@5")][6:] == ["-0.0200 ± 0.0000", "< 0.002", "− −", "reversed"]
    assert rows[("BLADE-N − static BoN", "NDCG@5")][6:] == ["+0.0700 ± 0.0000", "< 0.002", "+ +", "holds"]
    assert rows[("BLADE-N − BIGRec", "NDCG@5")][9] == "holds"
    beam = rows[("Beam Search − BIGRec", "NDCG@5")]
    assert beam[5] == "a < b" and beam[6] == "+0.0000 ± 0.0566" and beam[8] == "+ −"
    assert beam[9] == "not significant"  # half the seed resamples draw seed 0 twice, half seed 1 twice
    assert {r["run_id"] for r in used} == {f"{m}-{s}" for m in ("bigrec", "bon_static", "blade_n", "beam")
                                           for s in (0, 1)}
    # a claim with no records on any dataset is named once, by source
    assert "Table 1: BoN N=4 − N=2 (NDCG@5)" in md and "Fig. 5 (all 2 comparisons)" in md
    assert "minimum detectable effect at 80 % power" in md and "minimum detectable effect" in tex


def test_a_figure_side_is_found_through_its_plan_and_needs_every_planned_run(tmp_path):
    base = [0.10, 0.20, 0.30, 0.40]
    runs = []
    for seed in (0, 1):
        write(tmp_path, "blade_n", seed, [v + 0.03 for v in base], "ours", run_id=f"fig-blade-{seed}")
        write(tmp_path, "blade_n", seed, base, "ours", run_id=f"fig-noprior-{seed}")
        runs += [{"run_id": f"fig-blade-{seed}", "seed": seed, "series": "BLADE", "x": 2, "panel": ""},
                 {"run_id": f"fig-noprior-{seed}", "seed": seed, "series": "No Prior", "x": 2, "panel": ""}]
    plan = {"fig6": {"datasets": {"cds": {"runs": runs, "command": "c"}}}}
    claim = Claim("Fig. 6", "the prior helps", Side(experiment="fig6", series="BLADE", x=2),
                  Side(experiment="fig6", series="No Prior", x=2), "BLADE − No Prior, G 2", metric="recall@5")
    md, _, body, _ = claims(inputs(tmp_path, plan), (claim,))
    assert [r[2:] for r in body] == [["CDs", "BLADE − No Prior, G 2", "Recall@5", "a > b", "+0.0300 ± 0.0000",
                                      "< 0.002", "+ +", "holds"]]
    # a planned run without a record: the side is incomplete, the claim is not tested
    runs.append({"run_id": "fig-blade-2", "seed": 2, "series": "BLADE", "x": 2, "panel": ""})
    md, _, body, _ = claims(inputs(tmp_path, plan), (claim,))
    assert body == [] and "Not tested (a side has no records on any dataset): Fig. 6: BLADE − No Prior, G 2" in md
