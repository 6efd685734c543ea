"""Provenance carried by every record: code version, library versions, machine (CPU model, kernels, host), date."""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata as md
import platform
import socket
import subprocess
from pathlib import Path

LIBS = ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "numpy", "pandas")


def _git(*args: str) -> str:
    try:
        root = Path(__file__).resolve().parents[1]
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance() -> dict:
    import torch

    versions = {}
    for lib in LIBS:
        try:
            versions[lib] = md.version(lib)
        except md.PackageNotFoundError:
            versions[lib] = None
    return {
        "git_sha": _git("rev-parse", "HEAD") or None,
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "versions": versions,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpu_count": __import__("os").cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # the same model name can hide different kernels: torch's CPU dispatch level (AVX2, AVX512, ...) and which
        # host (a hash of its name) tell runs of two machines apart, since their numerics differ in the last digits
        "cpu_model": _cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "host": hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8],
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
