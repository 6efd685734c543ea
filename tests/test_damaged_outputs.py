"""Damaged outputs: a corrupt or truncated record is not a finished run (set aside and run again); `report` names the
damaged or missing file instead of a traceback or an empty table; `report --out` must be a folder."""

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runners.cli import main
from benchmark.errors import UserError
from benchmark.records import run_status, write_run


@pytest.fixture(scope="module")
def pop_results(data_dir, tmp_path_factory):
    """One real `pop` smoke run (seconds): its record and predictions are what the cases below damage."""
    tmp = tmp_path_factory.mktemp("pop")
    args = ["run", "--methods", "pop", "--datasets", "steam", "--profile", "smoke", "--data-dir", str(data_dir),
            "--results-dir", str(tmp / "res"), "--cache-dir", str(tmp / "cache")]
    assert main(args) == 0
    return tmp, args


def _copy(pop_results, tmp_path):
    src, args = pop_results
    res = tmp_path / "res"
    shutil.copytree(src / "res", res)
    rec = next(res.glob("steam/pop/*.json"))
    return res, rec, [a if a != str(src / "res") else str(res) for a in args]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _status(rec: Path) -> str | None:
    return run_status(rec.parents[2], "steam", "pop", rec.stem)


def _truncate(p: Path, keep: float = 0.5):
    b = p.read_bytes()
    p.write_bytes(b[: int(len(b) * keep)])


def test_status_of_a_finished_record(pop_results, tmp_path):
    _, rec, _ = _copy(pop_results, tmp_path)
    assert _status(rec) == "finished"
    assert run_status(rec.parents[2], "steam", "pop", "nope") is None


@pytest.mark.parametrize("damage,expect", [
    ("truncated_record", "unreadable record"),
    ("empty_record", "unreadable record"),
    ("other_run", "not a record of run"),
    ("no_metrics", "record lacks metrics"),
    ("truncated_predictions", "unreadable (EOFError"),
    ("predictions_not_gzip", "unreadable (BadGzipFile"),
    ("short_predictions", "has 63 lines, the record scored 64 windows"),
    ("missing_predictions", "unreadable (FileNotFoundError"),
])
def test_damaged_record_is_not_finished(pop_results, tmp_path, damage, expect):
    _, rec, _ = _copy(pop_results, tmp_path)
    r = json.loads(rec.read_text())
    pred = rec.with_name(r["predictions_file"])
    if damage == "truncated_record":
        _truncate(rec)
    elif damage == "empty_record":
        rec.write_text("")
    elif damage == "other_run":
        rec.write_text(json.dumps({**r, "run_id": "0123"}))
    elif damage == "no_metrics":
        rec.write_text(json.dumps({k: v for k, v in r.items() if k != "metrics"}))
    elif damage == "truncated_predictions":
        _truncate(pred)
    elif damage == "predictions_not_gzip":
        pred.write_bytes(gzip.decompress(pred.read_bytes()))
    elif damage == "short_predictions":
        lines = gzip.decompress(pred.read_bytes()).decode().splitlines(keepends=True)
        pred.write_bytes(gzip.compress("".join(lines[:-1]).encode()))
    elif damage == "missing_predictions":
        pred.unlink()
    status = _status(rec)
    assert status not in (None, "finished") and expect in status


def test_run_sets_a_damaged_record_aside_and_runs_it_again(pop_results, tmp_path, caplog):
    _, rec, args = _copy(pop_results, tmp_path)
    good = json.loads(rec.read_text())
    _truncate(rec)
    stale = rec.with_name(f".{rec.name}.tmp{_dead_pid()}")  # a killed write of this record
    stale.write_text("{")
    assert main(args) == 0
    assert not stale.exists()
    again = json.loads(rec.read_text())
    assert again["metrics"] == good["metrics"] and again["run_id"] == good["run_id"]
    assert rec.with_name(rec.name + ".damaged").exists()  # kept for inspection; reports read only *.json
    assert "damaged record (unreadable record" in caplog.text


def test_write_run_leaves_no_temporary(tmp_path):
    rec = {"run_id": "abc", "dataset": "d", "method": "m"}
    path = write_run(tmp_path, rec, [{"user": "u", "metrics": {}}], [{"user": "v", "metrics": {}}])
    assert sorted(p.name for p in path.parent.iterdir()) == ["abc.json", "abc.predictions.jsonl.gz",
                                                             "abc.valid.jsonl.gz"]


# --- report ---------------------------------------------------------------------------------------------------

def test_report_on_a_truncated_predictions_file_names_it(pop_results, tmp_path, capsys):
    res, rec, _ = _copy(pop_results, tmp_path)
    pred = rec.with_name(json.loads(rec.read_text())["predictions_file"])
    _truncate(pred)
    assert main(["report", "--results-dir", str(res), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"damaged predictions file {pred}" in err


def test_report_on_a_missing_predictions_file_is_an_error_not_an_empty_table(pop_results, tmp_path, capsys):
    res, rec, _ = _copy(pop_results, tmp_path)
    pred = rec.with_name(json.loads(rec.read_text())["predictions_file"])
    pred.unlink()
    assert main(["report", "--results-dir", str(res), "--out", str(tmp_path / "out")]) == 2
    assert f"missing predictions file {pred}" in capsys.readouterr().err


def test_report_on_a_record_missing_a_metric_names_it(pop_results, tmp_path, capsys):
    res, rec, _ = _copy(pop_results, tmp_path)
    r = json.loads(rec.read_text())
    del r["metrics"]["ndcg@5"]
    rec.write_text(json.dumps(r))
    assert main(["report", "--results-dir", str(res), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"malformed run record {rec}: metrics lacks ndcg@5" in err


def test_report_out_on_an_existing_file(pop_results, tmp_path, capsys):
    res, _, _ = _copy(pop_results, tmp_path)
    out = tmp_path / "reports.md"
    out.write_text("mine")
    assert main(["report", "--results-dir", str(res), "--out", str(out)]) == 2
    assert "report --out" in capsys.readouterr().err and out.read_text() == "mine"


def test_load_predictions_raises_user_error(pop_results, tmp_path):
    from benchmark.records import load_predictions, load_records

    res, rec, _ = _copy(pop_results, tmp_path)
    (r,) = load_records(res)
    assert len(load_predictions(r)) == 64
    rec.with_name(r["valid_predictions_file"]).write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(UserError, match="damaged predictions file"):
        load_predictions(r, "valid_predictions_file")


# --- issue 25: a refused report writes nothing; impossible metrics; the report lock; quoted commands -------------

def test_a_refused_report_writes_nothing(pop_results, tmp_path, capsys):
    """A damaged predictions file is found while the tables are rendered: before issue 25 Tables 1 and 2 were
    already written when the report was refused. Now every output renders in memory first."""
    res, rec, _ = _copy(pop_results, tmp_path)
    _truncate(rec.with_name(json.loads(rec.read_text())["predictions_file"]))
    out = tmp_path / "out"
    assert main(["report", "--results-dir", str(res), "--out", str(out)]) == 2
    assert "damaged predictions file" in capsys.readouterr().err
    assert not out.exists()  # no table, no README, no lock file, not even the folder
    out.mkdir()
    (out / "notes.md").write_text("mine")
    assert main(["report", "--results-dir", str(res), "--out", str(out)]) == 2
    assert sorted(p.name for p in out.iterdir()) == ["notes.md"]


@pytest.mark.parametrize("field,metric,value,expect", [
    ("metrics", "ndcg@5", float("nan"), "metrics ndcg@5 = nan is impossible: expected a finite number in [0, 1]"),
    ("metrics", "recall@5", 7.5, "metrics recall@5 = 7.5 is impossible: expected a number in [0, 1]"),
    ("metrics_valid", "mgu", 2.5, "metrics_valid mgu = 2.5 is impossible: expected a number in [0, 2]"),
    ("metrics", "ild", -0.1, "metrics ild = -0.1 is impossible"),
    ("metrics", "valid_rate", float("inf"), "metrics valid_rate = inf is impossible"),
    ("metrics", "n_windows", 1.5, "metrics n_windows = 1.5 is impossible: expected an integer >= 0"),
])
def test_report_refuses_impossible_metrics_naming_the_file(pop_results, tmp_path, capsys, field, metric, value,
                                                           expect):
    res, rec, _ = _copy(pop_results, tmp_path)
    r = json.loads(rec.read_text())
    r[field][metric] = value
    rec.write_text(json.dumps(r))  # NaN and Infinity are what json writes for them
    out = tmp_path / "out"
    assert main(["report", "--results-dir", str(res), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"malformed run record {rec}: {expect}" in err, err
    assert not out.exists()
    assert expect in _status(rec)  # and `run` sets such a record aside and runs it again


def test_the_shipped_reference_records_are_in_range():
    from benchmark.records import load_records

    # every records folder shipped: the reference and the studies' (<folder>/<dataset>/<method>/<run_id>.json)
    results = Path(__file__).resolve().parents[1] / "results"
    roots = sorted({p.parents[2] for p in results.rglob("*.json") if p.parents[1].name in ("steam", "cds", "goodreads")})
    assert sum(len(load_records(r)) for r in roots) > 100


def test_report_leaves_no_lock_file_and_removes_a_stale_one(pop_results, tmp_path):
    res, _, _ = _copy(pop_results, tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / ".report.lock").write_text(f"pid {_dead_pid()}\n")  # left by a render before issue 25
    assert main(["report", "--results-dir", str(res), "--out", str(out)]) == 0
    assert not (out / ".report.lock").exists() and (out / "README.md").exists()


def test_report_lock_removal_never_lets_two_holders_in(tmp_path):
    """A waiter that got the lock of a file its holder removed locks the new file instead."""
    import threading

    from benchmark.locks import file_lock

    lock, inside, overlaps = tmp_path / ".report.lock", [], []

    def render():
        for _ in range(20):
            with file_lock(lock, remove=True):
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(1)
                inside.pop()

    threads = [threading.Thread(target=render) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [] and not lock.exists()


def test_printed_commands_quote_paths_with_spaces(pop_results, tmp_path, capsys):
    import shlex

    from benchmark.experiments import run_command

    src, args = pop_results
    res, out = tmp_path / "my results", tmp_path / "my reports"
    shutil.copytree(src / "res", res)
    assert main(["report", "--results-dir", str(res), "--out", str(out)]) == 0
    capsys.readouterr()
    readme = (out / "README.md").read_text()
    assert f"python -m benchmark report --results-dir {shlex.quote(str(res))} --out {shlex.quote(str(out))}" in readme
    assert main([a if a != str(src / "res") else str(res) for a in args]) == 0  # finished: skipped, summary printed
    assert f"python -m benchmark report --results-dir {shlex.quote(str(res))}" in capsys.readouterr().out
    cmd = run_command("fig5", "cpu", ["cds"], [0, 1], {"tau": "0.3"}, results_dir="my results")
    assert shlex.split(cmd)[-2:] == ["--results-dir", "my results"]
    assert run_command("fig5", "cpu", ["cds"], [0], results_dir="results/reference").endswith("--into-reference")
