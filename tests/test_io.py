"""benchmark/io.py and benchmark/faults.py: atomic writes, stale temporaries, complete checkpoints, output places,
injected kills."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.errors import UserError
from benchmark.io import (atomic_save_dir, atomic_write_gzip, atomic_write_text, check_output_dir, complete_checkpoint,
                          is_complete_checkpoint, remove_stale_tmps)

ROOT = Path(__file__).resolve().parents[1]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_atomic_write_text_and_gzip(tmp_path):
    p = atomic_write_text(tmp_path / "a" / "r.json", "héllo\n")
    assert p.read_text(encoding="utf-8") == "héllo\n"
    g = atomic_write_gzip(tmp_path / "p.jsonl.gz", "x\ny\n")
    with gzip.open(g, "rt") as f:
        assert f.read() == "x\ny\n"
    first = g.read_bytes()
    atomic_write_gzip(g, "x\ny\n")
    assert g.read_bytes() == first  # mtime 0: same content, same bytes
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a", "p.jsonl.gz"]  # no temporary left


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    from benchmark.io import atomic_write

    p = atomic_write_text(tmp_path / "r.json", "old")

    def boom(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(p, boom)
    assert p.read_text() == "old" and [x.name for x in tmp_path.iterdir()] == ["r.json"]


def test_stale_temporaries_of_dead_writers_are_removed_at_the_next_write(tmp_path):
    dead, live = _dead_pid(), os.getppid()
    stale = tmp_path / f".r.json.tmp{dead}"
    stale.write_text("half a record")
    other_live = tmp_path / f".r.json.tmp{live}"  # a writer still at work: not touched
    other_live.write_text("in progress")
    unrelated = tmp_path / f".q.json.tmp{dead}"  # another target: left to its own next write
    unrelated.write_text("x")
    atomic_write_text(tmp_path / "r.json", "{}")
    assert not stale.exists() and other_live.exists() and unrelated.exists()
    assert remove_stale_tmps(tmp_path) == [unrelated]  # the folder sweep takes every dead writer's temporary


def test_atomic_save_dir_replaces_the_folder_and_removes_a_stale_temporary(tmp_path):
    final = tmp_path / "model"
    stale = tmp_path / f".model.tmp{_dead_pid()}"
    stale.mkdir()
    (stale / "half.bin").write_bytes(b"\0")
    atomic_save_dir(lambda d: (d / "a.txt").write_text("1"), final)
    atomic_save_dir(lambda d: (d / "b.txt").write_text("2"), final)
    assert sorted(x.name for x in final.iterdir()) == ["b.txt"]
    assert sorted(x.name for x in tmp_path.iterdir()) == ["model"]


def _checkpoint(work: Path, step: int, state: str | None = "ok", weights: bool = True) -> Path:
    d = work / f"checkpoint-{step}"
    d.mkdir(parents=True)
    if weights:
        (d / "model.safetensors").write_bytes(b"w")
    if state == "ok":
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    elif state == "truncated":
        (d / "trainer_state.json").write_text('{"global_st')
    elif state == "wrong_step":
        (d / "trainer_state.json").write_text(json.dumps({"global_step": step - 1}))
    return d


def test_complete_checkpoint_removes_incomplete_ones(tmp_path):
    work = tmp_path / "work"
    ok10 = _checkpoint(work, 10)
    ok20 = _checkpoint(work, 20)
    _checkpoint(work, 30, state=None)  # killed inside the save: trainer_state.json not written yet
    _checkpoint(work, 40, state="truncated")  # killed while writing trainer_state.json
    _checkpoint(work, 50, state="wrong_step")
    _checkpoint(work, 60, weights=False)
    (work / "README.md").write_text("not a checkpoint")
    assert [is_complete_checkpoint(d) for d in (ok10, ok20)] == [True, True]
    assert complete_checkpoint(work) is True
    assert sorted(x.name for x in work.iterdir()) == ["README.md", "checkpoint-10", "checkpoint-20"]
    # the Trainer resumes from the highest N left, i.e. the newest complete one
    from transformers.trainer_utils import get_last_checkpoint

    assert get_last_checkpoint(str(work)) == str(ok20)


def test_complete_checkpoint_without_any(tmp_path):
    assert complete_checkpoint(tmp_path / "missing") is False
    _checkpoint(tmp_path / "w", 10, state=None)
    assert complete_checkpoint(tmp_path / "w") is False and list((tmp_path / "w").iterdir()) == []


def test_check_output_dir(tmp_path, monkeypatch):
    check_output_dir(tmp_path / "new" / "deeper", "--results-dir")  # creatable: fine, and nothing is created
    assert not (tmp_path / "new").exists()
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match=r"--results-dir .*file is a file, not a folder"):
        check_output_dir(f, "--results-dir")
    with pytest.raises(UserError, match=r"--cache-dir .*file is a file, so the folder cannot be created"):
        check_output_dir(f / "sub", "--cache-dir")
    monkeypatch.setattr(os, "access", lambda p, mode: False)  # root may write anywhere: simulate a read-only dir
    with pytest.raises(UserError, match=r"--cache-dir .* is not writable"):
        check_output_dir(tmp_path / "c", "--cache-dir")


def test_fault_point_kills_at_the_nth_visit(tmp_path):
    code = ("from benchmark.faults import fault_point\n"
            "fault_point('elsewhere'); fault_point('x'); print('first', flush=True)\n"
            "fault_point('x'); print('second')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={**os.environ, "BENCHMARK_FAULT": "x@2"})
    assert r.returncode == -9 and r.stdout == "first\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       env={k: v for k, v in os.environ.items() if k != "BENCHMARK_FAULT"})
    assert r.returncode == 0 and r.stdout == "first\nsecond\n"
