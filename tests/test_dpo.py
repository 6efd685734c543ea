"""The preference family (S-DPO, List DPO, SPRec): losses against hand-computed values and TRL, pair builders, the
collator's layout, the cached rows, and constrained list log-probs inside the DPOTrainer subclass."""

import math
import random

import pytest
import torch

from benchmark.data import Window
from methods.common.dpo import (
    PreferenceCollator,
    cached_rows,
    dpo_loss,
    iteration_seed,
    positive_list,
    tokenize_rows,
    user_items,
)
from methods.list_dpo import best_worst
from methods.sdpo import random_negatives, sdpo_loss
from methods.sprec import self_play_negative


# ----------------------------------------------------------------------------------------------- losses
@pytest.mark.parametrize("n", [1, 3, 7])
def test_sdpo_at_reference_is_log_one_plus_n(n):
    # pi_theta = pi_ref: every h = 0, so L = log(1 + n * e^0)
    loss = sdpo_loss(torch.zeros(2), torch.zeros(2, n), beta=0.1)
    assert torch.allclose(loss, torch.full((2,), math.log(1 + n)))


def test_sdpo_hand_computed():
    # beta 0.1, h_w = 2, h = (0, 2, 4): beta (h - h_w) = (-0.2, 0, 0.2);
    # L = log(1 + e^-0.2 + 1 + e^0.2) = log(1 + 0.818731 + 1 + 1.221403) = log(4.040134) = 1.396278
    loss = sdpo_loss(torch.tensor([2.0]), torch.tensor([[0.0, 2.0, 4.0]]), beta=0.1)
    assert loss.item() == pytest.approx(1.396278, abs=1e-6)


def test_sdpo_with_one_negative_is_dpo():
    # h_w = 1.5, h_l = -0.5, beta 0.1: -log sigmoid(0.2) = log(1 + e^-0.2) = 0.598139
    c, r = torch.tensor([1.5, 0.0, -3.0]), torch.tensor([[-0.5], [0.0], [4.0]])
    assert sdpo_loss(c, r, 0.1)[0].item() == pytest.approx(0.598139, abs=1e-6)
    assert torch.allclose(sdpo_loss(c, r, 0.1), dpo_loss(c, r, 0.1))


def test_sdpo_gradient_at_reference():
    # dL/dh_w = -beta * sum e / (1 + sum e) = -beta * n / (n + 1) at h = 0: -0.1 * 3/4 = -0.075
    c = torch.zeros(1, requires_grad=True)
    sdpo_loss(c, torch.zeros(1, 3), 0.1).sum().backward()
    assert c.grad.item() == pytest.approx(-0.075)


def test_sdpo_is_stable_for_large_log_ratios():
    # softplus(logsumexp) never forms e^1000: L -> 1000 when a negative is far above, -> 0 when far below
    loss = sdpo_loss(torch.zeros(2), torch.tensor([[1000.0, -5.0], [-1000.0, -2000.0]]), beta=1.0)
    assert torch.isfinite(loss).all()
    assert loss[0].item() == pytest.approx(1000.0) and loss[1].item() == pytest.approx(0.0, abs=1e-300)


def test_loss_shape_errors():
    with pytest.raises(ValueError, match="at least one negative"):
        sdpo_loss(torch.zeros(2), torch.zeros(2, 0), 0.1)
    with pytest.raises(ValueError, match=r"must be \[B, n\] with B = 2"):
        sdpo_loss(torch.zeros(2), torch.zeros(3, 1), 0.1)
    with pytest.raises(ValueError, match="one rejected list per row"):
        dpo_loss(torch.zeros(2), torch.zeros(2, 3), 0.1)


# ----------------------------------------------------------------------------------------------- builders
def test_positive_list_dedupes_and_drops_masked_history():
    w = Window("u", history=(5, 9), target=(3, 1, 3, 5))
    assert positive_list(w, exclude_history=True) == [3, 1]
    assert positive_list(w, exclude_history=False) == [3, 1, 5]
    assert positive_list(Window("u", (5,), (5, 5)), exclude_history=True) == []


def test_user_items_unions_history_and_target_per_user():
    ws = [Window("a", (1, 2), (3,)), Window("b", (4,), (5,)), Window("a", (2, 3), (6,))]
    assert user_items(ws) == {"a": {1, 2, 3, 6}, "b": {4, 5}}


def test_random_negatives_avoid_the_user_and_are_seeded():
    banned = {0, 1, 2}
    negs = random_negatives(3, banned, n_items=8, n=4, rng=random.Random(0))
    assert len(negs) == 4
    for neg in negs:
        assert len(neg) == 3 and len(set(neg)) == 3 and not set(neg) & banned and all(0 <= i < 8 for i in neg)
    assert negs == random_negatives(3, banned, 8, 4, random.Random(0))
    with pytest.raises(ValueError, match="only 2 of 5 catalogue items"):
        random_negatives(3, banned, n_items=5, n=1, rng=random.Random(0))


def test_best_worst_picks_extremes_and_skips_ties():
    assert best_worst([0.0, 0.5, 0.2, 0.5, 0.0]) == (1, 0)  # first best, first worst
    assert best_worst([0.3, 0.3, 0.3]) is None
    assert best_worst([0.7]) is None
    assert best_worst([]) is None


def test_self_play_negative_is_the_cut_greedy_list_unless_equal():
    assert self_play_negative([1, 2], [1, 2, 3]) is None
    assert self_play_negative([1, 2], [2, 1, 3]) == [2, 1]
    assert self_play_negative([7], [3, 4, 5]) == [3]  # one-item targets: upstream's first greedy title


def test_iteration_seed_starts_at_the_run_seed():
    assert iteration_seed(0, 0) == 0 and iteration_seed(5, 0) == 5
    assert len({iteration_seed(s, t) for s in range(3) for t in range(3)}) == 9


@pytest.mark.parametrize("n_train,n_valid", [(16, 16), (256, 128), (512, 256)])  # smoke, smollm2, cpu sizes
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_iteration_trains_on_validation_windows_or_users(steam, tmp_path, monkeypatch, n_train, n_valid, seed):
    """fit_preference over 3 iterations (SPRec's): the windows every SFT / row-building / DPO step trains on are never
    an alignment-validation window nor another window of a validation user; iteration 0 is `alignment_subset`'s own
    training subset (S-DPO's and List DPO's, unchanged), the validation windows are its validation windows."""
    import logging
    from types import SimpleNamespace

    import methods.common.dpo as dpo
    from benchmark.data import alignment_subset

    trained, scored = [], []
    monkeypatch.setattr(dpo, "train_sft", lambda *a, **k: tmp_path / "sft")
    monkeypatch.setattr(dpo, "valid_scores", lambda ctx, path, ws: scored.append(list(ws)) or {"ndcg@5": 0.0})
    monkeypatch.setattr(dpo, "sft_on_positives", lambda ctx, start, ws, cfg, out: trained.append(list(ws)) or out)
    monkeypatch.setattr(dpo, "run_dpo",
                        lambda ctx, start, ws, rows, cfg, fn, out: trained.append(list(ws)) or (out, {}))

    def build_rows(ctx, ws, path):
        trained.append(list(ws))
        return [], {}

    ctx = SimpleNamespace(data=steam, profile=SimpleNamespace(align_source="align"), seed=seed, run_dir=tmp_path,
                          cache_dir=tmp_path, stats={}, log=logging.getLogger("test"))
    cfg = dpo.PreferenceConfig(n_align_train=n_train, n_align_valid=n_valid)
    dpo.fit_preference(ctx, cfg, build_rows, dpo_loss, iterations=3, rows_from_start=True)
    train0, valid = alignment_subset(steam, n_train, n_valid, seed)
    assert all(ws == valid for ws in scored) and len(scored) == 1 + 2 * 3
    assert len(trained) == 3 * 3 and trained[0] == trained[1] == trained[2] == train0
    valid_users = {w.user for w in valid}
    for ws in trained:
        assert len(ws) == n_train
        assert sum(w in valid for w in ws) == 0  # no validation window ...
        assert sum(w.user in valid_users for w in ws) == 0  # ... nor another window of a validation user
    assert trained[3] != train0 and trained[6] != trained[3]  # later iterations draw fresh windows


@pytest.mark.parametrize("profile", ["cpu", "smollm2", "paper"])
def test_sprec_trains_both_steps_at_upstreams_lr(profile):
    """SPRec's SFT and DPO steps at upstream's 2e-5 (shell/SPRec.sh), not the preference family's cpu 1e-4."""
    from benchmark.config import get_profile
    from runners.plan import resolve_configs

    (cfg,) = resolve_configs("sprec", get_profile(profile), {})
    assert cfg.lr == cfg.sft_lr == 2e-5


def test_cached_rows_build_once(tmp_path):
    calls = []

    def build():
        calls.append(1)
        return [{"window": 0, "chosen": [1], "rejected": [[2]]}], {"prompts": 1}

    path = tmp_path / "it0" / "preferences.json"
    first = cached_rows(path, build)
    assert path.exists() and cached_rows(path, build) == first and len(calls) == 1


class _Tok:
    """Whitespace tokenizer over a fixed vocabulary (the trie only needs encode_list)."""

    eos_token_id = 2

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [[10 + int(t) for t in s.split()] for s in texts]}


class _Trie:
    def encode_list(self, items):
        return [100 + i for i in items]


def test_tokenize_rows_and_collator_layout():
    wins = [Window("a", (1, 2), (3,)), Window("b", (4,), (5, 6))]
    rows = [{"window": 1, "chosen": [5, 6], "rejected": [[7, 8], [9, 3]]},
            {"window": 0, "chosen": [3], "rejected": [[8], [9]]}]
    cols = tokenize_rows(rows, ["1 2", "4"], wins, _Tok(), _Trie(), exclude_history=True)
    assert cols["prompt_ids"] == [[14], [11, 12]]
    assert cols["chosen_ids"] == [[105, 106, 2], [103, 2]]
    assert cols["rejected_ids"] == [[[107, 108, 2], [109, 103, 2]], [[108, 2], [109, 2]]]
    assert cols["excluded"] == [[4], [1, 2]] and cols["k"] == [2, 1]
    batch = PreferenceCollator(pad_token_id=0)([{c: v[i] for c, v in cols.items()} for i in range(2)])
    # rows: [chosen b, chosen a, rej1 b, rej1 a, rej2 b, rej2 a]; prompts left-padded to 2, completions right to 3
    assert batch["input_ids"].tolist() == [
        [0, 14, 105, 106, 2], [11, 12, 103, 2, 0],
        [0, 14, 107, 108, 2], [11, 12, 108, 2, 0],
        [0, 14, 109, 103, 2], [11, 12, 109, 2, 0]]
    assert batch["attention_mask"].tolist() == [[0, 1, 1, 1, 1], [1, 1, 1, 1, 0]] * 3
    assert batch["completion_mask"].tolist() == [[1, 1, 1], [1, 1, 0]] * 3
    assert batch["excluded"] == [[4], [1, 2]] * 3 and batch["k"] == [2, 1] * 3 and batch["n_prompts"] == 2


def test_tokenize_rows_rejects_lists_of_different_lengths():
    with pytest.raises(ValueError, match=r"row 0: .* lengths \[2, 1\]"):
        tokenize_rows([{"window": 0, "chosen": [1, 2], "rejected": [[3]]}], ["1"], [Window("a", (1,), (2,))],
                      _Tok(), _Trie(), exclude_history=False)


def test_collator_needs_one_negative_count_per_batch():
    ex = [{"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [[3]], "excluded": [], "k": 1},
          {"prompt_ids": [1], "chosen_ids": [2], "rejected_ids": [[3], [4]], "excluded": [], "k": 1}]
    with pytest.raises(ValueError, match=r"same number of rejected lists, got \[1, 2\]"):
        PreferenceCollator(0)(ex)


# ----------------------------------------------------------------------------------------------- the trainer
N_ITEMS = 30


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 1-layer Llama over an item-token vocabulary, saved (TRL builds the reference model from the path)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from methods.common.tokenizers import build_item_token_tokenizer, item_token
    from methods.common.trie import ItemTrie

    tok = build_item_token_tokenizer(N_ITEMS)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, tie_word_embeddings=True, attention_dropout=0.3, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    path = tmp_path_factory.mktemp("tiny") / "model"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    trie = ItemTrie(tok, [item_token(i) for i in range(N_ITEMS)], " ")
    return path, tok, trie


def _prompt(hist):
    return "<hist> " + " ".join(f"<item_{i}>" for i in hist) + " <rec> "


def _trainer(path, tok, out, cls=None, **kw):
    from trl import DPOConfig

    from methods.common.dpo import PreferenceTrainer

    args = DPOConfig(output_dir=str(out), use_cpu=True, bf16=False, beta=0.1, per_device_train_batch_size=4,
                     activation_checkpointing=False, report_to="none", max_length=None, remove_unused_columns=False,
                     learning_rate=kw.pop("lr", 1e-6), max_steps=kw.pop("max_steps", -1), logging_steps=1,
                     save_strategy="no", disable_tqdm=True)
    return (cls or PreferenceTrainer)(model=str(path), args=args, processing_class=tok, **kw)


def test_one_negative_matches_trls_sigmoid_dpo_on_the_same_batch(tiny, tmp_path):
    """Unconstrained, n = 1: our compute_loss (S-DPO and DPO losses) equals TRL's own DPOTrainer loss."""
    from datasets import Dataset as HFDataset
    from trl import DPOTrainer

    path, tok, trie = tiny
    hists, chosen, rejected = [(1, 2, 3), (4, 5)], [[6, 7], [8]], [[9, 10], [11]]
    text = HFDataset.from_dict({"prompt": [_prompt(h) for h in hists],
                                "chosen": [" ".join(f"<item_{i}>" for i in c) for c in chosen],
                                "rejected": [" ".join(f"<item_{i}>" for i in r) for r in rejected]})
    trl = _trainer(path, tok, tmp_path / "trl", cls=DPOTrainer, train_dataset=text)
    torch.manual_seed(1)
    with torch.no_grad():  # move the policy away from the reference so the loss is not log 2
        for p in trl.model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    trl.model.eval()
    ex = [trl.train_dataset[i] for i in range(2)]
    want = trl.compute_loss(trl.model, trl.data_collator(ex)).item()
    assert abs(want - math.log(2)) > 1e-3

    rows = [{**e, "rejected_ids": [e["rejected_ids"]], "excluded": [], "k": len(c)} for e, c in zip(ex, chosen)]
    assert [r["chosen_ids"] for r in rows] == [trie.encode_list(c) + [tok.eos_token_id] for c in chosen]
    for loss_fn in (sdpo_loss, dpo_loss):
        ours = _trainer(path, tok, tmp_path / "ours", train_dataset=HFDataset.from_list(rows), trie=trie,
                        loss_fn=loss_fn, constrained=False, data_collator=PreferenceCollator(tok.pad_token_id))
        ours.model.load_state_dict(trl.model.state_dict())
        ours.model.eval()
        got = ours.compute_loss(ours.model, ours.data_collator(rows)).item()
        assert got == pytest.approx(want, abs=1e-5)


def _rows(tok, trie, lists_per_row, hists):
    from methods.common.dpo import tokenize_rows

    rows = [{"window": j, "chosen": ls[0], "rejected": ls[1:]} for j, ls in enumerate(lists_per_row)]
    wins = [Window("u", tuple(h), ()) for h in hists]
    cols = tokenize_rows(rows, [_prompt(h) for h in hists], wins, tok, trie, exclude_history=True)
    return [{c: v[i] for c, v in cols.items()} for i in range(len(rows))]


def test_constrained_list_logps_are_normalised_per_list_length(tiny, tmp_path):
    """k = 1: the constrained probabilities of every allowed one-item list sum to 1 (EOS forced: log 1); a k = 2 row
    scores the same alone and in a batch with k = 1 rows."""
    from datasets import Dataset as HFDataset

    from methods.common.dpo import list_constraints

    path, tok, trie = tiny
    hist = (1, 2, 3)
    allowed = [i for i in range(N_ITEMS) if i not in hist]
    singles = _rows(tok, trie, [[[i], [allowed[0]]] for i in allowed], [hist] * len(allowed))
    pair = _rows(tok, trie, [[[5, 6], [7, 8]]], [hist])
    tr = _trainer(path, tok, tmp_path / "n", train_dataset=HFDataset.from_list(pair), trie=trie, loss_fn=dpo_loss,
                  data_collator=PreferenceCollator(tok.pad_token_id))
    coll = tr.data_collator
    with torch.no_grad():
        b = coll(singles)
        lp = tr.list_logps(tr.model, b, list_constraints(trie, b, tok.eos_token_id))[: len(allowed)]
        assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
        b2 = coll(pair)
        alone = tr.list_logps(tr.model, b2, list_constraints(trie, b2, tok.eos_token_id))
        b3 = coll(singles[:3] + pair)
        mixed = tr.list_logps(tr.model, b3, list_constraints(trie, b3, tok.eos_token_id))
    assert torch.allclose(mixed.view(2, 4)[:, 3], alone, atol=1e-5)
    # a history item is masked: scoring it is an error, not a silent -inf
    bad = coll(_rows(tok, trie, [[[1], [5]]], [hist]))
    with pytest.raises(ValueError, match="not allowed by the list constraint"):
        tr.list_logps(tr.model, bad, list_constraints(trie, bad, tok.eos_token_id))


def test_sdpo_trainer_starts_at_log_four_then_widens_the_margin(tiny, tmp_path):
    """Constrained, 3 negatives: loss log(1 + 3) at step 1 (pi_theta = pi_ref, dropout off), then falling."""
    from datasets import Dataset as HFDataset

    path, tok, trie = tiny
    hists = [(1, 2), (3, 4), (5, 6), (7, 8)]
    lists = [[[10 + j, 11 + j], [20, 21], [22, 23], [24, 25]] for j in range(4)]
    tr = _trainer(path, tok, tmp_path / "s", train_dataset=HFDataset.from_list(_rows(tok, trie, lists, hists)),
                  trie=trie, loss_fn=sdpo_loss, data_collator=PreferenceCollator(tok.pad_token_id), lr=5e-2,
                  max_steps=6)
    assert tr.model.config.attention_dropout == 0.0
    tr.train()
    log = [h for h in tr.state.log_history if "rewards/margins" in h]
    assert len(log) == 6
    assert log[0]["loss"] == pytest.approx(math.log(4), abs=1e-6) and log[0]["rewards/margins"] == 0.0
    assert log[-1]["loss"] < log[0]["loss"] - 0.05 and log[-1]["rewards/margins"] > 0.1
