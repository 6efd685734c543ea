"""Datasets: canonical loaders, the paper's preprocessing, leak-free user splits and sliding windows.

Two canonical on-disk formats (data/README.md):
  * interactions: ``interactions.csv.gz`` (user_id,item_id,timestamp) + ``items.jsonl``;
  * samples: ``samples.jsonl.gz`` (history, target, split) + ``items.jsonl``.

Each dataset folder carries its preprocessing settings in ``dataset.json`` (fields of `DataConfig`), so a dataset
given by name or by path is preprocessed identically.

Preprocessing (paper §4.1.1, design.md §2) for interactions datasets: drop users with < 10 interactions; keep the
15 % most popular items where configured, then drop short users again; history 10 -> next 10 sliding windows
(stride 1; windows whose target is shorter than `min_target` = 10 are not tasks).
The users who can give a full window are partitioned by a seeded shuffle into sft / align / valid / test (40/20/10/30);
the users who cannot all go to sft. SFT trains on the sft users' windows only, alignment prompts come from the align
users (never seen by SFT), and valid/test users give all their windows. Samples datasets (Goodreads) come pre-windowed and without user ids: their samples are grouped into
pseudo-readers (`sample_groups`) and whole groups go to sft/align (75/25) and valid (10 % of the rest).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import math
import random
import zlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dataclasses

from benchmark.config import DATASETS, DataConfig, apply_overrides
from benchmark.errors import UserError, unknown_name

SPLITS = ("sft", "align", "valid", "test")


@dataclass(frozen=True)
class Item:
    """A catalogue item. `genres` keeps only the dataset's configured genre set (for MGU/ILD).

    `title` is unique within a dataset: titles shared by several items get a `` [item_id]`` suffix so that
    constrained decoding and exact-match grounding are one-to-one.
    """

    item_id: str
    title: str
    genres: tuple[str, ...] = ()


@dataclass(frozen=True)
class Window:
    """One task instance: the user's last `history` items (oldest first) -> the next `target` items (>= 1).

    Items are indices into `Dataset.items`. `user` groups windows for the paired user bootstrap.
    """

    user: str
    history: tuple[int, ...]
    target: tuple[int, ...]


@dataclass
class Dataset:
    """A preprocessed dataset with its four user-disjoint splits: ``sft``, ``align``, ``valid``, ``test``.

    `sequences[split]` holds each user's complete preprocessed sequence (samples datasets: history + target of each
    sample), for sequential models (SASRec, popularity) that train on sequences rather than windows.
    """

    name: str
    fmt: str  # "interactions" | "samples"
    items: list[Item]
    genre_set: tuple[str, ...]
    splits: dict[str, list[Window]]
    data_hash: str
    config: DataConfig = field(default_factory=DataConfig)
    sequences: dict[str, list[list[int]]] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    sequence_users: dict[str, list[str]] = field(default_factory=dict)  # the user of each sequence (user splits)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @functools.cached_property
    def item_genres(self) -> tuple[frozenset[str], ...]:
        """Each item's genre set, built once: every reward call reads it (about 41 k per `cpu` BLADE run)."""
        return tuple(frozenset(it.genres) for it in self.items)


def available_datasets(data_dir: Path) -> list[str]:
    """The dataset folders under `data_dir` (those holding an items.jsonl), plus the shipped names."""
    found = sorted(p.name for p in Path(data_dir).glob("*/items.jsonl") for p in [p.parent])
    return list(dict.fromkeys([*DATASETS, *found]))


def resolve_dataset_dir(name_or_path: str, data_dir: Path) -> tuple[str, Path]:
    """A dataset is a name (a folder under `data_dir`) or a path to any folder in a canonical format."""
    p = Path(name_or_path)
    if p.is_dir() and (p / "items.jsonl").exists():
        return p.name, p
    d = Path(data_dir) / name_or_path
    if (d / "items.jsonl").exists():
        return name_or_path, d
    if name_or_path in DATASETS:
        raise UserError(
            f"dataset {name_or_path!r} not found in {d} (no items.jsonl). Set --data-dir or BENCHMARK_DATA_DIR "
            f"to the folder holding {name_or_path}/, or import it: python -m benchmark data import "
            f"{name_or_path} --raw-dir RAW --out {d}")
    if p.exists():
        raise UserError(f"{p} is not a dataset folder: it needs items.jsonl and interactions.csv.gz or samples.jsonl.gz")
    raise unknown_name("dataset", name_or_path, available_datasets(data_dir))


def dataset_config(d: Path) -> DataConfig:
    """The preprocessing settings of dataset folder `d`: `DataConfig` defaults updated by ``d/dataset.json``."""
    path = Path(d) / "dataset.json"
    if not path.exists():
        return DataConfig()
    with _readable(path):
        text = path.read_text(encoding="utf-8")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a JSON object of DataConfig fields, got {type(raw).__name__}")
    valid = {f.name for f in dataclasses.fields(DataConfig)}
    for key in raw:
        if key not in valid:
            raise UserError(f"{path}: unknown field {key!r}. Valid fields: {', '.join(sorted(valid))}")
    try:
        return apply_overrides(DataConfig(), raw, "data config", from_json=True)  # validates every field
    except UserError as e:
        raise UserError(f"{path}: {e}") from None


FIX = "Copy it again, or rebuild the dataset with `python -m benchmark data import`"
GZIP_MAGIC = b"\x1f\x8b"


@contextlib.contextmanager
def _readable(path: Path):
    """Turn a file that cannot be read as text (a folder, unreadable, not UTF-8) into one UserError naming it."""
    try:
        yield
    except UnicodeDecodeError as e:
        line = e.object[:e.start].count(b"\n") + 1 if isinstance(e.object, bytes) else "?"
        raise UserError(f"{path} is not UTF-8 text (line {line}, byte {e.start}: {e.reason}). Save it as UTF-8. "
                        f"{FIX}") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a file. Put the file there. {FIX}") from None
    except OSError as e:
        raise UserError(f"{path} cannot be read ({e.strerror or e}). {FIX}") from None


def _gunzip_text(path: Path) -> io.StringIO:
    """The UTF-8 text of gzip file `path`, checked WHOLE (every member's CRC and length, no trailing data) before any
    line is parsed: damage in the middle of the stream is reported as damage, never as a malformed row."""
    with _readable(path):
        data = Path(path).read_bytes()

    def damaged(what: str) -> UserError:
        return UserError(f"{path} is damaged ({what}). {FIX}")

    if not data.startswith(GZIP_MAGIC):
        raise UserError(f"{path} is not gzip-compressed (it starts with {data[:16]!r}): compress the plain file with "
                        f"`gzip` (FILE -> FILE.gz). {FIX}")
    parts, rest = [], data
    while rest:
        if not rest.startswith(GZIP_MAGIC):
            if not rest.strip(b"\0"):  # zero padding after the last member is allowed (gzip ignores it)
                break
            raise damaged(f"{len(rest)} bytes of trailing garbage after the gzip data, at byte {len(data) - len(rest)}")
        d = zlib.decompressobj(31)  # gzip framing: checks each member's CRC-32 and length
        try:
            parts.append(d.decompress(rest))
        except zlib.error as e:  # changed bytes: an invalid deflate stream, or a CRC-32 that no longer matches
            why = "its CRC-32 checksum does not match the data" if "incorrect data check" in str(e) else str(e)
            raise damaged(f"corrupt: {why}") from None
        if not d.eof:
            raise damaged("truncated: the gzip stream ends early")
        rest = d.unused_data
    raw = b"".join(parts)
    with _readable(path):
        return io.StringIO(raw.decode("utf-8"), newline="")


def _read_items(path: Path) -> list[dict]:
    items = []
    first_line: dict[str, int] = {}
    with _readable(path), open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
            for key, typ in (("item_id", str), ("title", str), ("genres", list)):
                if not isinstance(d.get(key), typ) or (typ is str and not d[key]):
                    raise UserError(f"{path}, line {n}: field {key!r} must be a non-empty {typ.__name__}, "
                                    f"got {d.get(key)!r}")
            if d["item_id"] in first_line:
                raise UserError(f"{path}, line {n}: item_id {d['item_id']!r} repeats line {first_line[d['item_id']]}; "
                                "each item must appear once. Remove or merge the duplicate line")
            first_line[d["item_id"]] = n
            items.append(d)
    return items


def _read_interactions(path: Path, known: set[str]) -> dict[str, list[tuple[int, str]]]:
    """user -> [(timestamp, item_id)] in file order (stable within equal timestamps)."""
    seqs: dict[str, list[tuple[int, str]]] = {}
    seen: dict[tuple[str, ...], int] = {}  # row -> its first line
    repeats: list[tuple[int, int, list[str]]] = []  # (line, first line, row)
    with _gunzip_text(path) as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["user_id", "item_id", "timestamp"]:
            raise UserError(f"{path}, line 1: header must be user_id,item_id,timestamp, got {header}")
        for n, row in enumerate(reader, 2):
            if len(row) != 3:
                raise UserError(f"{path}, line {n}: expected 3 fields, got {len(row)}")
            user, item, ts = row
            if item not in known:
                raise UserError(f"{path}, line {n}: field 'item_id' = {item!r} is not in items.jsonl")
            try:
                t = int(ts)
            except ValueError:
                raise UserError(f"{path}, line {n}: field 'timestamp' = {ts!r} is not an integer") from None
            key = tuple(row)
            if key in seen:
                repeats.append((n, seen[key], row))
                continue
            seen[key] = n
            seqs.setdefault(user, []).append((t, item))
    if repeats:
        n, first, row = repeats[0]
        raise UserError(f"{path}: {len(repeats)} duplicated rows (e.g. line {n} repeats line {first}: "
                        f"{','.join(row)}); each interaction must appear once (data/README.md), and a copy would "
                        "count twice in the popularity, the windows and the targets. Remove the repeated lines")
    for user, s in seqs.items():
        s.sort(key=lambda x: x[0])  # stable: equal timestamps keep file order
    return seqs


def _read_samples(path: Path, known: set[str]) -> list[dict]:
    out = []
    seen: dict[tuple, int] = {}  # (history, target) -> its first line
    repeats: list[tuple[int, int]] = []
    with _gunzip_text(path) as f:
        for n, line in enumerate(f, 1):
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
            for key in ("history", "target"):
                v = d.get(key)
                if not isinstance(v, list) or not v or any(i not in known for i in v):
                    raise UserError(f"{path}, line {n}: field {key!r} must be a non-empty list of item ids "
                                    f"from items.jsonl, got {v!r}")
            if d.get("split") not in ("train", "test"):
                raise UserError(f"{path}, line {n}: field 'split' must be 'train' or 'test', got {d.get('split')!r}")
            key = (tuple(d["history"]), tuple(d["target"]))
            if key in seen:
                repeats.append((n, seen[key]))
                continue
            seen[key] = n
            out.append(d)
    if repeats:
        n, first = repeats[0]
        raise UserError(f"{path}: {len(repeats)} duplicated samples (e.g. line {n} repeats the history and target of "
                        f"line {first}); no (history, target) pair may occur twice (data/README.md): a copy counts "
                        "twice in training and scoring, or leaks a test sample into training. Remove the repeats")
    return out


def _file_hash(paths: list[Path], cfg: DataConfig, extra: dict | None = None) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    h.update(json.dumps(asdict(cfg), sort_keys=True).encode())
    if extra:  # a protocol choice outside DataConfig (samples: the pseudo-reader grouping)
        h.update(json.dumps(extra, sort_keys=True).encode())
    return h.hexdigest()[:16]


# Samples datasets have no user ids, and a reader's consecutive windows overlap: Goodreads' train pool holds e.g.
# (h1..h10 -> t) and (h2..h10, t -> t'). Split sample by sample, 14 % of the validation samples had their target
# inside the history of an SFT sample that continues the same sequence, and 48 % their last five items (four history
# items + target) verbatim in an SFT sample (SPRec's test split: 0 % and 0.3 %). Samples that share a run of
# SAMPLES_GROUP_NGRAM consecutive items (history + target) are therefore one pseudo-reader, and splits take whole
# pseudo-readers (docs/benchmarks.md §9). 5: at 4, book series join unrelated readers into one group of 2,191
# samples; at 5 the largest group has 337.
SAMPLES_GROUP_NGRAM = 5


def sample_groups(seqs: list[tuple[int, ...]], n: int) -> list[int]:
    """The group of each sequence: two sequences that share a run of `n` consecutive items are in one group, and
    so (transitively) are their other partners. Groups are numbered by their first sequence, in input order."""
    parent = list(range(len(seqs)))

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first: dict[tuple[int, ...], int] = {}
    for i, seq in enumerate(seqs):
        for j in range(len(seq) - n + 1):
            g = tuple(seq[j:j + n])
            if g in first:
                a, b = root(i), root(first[g])
                parent[max(a, b)] = min(a, b)
            else:
                first[g] = i
    return [root(i) for i in range(len(seqs))]


def _as_pseudo_readers(wins: list[Window]) -> list[Window]:
    """`wins` with `user` set to their pseudo-reader (``g<first sample id>``), so user-level code (the alignment
    subset's valid/train split, user bootstraps) treats one reader's overlapping samples as one user."""
    groups = sample_groups([w.history + w.target for w in wins], SAMPLES_GROUP_NGRAM)
    return [dataclasses.replace(w, user="g" + wins[g].user[1:]) for w, g in zip(wins, groups)]


def _genres_of(raw: dict, cfg: DataConfig) -> tuple[str, ...]:
    g = raw["genres"]
    if cfg.genre_rule == "first":
        return tuple(g[:1])
    return tuple(x for x in g if not cfg.genres or x in cfg.genres)


def _unique_titles(raw_items: list[dict]) -> list[str]:
    counts = Counter(d["title"] for d in raw_items)
    return [d["title"] if counts[d["title"]] == 1 else f"{d['title']} [{d['item_id']}]" for d in raw_items]


def _user_windows(user: str, seq: list[int], cfg: DataConfig) -> list[Window]:
    """History `history_len` -> the next `target_len` items, every `stride`; targets shorter than `min_target`
    (the end of a sequence) are dropped."""
    h, L = cfg.history_len, cfg.target_len
    return [Window(user, tuple(seq[s:s + h]), tuple(seq[s + h:s + h + L]))
            for s in range(0, len(seq) - h - cfg.min_target + 1, cfg.stride)]


def load_dataset(name_or_path: str, data_dir: Path, cfg: DataConfig | None = None) -> Dataset:
    """Load, preprocess and split a dataset. Deterministic given (files, cfg)."""
    name, d = resolve_dataset_dir(name_or_path, data_dir)
    cfg = cfg or dataset_config(d)
    if cfg.split not in ("user", "temporal"):
        raise UserError(f"data split {cfg.split!r} unknown. Valid: user, temporal")
    if abs(sum(cfg.split_fracs) - 1) > 1e-6:
        raise UserError(f"split_fracs {cfg.split_fracs} must sum to 1")
    items_path = d / "items.jsonl"
    for f in (items_path, d / "interactions.csv.gz", d / "samples.jsonl.gz"):
        if f.exists() and not f.is_file():
            raise UserError(f"{f} is a folder, not a file. Put the file there. {FIX}")
    raw_items = _read_items(items_path)
    known = {x["item_id"] for x in raw_items}
    if (d / "interactions.csv.gz").exists():
        return _check_usable(_load_interactions(name, d, raw_items, known, cfg), d / "interactions.csv.gz")
    if (d / "samples.jsonl.gz").exists():
        return _check_usable(_load_samples(name, d, raw_items, known, cfg), d / "samples.jsonl.gz")
    raise UserError(f"{d}: needs interactions.csv.gz or samples.jsonl.gz beside items.jsonl")


def list_capacity(ds: Dataset, exclude_history: bool = True) -> int:
    """The longest list of distinct valid items every window of `ds` can get: the catalogue, minus the history items
    (up to `history_len` of them) when constrained decoding masks them (the profile's ``exclude_history``)."""
    return ds.n_items - (ds.config.history_len if exclude_history else 0)


def check_list_length(k: int, exclude_history: bool, ds: Dataset) -> None:
    """Refuse a list length `k` (the profile's) that `ds` cannot fill, before any work: a UserError naming the limit."""
    cap = list_capacity(ds, exclude_history)
    if k > cap:
        masked = (f" minus the {ds.config.history_len} history items that decoding masks (exclude_history)"
                  if exclude_history else "")
        raise UserError(f"profile field k = {k} is invalid for dataset {ds.name}: a list holds at most {cap} distinct "
                        f"items there ({ds.n_items} catalogue items{masked}). Set it with --set k=VALUE, "
                        f"1 <= VALUE <= {cap}")


def _check_usable(ds: Dataset, path: Path) -> Dataset:
    """Refuse a dataset the protocol cannot use, naming the file: no user left by the interaction filter, or a
    split (sft, align, valid, test) without a window."""
    cfg = ds.config
    if ds.stats["users"] == 0:
        raise UserError(f"{path}: no user has >= {cfg.min_user_interactions} interactions (after the item filter, "
                        f"top_item_frac = {cfg.top_item_frac}), so there is nothing to train or test on. Use a "
                        "dataset with longer user histories")
    empty = [s for s in SPLITS if not ds.splits[s]]
    if empty:
        sizes = ", ".join(f"{s} {len(ds.splits[s])}" for s in SPLITS)
        raise UserError(f"{path}: too few users for the splits: no window in {', '.join(empty)} (windows: {sizes}; "
                        f"{ds.stats['users']} users kept, split {cfg.split} {cfg.split_fracs}). Every split needs "
                        "at least one window: use a dataset with more users")
    return ds


def _id_key(i: str):
    """data/README.md order: numeric if the id is a decimal integer, else lexicographic."""
    return (0, int(i), "") if i.isdigit() else (1, 0, i)


def _drop_short(seqs: dict[str, list], m: int) -> dict[str, list]:
    return {u: s for u, s in seqs.items() if len(s) >= m}


def _load_interactions(name, d, raw_items, known, cfg: DataConfig) -> Dataset:
    path = d / "interactions.csv.gz"
    seqs = _read_interactions(path, known)
    raw_stats = {"users": len(seqs), "interactions": sum(map(len, seqs.values())), "items": len(raw_items)}
    # 1. users with >= min interactions; 2. top items by popularity (ties: item id order), then 1. again.
    seqs = _drop_short(seqs, cfg.min_user_interactions)
    if cfg.top_item_frac < 1.0:
        counts = Counter(i for s in seqs.values() for _, i in s)
        n_keep = math.ceil(cfg.top_item_frac * len(counts))
        keep = {i for i, _ in sorted(counts.items(), key=lambda x: (-x[1], _id_key(x[0])))[:n_keep]}
        seqs = _drop_short({u: [x for x in s if x[1] in keep] for u, s in seqs.items()}, cfg.min_user_interactions)
    used = {i for s in seqs.values() for _, i in s}
    kept = [x for x in raw_items if x["item_id"] in used]
    titles = _unique_titles(kept)
    items = [Item(x["item_id"], t, _genres_of(x, cfg)) for x, t in zip(kept, titles)]
    idx = {it.item_id: n for n, it in enumerate(items)}
    users = sorted(seqs, key=_id_key)
    int_seqs = {u: [idx[i] for _, i in seqs[u]] for u in users}

    if cfg.split == "user":
        # Only users who can give a full history -> target window are shared out by `split_fracs` (docs/design.md §2);
        # the others have no window to align, select or test on, so they all train SFT (through their shorter
        # windows when the profile's sft_min_target asks for them) instead of thinning the evaluation splits.
        need = cfg.history_len + cfg.min_target
        order = [u for u in users if len(int_seqs[u]) >= need]
        random.Random(cfg.split_seed).shuffle(order)
        bounds = [round(sum(cfg.split_fracs[:j]) * len(order)) for j in range(5)]
        groups = {s: order[bounds[j]:bounds[j + 1]] for j, s in enumerate(SPLITS)}
        groups["sft"] += [u for u in users if len(int_seqs[u]) < need]
        splits = {s: [w for u in groups[s] for w in _user_windows(u, int_seqs[u], cfg)] for s in SPLITS}
        sequences = {s: [int_seqs[u] for u in groups[s]] for s in SPLITS}
        sequence_users = {s: list(groups[s]) for s in SPLITS}
    else:  # temporal: a window belongs to the split its first target's timestamp falls in
        ts_all = sorted(t for s in seqs.values() for t, _ in s)
        cuts = [ts_all[min(len(ts_all) - 1, round(sum(cfg.split_fracs[:j]) * len(ts_all)))] for j in range(1, 4)]
        splits = {s: [] for s in SPLITS}
        for u in users:
            times = [t for t, _ in seqs[u]]
            for k, w in enumerate(_user_windows(u, int_seqs[u], cfg)):
                t0 = times[k * cfg.stride + cfg.history_len]
                splits[SPLITS[sum(t0 >= c for c in cuts)]].append(w)
        sequences = {s: [list(w.history + w.target) for w in splits[s]] for s in SPLITS}
        groups = {s: sorted({w.user for w in splits[s]}) for s in SPLITS}
        sequence_users = {}  # sequences are rebuilt from the windows: no shorter-target windows (sft_windows)

    genre_set = cfg.genres or tuple(sorted({g for it in items for g in it.genres}))
    stats = {
        "format": "interactions", "raw": raw_stats, "users": len(users), "items": len(items),
        "interactions": sum(len(s) for s in int_seqs.values()),
        "users_without_window": sum(1 for u in users if len(int_seqs[u]) < cfg.history_len + cfg.min_target),
        "split_users": {s: len(groups[s]) for s in SPLITS},
        "split_users_with_windows": {s: len({w.user for w in splits[s]}) for s in SPLITS},
        "test_users": len({w.user for w in splits["test"]}),  # the units of the user bootstrap (Table 2)
        "windows": {s: len(splits[s]) for s in SPLITS},
        "mean_target_len": {s: (sum(len(w.target) for w in splits[s]) / max(1, len(splits[s]))) for s in SPLITS},
        "genres": len(genre_set), "items_with_genres": sum(1 for it in items if it.genres),
    }
    extra = {"user_split": "full-window users shared out"} if cfg.split == "user" else None  # (issue 23)
    return Dataset(name, "interactions", items, genre_set, splits,
                   _file_hash([d / "items.jsonl", path], cfg, extra), cfg, sequences, stats, sequence_users)


def _load_samples(name, d, raw_items, known, cfg: DataConfig) -> Dataset:
    path = d / "samples.jsonl.gz"
    samples = _read_samples(path, known)
    titles = _unique_titles(raw_items)
    items = [Item(x["item_id"], t, _genres_of(x, cfg)) for x, t in zip(raw_items, titles)]
    idx = {it.item_id: n for n, it in enumerate(items)}
    h = cfg.history_len
    wins = [Window(f"s{n}", tuple(idx[i] for i in s["history"][-h:]), tuple(idx[i] for i in s["target"]))
            for n, s in enumerate(samples)]
    train = [w for w, s in zip(wins, samples) if s["split"] == "train"]
    test = [w for w, s in zip(wins, samples) if s["split"] == "test"]
    # one reader's overlapping windows must not straddle splits (see `sample_groups`): whole groups are assigned
    train, test = _as_pseudo_readers(train), _as_pseudo_readers(test)
    groups: dict[str, list[Window]] = {}
    for w in train:
        groups.setdefault(w.user, []).append(w)
    order = list(groups)
    random.Random(cfg.split_seed).shuffle(order)
    n_align = round(cfg.samples_align_frac * len(train))
    n_valid = round(cfg.samples_valid_frac * (len(train) - n_align))
    align, valid, sft = [], [], []
    for g in order:
        (align if len(align) < n_align else valid if len(valid) < n_valid else sft).extend(groups[g])
    splits = {"sft": sft, "align": align, "valid": valid, "test": test}
    genre_set = cfg.genres or tuple(sorted({g for it in items for g in it.genres}))
    stats = {
        "format": "samples", "users": len(samples), "items": len(items),
        "interactions": sum(len(w.history) + len(w.target) for w in wins),
        "split_users": {s: len({w.user for w in v}) for s, v in splits.items()},  # pseudo-readers
        "test_users": len({w.user for w in test}),  # pseudo-readers: the units of the user bootstrap (Table 2)
        "windows": {s: len(v) for s, v in splits.items()},
        "mean_target_len": {s: 1.0 for s in SPLITS},
        "genres": len(genre_set), "items_with_genres": sum(1 for it in items if it.genres),
    }
    sequences = {s: [list(w.history + w.target) for w in v] for s, v in splits.items()}
    data_hash = _file_hash([d / "items.jsonl", path], cfg, extra={"samples_groups": SAMPLES_GROUP_NGRAM})
    return Dataset(name, "samples", items, genre_set, splits, data_hash, cfg, sequences, stats)


def cap_windows(windows: list[Window], cap: int | None, seed: int = 0) -> list[Window]:
    """A seeded subset of at most `cap` windows (order preserved); None = all."""
    if cap is None or len(windows) <= cap:
        return windows
    keep = sorted(random.Random(seed).sample(range(len(windows)), cap))
    return [windows[i] for i in keep]


ALIGN_SOURCES = ("align", "train")


def sft_windows(ds: Dataset, align_source: str = "align", min_target: int | None = None) -> list[Window]:
    """The windows SFT trains on: the sft users' (align_source "align", leak-free alignment prompts), or every
    training user's, sft + align (align_source "train": the paper, §4.1.4, SFTs "on the full dataset").

    `min_target` (the profile's ``sft_min_target``) below the task's `min_target` also keeps the training windows
    whose target is shorter (the end of each sequence), so the users with fewer than history + min_target
    interactions (two thirds of steam's and CDs' users under 10 -> 10) are trained on too, as SASRec trains on every
    sft user's sequence. Evaluation and alignment windows are unchanged. Only user-split interactions datasets keep
    their users' sequences; for the others (Goodreads' samples: L = 1 already) the task's windows are returned."""
    if align_source not in ALIGN_SOURCES:
        raise UserError(f"align_source {align_source!r} unknown. Valid: {', '.join(ALIGN_SOURCES)}")
    groups = ["sft"] + (["align"] if align_source == "train" else [])
    if min_target is None or min_target >= ds.config.min_target or not ds.sequence_users:
        return [w for g in groups for w in ds.splits[g]]
    cfg = dataclasses.replace(ds.config, min_target=min_target)
    return [w for g in groups for u, seq in zip(ds.sequence_users[g], ds.sequences[g])
            for w in _user_windows(u, seq, cfg)]


def alignment_pool(ds: Dataset, align_source: str = "align") -> list[Window]:
    """Where alignment prompts are drawn from: the align users' windows, which SFT never saw ("align"), or the SFT
    training windows themselves ("train", the paper's "sampled from the training data")."""
    return ds.splits["align"] if align_source == "align" else sft_windows(ds, align_source)


def alignment_subset(ds: Dataset, n_train: int, n_valid: int, seed: int,
                     align_source: str = "align") -> tuple[list[Window], list[Window]]:
    """The seeded alignment prompts (paper: 4,096 train / 512 valid) from `alignment_pool`, split BY USER.

    The pool's users are shuffled and taken as validation users until they hold at least `n_valid` windows; the
    valid prompts are sampled from their windows, the train prompts from everyone else's. Sampling both from one
    pool of stride-1 windows (before this split) put the training users' own overlapping windows in the
    alignment-validation set (steam: 249 of 256), so its curve measured memorisation (docs/benchmarks.md §8).
    Samples datasets (one window per user) split as before."""
    pool = alignment_pool(ds, align_source)
    where = "align-user" if align_source == "align" else "SFT training"
    if n_train + n_valid > len(pool):
        raise UserError(f"{ds.name}: alignment subset {n_train}+{n_valid} exceeds the {len(pool)} {where} windows "
                        f"(align_source={align_source!r}); lower n_align_train/n_align_valid with --set")
    rng = random.Random(seed)
    users = sorted({w.user for w in pool})
    rng.shuffle(users)
    per_user = Counter(w.user for w in pool)
    valid_users, held = set(), 0
    for u in users:
        if held >= n_valid:
            break
        valid_users.add(u)
        held += per_user[u]
    valid_pool = [w for w in pool if w.user in valid_users]
    train_pool = [w for w in pool if w.user not in valid_users]
    if n_train > len(train_pool):
        raise UserError(f"{ds.name}: {n_train} alignment training windows do not fit in the {len(train_pool)} {where} "
                        f"windows left after {len(valid_users)} validation users took {held} (align_source="
                        f"{align_source!r}); lower n_align_train/n_align_valid with --set")
    valid = [valid_pool[i] for i in sorted(rng.sample(range(len(valid_pool)), n_valid))]
    train = [train_pool[i] for i in rng.sample(range(len(train_pool)), n_train)]
    return train, valid


# Enters the run id of every method with an alignment subset (runners/plan.py): records made with the window-level
# split of before are then not taken for finished runs of today's user-level split.
ALIGN_SPLIT = "user"


def table2_row(ds: Dataset) -> dict:
    """The paper's Table 2 row (after preprocessing) plus the split sizes."""
    s = ds.stats
    with_windows = s.get("split_users_with_windows", s["split_users"])  # samples: one "user" per window
    return {"dataset": ds.name, "users": s["users"], "items": s["items"], "interactions": s["interactions"],
            **{f"windows_{k}": v for k, v in s["windows"].items()},
            "test_users_with_windows": with_windows["test"]}
