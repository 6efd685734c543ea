"""The ONE prompt builder used by every method for SFT, rollouts, preference data and evaluation (design.md §1).

* ``title`` representation: history and list are catalogue titles, one per line.
* ``item_token`` representation: one vocabulary token per item (``<item_17>``); a list is K tokens.
A completion is ``sep.join(items)``; the tokenizer's EOS token ends it (TRL's SFTTrainer appends it for training,
generation stops on it). Chat models (SmolLM2, Llama-Instruct) get the prompt through their chat template.
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
        return tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    return f"User history, oldest first:\n{lines}\nRecommend the next {k} items:\n"


def build_completion(rendered: Sequence[str], items: Sequence[int], item_repr: str) -> str:
    """The target completion (without EOS): the items joined by the representation's separator."""
    return SEP[item_repr].join(rendered[i] for i in items)
