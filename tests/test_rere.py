"""ReRe's reward on hand-computed groups (NDCG@10 of each beam's list plus the rank penalty when the group hits), and
its beam-search rollout hook."""

from __future__ import annotations

import math

import pytest
import torch
from test_decoding import item_prompt, item_token_model
from transformers import GenerationConfig, LogitsProcessorList

from benchmark.metrics import ndcg_at_k
from methods.common.trie import ListConstraintProcessor
from methods.rere import beam_rollouts, rank_penalty, rere_group_rewards

# G = 4: sum_j 1/log2(j+2) = 1 + 0.630930 + 0.5 + 0.430677 = 2.561606
S4 = 1 + 1 / math.log2(3) + 0.5 + 1 / math.log2(5)


def _ndcg(group, target):
    return torch.tensor([[ndcg_at_k(lst, target, 10) for lst in group]])


def test_rank_penalty_by_hand():
    assert rank_penalty(4).tolist() == pytest.approx([-1 / S4, -0.630930 / S4, -0.5 / S4, -0.430677 / S4], abs=1e-6)
    assert rank_penalty(4).tolist() == pytest.approx([-0.390380, -0.246302, -0.195190, -0.168128], abs=1e-6)
    assert rank_penalty(4).sum().item() == pytest.approx(-1.0)  # the penalties of a group sum to -1
    assert rank_penalty(1).tolist() == [-1.0]


def test_target_in_the_group():
    """Beam 1 holds the single target at position 1 (NDCG 1); beams 0, 2, 3 miss and get the rank penalty."""
    group = [[1, 2, 3], [5, 2, 3], [4, 6, 7], [8, 9, 10]]
    r = rere_group_rewards(_ndcg(group, {5}))
    assert r[0].tolist() == pytest.approx([-0.390380, 1.0, -0.195190, -0.168128], abs=1e-6)


def test_target_not_in_the_group():
    """No beam hits: every reward is 0 (upstream: no signal), whatever the ranks."""
    group = [[1, 2, 3], [4, 2, 3], [4, 6, 7], [8, 9, 10]]
    assert rere_group_rewards(_ndcg(group, {5})).tolist() == [[0.0, 0.0, 0.0, 0.0]]


def test_partial_hits_with_a_list_target():
    """Target {5, 7}: beam 0 = [7, 1] (DCG 1, IDCG 1 + 1/log2 3 -> 0.613147), beam 1 = [1, 5] (0.386853), beam 2
    misses and gets -0.5 / (1 + 0.630930 + 0.5) = -0.234639. Hits keep their plain NDCG (no penalty)."""
    group = [[7, 1], [1, 5], [2, 3]]
    r = rere_group_rewards(_ndcg(group, {5, 7}))
    idcg = 1 + 1 / math.log2(3)
    assert r[0].tolist() == pytest.approx([1 / idcg, (1 / math.log2(3)) / idcg, -0.5 / (1 + 1 / math.log2(3) + 0.5)])
    assert r[0].tolist() == pytest.approx([0.613147, 0.386853, -0.234639], abs=1e-6)


def test_a_hit_beyond_the_cutoff_is_no_hit():
    """NDCG@10 only sees the first 10 positions: a target at position 11 is a miss (no penalty, no reward)."""
    group = [list(range(100, 110)) + [5], list(range(200, 210))]
    assert rere_group_rewards(_ndcg(group, {5})).tolist() == [[0.0, 0.0]]


def test_groups_are_independent_and_invalid_entries_are_misses():
    """Two groups in one call; -1 (an invalid entry) never hits; a one-beam group with a hit has no penalty."""
    ndcg = torch.cat([_ndcg([[-1, 5], [-1, -1]], {5}), _ndcg([[3, 4], [-1, 2]], {5})])
    r = rere_group_rewards(ndcg)
    assert r[0].tolist() == pytest.approx([1 / math.log2(3), -1 / math.log2(3) / (1 + 1 / math.log2(3))])
    assert r[1].tolist() == [0.0, 0.0]
    assert rere_group_rewards(torch.tensor([[0.5]])).tolist() == [[0.5]]
    with pytest.raises(ValueError, match=r"\[n_groups, G\]"):
        rere_group_rewards(torch.tensor([0.5, 0.0]))


def test_beam_rollouts_give_each_prompt_its_beams_in_order():
    """The rollout hook: 2 prompts x G = 3 consecutive rows (TRL's layout) -> each prompt decoded once with 3 beams,
    best first, distinct, history masked per row. Bigram LM (tests/test_decoding.py): p(first item) = .1 .4 .2 .25
    .05, so history {1} gives beams 3, 2, 0 and history {3} gives 1, 2, 0."""
    tok, trie, model = item_token_model([0.1, 0.4, 0.2, 0.25, 0.05])
    enc = tok([item_prompt([1])] * 3 + [item_prompt([3])] * 3, return_tensors="pt", add_special_tokens=False)
    width = enc["input_ids"].shape[1]
    proc = ListConstraintProcessor(trie, 1, tok.eos_token_id, width, [{1}] * 3 + [{3}] * 3)
    gc = GenerationConfig(do_sample=True, temperature=0.8, max_new_tokens=4, eos_token_id=tok.eos_token_id,
                          pad_token_id=tok.pad_token_id)  # TRL's sampling config: the hook turns sampling off
    out = beam_rollouts(3, 0.0)(model, LogitsProcessorList([proc]), input_ids=enc["input_ids"],
                                attention_mask=enc["attention_mask"], generation_config=gc)
    assert [trie.parse(row) for row in out[:, width:].tolist()] == [[3], [2], [0], [1], [2], [0]]
    with pytest.raises(RuntimeError, match="3 consecutive rows"):
        beam_rollouts(3, 0.0)(model, LogitsProcessorList([proc]), input_ids=enc["input_ids"][[0, 3, 1, 4, 2, 5]],
                              attention_mask=enc["attention_mask"], generation_config=gc)
