"""Constrained list decoding: a prefix trie over the tokenised catalogue and the matching LogitsProcessor.

A completion is ``sep.join(rendered items) + EOS`` (design.md §1, §4). Every item is tokenised *in context*, i.e.
as it appears after the separator, so the token sequences in the trie are exactly the ones the model is trained
on and generates. The processor makes every generated list exactly `k` distinct catalogue items, none of them
excluded (the prompt's history by default), followed by EOS.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LogitsProcessor


class ItemTrie:
    """Prefix trie over the token sequences of the catalogue items.

    Nodes are ints (0 = root). Per node: ``children[node]`` maps token id -> child node, ``count[node]`` is the
    number of items in its subtree, ``terminal[node]`` is the item that ends there (-1 if none) and ``depth[node]``
    its distance from the root. ``item_path[i]`` lists the nodes from the root to item i's terminal node.

    Args:
        tokenizer: a Hugging Face tokenizer (fast or slow); only ``__call__`` and ``eos_token_id`` are used.
        rendered_items: the string of each item, indexed by item id (titles or ``<item_i>`` tokens).
        sep: the separator between items in a completion (``"\\n"`` for titles, ``" "`` for item tokens).

    Raises:
        ValueError: if the tokenizer merges an item with the separator, two items have the same token sequence,
            an item is empty or contains the separator tokens, or (without separator tokens) one item's tokens
            are a prefix of another's.
    """

    def __init__(self, tokenizer, rendered_items: Sequence[str], sep: str):
        self.items = list(rendered_items)
        self.sep = sep
        self.eos_token_id = tokenizer.eos_token_id
        self.sep_ids: tuple[int, ...] = tuple(_encode(tokenizer, [sep])[0])
        self.item_tokens: list[tuple[int, ...]] = self._tokenize_in_context(tokenizer)

        self.children: list[dict[int, int]] = [{}]
        self.count: list[int] = [0]
        self.terminal: list[int] = [-1]
        self.depth: list[int] = [0]
        self.token_of: list[int] = [-1]  # the token that leads into each node (for masking dead children)
        self.item_path: list[tuple[int, ...]] = []
        for idx, toks in enumerate(self.item_tokens):
            node, path = 0, [0]
            for tok in toks:
                self.count[node] += 1
                nxt = self.children[node].get(tok)
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][tok] = nxt
                    self.children.append({})
                    self.count.append(0)
                    self.terminal.append(-1)
                    self.depth.append(self.depth[node] + 1)
                    self.token_of.append(tok)
                node = nxt
                path.append(node)
            self.count[node] += 1
            if self.terminal[node] >= 0:
                other = self.terminal[node]
                raise ValueError(
                    f"items {other} ({self.items[other]!r}) and {idx} ({self.items[idx]!r}) have the same token "
                    f"sequence {list(toks)}; the trie cannot tell them apart"
                )
            self.terminal[node] = idx
            self.item_path.append(tuple(path))
        self._lookup = {toks: i for i, toks in enumerate(self.item_tokens)}
        self._children_t: dict[int, torch.Tensor] = {}
        if not self.sep_ids:
            self._check_prefix_free()

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def max_item_len(self) -> int:
        """The longest item token sequence (sizes ``max_new_tokens``)."""
        return max(map(len, self.item_tokens))

    def _tokenize_in_context(self, tokenizer) -> list[tuple[int, ...]]:
        sep, n_sep = self.sep, len(self.sep_ids)
        with_sep = _encode(tokenizer, [sep + it for it in self.items])
        # Also encode "sep item sep": catches a tokenizer that merges the item's end into the next separator.
        both = _encode(tokenizer, [sep + it + sep for it in self.items]) if n_sep else with_sep
        out = []
        for idx, (ids, ids2) in enumerate(zip(with_sep, both)):
            item = self.items[idx]
            if tuple(ids[:n_sep]) != self.sep_ids or (n_sep and tuple(ids2[-n_sep:]) != self.sep_ids):
                raise ValueError(
                    f"the tokenizer merges the separator {sep!r} with item {idx} ({item!r}): "
                    f"encode(sep)={list(self.sep_ids)}, encode(sep + item)={ids}, encode(sep + item + sep)={ids2}. "
                    "Item token sequences would depend on their neighbours; use a tokenizer that keeps the "
                    "separator a token of its own."
                )
            toks = tuple(ids[n_sep:])
            if n_sep and list(ids2) != list(ids) + list(self.sep_ids):
                raise ValueError(f"item {idx} ({item!r}) tokenises differently when followed by {sep!r}")
            if not toks:
                raise ValueError(f"item {idx} ({item!r}) tokenises to nothing after {sep!r}")
            if n_sep and _contains(toks, self.sep_ids):
                raise ValueError(f"item {idx} ({item!r}) contains the separator tokens {list(self.sep_ids)}")
            if self.eos_token_id in toks:
                raise ValueError(f"item {idx} ({item!r}) contains the EOS token")
            out.append(toks)
        return out

    def _check_prefix_free(self) -> None:
        # Without separator tokens an item ends where its trie path ends, so no item may continue another.
        for idx, path in enumerate(self.item_path):
            for node in path[1:-1]:
                if self.terminal[node] >= 0:
                    other = self.terminal[node]
                    raise ValueError(
                        f"item {other} ({self.items[other]!r}) is a token prefix of item {idx} ({self.items[idx]!r}) "
                        "and there is no separator token to end an item; use a separator that tokenises"
                    )

    def children_tensor(self, node: int) -> torch.Tensor:
        """The child token ids of `node` as a LongTensor, built once and cached (shared by all processors)."""
        t = self._children_t.get(node)
        if t is None:
            t = self._children_t[node] = torch.tensor(list(self.children[node]), dtype=torch.long)
        return t

    def encode_list(self, items: Sequence[int]) -> list[int]:
        """The completion token ids for a list of items: items joined by the separator ids, without EOS."""
        out: list[int] = []
        for j, i in enumerate(items):
            if j:
                out.extend(self.sep_ids)
            out.extend(self.item_tokens[i])
        return out

    def parse(self, completion_ids: Sequence[int]) -> list[int]:
        """Map generated token ids back to item indices.

        Everything from the first EOS on is ignored (padding). With separator tokens the ids are split on them and
        each segment is looked up (empty segments are skipped); without, the trie is walked and an item ends at
        its terminal node. A segment that is not a catalogue item (including an unfinished last item) gives -1.

        Args:
            completion_ids: the generated tokens (after the prompt).

        Returns:
            Item indices in generation order, -1 for each unparseable segment.
        """
        ids = list(completion_ids)
        if self.eos_token_id in ids:
            ids = ids[: ids.index(self.eos_token_id)]
        out: list[int] = []
        if self.sep_ids:
            n, start, i = len(self.sep_ids), 0, 0
            while i <= len(ids):
                if i == len(ids) or tuple(ids[i : i + n]) == self.sep_ids:
                    if i > start:
                        out.append(self._lookup.get(tuple(ids[start:i]), -1))
                    i += n
                    start = i
                else:
                    i += 1
            return out
        node, seg_len = 0, 0
        for tok in ids:
            nxt = self.children[node].get(tok)
            if nxt is None:  # off the trie: this segment is garbage; restart at the next token
                out.append(-1)
                node, seg_len = 0, 0
                continue
            node, seg_len = nxt, seg_len + 1
            if self.terminal[node] >= 0:
                out.append(self.terminal[node])
                node, seg_len = 0, 0
        if seg_len:
            out.append(-1)
        return out


def _encode(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def _contains(seq: tuple[int, ...], sub: tuple[int, ...]) -> bool:
    n = len(sub)
    return any(seq[i : i + n] == sub for i in range(len(seq) - n + 1))


# Row phases of the list automaton.
_ITEM, _SEP, _END, _DONE, _DEAD = range(5)


class _State:
    """Where one row is: `phase` with `pos` (trie node in _ITEM, index into sep_ids in _SEP) and the items
    completed so far. `allowed`/`dead` (token ids to allow, token ids to mask again) are filled lazily."""

    __slots__ = ("phase", "pos", "used", "allowed", "n_allowed", "dead", "ok_tokens")

    def __init__(self, phase: int, pos: int, used: tuple[int, ...]):
        self.phase, self.pos, self.used = phase, pos, used
        self.allowed: list[torch.Tensor] | None = None
        self.n_allowed = 0
        self.dead: list[int] = []
        self.ok_tokens: frozenset[int] | set[int] | None = None  # tokens that are not trie children but allowed


class ListConstraintProcessor(LogitsProcessor):
    """Masks the logits so that each row generates exactly `k` distinct, non-excluded catalogue items, then EOS.

    The processor is stateless with respect to row identity (beam search reorders rows): each row's automaton
    state is derived from its completion tokens. States are cached by ``(prompt, completion prefix)``; a new state
    is one trie step from its parent prefix's state in the previous call, so the Python work per row and step is
    O(1) (plus C-level hashing of the prefix). Rows that finished (or that beam search filled with -inf junk)
    allow only EOS, so no row is ever all -inf.

    Args:
        trie: the catalogue trie.
        k: list length.
        eos_token_id: the EOS id (forced after the k-th item, masked before).
        prompt_len: the padded prompt width; completion tokens are ``input_ids[:, prompt_len:]``.
        excluded: per prompt, item indices that may not be generated (e.g. its history).
        record: keep the allowed ids of every call (one call per generated position), so that `masks` returns the
            constraint masks of the generated completions without replaying the automaton (GRPO's log-probs).

    Raises:
        ValueError: if some prompt cannot get k distinct allowed items (``k + |excluded[p]| > n_items``), or an
            excluded index is outside the catalogue.
    """

    def __init__(self, trie: ItemTrie, k: int, eos_token_id: int, prompt_len: int, excluded: Sequence[set[int]],
                 record: bool = False):
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.trie, self.k, self.eos, self.prompt_len = trie, k, int(eos_token_id), prompt_len
        self.excluded = [frozenset(e) for e in excluded]
        for p, ex in enumerate(self.excluded):
            bad = [i for i in ex if not 0 <= i < trie.n_items]
            if bad:
                raise ValueError(f"prompt {p}: excluded items {sorted(bad)[:5]} are outside 0..{trie.n_items - 1}")
            if k + len(ex) > trie.n_items:
                raise ValueError(
                    f"prompt {p}: cannot generate {k} distinct items from a catalogue of {trie.n_items} "
                    f"with {len(ex)} excluded items (k + |excluded| > n_items)"
                )
        # Single forced tokens as tensors (the per-node child-id tensors are cached on the trie).
        self._eos_t = torch.tensor([self.eos])
        self._sep_t = [torch.tensor([t]) for t in trie.sep_ids]
        self._prev: dict[tuple, _State] = {}
        # per call: (rows, row ids, allowed ids, dead rows, dead ids)
        self.trace: list[tuple] | None = [] if record else None

    # -- automaton ------------------------------------------------------------------------------------------

    def _fill(self, p: int, s: _State) -> None:
        """Compute the allowed / re-masked token ids of state `s` for prompt `p`."""
        if s.phase == _SEP:
            s.allowed, s.n_allowed, s.ok_tokens = [self._sep_t[s.pos]], 1, {self.trie.sep_ids[s.pos]}
            return
        if s.phase != _ITEM:  # _END, _DONE, _DEAD: only EOS
            s.allowed, s.n_allowed, s.ok_tokens = [self._eos_t], 1, {self.eos}
            return
        trie, node = self.trie, s.pos
        banned = self.excluded[p].union(s.used)
        # A child is a dead end if every item below it is banned: count banned items per child via their paths.
        depth, per_child = trie.depth[node], {}
        for b in banned:
            path = trie.item_path[b]
            if len(path) > depth + 1 and path[depth] == node:
                c = path[depth + 1]
                per_child[c] = per_child.get(c, 0) + 1
        s.dead = [trie.token_of[c] for c, n in per_child.items() if n == trie.count[c]]
        s.allowed = [trie.children_tensor(node)]
        s.n_allowed = len(trie.children[node])
        s.ok_tokens = set()
        term = trie.terminal[node]
        if term >= 0 and term not in banned:  # only with separator tokens: without, terminals are leaves
            if len(s.used) + 1 == self.k:
                s.allowed.append(self._eos_t)
                s.ok_tokens.add(self.eos)
            else:
                s.allowed.append(self._sep_t[0])
                s.ok_tokens.add(trie.sep_ids[0])
            s.n_allowed += 1

    def _step(self, p: int, s: _State, tok: int) -> _State:
        """The state after generating `tok` in state `s`."""
        if s.phase in (_DONE, _DEAD):
            return s
        if s.allowed is None:
            self._fill(p, s)
        trie = self.trie
        if s.phase == _END:
            return _State(_DONE, 0, s.used) if tok == self.eos else _State(_DEAD, 0, s.used)
        if s.phase == _SEP:
            if tok != trie.sep_ids[s.pos]:
                return _State(_DEAD, 0, s.used)
            nxt = s.pos + 1
            return _State(_SEP, nxt, s.used) if nxt < len(trie.sep_ids) else _State(_ITEM, 0, s.used)
        node = s.pos
        child = trie.children[node].get(tok)
        if child is not None and trie.token_of[child] not in s.dead:
            term = trie.terminal[child]
            if trie.sep_ids or term < 0:
                return _State(_ITEM, child, s.used)
            used = s.used + (term,)  # no separator: the item is complete on reaching its (leaf) node
            return _State(_END, 0, used) if len(used) == self.k else _State(_ITEM, 0, used)
        if tok in s.ok_tokens:  # the separator or EOS right after a complete item
            used = s.used + (trie.terminal[node],)
            if tok == self.eos:
                return _State(_DONE, 0, used)
            return _State(_SEP, 1, used) if len(trie.sep_ids) > 1 else _State(_ITEM, 0, used)
        return _State(_DEAD, 0, s.used)

    def _state(self, p: int, row: list[int], cur: dict[tuple, _State]) -> _State:
        key = (p, tuple(row))
        s = cur.get(key)
        if s is not None:
            return s
        if not row:
            s = _State(_ITEM, 0, ())
        else:
            parent = self._prev.get((p, tuple(row[:-1])))
            if parent is None:  # not seen in the previous call (e.g. first call on a longer prefix): replay
                parent = _State(_ITEM, 0, ())
                for tok in row[:-1]:
                    parent = self._step(p, parent, tok)
            s = self._step(p, parent, row[-1])
        cur[key] = s
        return s

    # -- LogitsProcessor -----------------------------------------------------------------------------------

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        n_rows = input_ids.shape[0]
        if n_rows % len(self.excluded):
            raise ValueError(f"{n_rows} rows are not a multiple of {len(self.excluded)} prompts")
        per_prompt = n_rows // len(self.excluded)
        rows = input_ids[:, self.prompt_len :].tolist()
        cur: dict[tuple, _State] = {}
        cols, lengths, dead_rows, dead_cols = [], [], [], []
        for r, row in enumerate(rows):
            p = r // per_prompt
            s = self._state(p, row, cur)
            if s.allowed is None:
                self._fill(p, s)
            cols.extend(s.allowed)
            lengths.append(s.n_allowed)
            dead_rows.extend([r] * len(s.dead))
            dead_cols.extend(s.dead)
        self._prev = cur  # only the last step's prefixes are ever parents of the next step's
        # Mask by assignment: the allowed ids keep their scores, every other id gets -inf (one scatter for the whole
        # batch). Not `scores + mask`: NaN + -inf is NaN, so a diverged model's NaN logits passed the constraint and
        # decoded disallowed tokens. Non-finite scores are made finite first (NaN and -inf -> the lowest float,
        # +inf -> the highest), so an allowed id always beats every disallowed one; finite scores are unchanged.
        dev = scores.device
        allowed = torch.zeros_like(scores, dtype=torch.bool)
        row_idx = torch.repeat_interleave(torch.arange(n_rows), torch.tensor(lengths))
        col_idx = torch.cat(cols)
        if self.trace is not None:
            self.trace.append((n_rows, row_idx, col_idx, dead_rows, dead_cols))
        allowed[row_idx.to(dev), col_idx.to(dev)] = True
        if dead_rows:  # children whose whole subtree is banned for this row
            allowed[torch.tensor(dead_rows, device=dev), torch.tensor(dead_cols, device=dev)] = False
        info = torch.finfo(scores.dtype)
        finite = torch.nan_to_num(scores, nan=info.min, posinf=info.max, neginf=info.min)
        return torch.where(allowed, finite, torch.tensor(float("-inf"), dtype=scores.dtype, device=dev))

    def masks(self, width: int, vocab_size: int, device: torch.device | str | None = None) -> torch.BoolTensor:
        """[rows, width, V] bool on `device`: the tokens this processor allowed at each of the first `width` generated
        positions (needs ``record=True``). It equals `methods.common.logprobs.constraint_masks` of the generated
        completions, which replays the automaton a second time (tests/test_logprobs.py checks the two agree);
        this costs one scatter on the device and no host replay.

        Raises:
            ValueError: nothing recorded, or fewer recorded calls than `width`, or calls of different row counts.
        """
        if self.trace is None or len(self.trace) < width or len({t[0] for t in self.trace[:width]}) > 1:
            got = None if self.trace is None else len(self.trace)
            raise ValueError(f"masks of {width} positions need as many recorded calls over the same rows "
                             f"(record=True); recorded {got}")
        dev = torch.device(device) if device is not None else torch.device("cpu")
        n_rows = self.trace[0][0] if self.trace else 0
        allowed = torch.zeros(n_rows, width, vocab_size, dtype=torch.bool, device=dev)
        calls = self.trace[:width]
        if calls:
            pos = torch.cat([torch.full((len(r),), t, dtype=torch.long) for t, (_, r, _, _, _) in enumerate(calls)])
            rows, cols = torch.cat([c[1] for c in calls]), torch.cat([c[2] for c in calls])
            allowed[rows.to(dev), pos.to(dev), cols.to(dev)] = True
            dead = [(t, r, c) for t, (_, _, _, rows, cols) in enumerate(calls) for r, c in zip(rows, cols)]
            if dead:
                t, r, c = (torch.tensor(x, device=dev) for x in zip(*dead))
                allowed[r, t, c] = False
        return allowed
