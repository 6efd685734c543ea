"""SASRec: a conventional sequential recommender as a text-free reference point.

Wang-Cheng Kang and Julian McAuley. Self-Attentive Sequential Recommendation. IEEE ICDM 2018.
Upstream code: https://github.com/kang205/SASRec. The model and its training live in
`methods/common/sasrec.py`.

This row is the classical reference trained on its own data: every prefix of every ``sft`` user's complete
sequence (steam: 1,107 users, including those too short for an SFT window), not the LLM's SFT windows. It selects
the epoch by validation NDCG@10 and ranks the full catalogue with the window's history items masked, like every
method of the benchmark. The list is the top K items by score. D³'s text-free assistant uses the same
hyper-parameters but is a separate checkpoint trained on exactly the LLM's SFT windows (methods/d3.py).

Config defaults follow the paper's setting for its sparse datasets (Steam, Amazon Beauty/Games) where it
fits our protocol. Deviations:
  * ``hidden`` 64 instead of 50 (divisible by the head count, and the size of our other small models);
  * ``maxlen`` 20 instead of 50: inputs at test time are 10-item windows, and only about 11 % of the raw Steam users
    have 20 or more interactions, so longer inputs would be mostly padding;
  * full-softmax cross-entropy instead of binary cross-entropy with one sampled negative (see the
    common module), which is why the paper's 200 fixed epochs become early stopping with patience;
  * ``batch_size`` 256 instead of 128: every prefix is an example, so an epoch has many more of them.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

from methods.base import Method, RunContext
from methods.common.configs import SASREC_PROFILE_OVERRIDES, SASRecConfig
from methods.registry import register_method


@register_method("sasrec")
class SASRec(Method):
    """Self-attentive sequential recommendation over item ids, trained with full-softmax cross-entropy."""

    display_name = "SASRec"
    paper = "Kang & McAuley, Self-Attentive Sequential Recommendation, ICDM 2018"
    category = "reference"

    Config = SASRecConfig  # the one SASRec config; D³'s assistant has the same values (its own checkpoint)
    profile_overrides: ClassVar[dict[str, dict]] = SASREC_PROFILE_OVERRIDES

    def fit(self, ctx: RunContext) -> dict[str, Any]:
        """Train (or load the cached checkpoint for this config, data and seed)."""
        from methods.common.sasrec import get_sasrec, sasrec_cache_path

        cfg = SASRecConfig(**asdict(self.config))  # a plain SASRecConfig (the cache key hashes its fields)
        self.model = get_sasrec(ctx, cfg)
        ctx.stats["sasrec_best_epoch"] = self.model.best_epoch
        ctx.stats["sasrec_train_log"] = self.model.train_log
        return {"checkpoint": str(sasrec_cache_path(ctx, cfg))}

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        """Top ``ctx.profile.k`` items by SASRec score, history items excluded."""
        import torch

        from methods.common.sasrec import sasrec_scores

        scores = sasrec_scores(self.model, [w.history for w in windows])
        for b, w in enumerate(windows):
            scores[b, list(w.history)] = -torch.inf
        k = min(ctx.profile.k, self.model.n_items)
        return scores.topk(k, dim=1).indices.tolist()
