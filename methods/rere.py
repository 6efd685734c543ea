"""ReRe: GRPO whose group is the G beams of a constrained beam search, with a ranking penalty in the reward.

Reference: Tan et al., "Reinforced Preference Optimization for Recommendation" (ReRe), arXiv 2510.12211.
Upstream: https://github.com/sober-clever/ReRe [7d69eee] (rere.py, rere_trainer.py, rere.sh). docs/methods.md §1.6, §7.
"""

from __future__ import annotations

import math

import torch


def rank_penalty(G: int) -> torch.Tensor:
    """ReRe's ranking penalty of the beam at 0-based rank i among G: -(1/log2(i+2)) / sum_j 1/log2(j+2).

    Upstream rere.py: ``ndcg_rewards = [-1.0/math.log2(i+2) for i in range(num_generations)]`` then
    ``[-elm/sum(ndcg_rewards) for elm in ndcg_rewards]`` (both negative, so each entry is -discount_i / sum).
    """
    disc = torch.tensor([1.0 / math.log2(i + 2) for i in range(G)], dtype=torch.float64)
    return -disc / disc.sum()


def rere_group_rewards(ndcg: torch.Tensor) -> torch.Tensor:
    """ReRe's reward of each beam of each group, in the list setting (docs/methods.md §7).

    Upstream (reward_type "ranking" = rule_reward + ndcg_rule_reward): 1 for the beam that equals the target, 0
    otherwise, plus the rank penalty for every beam that is not the target, applied only if the target is somewhere
    in the group (else the whole group gets 0). Here a beam is a list: the rule reward is its NDCG@10, a "hit" is
    NDCG > 0 (a target item in it), and the penalty goes to the beams without a hit when some beam has one.

    Args:
        ndcg: [n_groups, G] the NDCG@10 of each beam's list, beams in beam-search order (best score first).

    Returns:
        [n_groups, G] float64 rewards.
    """
    ndcg = ndcg.to(torch.float64)
    if ndcg.ndim != 2:
        raise ValueError(f"ndcg must be [n_groups, G], got shape {tuple(ndcg.shape)}")
    hit = ndcg > 0
    penalised = ~hit & hit.any(1, keepdim=True)
    return ndcg + penalised * rank_penalty(ndcg.shape[1])
