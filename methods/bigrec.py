"""BIGRec: supervised fine-tuning of an LLM on (history -> next items), evaluated greedily.

Reference: Bao et al., "A Bi-Step Grounding Paradigm for Large Language Models in Recommendation Systems",
ACM TORS 2025 (arXiv 2308.08434). Upstream: https://github.com/SAI990323/BIGRec.

Deviations (docs/methods.md §1.4, §7): a list of K titles per window instead of one title; completion-only loss
(upstream trains on inputs too); grounding is exact through constrained decoding instead of L2 nearest neighbour
in embedding space (the unconstrained mode keeps a fuzzy/embedding fallback). The checkpoint is chosen by validation
loss with early stopping, as upstream does. This SFT checkpoint is pi_ref and the initial policy of every alignment
method; it is trained once per (dataset, profile, seed) and shared by that seed's methods (the run seed drives it;
the profile field `sft_seed` pins one base for every seed).
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmark.config import check_fields, one_of
from methods.base import Method, RunContext
from methods.registry import register_method


@register_method("bigrec")
class BIGRec(Method):
    display_name = "BIGRec"
    paper = "Bao et al., A Bi-Step Grounding Paradigm for LLMs in Recommendation Systems, TORS 2025"
    category = "llm"
    uses_sft = True
    role = "sft"  # the shared SFT model itself

    @dataclass
    class Config:
        """Decoding of the SFT model (its training settings are the profile's `sft_*` fields)."""

        decoding: str = "greedy"  # the paper evaluates every trained method greedily

        def __post_init__(self):
            check_fields(self, "config", {"decoding": one_of("greedy", "sample", "beam")})

    def fit(self, ctx: RunContext) -> dict:
        from methods.common.sft import load_sft, train_sft

        path = train_sft(ctx.data, ctx.profile, ctx.cache_dir, ctx.log, seed=ctx.seed)
        self.model, self.tok, info = load_sft(path)
        ctx.stats["sft"] = info
        return {"sft_checkpoint": str(path)}

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        from methods.common.generation import DecodingSpec
        from methods.common.llm import generate_for

        res = generate_for(ctx, self.model, self.tok, windows, DecodingSpec(mode=self.config.decoding))
        return [seqs[0] for seqs in res.lists]
