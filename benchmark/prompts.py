"""The ONE prompt builder used by every method for SFT, rollouts, preference data and evaluation (design.md §1).

* ``title`` representation: history and list are catalogue titles, one per line.
* ``item_token`` representation: one vocabulary token per item (``<item_17>``); a list is K tokens.
A completion is ``sep.join(items)``; the tokenizer's EOS token ends it (TRL's SFTTrainer appends it for training,
generation stops on it). Chat models (SmolLM2, Llama-Instruct) get the prompt through their chat template.

One tokenisation: a prompt string is turned into ids by the tokenizer's own ``__call__`` WITH its special tokens,
everywhere: TRL does so for SFT, GRPO rollouts and DPO data, and `encode_prompts` does so for our generation
(evaluation, reference sets, BoN sampling). A chat template writes the BOS text itself, so for a tokenizer that also
adds BOS on encode (Llama-3's does) the rendered prompt leaves the template's BOS out; otherwise such a tokenizer
would see two BOS tokens (tests/test_tokenisation.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from benchmark.data import Dataset

SEP = {"title": "\n", "item_token": " "}
SYSTEM = "You are a recommender system. Answer with item titles only, one per line."


def render_items(ds: Dataset, item_repr: str) -> list[str]:
    """The string each catalogue item is written as (index-aligned with `ds.items`)."""
    if item_repr == "title":
        return [it.title for it in ds.items]
    if item_repr == "item_token":
        return [f"<item_{i}>" for i in range(ds.n_items)]
    raise ValueError(f"unknown item_repr {item_repr!r} (title | item_token)")


def build_prompt(rendered: Sequence[str], history: Sequence[int], item_repr: str, k: int, tokenizer=None,
                 chat: bool = False) -> str:
    """The prompt for one window. `rendered` comes from `render_items`."""
    if item_repr == "item_token":
        return "<hist> " + " ".join(rendered[i] for i in history) + " <rec> "
    lines = "\n".join(rendered[i] for i in history)
    if chat:
        user = (f"I recently interacted with these items, oldest first:\n{lines}\n\n"
                f"Recommend the next {k} items I will like, one title per line.")
        msgs = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
        return _without_added_bos(tokenizer, tokenizer.apply_chat_template(msgs, add_generation_prompt=True,
                                                                           tokenize=False))
    return f"User history, oldest first:\n{lines}\nRecommend the next {k} items:\n"


def adds_bos(tokenizer) -> bool:
    """Whether encoding with special tokens puts the BOS token in front (Llama-3: yes; SmolLM2, ours: no)."""
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a")["input_ids"][:1] == [bos]


def _without_added_bos(tokenizer, text: str) -> str:
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and adds_bos(tokenizer):
        return text[len(bos):]
    return text


def encode_prompts(tokenizer, prompts: Sequence[str], **kwargs):
    """Token ids of rendered prompts, exactly as TRL tokenises them (the tokenizer's own special tokens added).
    Keyword arguments go to the tokenizer (e.g. ``return_tensors="pt", padding=True, padding_side="left"``)."""
    return tokenizer(list(prompts), add_special_tokens=True, **kwargs)


def build_completion(rendered: Sequence[str], items: Sequence[int], item_repr: str) -> str:
    """The target completion (without EOS): the items joined by the representation's separator."""
    return SEP[item_repr].join(rendered[i] for i in items)
