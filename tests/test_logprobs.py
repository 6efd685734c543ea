"""Constrained log-probs (methods/common/logprobs.py): hand-computed values, forced tokens, agreement with the
sampler's own per-step scores (item-token and BPE-title tokenizers), and dropout really off."""

from __future__ import annotations

import json
import math
import random
import re

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LogitsProcessorList

from methods.common.logprobs import (
    constrained_logits,
    constrained_token_logps,
    constraint_masks,
    disable_dropout,
    model_constrained_logps,
)
from methods.common.tokenizers import build_item_token_tokenizer, item_token, train_bpe_tokenizer
from methods.common.trie import ItemTrie, ListConstraintProcessor

torch.set_num_threads(1)


# -- pure functions, hand-computed ------------------------------------------------------------------------------


def test_repetition_penalty_mask_and_temperature_by_hand():
    # V = 4; prompt = [pad, 2] (the pad position is ignored, as generate ignores left padding), completion = [1, 3]
    logits = torch.tensor([[[1.0, -2.0, 0.5, 3.0], [1.0, -2.0, 0.5, 3.0]]])
    allowed = torch.tensor([[[True, True, False, True], [True, True, True, False]]])
    z = constrained_logits(logits, torch.tensor([[1, 3]]), allowed, temperature=0.5, repetition_penalty=2.0,
                           prompt_ids=torch.tensor([[0, 2]]), prompt_mask=torch.tensor([[0, 1]]))
    inf = float("inf")
    # t=0: seen {2} (masked anyway); t=1: seen {2, 1}: -2 -> -4, 0.5 -> 0.25; token 3 masked; then / 0.5
    assert torch.equal(z, torch.tensor([[[2.0, -4.0, -inf, 6.0], [2.0, -8.0, 0.5, -inf]]]))
    lp = constrained_token_logps(logits, torch.tensor([[1, 3]]), allowed, 0.5, 2.0, torch.tensor([[0, 2]]),
                                 prompt_mask=torch.tensor([[0, 1]]), completion_mask=torch.tensor([[1, 0]]))
    expect0 = -4.0 - math.log(math.exp(2.0) + math.exp(-4.0) + math.exp(6.0))
    assert lp[0, 0].item() == pytest.approx(expect0, abs=1e-6)
    assert lp[0, 1].item() == 0.0  # padding after EOS: 0, not -inf


def test_prompt_without_mask_counts_every_token_and_penalty_one_is_identity():
    logits = torch.tensor([[[1.0, -1.0, 2.0]]])
    allowed = torch.ones(1, 1, 3, dtype=torch.bool)
    z = constrained_logits(logits, torch.tensor([[2]]), allowed, 1.0, 4.0, prompt_ids=torch.tensor([[0, 1]]))
    assert torch.equal(z, torch.tensor([[[0.25, -4.0, 2.0]]]))
    assert torch.equal(constrained_logits(logits, torch.tensor([[2]]), allowed), logits)


def test_forbidden_token_raises_and_padding_gradient_is_finite():
    logits = torch.zeros(1, 2, 3, requires_grad=True)
    allowed = torch.tensor([[[True, True, False], [False, False, True]]])  # position 1: EOS (=2) only
    with pytest.raises(ValueError, match="token 2 at row 0, position 0 is not allowed"):
        constrained_token_logps(logits, torch.tensor([[2, 2]]), allowed)
    # token 0 after EOS is padding: excluded by the mask, no -inf, no NaN gradient
    lp = constrained_token_logps(logits, torch.tensor([[1, 0]]), allowed, completion_mask=torch.tensor([[1, 0]]))
    assert lp[0, 0].item() == pytest.approx(-math.log(2)) and lp[0, 1].item() == 0.0
    lp.sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 0].tolist() == pytest.approx([-0.5, 0.5, 0.0]) and logits.grad[0, 1].abs().sum() == 0


def test_entropy_of_the_constrained_distribution():
    logits = torch.tensor([[[5.0, 5.0, -9.0, 1.0]]])
    allowed = torch.tensor([[[True, True, False, False]]])
    lp, ent = constrained_token_logps(logits, torch.tensor([[0]]), allowed, return_entropy=True)
    assert lp.item() == pytest.approx(-math.log(2)) and ent.item() == pytest.approx(math.log(2))


# -- the constraint replayed on a hand-built trie -------------------------------------------------------------


class WordTokenizer:
    """A hand-built word-level tokenizer: enough for ItemTrie (``__call__`` and ``eos_token_id``)."""

    vocab = {"<pad>": 0, "</s>": 1, "\n": 2, "Portal": 3, "2": 4, "Half": 5, "Life": 6, "Dota": 7}
    pad_token_id, eos_token_id = 0, 1

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[self.vocab[w] for w in re.findall(r"\n|[^\s]+", t)] for t in texts]}


TITLES = ["Portal", "Portal 2", "Half Life", "Half Life 2", "Dota 2"]  # items 0-4


@pytest.fixture(scope="module")
def words():
    return WordTokenizer(), ItemTrie(WordTokenizer(), TITLES, "\n")


def test_masks_replay_the_processor(words):
    tok, trie = words
    # "Half Life", "Dota 2", EOS, padding; k = 2; history = both Portals
    comp = torch.tensor([[5, 6, 2, 7, 4, 1, 0]])
    m = constraint_masks(trie, 2, tok.eos_token_id, comp, [{0, 1}], vocab_size=8)
    assert m.shape == (1, 7, 8)
    allowed = [set(m[0, t].nonzero().flatten().tolist()) for t in range(7)]
    # Portal's subtree is all history: dead; after "Half": "Life" forced; after "Half Life": "2" or the separator
    assert allowed == [{5, 7}, {6}, {2, 4}, {5, 7}, {4}, {1}, {1}]
    # vocab_size defaults to the largest id the constraint can allow + 1
    assert constraint_masks(trie, 2, tok.eos_token_id, comp, [{0, 1}]).shape == (1, 7, 8)
    # issue 24: built on the device asked for (a GPU in training: the host never holds the [B, T, V] mask); "meta"
    # stands in for it here, since its tensors carry no data, so any host-side copy would show as a "cpu" result
    assert torch.equal(constraint_masks(trie, 2, tok.eos_token_id, comp, [{0, 1}], vocab_size=8, device="cpu"), m)
    on = constraint_masks(trie, 2, tok.eos_token_id, comp, [{0, 1}], vocab_size=8, device="meta")
    assert on.device.type == "meta" and on.shape == (1, 7, 8)


def test_forced_token_has_logprob_zero_whatever_its_raw_logprob(words):
    tok, trie = words
    comp = torch.tensor([[5, 6, 2, 7, 4, 1]])
    allowed = constraint_masks(trie, 2, tok.eos_token_id, comp, [set()])
    for raw in (-40.0, 0.0, 25.0):
        logits = torch.randn(1, 6, 8, generator=torch.Generator().manual_seed(0)) * 3
        for t, tok_id in ((1, 6), (4, 4), (5, 1)):  # "Life" after "Half", "2" after "Dota", EOS after item k
            logits[0, t, tok_id] = raw
        lp = constrained_token_logps(logits, comp, allowed, temperature=0.8, repetition_penalty=1.05)
        assert lp[0, 1].item() == 0.0 and lp[0, 4].item() == 0.0 and lp[0, 5].item() == 0.0
        # a free choice is renormalised over the allowed first tokens {Portal, Half, Dota} only
        z = logits[0, 0, [3, 5, 7]] / 0.8
        assert lp[0, 0].item() == pytest.approx((z[1] - z.logsumexp(0)).item(), abs=1e-5)
        # "Dota" at t=3 is free; nothing before it repeats "Portal"/"Half"/"Dota" except "Half" (penalised)
        z3 = logits[0, 3, [3, 5, 7]].clone()
        z3[1] = z3[1] / 1.05 if z3[1] > 0 else z3[1] * 1.05
        z3 = z3 / 0.8
        assert lp[0, 3].item() == pytest.approx((z3[2] - z3.logsumexp(0)).item(), abs=1e-5)
        if raw < 0:  # the raw model finds the forced token improbable
            assert torch.log_softmax(logits[0, 1], -1)[6].item() < -35


# -- agreement with the sampler -----------------------------------------------------------------------------


def _tiny_llama(tok, attention_dropout=0.0, scale=30.0) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, vocab_size=len(tok), max_position_embeddings=2048,
                      attention_dropout=attention_dropout, pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(scale)  # peaked raw distributions: masks and the penalty change log-probs a lot
    return model.eval()


def _tiny_neox(tok, hidden_dropout=0.0, scale=30.0):
    """The `gpt_neox` scratch architecture (profile ``arch``): rotary, LayerNorm, and dropout on the residual path."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, vocab_size=len(tok),
        max_position_embeddings=2048, rotary_pct=1.0, use_parallel_residual=False, tie_word_embeddings=False,
        hidden_dropout=hidden_dropout, attention_dropout=hidden_dropout, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id))
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(scale)
    return model.eval()


def _item_setup():
    n = 40
    tok = build_item_token_tokenizer(n)
    rendered = [item_token(i) for i in range(n)]
    return tok, ItemTrie(tok, rendered, " "), lambda h: "<hist> " + " ".join(rendered[i] for i in h) + " <rec>\n"


def _bpe_setup(data_dir):
    titles = [json.loads(line)["title"] for line in (data_dir / "steam" / "items.jsonl").open(encoding="utf-8")]
    titles = titles[:300]
    rng = random.Random(0)
    prompt = lambda h: "Recently played:\n" + "\n".join(titles[i] for i in h) + "\nRecommend:\n"  # noqa: E731
    tok = train_bpe_tokenizer(titles + [prompt(rng.sample(range(len(titles)), 10)) for _ in range(50)], 1024)
    return tok, ItemTrie(tok, titles, "\n"), prompt


@pytest.mark.parametrize("setup,arch", [("item_token", "llama"), ("bpe_title", "llama"), ("item_token", "gpt_neox")])
def test_logprobs_sum_to_what_the_sampler_assigned(setup, arch, request):
    tok, trie, prompt = _item_setup() if setup == "item_token" else _bpe_setup(request.getfixturevalue("data_dir"))
    k, T, rp = (10, 0.8, 1.05) if setup == "item_token" else (4, 0.8, 1.05)
    model = _tiny_llama(tok) if arch == "llama" else _tiny_neox(tok)
    rng = random.Random(1)
    hists = [rng.sample(range(trie.n_items), n) for n in (10, 6, 3)]  # different prompt lengths: left padding
    excluded = [set(h) for h in hists for _ in range(2)]  # 2 samples per prompt
    enc = tok([prompt(h) for h in hists for _ in range(2)], return_tensors="pt", padding=True,
              add_special_tokens=False)
    P = enc["input_ids"].shape[1]
    assert (enc["attention_mask"] == 0).any()
    proc = ListConstraintProcessor(trie, k, tok.eos_token_id, P, excluded, record=True)
    torch.manual_seed(3)
    out = model.generate(**enc, logits_processor=LogitsProcessorList([proc]), do_sample=True, temperature=T,
                         top_k=0, top_p=1.0, repetition_penalty=rp, max_new_tokens=k * (trie.max_item_len + 1) + 1,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, output_scores=True,
                         return_dict_in_generate=True)
    comp = out.sequences[:, P:]
    is_eos = comp == tok.eos_token_id
    assert is_eos.any(1).all()
    # the masks the sampler applied, recorded, are the masks the automaton's replay gives (issue 24: GRPO takes the
    # recorded ones and replays nothing on the host)
    V = model.get_output_embeddings().weight.shape[0]
    replayed = constraint_masks(trie, k, tok.eos_token_id, comp, excluded, vocab_size=V)
    assert torch.equal(proc.masks(comp.shape[1], V), replayed) and replayed.sum() > comp.numel()
    with pytest.raises(ValueError, match="recorded calls"):
        proc.masks(comp.shape[1] + 1, V)
    cmask = (torch.arange(comp.shape[1])[None] <= is_eos.int().argmax(1)[:, None]).long()
    sampler = torch.stack([s.log_softmax(-1).gather(-1, comp[:, t:t + 1]).squeeze(-1)
                           for t, s in enumerate(out.scores)], 1)
    sampler = sampler.masked_fill(cmask == 0, 0.0)  # after EOS the sampler gives the padding -inf
    sampler_seq = sampler.sum(1)
    with torch.no_grad():
        lp = model_constrained_logps(model, out.sequences, torch.cat([enc["attention_mask"], cmask], 1),
                                     comp.shape[1], trie, k, tok.eos_token_id, excluded, T, rp)
        raw = (model(out.sequences).logits[:, P - 1:-1].float() / T).log_softmax(-1)
    raw_seq = (raw.gather(-1, comp[..., None]).squeeze(-1) * cmask).sum(1)
    assert torch.allclose(lp.sum(1), sampler_seq, atol=1e-3), (lp.sum(1), sampler_seq)
    assert torch.allclose(lp, sampler, atol=1e-4)
    # the unconstrained log-softmax is not the sampler's distribution (what GRPO trained on before issue 9)
    assert (raw_seq - sampler_seq).abs().min() > 1.0


# -- dropout ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["llama", "gpt_neox"])
def test_disable_dropout_reaches_every_dropout(arch):
    """Attention dropout is a float on each attention module in both architectures (TRL's `disable_dropout_in_model`
    zeroes nn.Dropout modules only and misses it); GPT-NeoX adds nn.Dropout on embeddings and residual branches."""
    from trl.trainer.utils import disable_dropout_in_model

    tok = build_item_token_tokenizer(12)
    model = (_tiny_llama(tok, attention_dropout=0.5, scale=1.0) if arch == "llama"
             else _tiny_neox(tok, hidden_dropout=0.5, scale=1.0))
    ids = torch.randint(0, len(tok), (2, 12), generator=torch.Generator().manual_seed(0))

    def logps(train: bool):
        model.train(train)
        torch.manual_seed(0)
        with torch.no_grad():
            return model(ids).logits.log_softmax(-1)

    disable_dropout_in_model(model)
    assert not torch.equal(logps(True), logps(False))  # both keep attention dropout as a float on each module
    disable_dropout(model)
    assert torch.equal(logps(True), logps(False))
    assert model.config.attention_dropout == 0.0 and getattr(model.config, "hidden_dropout", 0.0) == 0.0
    assert all(m.attention_dropout == 0.0 for m in model.modules() if hasattr(m, "attention_dropout"))
