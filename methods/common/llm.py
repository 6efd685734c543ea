"""Glue between the LLM methods and the shared decoding code: prompts, the item trie and list generation."""

from __future__ import annotations

import torch

from benchmark.data import Window
from benchmark.prompts import SEP, build_prompt, render_items

_TRIES: dict = {}


def get_trie(ctx, tokenizer):
    """The item trie for (dataset, representation, tokenizer), built once per process."""
    from methods.common.trie import ItemTrie

    key = (ctx.data.name, ctx.data.data_hash, ctx.profile.item_repr, tokenizer.name_or_path, len(tokenizer))
    if key not in _TRIES:
        _TRIES[key] = ItemTrie(tokenizer, render_items(ctx.data, ctx.profile.item_repr), SEP[ctx.profile.item_repr])
    return _TRIES[key]


def prompts_for(ctx, tokenizer, windows: list[Window]) -> list[str]:
    rendered = render_items(ctx.data, ctx.profile.item_repr)
    chat = ctx.profile.model != "scratch"
    return [build_prompt(rendered, w.history, ctx.profile.item_repr, ctx.profile.k, tokenizer, chat) for w in windows]


def excluded_for(ctx, windows: list[Window]) -> list[set[int]]:
    return [set(w.history) if ctx.profile.exclude_history else set() for w in windows]


def generate_for(ctx, model, tokenizer, windows: list[Window], mode: str = "greedy", **kw):
    """Generate lists for `windows` with the profile's decoding settings; returns the GenerationResult."""
    from methods.common.generation import generate_lists

    # design.md §4: evaluation is plain greedy; the repetition penalty (1.05) belongs to rollouts/BoN/reference sets
    kw.setdefault("repetition_penalty", 1.05 if mode == "sample" else 1.0)
    kw.setdefault("batch_size", ctx.profile.eval_batch)
    kw.setdefault("constrained", ctx.profile.constrained)
    kw.setdefault("bf16", ctx.profile.bf16 and not torch.cuda.is_available())
    res = generate_lists(model, tokenizer, get_trie(ctx, tokenizer), prompts_for(ctx, tokenizer, windows),
                         excluded_for(ctx, windows), ctx.profile.k, mode=mode, **kw)
    ctx.stats["tokens_generated"] = ctx.stats.get("tokens_generated", 0) + res.tokens_generated
    if res.grounding:
        g = ctx.stats.setdefault("grounding", {})
        for k, v in res.grounding.items():
            g[k] = g.get(k, 0) + v
    return res


def greedy_lists(ctx, model, tokenizer, windows: list[Window]) -> list[list[int]]:
    """One greedy constrained list per window (how every trained method is evaluated, design.md §4)."""
    return [seqs[0] for seqs in generate_for(ctx, model, tokenizer, windows, mode="greedy").lists]
