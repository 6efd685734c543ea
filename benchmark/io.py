"""Safe writes: every file or folder the benchmark writes appears complete or not at all.

* ``atomic_write`` / ``atomic_write_text`` / ``atomic_write_gzip``: write ``.<name>.tmp<pid>`` beside the target,
  fsync, then ``os.replace`` it onto the target. ``atomic_save_dir`` does the same for a folder (a model or
  tokenizer saved by ``save_pretrained``).
* A killed write leaves its ``.<name>.tmp<pid>`` behind; the next write of the same target removes the ones whose
  process is dead (``remove_stale_tmp``), and ``remove_stale_tmps`` sweeps a whole folder.
* ``complete_checkpoint``: the newest Trainer checkpoint that was saved completely (a kill inside a save leaves a
  ``checkpoint-N`` without ``trainer_state.json``, which the Trainer writes last); incomplete ones are removed.
* ``check_output_dir``: an output folder that is a file or cannot be written is refused before any work.
* ``content_hash``: the 12-hex-digit key of run ids and cache entries (no torch: `run --dry-run` computes run ids).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import IO

from benchmark.errors import UserError
from benchmark.faults import fault_point

_TMP = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)$")


def content_hash(obj) -> str:
    """sha256 of `obj` as sorted-key JSON, first 12 hex digits: run ids and cache keys."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def tmp_path(path: Path) -> Path:
    """The temporary sibling this process writes `path` through."""
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def pid_alive(pid: int) -> bool:
    """True if process `pid` exists (signal 0 probes without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        p.unlink(missing_ok=True)


def remove_stale_tmps(folder: Path, name: str | None = None) -> list[Path]:
    """Remove ``.<name>.tmp<pid>`` entries in `folder` (only those of target `name`, if given) whose writer is dead.

    Returns the removed paths. The temporary of a live process (another writer at work) is left alone.
    """
    removed = []
    if not Path(folder).is_dir():
        return removed
    for p in Path(folder).iterdir():
        m = _TMP.match(p.name)
        if m and (name is None or m["name"] == name) and not pid_alive(int(m["pid"])):
            _remove(p)
            removed.append(p)
    return removed


def remove_stale_tmp(path: Path) -> list[Path]:
    """Remove the dead writers' temporaries of target `path`."""
    return remove_stale_tmps(Path(path).parent, Path(path).name)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Write `path` through ``write(binary file)`` into a temporary sibling, fsync, then rename onto `path`.

    Readers see the old file or the complete new one, never a part. A leftover of a killed earlier write of the
    same target is removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path)
    tmp = tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            fault_point("atomic_write")
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    """`atomic_write` of UTF-8 text."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_gzip(path: Path, text: str) -> Path:
    """`atomic_write` of gzip-compressed UTF-8 text (mtime 0: identical content gives identical bytes)."""

    def write(f):
        with gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) as g:
            g.write(text.encode("utf-8"))

    return atomic_write(path, write)


def atomic_save_dir(save: Callable[[Path], None], final: Path) -> Path:
    """Run ``save(tmp_dir)`` (e.g. ``model.save_pretrained``), then swap the folder into place as `final`.

    A kill before the swap leaves only a temporary (removed by the next save of `final`); a kill between removing
    an old `final` and the rename leaves no `final`, so its producer runs again.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(final)
    tmp = tmp_path(final)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save(tmp)
        fault_point("atomic_save_dir")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# ------------------------------------------------------------------------------------------------ checkpoints
CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin")


def is_complete_checkpoint(d: Path) -> bool:
    """A Trainer checkpoint folder is complete when its ``trainer_state.json`` (written last by
    ``Trainer._save_checkpoint``) parses and names the folder's step, and its model weights are present."""
    m = CHECKPOINT.match(Path(d).name)
    try:
        state = json.loads((Path(d) / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (bool(m) and isinstance(state, dict) and state.get("global_step") == int(m[1])
            and any((Path(d) / w).exists() for w in WEIGHTS))


def complete_checkpoint(work: Path) -> bool:
    """Prepare `work` (a Trainer ``output_dir``) for resuming: remove every incomplete ``checkpoint-N`` and return
    whether a complete one is left. ``trainer.train(resume_from_checkpoint=True)`` then resumes from the newest
    complete checkpoint (the Trainer takes the highest N)."""
    work = Path(work)
    if not work.is_dir():
        return False
    found = False
    for d in sorted(work.iterdir()):
        if d.is_dir() and CHECKPOINT.match(d.name):
            if is_complete_checkpoint(d):
                found = True
            else:
                shutil.rmtree(d, ignore_errors=True)
    return found


# ------------------------------------------------------------------------------------------------ output places
def check_output_dir(path: Path, what: str) -> None:
    """Refuse an output folder that cannot be used, before any work: `path` is a file, or the folder (or the
    nearest existing folder above it, where it would be created) is not writable. Creates nothing."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{what} {p} is a file, not a folder. Give a folder path (it is created if missing)")
    q = p
    while not q.exists():
        q = q.parent
    if not q.is_dir():
        raise UserError(f"{what} {p}: {q} is a file, so the folder cannot be created. Give another path")
    if not os.access(q, os.W_OK | os.X_OK):
        raise UserError(f"{what} {p}: {q} is not writable. Give a folder you can write to")


__all__ = ["atomic_write", "atomic_write_text", "atomic_write_gzip", "atomic_save_dir", "remove_stale_tmp",
           "remove_stale_tmps", "complete_checkpoint", "is_complete_checkpoint", "check_output_dir", "pid_alive"]
