"""One writer at a time: fcntl file locks (Linux) for a run and for each shared artefact.

* `file_lock(path)`: an exclusive ``flock`` on `path` (created) for the ``with`` block; waits, saying once who holds
  it. The kernel releases it when the holder exits, also on SIGKILL, so a killed run never leaves a stale lock.
  ``file_lock(path, remove=True)`` also deletes the file when the block ends (a report folder keeps no
  ``.report.lock``); a waiter that then holds the deleted file's lock notices and locks the new file instead.
* `main_lock(path)`: the same, taken by the main process of an ``accelerate launch`` only (where only it writes:
  reference sets, caches); the other processes pass through without waiting.
* `all_processes_lock(path)`: for a section every process enters together (a run: all ranks train). The main
  process polls the lock and tells the others each second whether it has it, so no rank sits in a collective for
  longer than that (a blocking barrier would time out while another run holds the lock for hours).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

log = logging.getLogger("benchmark")
POLL_S = 1.0


def _try(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _holder(path: Path) -> str:
    try:
        return Path(path).read_text().strip() or "?"
    except OSError:
        return "?"


def _same_file(fd: int, path: Path) -> bool:
    """`fd` is still the file at `path` (not one a `remove=True` holder deleted while we waited for it)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    fst = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)


@contextlib.contextmanager
def _held(path: Path, acquire, remove: bool = False):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            acquire(fd, path)
        except BaseException:
            os.close(fd)
            raise
        if not remove or _same_file(fd, path):  # the file's holders remove it only with remove=True
            break
        os.close(fd)  # the previous holder removed the file: lock the one at `path` now
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}\n".encode(), 0)  # who holds it, for the waiting message
        yield
    finally:
        if remove:
            Path(path).unlink(missing_ok=True)  # still held: no one can lock this file in between
        os.close(fd)  # releases the lock


def _wait(fd: int, path: Path) -> None:
    if not _try(fd):
        log.info("waiting for %s (held by %s): the same work is running elsewhere", path, _holder(path))
        fcntl.flock(fd, fcntl.LOCK_EX)


@contextlib.contextmanager
def file_lock(path: Path, remove: bool = False):
    """Hold an exclusive lock on `path` for the block (waits for another holder); `remove`: delete `path` after."""
    with _held(path, _wait, remove):
        yield


def _state():
    from accelerate import PartialState

    return PartialState()


@contextlib.contextmanager
def main_lock(path: Path):
    """`file_lock`, taken by the main process only (single process: always)."""
    if _state().is_main_process:
        with file_lock(path):
            yield
    else:
        yield


@contextlib.contextmanager
def all_processes_lock(path: Path):
    """`file_lock` for a block that every process of the launch enters together; the main process holds it."""
    state = _state()
    if state.num_processes == 1:
        with file_lock(path):
            yield
        return
    from accelerate.utils import broadcast_object_list

    def poll(fd, p):
        said = False
        while True:
            got = [_try(fd) if state.is_main_process else False]
            broadcast_object_list(got, from_process=0)
            if got[0]:
                return
            if state.is_main_process and not said:
                log.info("waiting for %s (held by %s): the same work is running elsewhere", p, _holder(p))
                said = True
            time.sleep(POLL_S)

    if state.is_main_process:
        with _held(path, poll):
            yield
    else:
        poll(None, path)
        yield
