"""SPRec: self-play fine-tuning with the model's own greedy recommendation as the DPO negative.

Reference: Gao et al., "SPRec: Self-Play to Debias LLM-based Recommendation", WWW 2025 (arXiv 2412.09243). Upstream:
https://github.com/RegionCh/SPRec (shell/SPRec.sh, train/data_generate.py, train/sft.py, train/dpo.py).

Each of T iterations (docs/methods.md §1.7, §7): draw a fresh seeded alignment subset (iteration 0 is the subset the
GRPO methods use; later ones are drawn without the validation windows' users, `methods.common.dpo.iteration_subsets`,
so no iteration trains on alignment-validation data); decode the current model greedily on it, its list is the
negative; one epoch of SFT on the positives (from the current model); one epoch of DPO (beta = 0.1) from the post-SFT
model with the post-SFT model as pi_ref. Validation NDCG@5 after each SFT and DPO step goes into the record.
Deviations: the list setting. The positive is the window's target list (de-duplicated, history items the decoder
masks removed); the negative is the greedy list cut to the positive's length (with one-item targets, as on Goodreads,
this is upstream's "first title of the greedy output"); pairs whose negative equals the positive carry no gradient
and are dropped (upstream keeps them). Upstream draws 2,048 + 256 prompts per iteration and trains both steps at
lr 2e-5 (shell/SPRec.sh): so do the paper, smollm2 and cpu profiles (cpu overrides the family's 1e-4 for both
steps, see `profile_overrides`); smoke keeps its fast 1e-3.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from methods.base import Method, RunContext
from methods.common.configs import PREFERENCE_PROFILE_OVERRIDES, PreferenceConfig
from methods.registry import register_method


def self_play_negative(positive: Sequence[int], greedy: Sequence[int]) -> list[int] | None:
    """The greedy list cut to the positive's length; None when it equals the positive (a zero-gradient pair)."""
    neg = list(greedy[: len(positive)])
    return None if neg == list(positive) else neg


@register_method("sprec")
class SPRec(Method):
    display_name = "SPRec"
    paper = "Gao et al., SPRec: Self-Play to Debias LLM-based Recommendation, WWW 2025"
    category = "llm"
    uses_sft = True
    # cpu: both steps at upstream's lr 2e-5 (shell/SPRec.sh; docs/methods.md §1.7), not the family's 1e-4. The DPO
    # step at 1e-4 collapsed the policy after the first DPO step on steam validation (alignment-valid NDCG@5
    # 0.127 -> 0.011; docs/benchmarks.md, preference baselines); the per-iteration SFT step at 1e-4 was 5x upstream's.
    # smollm2 and paper keep the Config defaults (2e-5 for both); smoke keeps its fast 1e-3.
    profile_overrides = {**PREFERENCE_PROFILE_OVERRIDES,
                         "smoke": {**PREFERENCE_PROFILE_OVERRIDES["smoke"], "iterations": 2},
                         "cpu": {**PREFERENCE_PROFILE_OVERRIDES["cpu"], "lr": 2e-5, "sft_lr": 2e-5}}

    @dataclass
    class Config(PreferenceConfig):
        """Preference settings (see PreferenceConfig; `epochs` is the DPO step's, `sft_*` the SFT step's, both run
        every iteration) plus iterations: the number T of self-play rounds."""

        iterations: int = 3
        epochs: float = 1.0
        lr: float = 2e-5
        sft_lr: float = 2e-5
        batch_size: int = 32  # upstream: 2 per device x 4 accumulation x 4 GPUs
        max_grad_norm: float = 1.0

    def fit(self, ctx: RunContext) -> dict:
        from methods.common.dpo import dpo_loss, fit_preference
        from methods.common.sft import load_sft

        final = fit_preference(ctx, self.config, self.build_rows, dpo_loss, iterations=self.config.iterations,
                               rows_from_start=True)
        self.model, self.tok, _ = load_sft(final)  # loaded here so recommend() latency is decoding only
        return {"model": str(final)}

    def build_rows(self, ctx: RunContext, windows: Sequence, policy_path) -> tuple[list[dict], dict]:
        """Negatives = the greedy lists of the policy at `policy_path`; identical pairs and empty positives dropped."""
        from methods.common.dpo import positive_list
        from methods.common.llm import greedy_lists
        from methods.common.sft import load_sft

        model, tok, _ = load_sft(policy_path)
        rows, same, empty = [], 0, 0
        for j, (w, greedy) in enumerate(zip(windows, greedy_lists(ctx, model, tok, windows))):
            pos = positive_list(w, ctx.profile.exclude_history)
            neg = self_play_negative(pos, greedy) if pos else None
            if neg is not None:
                rows.append({"window": j, "chosen": pos, "rejected": [neg]})
            same += bool(pos) and neg is None
            empty += not pos
        return rows, {"prompts": len(windows), "dropped_equal": same, "dropped_empty_positive": empty}

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        from methods.common.llm import greedy_lists

        return greedy_lists(ctx, self.model, self.tok, windows)
