"""Every method module, imported explicitly (tests/test_registry.py checks this list matches the files)."""

from methods import bigrec, blade_n, blade_r, bon_inference, bon_static, list_dpo, pop, sasrec, sdpo, sprec  # noqa: F401
