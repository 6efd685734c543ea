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


def generate_for(ctx, model, tokenizer, windows: list[Window], spec=None, **kw):
    """Generate lists for `windows` as `spec` says (default: greedy, design.md §4's evaluation decoding).

    The list length is ``spec.list_len`` or the profile's K; batch size, constrained mode and bf16 come from the
    profile unless given in `kw` (the other `generate_lists` keywords: ``max_new_tokens``, ``progress``,
    ``beam_scores``). Tokens generated and grounding paths are added to ``ctx.stats`` (the runner records the
    latency), so every decoding method is costed the same way. Returns the GenerationResult.
    """
    from methods.common.generation import GREEDY, generate_lists

    kw.setdefault("batch_size", ctx.profile.eval_batch)
    kw.setdefault("constrained", ctx.profile.constrained)
    kw.setdefault("bf16", ctx.profile.bf16 and not torch.cuda.is_available())
    res = generate_lists(model, tokenizer, get_trie(ctx, tokenizer), prompts_for(ctx, tokenizer, windows),
                         excluded_for(ctx, windows), ctx.profile.k, spec or GREEDY, **kw)
    ctx.stats["tokens_generated"] = ctx.stats.get("tokens_generated", 0) + res.tokens_generated
    ctx.stats["generate_seconds"] = ctx.stats.get("generate_seconds", 0.0) + res.generate_seconds
    if res.grounding:
        g = ctx.stats.setdefault("grounding", {})
        for k, v in res.grounding.items():
            g[k] = g.get(k, 0) + v
    return res


def greedy_lists(ctx, model, tokenizer, windows: list[Window]) -> list[list[int]]:
    """One greedy constrained list per window (how every trained method is evaluated, design.md §4)."""
    return [seqs[0] for seqs in generate_for(ctx, model, tokenizer, windows).lists]


def pointwise_beam_lists(ctx, model, tokenizer, windows: list[Window], length_penalty: float,
                         processors: tuple = ()) -> list[list[int]]:
    """The point-wise Beam Search list of each window: K beams of ONE item each under the trie, best first.

    Beam search scores a finished beam sum(step scores) / len**length_penalty (HF); the K beams are distinct token
    sequences, hence K distinct valid items (history masked by the trie). The mean final score at each beam rank is
    appended to ``ctx.stats["beam_scores"]`` (one entry per call: validation, then test), so a record shows how far
    apart the top beams are.
    """
    from methods.common.generation import DecodingSpec

    k = ctx.profile.k
    res = generate_for(ctx, model, tokenizer, windows, DecodingSpec.pointwise_beam(k, length_penalty, processors),
                       beam_scores=True)
    lists = []
    for w, beams in zip(windows, res.lists):
        items = [b[0] if len(b) == 1 else -1 for b in beams]
        if len(set(items)) != k or min(items) < 0:
            raise RuntimeError(f"point-wise beam search for user {w.user!r} returned {beams}, not {k} distinct "
                               "single valid items (a trie/beam bug)")
        lists.append(items)
    by_rank = torch.tensor(res.scores, dtype=torch.float64).mean(0).tolist() if windows else []
    ctx.stats.setdefault("beam_scores", []).append({"n_windows": len(windows), "length_penalty": length_penalty,
                                                     "mean_score_by_rank": by_rank})
    return lists
