"""The GRPO trainer (methods/common/grpo.py) at its first step, on every dataset (smoke profile): the policy equals
the reference, so with constrained log-probs and every dropout off the logged KL is ~0, the importance ratio is 1
and the policy's train-mode and eval-mode log-probs agree exactly (the smoke model has attention dropout 0.1)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATASETS = ("steam", "cds", "goodreads")


@pytest.fixture(scope="module")
def first_steps(data_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("grpo")
    # mu = 2: TRL computes the old policy's log-probs from the rollout batch, so the ratio at step 1 is measured
    # (with mu = 1 it is 1 by construction); two steps keep it fast
    cmd = [sys.executable, "-m", "benchmark", "run", "--methods", "bon_static", "--datasets", ",".join(DATASETS),
           "--profile", "smoke", "--splits", "valid", "--data-dir", str(data_dir), "--results-dir",
           str(tmp / "res"), "--cache-dir", str(tmp / "cache"), "--set", "max_steps=2", "--set", "num_iterations=2"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1800,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-4000:]
    recs = {}
    for p in (tmp / "res").glob("*/bon_static/*.json"):
        rec = json.loads(p.read_text())
        recs[rec["dataset"]] = rec
    assert sorted(recs) == sorted(DATASETS)
    return recs


@pytest.mark.parametrize("dataset", DATASETS)
def test_first_step_kl_zero_ratio_one_no_dropout(first_steps, dataset):
    rec = first_steps[dataset]
    assert rec["config"]["profile"]["attention_dropout"] > 0  # the checks below are not vacuous
    st = rec["stats"]
    first = st["train_log"][0]
    assert first["step"] == 1 and st["grpo_steps"] == 2
    assert first["kl"] < 1e-4
    assert first["ratio_max_dev"] < 1e-4
    assert st["train_eval_logp_gap"] == 0.0
    assert rec["config"]["method"]["logps"] == "constrained"


def test_masks_follow_their_rows_through_trls_shuffle_and_split():
    """The constraint masks travel in the batch dict; TRL's shuffle/split must keep each with its own row."""
    import torch
    from trl.trainer.utils import shuffle_sequence_dict, split_tensor_dict

    from methods.common.logprobs import constrained_token_logps, constraint_masks
    from methods.common.tokenizers import build_item_token_tokenizer, item_token
    from methods.common.trie import ItemTrie

    n, k = 12, 3
    tok = build_item_token_tokenizer(n)
    trie = ItemTrie(tok, [item_token(i) for i in range(n)], " ")
    it = [trie.item_tokens[i][0] for i in range(n)]
    lists = [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 10, 11]]
    excluded = [set(range(n)) - set(lst) for lst in lists]  # each row's items are banned in every other row
    comp = torch.tensor([[it[i] for i in lst] + [tok.eos_token_id] for lst in lists])
    batch = {"completion_ids": comp, "allowed": constraint_masks(trie, k, tok.eos_token_id, comp, excluded),
             "num_items_in_batch": torch.tensor(16)}
    torch.manual_seed(0)
    chunks = split_tensor_dict(shuffle_sequence_dict(batch), 2)
    assert not torch.equal(torch.cat([c["completion_ids"] for c in chunks]), comp)  # the order did change
    for c in chunks:
        lp = constrained_token_logps(torch.zeros(2, k + 1, len(tok)), c["completion_ids"], c["allowed"])
        assert torch.isfinite(lp).all()
    # and a mask that does not belong to its row is caught
    with pytest.raises(ValueError, match="not allowed"):
        constrained_token_logps(torch.zeros(4, k + 1, len(tok)), comp, batch["allowed"].roll(1, 0))


def _trl_advantages(rewards):
    """TRL's GRPO advantages of a [n_groups, G] reward tensor (scale_rewards "group"), as grpo_trainer computes them."""
    from trl.trainer.utils import nanstd

    G = rewards.shape[1]
    flat = rewards.reshape(-1)
    mean = rewards.nanmean(1).repeat_interleave(G)
    std = nanstd(rewards, dim=1).repeat_interleave(G)
    return ((flat - mean) / (std + 1e-4)).view(-1, G)


def test_a_group_of_equal_rewards_gets_zero_advantages_and_other_groups_are_unchanged():
    import math

    import torch

    from methods.common.grpo import shift_groups

    miss = 3 * math.log(1 / 69.8)  # BLADE's proxy (N = 4) when all 16 rollouts miss: F = 1 / (M + tau G + 1)
    equal = torch.full((1, 16), miss)
    assert _trl_advantages(equal).abs().max() > 1e-3  # TRL's float32 mean is one ulp off: -0.0094 for every member
    assert torch.equal(_trl_advantages(shift_groups(equal)), torch.zeros(1, 16))
    spread = torch.tensor([[miss] * 15 + [-1.5], [0.1 * i for i in range(16)]])
    torch.testing.assert_close(_trl_advantages(shift_groups(spread)), _trl_advantages(spread), atol=1e-5, rtol=0)
    # hand-computed: one hit among 16 misses, shift -> [0]*15 + [h]; mean h/16, std h/4 (n - 1 = 15 denominator)
    h = -1.5 - miss
    a = _trl_advantages(shift_groups(spread[:1]))
    assert math.isclose(float(a[0, -1]), (h - h / 16) / (h / 4 + 1e-4), rel_tol=1e-5)
    assert math.isclose(float(a[0, 0]), (-h / 16) / (h / 4 + 1e-4), rel_tol=1e-5)
