"""Every method module, imported explicitly (tests/test_registry.py checks this list matches the files)."""

from methods import (  # noqa: F401
    beam, bigrec, blade_n, blade_n_tau, blade_r, bon_inference, bon_static, d3, list_dpo, pop, rere, sasrec, sdpo,
    sft_align, sprec,
)
