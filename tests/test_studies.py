"""One smoke test per study (studies/): each runs the study's real entry point, `main(argv)`, on tiny inputs and checks
what it prints.

The table-only studies (and the table modes of sft_tuning and grpo_tuning, whose runs take hours) read the committed
records under results/ (read-only) and must print the rows they printed when those records were made. refset_stats
and greedy_vs_sample load an SFT model: they share one trained once, on a tiny variant of the `smoke` profile, in a
fresh cache."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"
RESULTS = ROOT / "results" / "studies"
TINY = "studies_tiny"  # the profile registered for the two studies that load an SFT model


def cells(line: str) -> list[str]:
    """The stripped cells of a Markdown table row."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


def row_of(out: str, *first: str) -> list[str]:
    """The cells of the one printed table row whose first cells are `first`."""
    rows = [cells(line) for line in out.splitlines() if line.startswith("|")]
    found = [r for r in rows if r[:len(first)] == list(first)]
    assert len(found) == 1, f"expected one row {first}, got {found} in:\n{out}"
    return found[0]


def test_studies_import_the_product_and_common_only():
    """No study imports another study: what they share is in studies/common.py."""
    for path in sorted(STUDIES.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name == "studies" or name.startswith("studies."):
                    assert name == "studies.common", f"{path.name} imports {name}"


def test_train_log_summary():
    """The one summary of a GRPO training log (benchmark/reporting/diagnostics.py) the studies print from: steps
    lacking a key are skipped, seeds are pooled in order."""
    from benchmark.reporting.diagnostics import train_log_summary

    rec = {"stats": {"train_log": [{"kl": 0.5, "frac_zero_spread": 0.25}, {"kl": 0.1},
                                   {"kl": 0.3, "frac_zero_spread": 0.75}, {"kl": 2.0}, {"kl": 0.1}]}}
    kl = train_log_summary(rec, "kl")
    assert kl.values == [0.5, 0.1, 0.3, 2.0, 0.1]
    assert (kl.median, kl.max) == (0.3, 2.0)
    assert kl.mean(slice(-2, None)) == pytest.approx(1.05)
    assert kl.quarters() == (0.5, 0.1)  # one step each (5 // 4)
    assert train_log_summary(rec, "frac_zero_spread").mean() == 0.5
    assert train_log_summary(rec, "absent").mean() is None
    assert train_log_summary([rec, {"stats": {"train_log": [{"kl": 7.0}]}}], "kl").values[-2:] == [0.1, 7.0]


# --------------------------------------------------------------------------------------------- table-only studies
def test_kl_table(capsys):
    from studies import kl_table

    logps = RESULTS / "logps"
    kl_table.main([f"after={logps / 'after'}", f"lr={logps / 'lr2e-5'}", "--baseline", str(logps / "sft")])
    out = capsys.readouterr().out
    assert cells(out.splitlines()[0])[:5] == ["run", "method", "lr", "seed", "KL step 1"]
    assert cells(out.splitlines()[0])[-1] == "valid NDCG@5 − baseline [95 % CI] p"
    assert row_of(out, "after", "blade_n") == [
        "after", "blade_n", "0.0001", "0", "0", "0.0397", "0.0554", "0.0113", "0.0081 → 0.0096@48 → 0.0074",
        "0.883", "0.883", "0.005", "0", "+0.0013 [-0.0041, +0.0061] p 0.58"]
    assert row_of(out, "lr", "bon_static")[4:7] == ["0", "0.00282", "0.0088"]
    assert len([line for line in out.splitlines() if line.startswith("|")]) == 2 + 4


def test_list_overlap(capsys):
    from studies import list_overlap

    # the protocol-1 reference's steam seed-0 records, kept for this study when the reference was re-run (issue 23)
    list_overlap.main(["--results-dir", str(RESULTS / "list_overlap"), "--dataset", "steam", "--seed", "0"])
    out = capsys.readouterr().out
    assert out.splitlines()[0] == ("| method | test NDCG@5 | coverage | items shared with Pop (of 10) | items shared "
                                   "with SFT (of 10) |")
    assert row_of(out, "BIGRec") == ["BIGRec", "0.1346", "0.173", "4.67", "10.00"]
    assert row_of(out, "Pop") == ["Pop", "0.1541", "0.028", "10.00", "4.67"]
    assert row_of(out, "BLADE-N") == ["BLADE-N", "0.1622", "0.096", "6.42", "6.21"]


def test_fair_comparisons(capsys):
    from studies import fair_comparisons

    fair_comparisons.main([])
    out = capsys.readouterr().out
    assert cells(out.splitlines()[0])[-2:] == ["after − before", "after − BIGRec"]
    assert row_of(out, "steam", "sprec") == ["steam", "sprec", "0.0791 / 0.0713 / 0.0802 (0.0769)",
                                             "0.0598 / 0.0503 / 0.0747 (0.0616)", "-0.0153 (p 0.036)",
                                             "-0.0574 (p 0.000)"]
    assert row_of(out, "cds", "d3")[3:] == ["0.0613 / 0.0630 / 0.0669 (0.0638)", "-0.0144 (p 0.000)",
                                            "+0.0105 (p 0.050)"]
    assert row_of(out, "steam", "sft_align")[2:] == ["—", "0.1199 / 0.1165 / 0.1150 (0.1171)", "—",
                                                     "-0.0019 (p 0.780)"]
    cost = fair_comparisons.reward_cost("steam", calls=50)  # item 10: genre sets built once, not per call
    assert cost["calls_per_run"] == 40960 and cost["ratio"] > 2 and cost["saved_s_per_run"] > 0


def test_decoding_check(capsys):
    from studies import decoding_check

    decoding_check.main(["--results-dir", str(RESULTS / "grpo_tuning_window_split"), "--dataset", "steam"])
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert cells(lines[0])[0] == "method" and cells(lines[0])[-1] == "NDCG@5 − BIGRec [95 % CI] (p)"
    assert cells(lines[2]) == ["BIGRec", "0.1190", "0.1010", "0.0568", "0.000", "0.163", "0.6218", "0.0665", "10.00",
                               "1.000", "1.8", "13211", "—"]  # BIGRec first
    blade = [cells(line) for line in lines if line.startswith("| BLADE-N lr=2e-05 |")]
    assert [r[-1] for r in blade] == ["-0.0038 [-0.0176, +0.0094] (0.568)", "-0.0105 [-0.0216, +0.0014] (0.084)",
                                      "-0.0071 [-0.0206, +0.0063] (0.310)"]
    assert "1201 validation windows." in out


def test_sft_tuning_table(capsys):
    from studies import sft_tuning

    sft_tuning.main(["--table", "--datasets", "goodreads", "--results-dir", str(RESULTS / "sft_tuning")])
    out = capsys.readouterr().out
    assert cells(out.splitlines()[0])[:3] == ["dataset", "attempt", "changes (A0, A1: vs the old `cpu`; A3..: vs A2)"]
    assert row_of(out, "goodreads", "A19") == [
        "goodreads", "A19", "sft_stop=loss, sft_min_target=1, sft_patience=40, sft_max_time_s=1200.0",
        "3100 (6.54, by ndcg)", "498 s", "0.0563", "0.0576", "0.57", "+0.0437 (0.000)"]
    assert row_of(out, "goodreads", "A17")[5] == "0.0466"
    assert row_of(out, "goodreads", "**sasrec**")[5:] == ["0.0982", "0.1318", "1.00", "+0.0855 (0.000)"]
    assert row_of(out, "goodreads", "**pop**")[5] == "0.0126"


def test_grpo_tuning_table(capsys):
    from studies import grpo_tuning

    grpo_tuning.main(["--table", "--datasets", "steam", "--compare", "G0,G1",
                      "--results-dir", str(RESULTS / "grpo_tuning_window_split")])
    out = capsys.readouterr().out
    assert cells(out.splitlines()[0])[6:8] == ["KL median / max", "zero spread raw / proxy"]
    assert row_of(out, "steam", "—", "SFT (bigrec)")[4] == "0.1190"
    assert row_of(out, "steam", "G1", "bon_static") == [
        "steam", "G1", "bon_static", "3", "0.1126", "-0.0064 [-0.0190, +0.0061] p 0.300", "0.102 / 0.199",
        "0.021 / 0.021", "0.013 → 0.023", "128 (0.1291 → 0.1428 → 0.1428)"]
    assert row_of(out, "steam", "G0", "blade_n")[6:9] == ["0.263 / 0.693", "0.021 / 0.021", "0.017 → 0.033"]
    assert row_of(out, "steam", "G1: blade_n − bon_static") == [
        "steam", "G1: blade_n − bon_static", "-0.0007 [-0.0020, +0.0006] p 0.263"]


# ---------------------------------------------------------------------------------- studies that load an SFT model
@pytest.fixture(scope="module")
def tiny(tmp_path_factory, data_dir):
    """(profile, dataset, cache): a tiny variant of `smoke` registered as profile `studies_tiny` (with tiny BoN
    settings), its steam SFT model trained once in a fresh cache that $BENCHMARK_CACHE_DIR points at."""
    from benchmark.config import PROFILES, apply_overrides, get_profile
    from benchmark.data import load_dataset
    from methods.common.sft import train_sft
    from studies import refset_stats

    mp = pytest.MonkeyPatch()
    profile = apply_overrides(get_profile("smoke"), {"name": TINY, "max_sft_windows": 32, "sft_max_epochs": 1.0,
                                                     "sft_eval_windows": 8, "sft_eval_every": 1000}, "profile")
    mp.setitem(PROFILES, TINY, profile)
    mp.setitem(refset_stats.PROFILE_OVERRIDES, TINY,
               {**refset_stats.PROFILE_OVERRIDES["smoke"], "M": 4, "n_align_train": 4, "n_align_valid": 4})
    cache = tmp_path_factory.mktemp("tiny_cache")
    mp.setenv("BENCHMARK_CACHE_DIR", str(cache))
    ds = load_dataset("steam", data_dir)
    train_sft(ds, profile, cache)
    yield profile, ds, cache
    mp.undo()


def test_refset_stats(tiny, capsys):
    from studies import refset_stats

    refset_stats.main(["--datasets", "steam", "--profile", TINY, "--reward", "recall"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {k: out[k] for k in ("dataset", "profile", "seed", "reward", "prompts", "M")} == {
        "dataset": "steam", "profile": TINY, "seed": 0, "reward": "recall", "prompts": 4, "M": 4}
    assert 0 <= out["frac_prompts_all_zero"] <= 1
    assert 0 <= out["mean_ref_reward"] <= out["mean_ref_max"] <= 1
    assert (out["mean_ref_max"] == 0) == (out["frac_prompts_all_zero"] == 1)


def test_refset_stats_composite(tiny, capsys):
    """A composite reward adds its split into the NDCG term and the list-wise term (`composite_split`)."""
    from studies import refset_stats

    refset_stats.main(["--datasets", "steam", "--profile", TINY, "--reward", "div", "--lam", "0.1"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["reward"] == "div" and out["lam"] == 0.1
    assert 0 <= out["frac_prompts_ndcg_flat"] <= 1
    assert 0 <= out["mean_ndcg_of_best"] <= out["mean_ndcg_max"] <= 1


def test_composite_split_hand_computed():
    """Two prompts, three lists each. Prompt 0: NDCG all 0 (flat; the list-wise term alone orders it). Prompt 1: NDCG
    0.5, 0, 0 and term 0, 0.6, 0.3, so the composite's best (0.6, list 1) has NDCG 0, below the set's 0.5; population
    stds: term sqrt(0.06), NDCG sqrt(0.05 / 0.9), ratio sqrt(1.08). Tied pairs: all 3 of prompt 0, 1 of 3 of
    prompt 1 (lists 1 and 2), mean 2 / 3. NDCG orders two pairs (list 0 above 1 and above 2); the composite (0.5, 0.6,
    0.3) reverses the first: 1 / 2."""
    import numpy as np

    from studies.refset_stats import composite_split

    ndcg = np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    term = np.array([[0.1, 0.3, 0.2], [0.0, 0.6, 0.3]])
    assert composite_split(ndcg, ndcg + term) == {
        "frac_prompts_ndcg_flat": 0.5, "frac_pairs_ndcg_tied": round(2 / 3, 4),
        "frac_ordered_pairs_reversed": 0.5, "median_std_ratio": round(1.08 ** 0.5, 4), "frac_best_not_ndcg_best": 1.0,
        "mean_ndcg_of_best": 0.0, "mean_ndcg_max": 0.25}
    # a term that agrees with NDCG keeps the NDCG-best list; with no NDCG spread anywhere the ratios are undefined
    agree = composite_split(ndcg, ndcg + ndcg)
    assert agree["frac_best_not_ndcg_best"] == 0.0 and agree["frac_ordered_pairs_reversed"] == 0.0
    flat = composite_split(np.zeros((2, 3)), term)
    assert flat["frac_prompts_ndcg_flat"] == 1.0 and flat["median_std_ratio"] is None
    assert flat["frac_best_not_ndcg_best"] is None and flat["frac_ordered_pairs_reversed"] is None


def _record(results: Path, ds, run_id: str, seed: int, data_hash: str) -> None:
    """A validation-only blade_n record (lr 2e-05) of the tiny profile."""
    rec = {"run_id": run_id, "method": "blade_n", "display_name": "BLADE-N", "category": "ours", "dataset": ds.name,
           "profile": TINY, "seed": seed, "config": {"method": {"lr": 2e-05}}, "splits": ["valid"], "metrics": {},
           "metrics_valid": {"ndcg@5": 0.1}, "n_test": 0, "n_valid": 8, "data_hash": data_hash}
    d = results / ds.name / "blade_n"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{run_id}.json").write_text(json.dumps(rec))


def test_greedy_vs_sample(tiny, tmp_path, capsys):
    """The SFT model and one aligned policy, here a copy of the SFT model: its lists are the SFT model's. Records of
    another seed or an earlier data hash are left out."""
    from methods.common.sft import sft_dir
    from studies import greedy_vs_sample

    profile, ds, cache = tiny
    results = tmp_path / "results"
    _record(results, ds, "aaaa", 0, ds.data_hash)
    _record(results, ds, "bbbb", 1, ds.data_hash)  # not a --seeds seed
    _record(results, ds, "cccc", 0, "an-earlier-split")  # not on the dataset as it is now
    for run_id in ("aaaa", "bbbb", "cccc"):
        shutil.copytree(sft_dir(ds, profile, cache) / "model", cache / "runs" / run_id / "final")
    out_file = tmp_path / "steam.json"
    greedy_vs_sample.main(["--dataset", "steam", "--profile", TINY, "--results-dir", str(results), "--seeds", "0",
                           "--samples", "2", "--max-windows", "8", "--out", str(out_file)])
    rows = [cells(line) for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert [r[:3] for r in rows] == [["SFT", "", ""], ["blade_n", "0", "2e-05"]]
    assert rows[0][5:] == ["1.000", "10.00"] and rows[1][3:] == rows[0][3:]
    saved = json.loads(out_file.read_text())
    assert (saved["dataset"], saved["n_windows"], saved["samples"]) == ("steam", 8, 2)
    assert [r["model"] for r in saved["rows"]] == ["SFT", "blade_n"]
    assert f"{saved['rows'][0]['greedy_ndcg@5']:.4f}" == rows[0][3]
