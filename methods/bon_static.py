"""Static BoN alignment (vBoN): the variational Best-of-N objective (N-1) log F_ref(R(y)) - KL with a FIXED reference.

Reference: Amini, Vieira & Cotterell, "Variational Best-of-N Alignment", ICLR 2025 (arXiv 2407.06057); upstream
https://github.com/rycolab/vbon (PPO via trlx). As in the BLADE paper's comparison (Fig. 4a, Table 1), it is BLADE
with tau = 0: the same GRPO backbone, reference set, rollouts and smoothing ((k+1)/(M+1), vBoN's own estimator), so
the only difference from BLADE is the dynamic evidence. Deviation from upstream: GRPO instead of PPO with a value head.
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import Method, RunContext
from methods.common.blade import PROFILE_OVERRIDES, BladeConfig, train_blade
from methods.common.llm import greedy_lists
from methods.common.sft import load_sft
from methods.registry import register_method


@register_method("bon_static")
class BoNStatic(Method):
    display_name = "BoN Alignment"
    paper = "Amini et al., Variational Best-of-N Alignment, ICLR 2025"
    category = "listwise"
    uses_sft = True
    profile_overrides = PROFILE_OVERRIDES

    @dataclass
    class Config(BladeConfig):
        """BLADE's config with tau = 0 (the static estimator F = (N_ref(<r) + 1) / (M + 1))."""

        tau: float = 0.0

    def fit(self, ctx: RunContext) -> dict:
        final = train_blade(ctx, self.config)
        self.model, self.tok, _ = load_sft(final)  # loaded here so recommend() latency is decoding only
        return {"model": str(final)}

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        return greedy_lists(ctx, self.model, self.tok, windows)
