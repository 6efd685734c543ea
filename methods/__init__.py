"""Every method module, imported explicitly (tests/test_registry.py checks this list matches the files)."""

from methods import bigrec, pop, sasrec  # noqa: F401
