"""Name -> Method class registry, filled by the `@register_method` decorator.

`methods/__init__.py` imports every method module explicitly; `tests/test_registry.py` checks that the
registered names are exactly the method files, so a forgotten import cannot silently drop a method.
"""

from __future__ import annotations

import re

from benchmark.errors import unknown_name

METHODS: dict[str, type] = {}
_KEY = re.compile(r"^[a-z0-9_]+$")


def register_method(name: str):
    """Class decorator: register a `Method` subclass under `name` (ASCII ``[a-z0-9_]``)."""

    def deco(cls):
        if not _KEY.match(name):
            raise ValueError(f"method name {name!r} must match [a-z0-9_]+")
        if name in METHODS and METHODS[name] is not cls:
            raise ValueError(f"method {name!r} registered twice ({METHODS[name].__name__}, {cls.__name__})")
        cls.name = name
        METHODS[name] = cls
        return cls

    return deco


def get_method(name: str) -> type:
    """Return the registered class for `name`; unknown names raise a UserError listing the valid ones."""
    import methods  # noqa: F401  (fills the registry)

    if name not in METHODS:
        raise unknown_name("method", name, METHODS)
    return METHODS[name]


def all_methods() -> list[str]:
    """Registered names in registration order (the order of `methods/__init__.py`)."""
    import methods  # noqa: F401

    return list(METHODS)
