"""The decoding spec, and point-wise beam search on hand-built tries with a bigram LM whose scores are known.

The bigram LM's next-token logits depend only on the previous token, so a beam's score can be written down (item
tokens: by hand) or enumerated over the catalogue (BPE titles of different lengths), and compared with what
`generate_lists` returns.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM
from transformers.modeling_outputs import CausalLMOutputWithPast

from methods.common.generation import (
    GREEDY,
    ROLLOUT_REPETITION_PENALTY,
    ROLLOUT_TEMPERATURE,
    DecodingSpec,
    generate_lists,
)
from methods.common.tokenizers import build_item_token_tokenizer, item_token, train_bpe_tokenizer
from methods.common.trie import ItemTrie

HAND_TITLES = ["Portal", "Portal 2", "Half-Life", "Half-Life 2", "Dota 2"]
NEG = -1e4  # "impossible" logit: exp(NEG) underflows to 0 next to the others


class BigramLM(LlamaForCausalLM):
    """A causal LM whose logits at position t are ``table[input_ids[t]]`` (no cache: generate re-reads the prefix)."""

    def __init__(self, tok, table: torch.Tensor):
        cfg = LlamaConfig(hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1,
                          num_key_value_heads=1, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                          eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
        super().__init__(cfg)
        self.table = table
        self.generation_config.use_cache = False

    def forward(self, input_ids=None, **kw):
        return CausalLMOutputWithPast(logits=self.table[input_ids].float())


def item_token_model(p_first: list[float], p_eos: list[float] | None = None):
    """Items 0..n-1 as tokens; after ``<rec>`` the LM puts probability p_first[i] on item i; after item i, EOS with
    probability p_eos[i] (default 1; the rest on item 0's token, as a list model would continue)."""
    n = len(p_first)
    p_eos = p_eos or [1.0] * n
    tok = build_item_token_tokenizer(n)
    trie = ItemTrie(tok, [item_token(i) for i in range(n)], " ")
    V = len(tok)
    table = torch.full((V, V), NEG)
    rec = tok.convert_tokens_to_ids("<rec>")
    for i, p in enumerate(p_first):
        table[rec, trie.item_tokens[i][0]] = math.log(p)
        table[trie.item_tokens[i][0], tok.eos_token_id] = math.log(p_eos[i])
        if p_eos[i] < 1:
            table[trie.item_tokens[i][0], trie.item_tokens[0][0]] = math.log(1 - p_eos[i])
    return tok, trie, BigramLM(tok, table)


def item_prompt(history: list[int]) -> str:
    return "<hist> " + " ".join(item_token(i) for i in history) + " <rec>"


# -- the spec -------------------------------------------------------------------------------------------------------


def test_spec_defaults_and_presets():
    assert GREEDY == DecodingSpec(mode="greedy", n=1, repetition_penalty=1.0)  # evaluation: plain greedy
    r = DecodingSpec.rollout(8)
    assert (r.mode, r.n, r.temperature, r.repetition_penalty) == ("sample", 8, ROLLOUT_TEMPERATURE,
                                                                  ROLLOUT_REPETITION_PENALTY)
    assert (ROLLOUT_TEMPERATURE, ROLLOUT_REPETITION_PENALTY) == (0.8, 1.05)  # the paper's §4.1.4 values
    b = DecodingSpec.pointwise_beam(10)
    assert (b.mode, b.n, b.beams, b.list_len, b.length_penalty) == ("beam", 10, 10, 1, 1.0)
    assert DecodingSpec.pointwise_beam(10, 0.0).length_penalty == 0.0


@pytest.mark.parametrize("kw, msg", [
    (dict(mode="nucleus"), "mode must be one of"),
    (dict(mode="greedy", n=2), "greedy decoding returns one sequence"),
    (dict(mode="beam", n=5, beams=4), r"n \(5\) > beams \(4\)"),
    (dict(n=0), "must be >= 1"),
    (dict(list_len=0), "list_len must be >= 1"),
    (dict(mode="sample", temperature=0.0), "must be > 0"),
])
def test_spec_rejects_bad_values(kw, msg):
    with pytest.raises(ValueError, match=msg):
        DecodingSpec(**kw)


def test_beam_scores_need_beam_mode():
    tok, trie, model = item_token_model([0.5, 0.5, 0.0 + 1e-9])
    with pytest.raises(ValueError, match="beam_scores needs mode='beam'"):
        generate_lists(model, tok, trie, [item_prompt([])], [set()], 1, GREEDY, beam_scores=True, progress=False)


# -- point-wise beam search -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("lp", [1.0, 0.0])
def test_pointwise_beams_by_hand_item_tokens(lp):
    """p(first item) = .1 .4 .2 .25 .05, EOS certain after an item, history {1}: the 3 beams are items 3, 2, 0 with
    scores log p / 2**lp (a beam is the item token + EOS, 2 tokens)."""
    tok, trie, model = item_token_model([0.1, 0.4, 0.2, 0.25, 0.05])
    r = generate_lists(model, tok, trie, [item_prompt([1])], [{1}], 10, DecodingSpec.pointwise_beam(3, lp),
                       beam_scores=True, progress=False)
    assert r.lists == [[[3], [2], [0]]]
    assert r.scores[0] == pytest.approx([math.log(p) / 2**lp for p in (0.25, 0.2, 0.1)], abs=1e-5)
    assert r.tokens_generated == 3 * 2 and r.truncated == 0


@pytest.fixture(scope="module")
def hand_bpe():
    """The hand trie of test_trie.py: titles of 1-4 BPE tokens with shared prefixes ("Portal" / "Portal 2")."""
    prompt = "Recently played:\n" + "\n".join(HAND_TITLES) + "\nRecommend:\n"
    tok = train_bpe_tokenizer(HAND_TITLES * 20 + [prompt] * 5, vocab_size=300)
    trie = ItemTrie(tok, HAND_TITLES, "\n")
    assert [len(t) for t in trie.item_tokens] == [1, 2, 3, 4, 2]  # different lengths, so the penalty matters
    return tok, trie


def _enumerated_scores(tok, trie, table, prompt, allowed, lp):
    """Every allowed item's beam score: sum over its tokens + its end (the separator, scored for the EOS that ends
    the beam) of the full-vocabulary log-softmax of the bigram row of the previous token, / (tokens + 1)**lp."""
    logp = table.float().log_softmax(-1)
    prev = tok(prompt, add_special_tokens=False)["input_ids"][-1]
    out = {}
    for i in allowed:
        seq = list(trie.item_tokens[i]) + [trie.sep_ids[0]]
        s, p = 0.0, prev
        for t in seq:
            s, p = s + float(logp[p, t]), t
        out[i] = s / len(seq) ** lp
    return out


@pytest.mark.parametrize("lp", [1.0, 0.0])
def test_pointwise_beams_match_enumeration_bpe_titles(hand_bpe, lp):
    """With as many beams as allowed items the search is exhaustive: the beams are every allowed title, distinct,
    ordered by their enumerated score (length-normalised or not), history excluded."""
    tok, trie = hand_bpe
    torch.manual_seed(0)
    table = torch.randn(len(tok), len(tok)) * 3
    prompt = "Recently played:\nDota 2\nRecommend:\n"
    allowed = [0, 1, 2, 3]  # Dota 2 (4) is the history
    model = BigramLM(tok, table)
    r = generate_lists(model, tok, trie, [prompt], [{4}], 10, DecodingSpec.pointwise_beam(4, lp), beam_scores=True,
                       progress=False)
    items = [seq[0] for seq in r.lists[0]]
    assert all(len(seq) == 1 for seq in r.lists[0]) and sorted(items) == allowed
    want = _enumerated_scores(tok, trie, table, prompt, allowed, lp)
    assert items == sorted(allowed, key=lambda i: -want[i])
    assert r.scores[0] == pytest.approx([want[i] for i in items], abs=1e-4)
    assert r.scores[0] == sorted(r.scores[0], reverse=True)


def test_length_penalty_changes_the_order_on_titles(hand_bpe):
    """Amplification bias in miniature: "Half-Life 2" (4 tokens, all but the first near-certain: "ghost tokens") has
    probability .2, "Portal" .36 and "Portal 2" .24. Length normalisation (lp 1) ranks the long title first; the
    plain sum (lp 0, D³) ranks by probability."""
    tok, trie = hand_bpe
    (P,), (_, two), _, H2, D = trie.item_tokens
    V = len(tok)
    table = torch.full((V, V), NEG)
    nl = tok("\n", add_special_tokens=False)["input_ids"][-1]
    table[nl, P], table[nl, H2[0]], table[nl, D[0]] = math.log(0.6), math.log(0.2), math.log(0.2)
    table[P, nl], table[P, two] = math.log(0.6), math.log(0.4)  # "Portal" ends (.6) or becomes "Portal 2" (.4)
    table[two, nl] = 0.0  # an item ends with the separator; EOS (the list's end) stays at NEG everywhere
    for a, b in zip(H2, H2[1:]):  # ghost tokens; "Half-Life" cannot end after "Life" (its separator stays at NEG)
        table[a, b] = 0.0
    model = BigramLM(tok, table)
    prompt = "Recently played:\nDota 2\nRecommend:\n"

    def beams(lp):
        r = generate_lists(model, tok, trie, [prompt], [{4}], 10, DecodingSpec.pointwise_beam(4, lp),
                           beam_scores=True, progress=False)
        return [seq[0] for seq in r.lists[0]], r.scores[0]

    items, scores = beams(1.0)  # log .2 / 5 = -0.322 > log .24 / 3 = -0.476 > log .36 / 2 = -0.511 > Half-Life
    assert items == [3, 1, 0, 2]
    assert scores[:3] == pytest.approx([math.log(0.2) / 5, math.log(0.24) / 3, math.log(0.36) / 2], abs=1e-4)
    items, scores = beams(0.0)  # log .36 > log .24 > log .2 > Half-Life
    assert items == [0, 1, 3, 2]
    assert scores[:3] == pytest.approx([math.log(0.36), math.log(0.24), math.log(0.2)], abs=1e-4)


def test_pointwise_beams_score_the_item_not_the_forced_eos():
    """A list-trained model gives EOS after one item a small, item-dependent probability; the trie forces it. The beam
    must rank by the item: p(EOS | item 3) = .01 would otherwise drop item 3 (score (log .25 + log .01) / 2 = -3.00)
    below items 2 and 0 (-1.15, -1.50). Item tokens end with their token, so the end scores 0."""
    tok, trie, model = item_token_model([0.1, 0.4, 0.2, 0.25, 0.05], p_eos=[0.5, 0.5, 0.5, 0.01, 0.5])
    r = generate_lists(model, tok, trie, [item_prompt([1])], [{1}], 10, DecodingSpec.pointwise_beam(3),
                       beam_scores=True, progress=False)
    assert r.lists == [[[3], [2], [0]]]
    assert r.scores[0] == pytest.approx([math.log(p) / 2 for p in (0.25, 0.2, 0.1)], abs=1e-5)
    raw = DecodingSpec(mode="beam", n=3, beams=3, list_len=1)  # without item_end: the one-item LIST's probability
    r = generate_lists(model, tok, trie, [item_prompt([1])], [{1}], 10, raw, beam_scores=True, progress=False)
    # 3 beams keep items 3, 2, 0 after the first step (item 4 is pruned there), then EOS reorders them
    assert r.lists == [[[2], [0], [3]]]
    assert r.scores[0] == pytest.approx([math.log(0.1) / 2, math.log(0.05) / 2, math.log(0.0025) / 2], abs=1e-5)
