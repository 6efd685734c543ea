"""List DPO: DPO on (best, worst) pairs among lists sampled from the reference policy, ranked by the list reward.

Defined only by the BLADE paper (§4.1.2, Table 3; no official code). Decisions (docs/methods.md §1.10, §7): a warm-up
SFT on the alignment subset's positives (paper §4.1.4), then per prompt n = 8 lists sampled from pi_ref (the warm-up
model, which DPO starts from) with the rollout settings (T 0.8, repetition penalty 1.05, constrained); chosen = the
list with the highest R (NDCG@10 against the window's target), rejected = the lowest; prompts whose best and worst R
tie (all n lists equally good, typically all 0) are skipped and counted. Loss: DPO's -log sigmoid(beta (h_w - h_l)),
beta = 0.1, with list log-probs under the decoding constraints (methods/common/dpo.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from methods.base import Method, RunContext
from methods.common.configs import (PREFERENCE_PROFILE_OVERRIDES, ROLLOUT_REPETITION_PENALTY, ROLLOUT_TEMPERATURE,
                                    PreferenceConfig)
from methods.common.rewards import REWARDS, list_reward
from methods.registry import register_method


def best_worst(rewards: Sequence[float]) -> tuple[int, int] | None:
    """Indices (best, worst) of a prompt's sampled lists by reward (first index on ties); None if max == min."""
    if not rewards:
        return None
    hi = max(range(len(rewards)), key=lambda i: (rewards[i], -i))
    lo = min(range(len(rewards)), key=lambda i: (rewards[i], i))
    return None if rewards[hi] == rewards[lo] else (hi, lo)


@register_method("list_dpo")
class ListDPO(Method):
    display_name = "List DPO"
    paper = "DPO (Rafailov et al., NeurIPS 2023) on best/worst sampled lists, as defined in the BLADE paper §4.1.2"
    category = "listwise"
    uses_sft = True
    profile_overrides = PREFERENCE_PROFILE_OVERRIDES

    @dataclass
    class Config(PreferenceConfig):
        """Preference settings (see PreferenceConfig) plus the sampling of the candidate lists.

        n_samples: lists sampled per prompt from pi_ref. reward / reward_k: R used to pick best and worst (NDCG@10).
        temperature, repetition_penalty: the rollout settings (paper: 0.8 and 1.05).
        """

        n_samples: int = 8
        reward: str = "ndcg"
        reward_k: int = 10
        temperature: float = ROLLOUT_TEMPERATURE
        repetition_penalty: float = ROLLOUT_REPETITION_PENALTY

    def fit(self, ctx: RunContext) -> dict:
        from methods.common.dpo import dpo_loss, fit_preference
        from methods.common.sft import load_sft

        if self.config.reward not in REWARDS:
            raise ValueError(f"list_dpo reward {self.config.reward!r} unknown; valid: {', '.join(REWARDS)}")
        final = fit_preference(ctx, self.config, self.build_rows, dpo_loss)
        self.model, self.tok, _ = load_sft(final)  # loaded here so recommend() latency is decoding only
        return {"model": str(final)}

    def build_rows(self, ctx: RunContext, windows: Sequence, policy_path) -> tuple[list[dict], dict]:
        """Sample n lists per window from the policy at `policy_path`; keep (best, worst) where they differ in R."""
        import torch

        from methods.common.generation import DecodingSpec
        from methods.common.llm import generate_for
        from methods.common.sft import load_sft

        c = self.config
        model, tok, _ = load_sft(policy_path)
        torch.manual_seed(ctx.seed)
        res = generate_for(ctx, model, tok, windows,
                           DecodingSpec.rollout(c.n_samples, c.temperature, c.repetition_penalty),
                           batch_size=max(1, ctx.profile.eval_batch // c.n_samples))
        rows, best_r, worst_r = [], [], []
        for j, (w, lists) in enumerate(zip(windows, res.lists)):
            r = [list_reward(c.reward, y, w.target, w.history, ctx.data.item_genres, ctx.data.genre_set,
                             c.reward_k) for y in lists]
            pair = best_worst(r)
            if pair is not None:
                rows.append({"window": j, "chosen": lists[pair[0]], "rejected": [lists[pair[1]]]})
                best_r.append(r[pair[0]])
                worst_r.append(r[pair[1]])
        info = {"prompts": len(windows), "skipped_tied": len(windows) - len(rows),
                "chosen_reward_mean": sum(best_r) / len(rows) if rows else None,
                "rejected_reward_mean": sum(worst_r) / len(rows) if rows else None}
        return rows, info

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        from methods.common.llm import greedy_lists

        return greedy_lists(ctx, self.model, self.tok, windows)
