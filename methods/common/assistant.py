"""D³'s text-free assistant as a logits processor (methods/d3.py: the method, its upstream and its deviations).

`TrieBins` groups the items below each trie node by the token they continue with, `assistant_log_probs` turns the
assistant's item probabilities into log q(t) per allowed token, and `TextFreeAssistant` mixes beam search's step
scores with it: gamma * log p_LLM + (1 - gamma) * log q.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

from methods.common.trie import ItemTrie


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
