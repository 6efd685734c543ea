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
  * the assistant is the SAME SASRec checkpoint as the `sasrec` row (methods/common/sasrec.py: one config, one
    cache key), trained on the sft users' sequences.

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

import torch
from transformers import LogitsProcessor

from methods.base import Method, RunContext
from methods.common.llm import pointwise_beam_lists
from methods.common.sasrec import get_sasrec, profile_config, sasrec_cache_path, sasrec_scores
from methods.common.sft import load_sft, train_sft
from methods.common.trie import ItemTrie
from methods.registry import register_method


class TrieBins:
    """Per trie node: the items below it and the token each of them continues with (EOS for the item ending there).

    Built lazily per node (beam search visits few nodes) and kept for the object's life.
    """

    def __init__(self, trie: ItemTrie, eos_token_id: int):
        self.trie, self.eos = trie, int(eos_token_id)
        self._bins: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, node: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(items, tokens): LongTensors of equal length; item ``items[j]`` continues with token ``tokens[j]``."""
        if node not in self._bins:
            trie, depth = self.trie, self.trie.depth[node]
            items, stack = [], [node]
            while stack:  # every terminal below `node`
                nd = stack.pop()
                if trie.terminal[nd] >= 0:
                    items.append(trie.terminal[nd])
                stack.extend(trie.children[nd].values())
            toks = [trie.token_of[trie.item_path[i][depth + 1]] if len(trie.item_path[i]) > depth + 1 else self.eos
                    for i in items]
            self._bins[node] = (torch.tensor(items, dtype=torch.long), torch.tensor(toks, dtype=torch.long))
        return self._bins[node]


def assistant_log_probs(bins: TrieBins, nodes: Sequence[int], item_probs: torch.Tensor,
                        vocab_size: int) -> torch.Tensor:
    """log q(t) of the text-free assistant for rows standing at trie `nodes` (D³'s token aggregation).

    m(t) = sum of ``item_probs[row, i]`` over the items i below the row's node that continue with token t (EOS: the
    item that ends at the node); q(t) = m(t) / sum_t' m(t'). Items the caller gives zero probability (banned ones)
    contribute nothing, so a token all of whose items are banned gets q = 0.

    Args:
        bins: the trie's per-node bins.
        nodes: one trie node per row.
        item_probs: [rows, n_items] assistant probabilities (any non-negative weights; rows need not sum to 1).
        vocab_size: width of the returned tensor.

    Returns:
        [rows, vocab_size] float64: log q(t), -inf where q(t) = 0 (every token that no item below continues with).
    """
    out = torch.full((len(nodes), vocab_size), float("-inf"), dtype=torch.float64)
    probs = item_probs.to(torch.float64)
    by_node: dict[int, list[int]] = {}
    for r, node in enumerate(nodes):
        by_node.setdefault(node, []).append(r)
    for node, rows in by_node.items():
        items, toks = bins(node)
        mass = torch.zeros(len(rows), vocab_size, dtype=torch.float64)
        mass.scatter_add_(1, toks.expand(len(rows), -1), probs[rows][:, items])
        total = mass.sum(1, keepdim=True)
        out[rows] = torch.where(mass > 0, mass.log() - total.log(), float("-inf"))
    return out


class TextFreeAssistant(LogitsProcessor):
    """Mixes beam search's step scores with the assistant: gamma * log p_LLM + (1 - gamma) * log q (one item/row).

    Runs after the trie constraint (so disallowed tokens are already -inf and stay so). Each row's trie node is found
    by walking its completion from the root; rows that finished or left the trie are passed through.

    Args:
        bins: the trie's per-node bins (its EOS is the model's).
        item_probs: [n_prompts, n_items] assistant probabilities of this batch's prompts, banned items at 0.
        gamma: weight of the LLM (1.0 = no assistant).
        prompt_len: the padded prompt width; completions are ``input_ids[:, prompt_len:]``.
    """

    def __init__(self, bins: TrieBins, item_probs: torch.Tensor, gamma: float, prompt_len: int):
        self.bins, self.item_probs, self.gamma, self.prompt_len = bins, item_probs, gamma, prompt_len

    def _node(self, row: list[int]) -> int | None:
        children, node = self.bins.trie.children, 0
        for tok in row:
            node = children[node].get(tok)
            if node is None:  # EOS, padding or junk: nothing to guide
                return None
        return node

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        per_prompt = input_ids.shape[0] // len(self.item_probs)
        rows, keys, key_of = [], {}, []  # beams of one prompt at one node share log q: compute it once per pair
        for r, row in enumerate(input_ids[:, self.prompt_len :].tolist()):
            node = self._node(row)
            if node is not None:
                rows.append(r)
                key_of.append(keys.setdefault((r // per_prompt, node), len(keys)))
        if not rows:
            return scores
        pairs = list(keys)
        log_q = assistant_log_probs(self.bins, [nd for _, nd in pairs], self.item_probs[[p for p, _ in pairs]],
                                    scores.shape[1])[key_of].to(scores)
        llm = scores[rows]
        mixed = self.gamma * llm + (1 - self.gamma) * log_q
        out = scores.clone()
        out[rows] = torch.where(torch.isfinite(llm) & torch.isfinite(log_q), mixed, llm)
        return out


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
        (gamma = 0 is SASRec's own ranking; docs/benchmarks.md, decoding family).
        length_penalty: 0.0, D³'s removal of length normalisation (upstream evaluate2.sh)."""

        gamma: float = 0.5
        length_penalty: float = 0.0

    def fit(self, ctx: RunContext) -> dict:
        if not 0.0 <= self.config.gamma <= 1.0:
            raise ValueError(f"d3 gamma must be in [0, 1], got {self.config.gamma} (1.0 turns the assistant off)")
        path = train_sft(ctx.data, ctx.profile, ctx.cache_dir, ctx.log)
        self.model, self.tok, _ = load_sft(path)
        cfg = profile_config(ctx.profile.name)  # the sasrec row's config: the same cached checkpoint
        self.assistant = get_sasrec(ctx, cfg)
        ctx.stats["assistant_best_epoch"] = self.assistant.best_epoch
        return {"sft_checkpoint": str(path), "assistant_checkpoint": str(sasrec_cache_path(ctx, cfg))}

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        from methods.common.llm import get_trie

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
