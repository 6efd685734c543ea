"""Static BoN alignment (vBoN): the variational Best-of-N objective (N-1) log F_ref(R(y)) - KL with a FIXED reference.

Reference: Amini, Vieira & Cotterell, "Variational Best-of-N Alignment", ICLR 2025 (arXiv 2407.06057); upstream
https://github.com/rycolab/vbon (PPO via trlx). As in the BLADE paper's comparison (Fig. 4a, Table 1), it is BLADE
with tau = 0: the same GRPO backbone, reference set, rollouts and smoothing ((k+1)/(M+1), vBoN's own estimator), so
the only difference from BLADE is the dynamic evidence. Deviation from upstream: GRPO instead of PPO with a value head.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.blade_n import BladeN
from methods.common.configs import BON_PROFILE_OVERRIDES
from methods.registry import register_method


@register_method("bon_static")
class BoNStatic(BladeN):
    """BLADE-N's training and decoding with the dynamic evidence off (tau = 0)."""

    display_name = "BoN Alignment"
    paper = "Amini et al., Variational Best-of-N Alignment, ICLR 2025"
    category = "listwise"
    profile_overrides = BON_PROFILE_OVERRIDES  # BLADE's without the paper profile's tau search

    @dataclass
    class Config(BladeN.Config):
        """BLADE's config with tau = 0 (the static estimator F = (N_ref(<r) + 1) / (M + 1))."""

        tau: float = 0.0
