"""BLADE-N: Bayesian List-wise Alignment via Dynamic Estimation with NDCG@10 as the list reward.

Reference: "Beyond Static Best-of-N: Bayesian List-wise Alignment for LLM-based Recommendation", SIGIR'26
(Eq. 11-15, Algorithm 1). Official code (RegionCh/BLADE) was not public; everything follows the paper and
docs/design.md §5. GRPO backbone: TRL's GRPOTrainer (methods/common/grpo.py). Deviations: add-one smoothing of F
(log F finite; vBoN's code does the same), constrained rollouts (design.md §4), N = 4 and beta = 0.04 (unstated).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import Method, RunContext
from methods.common.configs import BLADE_PROFILE_OVERRIDES, BladeConfig
from methods.registry import register_method


@register_method("blade_n")
class BladeN(Method):
    display_name = "BLADE-N"
    paper = "Beyond Static Best-of-N: Bayesian List-wise Alignment for LLM-based Recommendation, SIGIR 2026"
    category = "ours"
    uses_sft = True
    profile_overrides = BLADE_PROFILE_OVERRIDES  # static BoN's: one run at a fixed tau (the search: blade_n_tau)

    @dataclass
    class Config(BladeConfig):
        """BLADE with R = NDCG@10 (``reward`` also takes ``fair``/``div`` with ``lam`` for RQ3)."""

        reward: str = "ndcg"

    def fit(self, ctx: RunContext) -> dict:
        from methods.common.blade import train_blade
        from methods.common.sft import load_sft

        final = train_blade(ctx, self.config)
        self.model, self.tok, _ = load_sft(final)  # loaded here so recommend() latency is decoding only
        return {"model": str(final)}

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        from methods.common.llm import greedy_lists

        return greedy_lists(ctx, self.model, self.tok, windows)
