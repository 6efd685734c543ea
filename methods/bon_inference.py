"""Inference-time Best-of-N (BLADE Eq. 4): sample N lists from the SFT model and return the one with the best reward.

The selection reads the window's TARGETS, so this is an ORACLE upper bound, not a deployable recommender; every
table labels it so. Sampling uses the rollout settings (T = 0.8, repetition penalty 1.05; the paper does not say).
Its latency (the runner's `recommend_s`) grows with N: that cost is what BLADE amortises into training (Table 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.config import above, at_least, check_fields, one_of
from methods.base import Method, RunContext
from methods.common.configs import ROLLOUT_REPETITION_PENALTY, ROLLOUT_TEMPERATURE
from methods.common.rewards import REWARDS, list_reward
from methods.registry import register_method


@register_method("bon_inference")
class BoNInference(Method):
    display_name = "BoN (oracle)"
    paper = "Best-of-N sampling with oracle selection (BLADE paper Eq. 4, Table 1)"
    category = "inference"
    uses_sft = True
    oracle = True  # the selection reads the target
    sweep = [{"n": 2}, {"n": 4}]  # Table 1 reports both

    @dataclass
    class Config:
        """n: samples per window. reward: the oracle's selection reward (R of Table 1: NDCG@10)."""

        n: int = 4
        reward: str = "ndcg"
        temperature: float = ROLLOUT_TEMPERATURE
        repetition_penalty: float = ROLLOUT_REPETITION_PENALTY

        def __post_init__(self):
            check_fields(self, "config", {"n": at_least(1), "reward": one_of(*REWARDS), "temperature": above(0.0),
                                          "repetition_penalty": above(0.0)})

    def fit(self, ctx: RunContext) -> dict:
        from methods.common.sft import load_sft, train_sft

        path = train_sft(ctx.data, ctx.profile, ctx.cache_dir, ctx.log, seed=ctx.seed)
        self.model, self.tok, _ = load_sft(path)
        return {"sft_checkpoint": str(path)}

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        from methods.common.generation import DecodingSpec
        from methods.common.llm import generate_for

        c = self.config
        res = generate_for(ctx, self.model, self.tok, windows,
                           DecodingSpec.rollout(c.n, c.temperature, c.repetition_penalty),
                           batch_size=max(1, ctx.profile.eval_batch // c.n))
        out = []
        for w, cands in zip(windows, res.lists):
            # the oracle: argmax_i R(y_i) against the window's target (first best on ties)
            out.append(max(cands, key=lambda y: list_reward(c.reward, y, w.target, k=10)))
        return out
