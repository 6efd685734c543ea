"""benchmark/locks.py: one holder at a time, waiting instead of sharing, released when the holder is killed."""

import os
import subprocess
import sys
import time
from pathlib import Path

from benchmark.locks import _try, file_lock, main_lock

ROOT = Path(__file__).resolve().parents[1]

HOLD = """
import sys, time
from benchmark.locks import file_lock
with file_lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
    if sys.argv[3] == "kill":
        import os, signal
        os.kill(os.getpid(), signal.SIGKILL)
"""


def _holder(path, seconds, end="exit"):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds), end], cwd=ROOT, stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout.readline() == "held\n"
    return p


def _free(path) -> bool:
    fd = os.open(path, os.O_RDWR)
    try:
        return _try(fd)
    finally:
        os.close(fd)


def test_second_holder_waits_for_the_first(tmp_path):
    lock = tmp_path / "run.lock"
    p = _holder(lock, 1.5)
    assert not _free(lock)
    assert f"pid {p.pid}" in lock.read_text()  # the waiting message can say who holds it
    t0 = time.time()
    with file_lock(lock):
        waited = time.time() - t0
    assert waited > 1.0  # it waited for the holder's 1.5 s instead of sharing the work
    assert p.wait() == 0


def test_a_killed_holder_releases_the_lock(tmp_path):
    lock = tmp_path / "run.lock"
    p = _holder(lock, 0.2, end="kill")
    assert p.wait() == -9
    assert _free(lock)  # no stale lock after SIGKILL: the kernel dropped it with the process


def test_main_lock_single_process_is_a_file_lock(tmp_path):
    lock = tmp_path / "a" / "refset.lock"
    with main_lock(lock):
        assert not _free(lock)
    assert _free(lock)
