"""D³ (Debiasing-Diversifying Decoding): point-wise beam search without length normalisation, guided by a
text-free assistant.

Reference: Bao et al., "Decoding Matters: Addressing Amplification Bias and Homogeneity Issue for LLM-based
Recommendation", EMNLP 2024 (arXiv 2406.14900). Upstream: https://github.com/SAI990323/DecodingMatters [585c842]:
code/LogitProcesser.py (`CFEnhancedLogitsProcessor`), code/evaluate.py, evaluate2.sh. docs/methods.md §1.9, §7.

What upstream does, and what is kept:
  * constrained beam search over ONE item, num_beams = num_return_sequences = 10 (here K, the list length), the K
    beams are the list; length_penalty 0.0 (evaluate2.sh), so a beam scores the plain SUM of its step scores;
  * the text-free assistant (TFA): at every step each allowed token t gets the assistant's probability mass of the
    items whose token sequence continues with t (the item that ends here for EOS), renormalised over the allowed
    tokens: q(t) = m(t) / sum_t' m(t') (LogitProcesser.py: ``temp.append(sublogits.sum() + 1e-20)``,
    ``temp / temp.sum()``); the step score is gamma * log p_LLM(t) + (1 - gamma) * log q(t)
    (``guidance_scale * (scores - cf_score) + cf_score``), where log p_LLM is the log-softmax over the FULL
    vocabulary (beam search's scores; the trie only masks) and the assistant's item probabilities are a softmax of
    a SASRec's logits for the user (evaluate.py: ``torch.tensor(logits).softmax(dim=-1)``);
  * the assistant is a SASRec trained on the LLM's own training data, as upstream's (the paper's SASRec shares the
    LLM's training rows: <= 10-item history -> next item): exactly the windows the shared SFT trains on
    (`sft_training_windows`: `benchmark.data.sft_windows` with the profile's ``align_source`` and ``sft_min_target``,
    capped by ``max_sft_windows``; steam cpu: 12,441 windows of 920 sft users), one example per target item, its
    input the history plus the earlier target items (`methods.common.sasrec.window_examples`; with upstream's
    one-item targets, exactly its rows). Its config is the `sasrec` row's for the profile (`sasrec_profile_config`),
    its checkpoint is its own (cache key includes the windows). The `sasrec` ROW is the classical reference trained
    on every sft user's full sequence (steam: 1,107 users, with the ones too short for a window); the assistant used
    that checkpoint until `Config.assistant_data` was added (``"sft_sequences"`` reproduces it).

Deviations, each small: the masses are summed in float64 without the 1e-20 floor (identical unless a probability
underflows); the window's history items get zero assistant mass, as the trie masks them for every method (upstream
masks nothing); the prompt is the benchmark's list prompt, the trie ends the sequence after one item, and the LLM
score of that end is the item's end (the separator's log-prob, or 0 for item tokens) rather than the list's EOS,
as for Beam Search (methods/beam.py, `generation.ItemEnd`).

gamma: upstream's `evaluate.py` defaults ``guidance_scale`` to 1.0 and neither evaluate.sh nor evaluate2.sh sets it,
and ``guidance_scale == 1`` returns the LLM scores untouched: the shipped scripts run D³ WITHOUT the assistant. The
value the paper used is not in the code; ours is chosen on validation (`Config.gamma`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from methods.base import Method, RunContext
from methods.common.configs import sasrec_profile_config
from methods.registry import register_method

# The assistant's logits processor and its pieces live in methods/common/assistant.py (torch); importable from here.
_ASSISTANT = ("TrieBins", "assistant_log_probs", "TextFreeAssistant")


def __getattr__(name: str):
    if name in _ASSISTANT:
        from methods.common import assistant

        return getattr(assistant, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


ASSISTANT_DATA = ("sft_windows", "sft_sequences")


def sft_training_windows(ctx: RunContext) -> list:
    """The windows the shared SFT checkpoint trains on (methods/common/sft.py `_train_sft`): the profile's
    `sft_windows` capped to ``max_sft_windows`` with the SFT's seed."""
    from benchmark.data import cap_windows, sft_windows
    from methods.common.sft import sft_seed

    p = ctx.profile
    return cap_windows(sft_windows(ctx.data, p.align_source, p.sft_min_target), p.max_sft_windows, sft_seed(p, ctx.seed))


@register_method("d3")
class D3(Method):
    display_name = "D³"
    paper = "Bao et al., Decoding Matters: Addressing Amplification Bias and Homogeneity Issue, EMNLP 2024"
    category = "inference"
    uses_sft = True

    @dataclass
    class Config:
        """gamma: LLM weight of the step score (1 - gamma on the assistant; 1.0 = assistant off, upstream's default).
        Upstream's scripts never set it (see the module docstring), so it was chosen on validation: steam, cpu
        profile, seed 0, gamma in {1, .9, .7, .5, .3, .1, 0} -> NDCG@5 .0930 .0960 .1009 .1047 .1031 .1015 .0981
        (gamma = 0 is the assistant's own ranking; docs/benchmarks.md, decoding family), with the assistant then
        trained on every sft user's sequence (``assistant_data = "sft_sequences"``); not re-chosen since.
        length_penalty: 0.0, D³'s removal of length normalisation (upstream evaluate2.sh).
        assistant_data: what the assistant SASRec trains on. "sft_windows" (upstream): exactly the LLM's SFT training
        windows (module docstring); "sft_sequences": every sft user's full sequence, i.e. the `sasrec` row's
        checkpoint (records before this field existed; gamma above was chosen with it)."""

        gamma: float = 0.5
        length_penalty: float = 0.0
        assistant_data: str = "sft_windows"

    def fit(self, ctx: RunContext) -> dict:
        from methods.common.sasrec import get_sasrec, sasrec_cache_path
        from methods.common.sft import load_sft, train_sft

        if not 0.0 <= self.config.gamma <= 1.0:
            raise ValueError(f"d3 gamma must be in [0, 1], got {self.config.gamma} (1.0 turns the assistant off)")
        if self.config.assistant_data not in ASSISTANT_DATA:
            raise ValueError(f"d3 assistant_data must be one of {', '.join(ASSISTANT_DATA)}, "
                             f"got {self.config.assistant_data!r}")
        path = train_sft(ctx.data, ctx.profile, ctx.cache_dir, ctx.log, seed=ctx.seed)
        self.model, self.tok, _ = load_sft(path)
        cfg = sasrec_profile_config(ctx.profile.name)  # the sasrec row's hyper-parameters
        windows = sft_training_windows(ctx) if self.config.assistant_data == "sft_windows" else None
        self.assistant = get_sasrec(ctx, cfg, windows)  # its own checkpoint unless "sft_sequences"
        ctx.stats["assistant_best_epoch"] = self.assistant.best_epoch
        if windows is not None:
            ctx.stats["assistant_train_windows"] = len(windows)
            ctx.stats["assistant_train_users"] = len({w.user for w in windows})
            ctx.stats["assistant_train_examples"] = sum(len(w.target) for w in windows)
        return {"sft_checkpoint": str(path), "assistant_checkpoint": str(sasrec_cache_path(ctx, cfg, windows))}

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        from methods.common.assistant import TextFreeAssistant, TrieBins
        from methods.common.llm import get_trie, pointwise_beam_lists
        from methods.common.sasrec import sasrec_scores

        bins = TrieBins(get_trie(ctx, self.tok), self.tok.eos_token_id)
        gamma = self.config.gamma

        def assistant(idx: Sequence[int], prompt_len: int) -> TextFreeAssistant:
            wins = [windows[i] for i in idx]
            probs = sasrec_scores(self.assistant, [w.history for w in wins]).double().exp()
            if ctx.profile.exclude_history:
                for b, w in enumerate(wins):
                    probs[b, list(w.history)] = 0.0
            return TextFreeAssistant(bins, probs, gamma, prompt_len)

        procs = (assistant,) if gamma < 1.0 else ()
        return pointwise_beam_lists(ctx, self.model, self.tok, windows, self.config.length_penalty, procs)
