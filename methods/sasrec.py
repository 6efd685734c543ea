"""SASRec: a conventional sequential recommender as a text-free reference point.

Wang-Cheng Kang and Julian McAuley. Self-Attentive Sequential Recommendation. IEEE ICDM 2018.
Upstream code: https://github.com/kang205/SASRec. The model and its training live in
`methods/common/sasrec.py` (shared with D³, whose text-free assistant is this same checkpoint).

It trains on the ``sft`` users' complete sequences (the users the SFT model learns from), selects the
epoch by validation NDCG@10, and ranks the full catalogue with the window's history items masked, like
every method of the benchmark. The list is the top K items by score.

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

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import torch

from benchmark.config import above, at_least, check_fields, in_range
from methods.base import Method, RunContext
from methods.common.sasrec import SASRecConfig, get_sasrec, sasrec_cache_path, sasrec_scores
from methods.registry import register_method


@register_method("sasrec")
class SASRec(Method):
    """Self-attentive sequential recommendation over item ids, trained with full-softmax cross-entropy."""

    display_name = "SASRec"
    paper = "Kang & McAuley, Self-Attentive Sequential Recommendation, ICDM 2018"
    category = "reference"

    @dataclass
    class Config:
        """Mirrors `SASRecConfig`; defaults are the paper's (sparse datasets) with the deviations above."""

        hidden: int = 64  # paper: d = 50
        layers: int = 2  # paper: b = 2 blocks
        heads: int = 1  # paper: single head (multiple heads did not help it)
        dropout: float = 0.5  # paper: 0.5 on its sparse datasets (0.2 on MovieLens-1M)
        maxlen: int = 20  # paper: n = 50
        lr: float = 1e-3  # paper: 0.001, Adam
        weight_decay: float = 0.0  # upstream l2_emb = 0.0
        batch_size: int = 256  # paper: 128
        max_epochs: int = 200  # paper: 200 epochs; here a cap for early stopping
        patience: int = 5  # epochs without a better validation NDCG@10
        eval_every: int = 1

        def __post_init__(self):
            check_fields(self, "config", {
                **{k: at_least(1) for k in ("hidden", "layers", "heads", "maxlen", "batch_size", "max_epochs",
                                            "patience", "eval_every")},
                "dropout": in_range(0.0, 1.0, hi_open=True), "lr": above(0.0), "weight_decay": at_least(0.0)})

    profile_overrides: ClassVar[dict[str, dict]] = {
        "smoke": {"hidden": 16, "layers": 1, "heads": 1, "maxlen": 10, "batch_size": 64, "max_epochs": 2},
    }

    def fit(self, ctx: RunContext) -> dict[str, Any]:
        """Train (or load the cached checkpoint for this config, data and seed)."""
        cfg = SASRecConfig(**asdict(self.config))
        self.model = get_sasrec(ctx, cfg)
        ctx.stats["sasrec_best_epoch"] = self.model.best_epoch
        ctx.stats["sasrec_train_log"] = self.model.train_log
        return {"checkpoint": str(sasrec_cache_path(ctx, cfg))}

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        """Top ``ctx.profile.k`` items by SASRec score, history items excluded."""
        scores = sasrec_scores(self.model, [w.history for w in windows])
        for b, w in enumerate(windows):
            scores[b, list(w.history)] = -torch.inf
        k = min(ctx.profile.k, self.model.n_items)
        return scores.topk(k, dim=1).indices.tolist()
