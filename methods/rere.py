"""ReRe: GRPO whose group is the G beams of a constrained beam search, with a ranking penalty in the reward.

Reference: Tan et al., "Reinforced Preference Optimization for Recommendation" (ReRe), arXiv 2510.12211.
Upstream: https://github.com/sober-clever/ReRe [7d69eee]: rere.py (rewards, GRPOConfig), rere_trainer.py (beam-search
rollouts over de-duplicated prompts, advantages), rere.sh (the run). docs/methods.md §1.6 and §7.

What upstream does, and what is kept:
  * the G completions of a prompt are the G beams of ONE constrained beam search (num_beams = num_return_sequences
    = G = 16, length_penalty 0.0: rere_trainer.py ``beam_search`` / ``length_penalty=0.0``), run once per prompt on
    the de-duplicated prompts, beams best first; here the rollout hook of methods/common/grpo.py does the same;
  * reward_type "ranking" = rule reward + ranking reward (rere.py ``ndcg_rule_reward``): see `rere_group_rewards`;
  * group advantages (r - mean) / (std + 1e-4), the "grpo" loss with a k3 KL, beta = 1e-3 (rere.sh), temperature
    1.0 and no repetition penalty in the rollouts (rere.sh ``--temperature 1.0``; a no-op warper in beam search).

In the list setting (the BLADE paper does not say how it adapted ReRe; docs/methods.md §7 fixes it): a beam is a
whole list of K items under the trie (so the G beams are G distinct lists, history masked), its rule reward is its
NDCG@10, and the rank penalty goes to the beams without a hit when some beam of the group has one. Evaluation is
greedy, as for every trained method (BLADE paper §4.1.4; upstream evaluates with 50 beams).

Deviations: TRL 1.16's trainer through the shared GRPO code (upstream: its own fork of TRL 0.24's loop); the
shared trainer's AdamW, max_grad_norm 1.0 and no warm-up instead of paged AdamW 32-bit, 0.3 and 3 % warm-up; no
reference-model sync (upstream ``sync_ref_model=True``: TRL's alpha 0.6 every 512 steps, more steps than the
cpu profile takes); the cpu/smoke budgets (prompts, G, epochs, prompts per step) are the BoN family's
(methods/common/configs.py) so the GRPO methods compare at equal cost.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from benchmark.config import Rule, at_least
from benchmark.data import Window, alignment_subset
from benchmark.metrics import ndcg_at_k
from methods.base import Method, RunContext
from methods.common.configs import GRPO_RULES, GRPOSettings
from methods.registry import register_method

if TYPE_CHECKING:  # pragma: no cover
    import torch


def rank_penalty(G: int) -> torch.Tensor:
    """ReRe's ranking penalty of the beam at 0-based rank i among G: -(1/log2(i+2)) / sum_j 1/log2(j+2).

    Upstream rere.py: ``ndcg_rewards = [-1.0/math.log2(i+2) for i in range(num_generations)]`` then
    ``[-elm/sum(ndcg_rewards) for elm in ndcg_rewards]`` (both negative, so each entry is -discount_i / sum).
    """
    import torch

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
    import torch

    ndcg = ndcg.to(torch.float64)
    if ndcg.ndim != 2:
        raise ValueError(f"ndcg must be [n_groups, G], got shape {tuple(ndcg.shape)}")
    hit = ndcg > 0
    penalised = ~hit & hit.any(1, keepdim=True)
    return ndcg + penalised * rank_penalty(ndcg.shape[1])


def rere_group_reward(groups: torch.Tensor, rows: torch.Tensor):
    """The group reward of `train_grpo`: raw NDCG@10 of each beam -> ReRe's reward (+ per-step diagnostics)."""
    r = rere_group_rewards(groups.cpu())
    hit = groups.cpu() > 0
    return r.float(), {"frac_groups_with_hit": float(hit.any(1).float().mean()),
                       "frac_beams_with_hit": float(hit.float().mean()),
                       "penalty_mean": float((r - groups.cpu().double()).mean())}


def beam_rollouts(G: int, length_penalty: float):
    """The rollout hook of `train_grpo`: each prompt's G rows become the G beams of one constrained beam search.

    TRL hands the hook every prompt repeated G times (consecutive rows); the hook decodes each prompt ONCE with
    num_beams = num_return_sequences = G (beams best first, as the rank penalty needs) and returns the same row
    layout. The trie processor holds one excluded set per row, so prompt p's beams (rows p*G .. p*G+G-1) keep its
    history mask. Sampling settings of TRL's generation config are switched off (do_sample False).
    """

    def rollout(model, logits_processor, *, input_ids, attention_mask, generation_config, **kw):
        n = input_ids.shape[0]
        if n % G or not bool((input_ids.view(n // G, G, -1) == input_ids[::G, None]).all()):
            raise RuntimeError(f"beam rollouts need each prompt as {G} consecutive rows; got {n} rows that are not")
        gc = copy.deepcopy(generation_config)
        gc.update(do_sample=False, num_beams=G, num_return_sequences=G, length_penalty=length_penalty,
                  temperature=None, top_k=None, top_p=None)
        out = type(model).generate(model, input_ids=input_ids[::G], attention_mask=attention_mask[::G],
                                   generation_config=gc, logits_processor=logits_processor, **kw)
        seqs = out.view(n // G, G, -1).tolist()
        if any(len({tuple(s) for s in group}) != G for group in seqs):
            raise RuntimeError("beam search returned a repeated sequence within a group")
        return out

    return rollout


# Budgets per profile: the BoN family's (methods/common/configs.py BON_PROFILE_OVERRIDES), so the GRPO methods compare
# at equal cost (the paper profile uses the dataclass defaults, upstream's values). cpu keeps upstream's lr 1e-5: the
# BoN family's cpu lr 1e-4 was measured to hurt ReRe (steam validation NDCG@5 0.0768 vs 0.0917 at 1e-5, end KL 0.20 vs
# 0.011 with beta 1e-3; docs/benchmarks.md, decoding family).
PROFILE_OVERRIDES = {
    "smoke": {"G": 4, "n_align_train": 16, "n_align_valid": 16, "epochs": 1.0, "eval_every": 2, "lr": 1e-4,
              "prompts_per_step": 4},
    "cpu": {"G": 16, "n_align_train": 512, "n_align_valid": 256, "epochs": 1.0, "eval_every": 16,
            "prompts_per_step": 4},
    "smollm2": {"G": 8, "n_align_train": 256, "n_align_valid": 128, "epochs": 1.0, "eval_every": 16,
                "prompts_per_step": 4},
}


@dataclass
class ReReBeams:
    """ReRe's own fields, first in its config (methods/common/configs.py says why): a group is the G beams of ONE
    beam search, so G (the `GRPOSettings` field, named here only to keep it beside the beam search's length penalty)
    comes first, then the reward's cut-off."""

    G: int = GRPOSettings.G
    length_penalty: float = 0.0
    reward_k: int = 10


@register_method("rere")
class ReRe(Method):
    display_name = "ReRe"
    paper = "Tan et al., Reinforced Preference Optimization for Recommendation, arXiv 2510.12211"
    category = "llm"
    uses_sft = True
    profile_overrides = PROFILE_OVERRIDES

    @dataclass
    class Config(GRPOSettings, ReReBeams):
        """Defaults: upstream rere.sh (full fine-tuning from the SFT model); the GRPO fields are `GRPOSettings`'.

        G: beams per prompt (the group). length_penalty: of the rollout beam search (0.0: no normalisation).
        reward_k: the NDCG cut-off of the rule reward (the full list). beta: KL coefficient. epsilon: PPO clip.
        lr, epochs, lr_scheduler: AdamW. prompts_per_step: prompts per optimiser step (rere.sh: 4 prompts x 4 GPUs x
        grad-acc 2). temperature, repetition_penalty: of the rollouts and the training log-probs (1.0: none).
        n_align_train / n_align_valid: the seeded alignment subset (the BLADE paper's 4,096 / 512).
        eval_every: validation NDCG@5 (greedy) every E steps. max_steps: cap (-1: epochs decide).
        num_iterations, logps: the shared trainer's (one update per generation batch, as upstream; log-probs of the
        constrained policy, as every GRPO method here: methods/common/grpo.py).
        """

        beta: float = 1e-3
        lr: float = 1e-5
        epochs: float = 2.0
        lr_scheduler: str = "cosine"
        prompts_per_step: int = 32
        temperature: float = 1.0
        repetition_penalty: float = 1.0

        rules: ClassVar[dict[str, Rule]] = {**GRPO_RULES, "reward_k": at_least(1)}

    def fit(self, ctx: RunContext) -> dict:
        from methods.common.sft import load_sft

        final = self._train(ctx)
        self.model, self.tok, _ = load_sft(final)  # loaded here so recommend() latency is decoding only
        return {"model": str(final)}

    def _train(self, ctx: RunContext) -> Path:
        from methods.common.grpo import check_settings, finished_grpo, train_grpo
        from methods.common.llm import get_trie
        from methods.common.sft import load_sft, train_sft

        cfg = self.config
        check_settings(cfg)
        done = finished_grpo(ctx)
        if done is not None:
            return done
        sft_path = train_sft(ctx.data, ctx.profile, ctx.cache_dir, ctx.log, seed=ctx.seed)  # all processes, together
        _, tok, _ = load_sft(sft_path)
        train_w, valid_w = alignment_subset(ctx.data, cfg.n_align_train, cfg.n_align_valid, ctx.seed,
                                            ctx.profile.align_source)

        def ndcg(items: list[int], w: Window) -> float:
            return ndcg_at_k(items, w.target, cfg.reward_k)

        return train_grpo(ctx, cfg, sft_path=sft_path, tok=tok, trie=get_trie(ctx, tok), train_w=train_w,
                          valid_w=valid_w, list_reward=ndcg, reward_name=f"list_ndcg@{cfg.reward_k}",
                          group_reward=rere_group_reward, rollout=beam_rollouts(cfg.G, cfg.length_penalty))

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        from methods.common.llm import greedy_lists

        return greedy_lists(ctx, self.model, self.tok, windows)
