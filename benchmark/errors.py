"""User-facing errors: the CLI prints these as one clear message, without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """An error caused by the user's input (a name, a file, a value). The message says how to fix it."""


class TrainingDiverged(UserError):
    """A trainer met a non-finite loss (methods/common/guards.py): the run fails before any record is written. The
    message names the stage, the value, the step and the setting to lower; the CLI prints it as one line, exit 2."""


class BrokenList(UserError):
    """A method returned a list that breaks the decoding constraint (length, validity, repeats, history items):
    the run fails before its record is written (runners/execute.py)."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UserError:
    """Build the error for an unknown `kind` name, listing the valid names and close matches."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UserError(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}")
