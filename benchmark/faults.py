"""Injected faults for the reliability tests: ``BENCHMARK_FAULT=<point>[@<n>]`` SIGKILLs the process at the n-th
(default: first) time it reaches the named point, so a test can kill a run at an exact place instead of relying on
timing. Unset (always, outside tests), every hook is a no-op.

Points: ``atomic_write`` (a file written, before its rename), ``atomic_save_dir`` (a folder saved, before its
rename), ``after_fit`` (a method trained, before evaluation), ``sft_save`` / ``grpo_save`` (inside the Trainer's
checkpoint save: the model weights are written, ``trainer_state.json`` is not; installed by `install`).
"""

from __future__ import annotations

import os
import signal

ENV = "BENCHMARK_FAULT"
_seen: dict[str, int] = {}


def _target() -> tuple[str, int] | None:
    spec = os.environ.get(ENV, "")
    if not spec:
        return None
    name, _, n = spec.partition("@")
    return name, int(n or 1)


def fault_point(name: str) -> None:
    """SIGKILL this process if `name` is the configured fault point and this is its n-th visit."""
    t = _target()
    if t is None or t[0] != name:
        return
    _seen[name] = _seen.get(name, 0) + 1
    if _seen[name] == t[1]:
        os.kill(os.getpid(), signal.SIGKILL)


def install() -> None:
    """Hook the Trainer checkpoint save (``sft_save`` / ``grpo_save``) when BENCHMARK_FAULT names it.

    The hook runs at the start of ``Trainer._save_rng_state``, which `_save_checkpoint` calls after writing the
    model and optimizer and before writing ``trainer_state.json``: a kill there is a kill inside a save.
    """
    t = _target()
    if t is None or t[0] not in ("sft_save", "grpo_save"):
        return
    from transformers import Trainer

    original = Trainer._save_rng_state
    if getattr(original, "_fault_hook", False):
        return

    def hooked(self, output_dir):
        from trl import GRPOTrainer

        fault_point("grpo_save" if isinstance(self, GRPOTrainer) else "sft_save")
        return original(self, output_dir)

    hooked._fault_hook = True
    Trainer._save_rng_state = hooked
