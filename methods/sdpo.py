"""S-DPO: softmax-DPO over one positive and several negative lists.

Reference: Chen et al., "On Softmax Direct Preference Optimization for Recommendation", NeurIPS 2024 (arXiv
2406.09215). Upstream: https://github.com/chenyuxin1999/S-DPO (trainer/softmax_dpo_trainer.py, softmax_dpo.py).

Loss (docs/methods.md §1.5), with h(y) = log pi_theta(y|x) - log pi_ref(y|x) summed over the list's tokens:
    L = -log sigmoid( -log sum_k exp( beta * (h(y_k) - h(y_w)) ) ) = log(1 + sum_k exp(beta * (h(y_k) - h(y_w))))
One negative is DPO; at pi_theta = pi_ref it is log(1 + n_neg). Upstream sums raw exponentials; we use logsumexp.

As in the BLADE paper (§4.1.4): a warm-up SFT on the alignment subset's positives first, beta = 0.1, 3 negatives.
Deviations (docs/methods.md §7): the list setting. The positive is the window's target list (de-duplicated, history
items the decoder masks removed); a negative is a list of the same length of random catalogue items the user never
interacted with (upstream: single random non-interacted items from a 20-candidate prompt). Log-probs are taken under
the decoding constraints (methods/common/dpo.py). Upstream's beta is 1, lr 1e-5, 3 epochs, cosine, warm-up 0.05.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from benchmark.data import alignment_pool
from methods.base import Method, RunContext
from methods.common.configs import PREFERENCE_PROFILE_OVERRIDES, PreferenceConfig
from methods.registry import register_method

if TYPE_CHECKING:  # pragma: no cover
    import torch


def sdpo_loss(chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-example S-DPO loss log(1 + sum_k exp(beta * (h_k - h_w))).

    Args:
        chosen_logratios: h(y_w) = log pi_theta(y_w) - log pi_ref(y_w), shape [B].
        rejected_logratios: h(y_k) for the negatives, shape [B, n] (n >= 1).
        beta: the inverse temperature of the implicit reward.

    Returns:
        Shape [B]. With n = 1 it equals DPO's -log sigmoid(beta * (h_w - h_l)).
    """
    import torch
    import torch.nn.functional as F

    if rejected_logratios.dim() != 2 or rejected_logratios.shape[0] != chosen_logratios.shape[0]:
        raise ValueError(f"rejected_logratios must be [B, n] with B = {chosen_logratios.shape[0]}, "
                         f"got {tuple(rejected_logratios.shape)}")
    if rejected_logratios.shape[1] == 0:
        raise ValueError("S-DPO needs at least one negative per positive (rejected_logratios has n = 0)")
    z = torch.logsumexp(beta * (rejected_logratios - chosen_logratios[:, None]), dim=1)
    return F.softplus(z)  # = -logsigmoid(-z)


def random_negatives(length: int, banned: set[int], n_items: int, n: int, rng: random.Random) -> list[list[int]]:
    """`n` lists of `length` distinct random items outside `banned` (the user's items), drawn independently.

    Raises ValueError when the catalogue has fewer than `length` items outside `banned`.
    """
    pool = [i for i in range(n_items) if i not in banned]
    if len(pool) < length:
        raise ValueError(f"cannot draw a negative list of {length} items: only {len(pool)} of {n_items} catalogue "
                         "items are outside the user's interactions")
    return [rng.sample(pool, length) for _ in range(n)]


@register_method("sdpo")
class SDPO(Method):
    display_name = "S-DPO"
    paper = "Chen et al., On Softmax Direct Preference Optimization for Recommendation, NeurIPS 2024"
    category = "llm"
    uses_sft = True
    profile_overrides = PREFERENCE_PROFILE_OVERRIDES

    @dataclass
    class Config(PreferenceConfig):
        """Preference settings (see PreferenceConfig) plus n_neg: negatives per positive (paper: 3)."""

        n_neg: int = 3

    def fit(self, ctx: RunContext) -> dict:
        from methods.common.dpo import fit_preference
        from methods.common.sft import load_sft

        final = fit_preference(ctx, self.config, self.build_rows, sdpo_loss)
        self.model, self.tok, _ = load_sft(final)  # loaded here so recommend() latency is decoding only
        return {"model": str(final)}

    def build_rows(self, ctx: RunContext, windows: Sequence, policy_path) -> tuple[list[dict], dict]:
        """One row per window with a non-empty positive: chosen = the positive, rejected = n_neg random lists."""
        from methods.common.dpo import positive_list, user_items

        rng = random.Random(ctx.seed)
        seen = user_items(alignment_pool(ctx.data, ctx.profile.align_source))  # the users these prompts come from
        rows = []
        for j, w in enumerate(windows):
            pos = positive_list(w, ctx.profile.exclude_history)
            if pos:
                negs = random_negatives(len(pos), seen[w.user], ctx.data.n_items, self.config.n_neg, rng)
                rows.append({"window": j, "chosen": pos, "rejected": negs})
        return rows, {"prompts": len(windows), "dropped_empty_positive": len(windows) - len(rows)}

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        from methods.common.llm import greedy_lists

        return greedy_lists(ctx, self.model, self.tok, windows)
