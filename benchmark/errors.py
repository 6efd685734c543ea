"""User-facing errors: the CLI prints these as one clear message, without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """An error caused by the user's input (a name, a file, a value). The message says how to fix it."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UserError:
    """Build the error for an unknown `kind` name, listing the valid names and close matches."""
    valid = sorted(valid)
    close = difflib.get_close_matches(name, valid, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UserError(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}")
