"""Beam Search: point-wise decoding of the SFT model, the K best single-item beams form the list.

The BLADE paper's baseline (§4.1.2, its ref. [33]): "a representative point-wise decoding strategy that selects the
top-K independent hypotheses based solely on sequence probability". In the official code it is the D³ pipeline with
length_penalty 1.0 and no assistant (SAI990323/DecodingMatters: evaluate.sh runs code/evaluate.py with its defaults,
num_beams = num_return_sequences = 10, constrained to catalogue titles). docs/methods.md §1.8 and §7.

Here: constrained beam search over ONE item (the prompt is the list prompt every method uses; the trie ends the
sequence after one item), K = the profile's list length beams, HF's length_penalty 1.0 (a finished beam scores
sum(log p) / len), history items masked as for every method. The list is the K beams, best first, so the items are
distinct and valid by construction. A beam scores the ITEM: its tokens and its end, i.e. the separator's log-prob
(titles) or nothing (item tokens), not the EOS the trie forces after one item (`generation.ItemEnd`): our SFT model
is trained on 10-item lists, so that EOS is improbable and item-dependent (upstream's model is trained on one title
per answer, where EOS after the title is near-certain). Measured on steam (cpu, validation): scoring the forced
EOS instead gives NDCG@5 0.0891 against 0.0930 (docs/benchmarks.md, decoding family).

No training: the model is the shared SFT checkpoint (= BIGRec). Deterministic given the checkpoint, so one seed is
enough. The mean score of each beam rank is in the record (``stats.beam_scores``).
"""

from __future__ import annotations

from dataclasses import dataclass

from methods.base import Method, RunContext
from methods.registry import register_method


@register_method("beam")
class BeamSearch(Method):
    display_name = "Beam Search"
    paper = "Point-wise beam search (BLADE paper baseline; Bao et al. D³ repo's plain beam setting)"
    category = "inference"
    uses_sft = True

    @dataclass
    class Config:
        """length_penalty: HF beam-search length normalisation exponent (1.0: HF's default, the plain baseline)."""

        length_penalty: float = 1.0

    def fit(self, ctx: RunContext) -> dict:
        from methods.common.sft import load_sft, train_sft

        path = train_sft(ctx.data, ctx.profile, ctx.cache_dir, ctx.log, seed=ctx.seed)
        self.model, self.tok, _ = load_sft(path)
        return {"sft_checkpoint": str(path)}

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        from methods.common.llm import pointwise_beam_lists

        return pointwise_beam_lists(ctx, self.model, self.tok, windows, self.config.length_penalty)
