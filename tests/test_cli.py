"""End-to-end CLI: a smoke run of the spine's methods writes records, re-runs skip, reports render; user errors."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from runners.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _lines(path):
    with gzip.open(path, "rt") as f:
        return f.read().splitlines()


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900)


@pytest.mark.parametrize("args,msg", [
    (["run", "--methods", "bigrc"], "unknown method 'bigrc'. Did you mean 'bigrec'"),
    (["run", "--methods", "pop", "--datasets", "stem"], "unknown dataset 'stem'. Did you mean 'steam'"),
    (["run", "--methods", "pop", "--profile", "gpu"], "unknown profile 'gpu'. Did you mean 'cpu'? Valid profiles: cpu, paper, smoke, smollm2"),
    (["run", "--methods", "pop", "--set", "lr"], "--set 'lr': expected key=value"),
    (["run", "--methods", "pop", "--set", "nope=1"], "--set nope: not a profile field nor a config field of pop"),
    (["run", "--methods", "pop", "--set", "sft_lr=fast"], "--set sft_lr='fast': expected a float"),
])
def test_user_errors_are_one_line_without_traceback(args, msg, data_dir):
    r = _cli(*args, env={"BENCHMARK_DATA_DIR": str(data_dir)})
    assert r.returncode == 2
    assert msg in r.stderr and "Traceback" not in r.stderr


def test_missing_data_dir_says_where_to_put_the_data(tmp_path, capsys):
    assert main(["run", "--methods", "pop", "--datasets", "steam", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "dataset 'steam' not found" in err and "BENCHMARK_DATA_DIR" in err


def test_smoke_run_records_skip_and_report(data_dir, tmp_path):
    res, cache, out = tmp_path / "results", tmp_path / "cache", tmp_path / "reports"
    args = ["run", "--methods", "bigrec,pop,sasrec", "--datasets", "steam", "--profile", "smoke", "--seeds", "0",
            "--data-dir", str(data_dir), "--results-dir", str(res), "--cache-dir", str(cache)]
    r = _cli(*args)
    assert r.returncode == 0, r.stderr[-3000:]
    recs = sorted(res.glob("steam/*/*.json"))
    assert [p.parent.name for p in recs] == ["bigrec", "pop", "sasrec"]
    for p in recs:
        rec = json.loads(p.read_text())
        for key in ("run_id", "method", "dataset", "profile", "seed", "config", "metrics", "timings", "n_test",
                    "data_hash", "provenance"):
            assert key in rec, key
        for key in ("recall@3", "ndcg@3", "recall@5", "ndcg@5", "recall@10", "ndcg@10", "mgu", "ild", "valid_rate",
                    "coverage"):
            assert 0.0 <= rec["metrics"][key] <= 1.0, key
        assert set(rec["timings"]) >= {"fit_s", "recommend_s"}
        assert rec["provenance"]["versions"]["trl"] == "1.16.0"
        assert rec["provenance"]["cpu_model"] and rec["provenance"]["cpu_capability"]
        assert len(rec["provenance"]["host"]) == 8
        assert len(_lines(p.parent / rec["valid_predictions_file"])) == rec["n_valid"]
        preds = _lines(p.parent / rec["predictions_file"])
        assert len(preds) == rec["n_test"] == 64
        lists = [json.loads(x)["items"] for x in preds]
        assert all(len(lst) == 10 == len(set(lst)) and min(lst) >= 0 for lst in lists)
    bigrec = json.loads(recs[0].read_text())
    assert bigrec["metrics"]["valid_rate"] == 1.0 and bigrec["metrics"]["duplicate_rate"] == 0.0
    assert bigrec["stats"]["sft"]["best_step"] > 0
    # re-running the same command skips every finished run
    r2 = _cli(*args)
    assert r2.returncode == 0 and r2.stderr.count("finished") == 3, r2.stderr[-2000:]
    r3 = _cli("report", "--results-dir", str(res), "--out", str(out))
    assert r3.returncode == 0, r3.stderr[-2000:]
    table = (out / "table3_smoke.md").read_text()
    assert "BIGRec" in table and "SASRec" in table and "Pop" in table
    sanity = (out / "sanity_smoke.md").read_text()  # BIGRec vs Pop on validation, paired over users
    assert "| Steam" in sanity and ("beats Pop" in sanity or "ties Pop" in sanity or "loses to Pop" in sanity)


def test_design_doc_embeds_the_generated_profiles_table():
    from runners.cli import profiles_markdown

    doc = (Path(__file__).resolve().parents[1] / "docs" / "design.md").read_text()
    block = doc.split("<!-- profiles:begin -->\n", 1)[1].split("<!-- profiles:end -->", 1)[0]
    assert block.strip() == profiles_markdown().strip(), "regenerate it: python -m benchmark profiles"


def test_paper_dry_run_resolves_offline_on_all_three_datasets(tmp_path):
    r = _cli("run", "--methods", "all", "--datasets", "steam,cds,goodreads", "--profile", "paper", "--dry-run",
             "--results-dir", str(tmp_path / "res"), env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    for name in ("steam", "cds", "goodreads"):
        assert f"dataset {name}" in out
    assert out.count("4,096 train + 512 valid windows sampled from the") >= 3 * 3  # blade_n, blade_r, bon_static
    assert "SFT training windows" in out and "align-user" not in out
    assert "3 epochs at lr 0.0001" in out and "last checkpoint" in out
    assert not (tmp_path / "res").exists()  # nothing trained, nothing written


def test_run_ends_with_its_table_and_report_shows_the_users_runs(data_dir, tmp_path, monkeypatch, capsys):
    """A new user's path: `run` writes results/runs and prints what it made; `report` (no flags) renders those
    records into reports/runs/, never over the committed reference report."""
    monkeypatch.chdir(tmp_path)
    reference = tmp_path / "reports" / "README.md"
    reference.parent.mkdir()
    reference.write_text("the committed reference report")
    assert main(["run", "--methods", "pop", "--datasets", "steam", "--profile", "smoke", "--data-dir",
                 str(data_dir)]) == 0
    out = capsys.readouterr().out
    header, rule, row = out.strip().splitlines()[:3]
    assert header.split() == ["method", "dataset", "seeds", "split", "NDCG@5", "95", "%", "CI", "fit", "s", "decode",
                              "s"]
    assert row.split()[:4] == ["Pop", "Steam", "0", "test"] and "[" in row
    assert "python -m benchmark report" in out
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert "reports/runs/README.md" in out and "skipped fig5 (smoke profile)" in out
    assert "| Pop " in (tmp_path / "reports" / "runs" / "table3_smoke.md").read_text()
    assert reference.read_text() == "the committed reference report"
    assert main(["report", "--out", "reports"]) == 2  # the reference report renders only with --reference
    assert "render it with `python -m benchmark report --reference`" in capsys.readouterr().err
    assert main(["report", "--reference", "--out", "x"]) == 2
    assert main(["report", "--reference"]) == 2  # no results/reference here
    assert "no run records under results/reference" in capsys.readouterr().err
    # re-running prints the table of the finished run again (skipped, not redone)
    assert main(["run", "--methods", "pop", "--datasets", "steam", "--profile", "smoke", "--data-dir",
                 str(data_dir)]) == 0
    assert "Pop " in capsys.readouterr().out


def test_third_party_libraries_log_warnings_only(capsys):
    """Issue 25: `report` printed fontTools' "INFO GSUB pruned" lines; a refusal must be the only line."""
    import logging

    assert main(["run", "--set", "k=0"]) == 2
    for name in ("fontTools.subset", "matplotlib.font_manager", "datasets", "transformers", "accelerate", "urllib3",
                 "filelock"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING, name
    assert capsys.readouterr().err.count("\n") == 1
    # issue 24: any other library too (datasets logged "JAX version ... available" through a logger of its own on a
    # machine with JAX): only the suite's logger says INFO
    for name in ("jax", "jax._src.xla_bridge", "some.library.we.never.named"):
        assert logging.getLogger(name).getEffectiveLevel() >= logging.WARNING, name
    assert logging.getLogger("benchmark").getEffectiveLevel() == logging.INFO


def test_cpu_flag_hides_gpus_and_more_processes_than_gpus_is_one_line(monkeypatch, capsys):
    """Issue 24: `accelerate launch --cpu` on a GPU machine ran on the GPU (and two ranks met on one GPU: NCCL
    "Duplicate GPU detected"); more processes than GPUs gets a one-line error that says what to do."""
    import torch

    from runners import cli

    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    cli._honour_cpu_flag()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""  # before torch initialises CUDA, in this process and its children
    monkeypatch.delenv("ACCELERATE_USE_CPU")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    cli._honour_cpu_flag()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"  # without --cpu nothing is hidden

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert main(["run", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 processes on this machine but 1 GPU(s)" in err
    assert "--num_processes 1, or add --cpu" in err
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # one process per GPU: accepted
    cli._check_gpu_processes()


def test_empty_experiment_name_is_an_unknown_experiment(capsys):
    assert main(["run", "--experiment", "", "--dry-run"]) == 2  # was: every method planned (`if a.experiment:`)
    assert "unknown experiment ''" in capsys.readouterr().err
