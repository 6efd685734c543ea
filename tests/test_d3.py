"""D³'s text-free assistant: the token probability aggregation on hand-built tries (BPE titles of different lengths,
and item tokens), the step-score mixing of the LogitsProcessor, and a D³ beam search whose order is hand-computed.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from test_decoding import HAND_TITLES, BigramLM, item_prompt, item_token_model

from methods.common.generation import DecodingSpec, generate_lists
from methods.common.tokenizers import build_item_token_tokenizer, item_token, train_bpe_tokenizer
from methods.common.trie import ItemTrie
from methods.d3 import D3, TextFreeAssistant, TrieBins, assistant_log_probs

INF = float("inf")


@pytest.fixture(scope="module")
def hand():
    """Portal | Portal 2 | Half-Life | Half-Life 2 | Dota 2 = (P) | (P, 2) | (Half, -, Life) | (Half, -, Life, 2) |
    (Dota, 2): 1 to 4 tokens, shared prefixes, and " 2" shared by three titles at different depths."""
    prompt = "Recently played:\n" + "\n".join(HAND_TITLES) + "\nRecommend:\n"
    tok = train_bpe_tokenizer(HAND_TITLES * 20 + [prompt] * 5, vocab_size=300)
    trie = ItemTrie(tok, HAND_TITLES, "\n")
    P, P2, H, H2, D = trie.item_tokens
    assert P2[:1] == P and H2[:3] == H and len(H) == 3 and P2[1] == H2[3] == D[1] and D[0] not in (P[0], H[0])
    return tok, trie, TrieBins(trie, tok.eos_token_id)


PROBS = torch.tensor([[0.1, 0.2, 0.3, 0.15, 0.25]])  # assistant probabilities of the five titles


def _q(bins, node, probs, V):
    """{token: q} of the finite entries of assistant_log_probs for one row."""
    row = assistant_log_probs(bins, [node], probs, V)[0]
    return {t: math.exp(v) for t, v in enumerate(row.tolist()) if v > -INF}


def _node(trie, toks):
    node = 0
    for t in toks:
        node = trie.children[node][t]
    return node


def test_aggregation_bpe_titles_by_hand(hand):
    tok, trie, bins = hand
    V, eos = len(tok), tok.eos_token_id
    (Po,), (_, two), (Ha, dash, Li), _, (Do, _) = trie.item_tokens
    # Root: "Portal" carries Portal + Portal 2 = .3, "Half" carries Half-Life + Half-Life 2 = .45, "Dota" .25.
    assert _q(bins, 0, PROBS, V) == pytest.approx({Po: 0.3, Ha: 0.45, Do: 0.25})
    # After "Portal" (an item ends here): EOS is Portal's .1, " 2" is Portal 2's .2 -> 1/3, 2/3.
    assert _q(bins, _node(trie, [Po]), PROBS, V) == pytest.approx({eos: 1 / 3, two: 2 / 3})
    # Inside "Half-Life": one continuation only (a ghost token), q = 1, log q = 0 exactly.
    assert _q(bins, _node(trie, [Ha]), PROBS, V) == {dash: 1.0}
    assert assistant_log_probs(bins, [_node(trie, [Ha, dash])], PROBS, V)[0, Li].item() == 0.0
    # After "Half-Life": EOS .3 vs " 2" .15 -> 2/3, 1/3 (the same " 2" token as after "Portal", other items).
    assert _q(bins, _node(trie, [Ha, dash, Li]), PROBS, V) == pytest.approx({eos: 2 / 3, two: 1 / 3})
    # After "Dota": only " 2"; after "Dota 2": only EOS.
    assert _q(bins, _node(trie, [Do]), PROBS, V) == {two: 1.0}
    assert _q(bins, _node(trie, [Do, two]), PROBS, V) == {eos: 1.0}


def test_aggregation_banned_items_get_no_mass(hand):
    """Zero probability (the window's history, as D3.recommend sets it) removes an item from every bin."""
    tok, trie, bins = hand
    V, eos = len(tok), tok.eos_token_id
    (Po,), (_, two), (Ha, _, _), _, (Do, _) = trie.item_tokens
    banned = PROBS.clone()
    banned[0, 1] = 0.0  # Portal 2
    assert _q(bins, 0, banned, V) == pytest.approx({Po: 0.1 / 0.8, Ha: 0.45 / 0.8, Do: 0.25 / 0.8})
    assert _q(bins, _node(trie, [Po]), banned, V) == pytest.approx({eos: 1.0})  # " 2" has no mass left


def test_aggregation_rows_are_independent(hand):
    """Several rows at different nodes with different users' probabilities in one call."""
    tok, trie, bins = hand
    V, eos = len(tok), tok.eos_token_id
    (Po,), (_, two), _, _, _ = trie.item_tokens
    probs = torch.tensor([[0.1, 0.2, 0.3, 0.15, 0.25], [0.4, 0.1, 0.1, 0.1, 0.3], [0.1, 0.2, 0.3, 0.15, 0.25]])
    nodes = [_node(trie, [Po]), _node(trie, [Po]), 0]
    out = assistant_log_probs(bins, nodes, probs, V).exp()
    assert out[0, eos].item() == pytest.approx(1 / 3) and out[1, eos].item() == pytest.approx(0.8)
    assert out[1, two].item() == pytest.approx(0.2) and out[2, Po].item() == pytest.approx(0.3)


def test_aggregation_item_tokens_by_hand():
    """One token per item: q is the assistant's distribution renormalised over the allowed items; after an item
    only EOS remains (q = 1)."""
    tok = build_item_token_tokenizer(4)
    trie = ItemTrie(tok, [item_token(i) for i in range(4)], " ")
    bins = TrieBins(trie, tok.eos_token_id)
    probs = torch.tensor([[0.1, 0.0, 0.3, 0.1]])  # item 1 banned
    ids = [t[0] for t in trie.item_tokens]
    assert _q(bins, 0, probs, len(tok)) == pytest.approx({ids[0]: 0.2, ids[2]: 0.6, ids[3]: 0.2})
    assert _q(bins, trie.children[0][ids[2]], probs, len(tok)) == {tok.eos_token_id: 1.0}


def test_processor_mixes_step_scores(hand):
    """gamma * log p_LLM + (1 - gamma) * log q on allowed tokens; -inf stays -inf; finished rows pass through."""
    tok, trie, bins = hand
    V, eos = len(tok), tok.eos_token_id
    (Po,), (_, two), (Ha, dash, _), _, (Do, _) = trie.item_tokens
    g = 0.25
    # the root (empty completion after a 2-token prompt)
    root = torch.full((1, V), -INF)
    root[0, [Po, Ha, Do]] = torch.tensor([-1.0, -2.0, -3.0])
    out = TextFreeAssistant(bins, PROBS, g, 2)(torch.tensor([[9, 9]]), root.clone())[0]
    want = {Po: g * -1 + (1 - g) * math.log(0.3), Ha: g * -2 + (1 - g) * math.log(0.45),
            Do: g * -3 + (1 - g) * math.log(0.25)}
    assert {t: out[t].item() for t in want} == pytest.approx(want)
    assert torch.isinf(out).sum().item() == V - 3
    # 1 prompt x 3 rows (beams) after a 2-token prompt: off the trie, inside "Half-Life" (q = 1), finished
    rows = torch.tensor([[9, 9, Po, Po], [9, 9, Ha, dash], [9, 9, Po, eos]])
    scores = torch.full((3, V), -INF)
    scores[0, [eos, two]] = torch.tensor([-0.5, -1.5])
    scores[1, trie.item_tokens[2][2]] = -0.1
    scores[2, eos] = 0.0
    out = TextFreeAssistant(bins, PROBS, g, 2)(rows, scores.clone())
    assert torch.equal(out[0], scores[0])  # "Portal Portal" is no trie path: untouched
    assert out[1, trie.item_tokens[2][2]].item() == pytest.approx(g * -0.1)  # (1 - g) * log 1 = 0
    assert torch.equal(out[2], scores[2])  # finished: untouched
    # after "Portal" (a 3-token prompt, completion [Po]): EOS 1/3, " 2" 2/3
    out = TextFreeAssistant(bins, PROBS, g, 3)(rows[:1], scores[:1].clone())[0]
    assert out[eos].item() == pytest.approx(g * -0.5 + (1 - g) * math.log(1 / 3))
    assert out[two].item() == pytest.approx(g * -1.5 + (1 - g) * math.log(2 / 3))
    # gamma = 1: the LLM scores unchanged; gamma = 0: log q alone on the allowed tokens
    assert torch.equal(TextFreeAssistant(bins, PROBS, 1.0, 2)(torch.tensor([[9, 9]]), root.clone()), root)
    only_q = TextFreeAssistant(bins, PROBS, 0.0, 2)(torch.tensor([[9, 9]]), root.clone())[0]
    assert only_q[Ha].item() == pytest.approx(math.log(0.45)) and only_q[eos].item() == -INF


def test_d3_beams_by_hand_item_tokens():
    """p_LLM(first item) = .1 .4 .2 .25 .05, assistant .5 .1 .1 .1 .2, history {1}, gamma .5, no length penalty.
    q over the allowed items {0, 2, 3, 4} = (.5, .1, .1, .2) / .9; the EOS step adds .5 log 1 + .5 log 1 = 0.
    Scores: item 0 .5 log .1 + .5 log(.5/.9) = -1.445; 3: -1.792; 2: -1.903; 4: -2.250. The LLM alone: 3, 2, 0."""
    tok, trie, model = item_token_model([0.1, 0.4, 0.2, 0.25, 0.05])
    bins = TrieBins(trie, tok.eos_token_id)
    probs = torch.tensor([[0.5, 0.0, 0.1, 0.1, 0.2]])  # history item 1 zeroed, as D3.recommend does
    def assistant(idx, prompt_len):
        return TextFreeAssistant(bins, probs[list(idx)], 0.5, prompt_len)

    spec = DecodingSpec.pointwise_beam(3, 0.0, (assistant,))
    r = generate_lists(model, tok, trie, [item_prompt([1])], [{1}], 10, spec, beam_scores=True, progress=False)
    assert r.lists == [[[0], [3], [2]]]
    want = [0.5 * math.log(p) + 0.5 * math.log(q / 0.9) for p, q in ((0.1, 0.5), (0.25, 0.1), (0.2, 0.1))]
    assert r.scores[0] == pytest.approx(want, abs=1e-5)


def test_d3_gamma_outside_unit_interval_is_rejected():
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\]"):
        D3(D3.Config(gamma=1.5)).fit(None)


class _Stop(Exception):
    """Raised by the stubs below once they have recorded what they were given."""


def _sft_training_windows(ds, profile, cache_dir, monkeypatch):
    """The windows the shared SFT hands its trainer: the first `prompt_completion` call of `train_sft` (its train
    set), recorded before any tokenizer or model is built."""
    from methods.common import sft

    seen = []

    def record(ds, windows, profile, tok):
        seen.extend(windows)
        raise _Stop

    with monkeypatch.context() as m:
        m.setattr(sft, "get_tokenizer", lambda *a, **k: None)
        m.setattr(sft, "prompt_completion", record)
        with pytest.raises(_Stop):
            sft.train_sft(ds, profile, cache_dir)
    return seen


def _assistant_data(ds, profile, tmp_path, monkeypatch, **config):
    """(windows given to get_sasrec, examples given to train_sasrec, checkpoint path) of D3.fit (SFT stubbed)."""
    import logging

    from methods.base import RunContext
    from methods.common import sasrec as sasrec_lib
    from methods.common import sft

    seen = {}
    get_sasrec = sasrec_lib.get_sasrec

    def spy(ctx, cfg, windows=None):
        seen["windows"], seen["path"] = windows, sasrec_lib.sasrec_cache_path(ctx, cfg, windows)
        return get_sasrec(ctx, cfg, windows)

    def record(sequences, n_items, cfg, valid_windows, log=None, examples=None):
        seen["examples"], seen["cfg"] = examples, cfg
        raise _Stop

    monkeypatch.setattr(sft, "train_sft", lambda *a, **k: tmp_path / "sft")
    monkeypatch.setattr(sft, "load_sft", lambda path: (None, None, {}))
    monkeypatch.setattr(sasrec_lib, "get_sasrec", spy)
    monkeypatch.setattr(sasrec_lib, "train_sasrec", record)
    ctx = RunContext(data=ds, profile=profile, seed=0, run_dir=tmp_path / "run", cache_dir=tmp_path / "cache",
                     log=logging.getLogger("test"))
    with pytest.raises(_Stop):
        D3(D3.Config(**config)).fit(ctx)
    return seen


# steam: (SFT training windows, their users); the sasrec row trains on all 1,531 sft users' sequences.
SFT_DATA = {"smoke": (400, 116), "cpu": (11524, 1218), "paper": (7916, 314)}


@pytest.mark.parametrize("profile_name", sorted(SFT_DATA))
def test_assistant_trains_on_exactly_the_sft_windows(profile_name, steam, tmp_path, monkeypatch):
    """D³'s SASRec learns from the LLM's SFT windows (smoke: the 400-window cap; cpu: the shorter-target windows;
    paper: sft + align users), one example per target item, in a checkpoint apart from the sasrec row's."""
    from benchmark.config import get_profile, profile_for
    from methods.common import sasrec as sasrec_lib

    profile = profile_for(get_profile(profile_name), steam.name)
    sft_w = _sft_training_windows(steam, profile, tmp_path / "sft_cache", monkeypatch)
    got = _assistant_data(steam, profile, tmp_path, monkeypatch)
    assert got["windows"] is not None, "the assistant trains on the sasrec row's data (every sft user's sequence)"
    assert got["windows"] == sft_w
    assert (len(sft_w), len({w.user for w in sft_w})) == SFT_DATA[profile_name]
    assert {w.user for w in got["windows"]} == {w.user for w in sft_w}
    inputs, targets = got["examples"]
    assert len(targets) == sum(len(w.target) for w in sft_w) == len(inputs)
    want = sasrec_lib.window_examples(sft_w, got["cfg"].maxlen)
    assert torch.equal(inputs, want[0]) and torch.equal(targets, want[1])
    row = sasrec_lib.sasrec_cache_path(SimpleNamespace(data=steam, seed=0, cache_dir=tmp_path / "cache"), got["cfg"])
    assert got["path"] != row and got["path"].parent == row.parent


def test_assistant_sft_sequences_is_the_sasrec_row_checkpoint(steam, tmp_path, monkeypatch):
    from benchmark.config import get_profile

    got = _assistant_data(steam, get_profile("smoke"), tmp_path, monkeypatch, assistant_data="sft_sequences")
    assert got["windows"] is None and got["examples"] is None
    with pytest.raises(ValueError, match="assistant_data must be one of"):
        D3(D3.Config(assistant_data="everything")).fit(None)


def test_window_examples_by_hand():
    """History + the earlier target items -> each target item, left-padded to maxlen, oldest context dropped."""
    from benchmark.data import Window
    from methods.common.sasrec import window_examples

    inputs, targets = window_examples([Window("u", (4, 5, 6), (7, 8)), Window("v", (1,), (2,))], maxlen=3)
    assert inputs.tolist() == [[5, 6, 7], [6, 7, 8], [0, 0, 2]] and targets.tolist() == [7, 8, 2]


def test_bigram_model_is_what_the_tests_assume():
    """Guard for the helper: the bigram LM's log-softmax row after <rec> is exactly log p."""
    tok, trie, model = item_token_model([0.1, 0.4, 0.2, 0.25, 0.05])
    ids = tok(item_prompt([1]), add_special_tokens=False, return_tensors="pt")["input_ids"]
    logp = model(input_ids=ids).logits[0, -1].log_softmax(-1)
    assert [math.exp(logp[t[0]].item()) for t in trie.item_tokens] == pytest.approx([0.1, 0.4, 0.2, 0.25, 0.05])
    assert isinstance(model, BigramLM)
