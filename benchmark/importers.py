"""Importers: original public raw files -> the canonical ``interactions`` format (shared/data/README.md).

Each importer reads the files exactly as their publishers distribute them (Steam reviews v2, UCSD Goodreads,
Amazon 2014 ratings + 2014/2018 metadata, MovieLens 100K) and writes, into one output folder:

* ``interactions.csv.gz``: ``user_id,item_id,timestamp``; users ascending, each user's rows by ascending
  timestamp with ties in source order;
* ``items.jsonl``: one object per item that occurs in the interactions, ascending by ``item_id``, keys
  ``item_id``, ``title``, ``genres`` then optional dataset-specific keys;
* ``SOURCE.json``: source files (name, url, sha256, bytes), options, counts and what was dropped and why.

"Ascending" means numeric order when every id is a decimal integer, else code-point order. Titles (and
genre labels) are HTML-unescaped, stripped of control/format characters and whitespace-normalised; items
whose title is empty or HTML garbage are dropped with all their interactions.

Typical use::

    import_dataset("steam", Path("raw/steam"), Path("data/steam_full"), download=True)
"""

from __future__ import annotations

import ast
import contextlib
import csv
import datetime as dt
import gzip
import hashlib
import html
import http.client
import io
import json
import os
import re
import unicodedata
import urllib.request
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from benchmark.errors import UserError, unknown_name
from benchmark.io import atomic_write as _write_atomic

# --------------------------------------------------------------------------------------------------------------
# Raw-file descriptions, lookup and download
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawFile:
    """One original file an importer needs.

    Attributes:
        name: The file name as published; it is looked for (and downloaded to) ``raw_dir / name``.
        urls: Where to download it, primary first (later ones are mirrors).
        members: For archives: the files read from inside (from the zip, or from an extracted folder).
        alternatives: Other accepted paths relative to ``raw_dir`` (an extracted folder, an uncompressed copy).
    """

    name: str
    urls: tuple[str, ...]
    members: tuple[str, ...] = ()
    alternatives: tuple[str, ...] = ()

    def candidates(self, raw_dir: Path) -> list[Path]:
        """Paths that may hold this file, in order of preference."""
        alts = list(self.alternatives)
        if self.name.endswith(".gz"):  # people often gunzip downloads; reading either is equally exact
            alts.append(self.name[:-3])
        return [raw_dir / self.name] + [raw_dir / a for a in alts]

    def is_present_at(self, path: Path) -> bool:
        """Whether ``path`` is a usable copy (a folder counts only if it holds every member)."""
        if path.is_dir():
            return bool(self.members) and all((path / m).is_file() for m in self.members)
        return path.is_file()


def _missing_message(importer: str, rf: RawFile, raw_dir: Path) -> str:
    mirrors = f" (mirrors: {', '.join(rf.urls[1:])})" if len(rf.urls) > 1 else ""
    return (
        f"missing raw file {rf.name!r} for importer {importer!r}: download it from {rf.urls[0]}{mirrors} "
        f"and place it at {(raw_dir / rf.name).resolve()}"
    )


def _download(rf: RawFile, dest: Path) -> str:
    """Download ``rf`` to ``dest`` (atomically: ``.part`` then rename). Returns the URL that worked.

    Raises:
        UserError: if every URL failed; the message carries the last network error.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    error: Exception | None = None
    for url in rf.urls:
        try:
            urllib.request.urlretrieve(url, tmp)
            os.replace(tmp, dest)
            return url
        except (OSError, http.client.HTTPException, ValueError) as e:  # URLError/HTTPError are OSErrors
            error = e
            tmp.unlink(missing_ok=True)
    raise UserError(f"could not download {rf.name!r} ({type(error).__name__}: {error})")


def locate_raw_files(importer: Importer, raw_dir: Path, download: bool = False, **options: Any) -> dict[str, Path]:
    """Find (and optionally download) every raw file of ``importer``.

    Returns:
        Role -> path of the file (or of the zip / extracted folder for archives).

    Raises:
        UserError: listing each missing file with its URL and the exact path to place it at.
    """
    found, missing = {}, []
    for role, rf in importer.raw_files(**options).items():
        path = next((p for p in rf.candidates(raw_dir) if rf.is_present_at(p)), None)
        if path is None and download:
            try:
                _download(rf, raw_dir / rf.name)
                path = raw_dir / rf.name
            except UserError as e:
                missing.append(f"{e}; {_missing_message(importer.name, rf, raw_dir)}")
                continue
        if path is None:
            missing.append(_missing_message(importer.name, rf, raw_dir))
        else:
            found[role] = path
    if missing:
        hint = "" if download else " (or let the importer download them: download=True, CLI --download)"
        raise UserError("; ".join(missing) + hint)
    return found


# --------------------------------------------------------------------------------------------------------------
# Reading raw files line by line, with errors that point at the file, line and field
# --------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _open_binary(path: Path, member: str | None = None) -> Iterator[IO[bytes]]:
    """Open a raw file (gzip detected by magic bytes, not by name) or a member of a zip / extracted folder."""
    if member is not None and path.is_dir():
        with open(path / member, "rb") as f:
            yield f
    elif member is not None:
        with zipfile.ZipFile(path) as zf:
            # The ml-100k zip nests its files in a folder ("ml-100k/u.data"): match on the base name.
            name = next((n for n in zf.namelist() if n == member or n.endswith("/" + member)), None)
            if name is None:
                raise UserError(f"{path}: the archive has no member {member!r}; download it again")
            with zf.open(name) as f:
                yield f
    else:
        with open(path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":
                f.seek(0)
                with gzip.GzipFile(fileobj=f) as gz:
                    yield gz  # type: ignore[misc]
            else:
                f.seek(0)
                yield f


def _label(path: Path, member: str | None = None) -> str:
    return f"{path}/{member}" if member and path.is_dir() else f"{path}:{member}" if member else str(path)


def _lines(path: Path, member: str | None = None, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each non-blank line (1-based numbers, newline stripped)."""
    label = _label(path, member)
    with _open_binary(path, member) as f:
        for no, raw in enumerate(f, 1):
            try:
                line = raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise UserError(f"{label}: line {no}: not valid {encoding} ({e.reason})") from None
            if line.strip():
                yield no, line


def _bad(label: Any, no: int, fld: str, problem: str) -> UserError:
    return UserError(f"{label}: line {no}: field {fld!r}: {problem}")


def _parse_record(line: str, python_literal: bool) -> Any:
    try:
        return json.loads(line)  # fails at once on a Python literal's first quote, so trying it costs little
    except ValueError:
        if not python_literal:
            raise
    return ast.literal_eval(line)


def _records(path: Path, python_literal: bool) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, dict)`` for a JSON-lines or Python-literal-lines file.

    With ``python_literal``, lines that are not JSON are read by ``ast.literal_eval``: McAuley's Steam and
    Amazon 2014 files are ``str(dict)`` dumps, the Amazon 2018 metadata (same file name) is JSON.
    """
    for no, line in _lines(path):
        try:
            rec = _parse_record(line, python_literal)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
            raise _bad(path, no, "(whole line)", f"cannot parse the line ({type(e).__name__}: {e})") from None
        if not isinstance(rec, dict):
            raise _bad(path, no, "(whole line)", f"expected a dict, got {type(rec).__name__}")
        yield no, rec


def _get_id(rec: dict, key: str, label: Any, no: int) -> str:
    """The id under ``key`` as a non-empty string (ints are accepted and stringified)."""
    value = rec.get(key)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise _bad(label, no, key, f"missing or not an id: {value!r}")
    return str(value).strip()


def _unix_from_date(value: Any, label: Any, no: int, fld: str) -> int:
    """Unix seconds of 00:00 UTC of a ``YYYY-MM-DD`` date."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise _bad(label, no, fld, f"expected a YYYY-MM-DD date, got {value!r}")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as e:
        raise _bad(label, no, fld, f"invalid date {value!r} ({e})") from None
    return (day - dt.date(1970, 1, 1)).days * 86400


_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def parse_goodreads_time(value: str) -> int:
    """Unix seconds of a Goodreads time such as ``"Tue Oct 17 10:01:44 -0700 2017"``.

    Month names are mapped by hand so the result does not depend on the process locale (``%b`` does).

    Raises:
        ValueError: if ``value`` is not in that format.
    """
    parts = value.split()
    if len(parts) != 6 or parts[1] not in _MONTHS:
        raise ValueError(f"expected e.g. 'Tue Oct 17 10:01:44 -0700 2017', got {value!r}")
    _, mon, day, hms, tz, year = parts
    stamp = dt.datetime.strptime(f"{year} {_MONTHS[mon]} {day} {hms} {tz}", "%Y %m %d %H:%M:%S %z")
    return int(stamp.timestamp())


def _number(value: str, label: Any, no: int, fld: str, kind: type = float) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise _bad(label, no, fld, f"expected a number, got {value!r}") from None


# --------------------------------------------------------------------------------------------------------------
# Text cleaning and the canonical writer
# --------------------------------------------------------------------------------------------------------------

_ENTITY = re.compile(r"&(?:#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
_HTML_START = re.compile(r"<[A-Za-z!/]")  # "<span ...", "<div>", "</b>", "<!--": scraped markup, not a title


def clean_text(value: Any) -> str:
    """HTML-unescape (repeatedly, for double escaping), drop Cc/Cf characters, normalise whitespace.

    Only well-formed ``&...;`` entities are decoded, so text like "AT&T" or "R&B" is left alone (Python's
    ``html.unescape`` would also decode some entities without a ``;``).
    """
    if value is None:
        return ""
    text = str(value)
    previous = None
    while previous != text:
        previous, text = text, _ENTITY.sub(lambda m: html.unescape(m.group()), text)
    # Whitespace controls (\t, \n, ...) become spaces so words do not merge; other Cc/Cf (U+200E, U+FEFF) go.
    text = "".join(
        " " if ch.isspace() else ch for ch in text if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf")
    )
    return " ".join(text.split())


def title_problem(title: str) -> str | None:
    """Why a cleaned title is unusable: ``"empty_title"``, ``"garbage_title"`` (HTML artefact) or None."""
    if not title:
        return "empty_title"
    if _HTML_START.match(title) or '" />' in title:
        return "garbage_title"
    return None


def clean_labels(values: Iterable[Any] | None) -> list[str]:
    """Clean a list of labels (genres, tags): cleaned text, empties and duplicates removed, order kept."""
    out: list[str] = []
    for v in [values] if isinstance(values, str) else values or ():
        text = clean_text(v)
        if text and text not in out:
            out.append(text)
    return out


def id_sort_key(ids: Iterable[str]) -> Callable[[str], Any]:
    """The sort key for a set of ids: numeric when all are decimal integers, else code-point order."""
    if all(re.fullmatch(r"[0-9]+", i) for i in ids):
        return lambda i: (int(i), i)  # the string breaks ties such as "7" vs "007" deterministically
    return lambda i: i


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_text(path: Path, lines: Iterable[str]) -> None:
    def write(f: IO[bytes]) -> None:
        for line in lines:
            f.write(line.encode("utf-8"))

    _write_atomic(path, write)


def _write_gzip_csv(path: Path, rows: Iterable[tuple]) -> None:
    def write(f: IO[bytes]) -> None:
        # mtime=0 and no file name in the header: identical inputs give byte-identical (same sha256) outputs.
        with gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
            text = io.TextIOWrapper(gz, encoding="utf-8", newline="")
            csv.writer(text, lineterminator="\n").writerows(rows)
            text.flush()
            text.detach()

    _write_atomic(path, write)


@dataclass
class RawData:
    """What an importer's reader returns.

    Attributes:
        items: item_id -> ``{"title": raw title, "genres": raw labels, **optional keys}`` (uncleaned).
        interactions: ``(user_id, item_id, timestamp)`` in source order; consumed once, after ``items``.
        timestamp_kind: ``"unix"`` (all importers here) or ``"position"``.
    """

    items: dict[str, dict]
    interactions: Iterable[tuple[str, str, int]]
    timestamp_kind: str = "unix"


def write_canonical(raw: RawData, out_dir: Path, dropped: Counter) -> dict:
    """Clean, filter, sort and write ``items.jsonl`` + ``interactions.csv.gz``; return counts and hashes.

    Args:
        raw: The reader's output.
        out_dir: Output folder (created).
        dropped: Reader-level drop counters; the title/metadata drops are added to it.

    Returns:
        ``{"counts": ..., "outputs": {file name: sha256}}``.
    """
    items: dict[str, dict] = {}
    problem: dict[str, str] = {}
    for iid, meta in raw.items.items():
        title = clean_text(meta.get("title"))
        why = title_problem(title)
        if why:
            problem[iid] = why
            continue
        extra = {k: v for k, v in meta.items() if k not in ("title", "genres")}
        items[iid] = {"item_id": iid, "title": title, "genres": clean_labels(meta.get("genres")), **extra}

    seqs: dict[str, list[tuple[int, str]]] = defaultdict(list)
    lost_items: dict[str, set[str]] = {r: set() for r in ("empty_title", "garbage_title", "not_in_metadata")}
    n_read = 0
    for user, iid, ts in raw.interactions:
        n_read += 1
        if iid in items:
            seqs[user].append((ts, iid))
        else:  # the item has no usable title: drop the interaction and remember why
            why = problem.get(iid, "not_in_metadata")
            dropped[f"interactions_{why}"] += 1
            lost_items[why].add(iid)
    for why, ids in lost_items.items():
        dropped[f"items_{why}"] = len(ids)
        dropped.setdefault(f"interactions_{why}", 0)

    user_key = id_sort_key(seqs)
    used = {iid for seq in seqs.values() for _, iid in seq}
    item_key = id_sort_key(used)
    n_rows = repeats = 0
    users_sorted = sorted(seqs, key=user_key)

    def rows() -> Iterator[tuple]:
        nonlocal n_rows, repeats
        yield ("user_id", "item_id", "timestamp")
        for user in users_sorted:
            seen: set[str] = set()
            for ts, iid in sorted(seqs[user], key=lambda r: r[0]):  # sorted() is stable: ties keep source order
                n_rows += 1
                repeats += iid in seen
                seen.add(iid)
                yield (user, iid, ts)

    out_dir.mkdir(parents=True, exist_ok=True)
    _write_gzip_csv(out_dir / "interactions.csv.gz", rows())
    _write_text(
        out_dir / "items.jsonl",
        (json.dumps(items[i], ensure_ascii=False) + "\n" for i in sorted(used, key=item_key)),
    )
    lengths = sorted(len(s) for s in seqs.values())
    counts = {
        "users": len(seqs),
        "items": len(used),
        "interactions": n_rows,
        "interactions_read": n_read,
        "items_in_metadata": len(raw.items),
        "repeat_interactions": repeats,
        "items_with_genres": sum(bool(items[i]["genres"]) for i in used),
        "users_ge_11": sum(n >= 11 for n in lengths),
        "users_ge_20": sum(n >= 20 for n in lengths),
        "sequence_length_min_median_max": [lengths[0], lengths[len(lengths) // 2], lengths[-1]] if lengths else [],
    }
    outputs = {name: _sha256(out_dir / name) for name in ("interactions.csv.gz", "items.jsonl")}
    return {"counts": counts, "outputs": outputs}


# --------------------------------------------------------------------------------------------------------------
# The importers
# --------------------------------------------------------------------------------------------------------------

Reader = Callable[[dict[str, Path], dict, Counter], RawData]


@dataclass(frozen=True)
class Importer:
    """A raw-data importer.

    Attributes:
        name: Registry name (``IMPORTERS`` key).
        description: The source dataset, one line.
        citation: The paper to cite.
        defaults: Options and their defaults (their types drive the conversion of CLI strings).
        files: Options -> role -> ``RawFile`` (names can depend on options, e.g. the Amazon category).
        read: ``(paths by role, options, drop counters) -> RawData``.
    """

    name: str
    description: str
    citation: str
    defaults: dict[str, Any]
    files: Callable[[dict], dict[str, RawFile]]
    read: Reader
    choices: dict[str, tuple] = field(default_factory=dict)

    def options(self, **given: Any) -> dict[str, Any]:
        """The defaults overridden by ``given``, converted to the defaults' types.

        Raises:
            UserError: for an unknown option, a value of the wrong type or outside ``choices``.
        """
        opts = dict(self.defaults)
        for key, value in given.items():
            if key not in self.defaults:
                raise unknown_name(f"{self.name} importer option", key, self.defaults)
            opts[key] = _convert(value, self.defaults[key], f"{self.name} option {key!r}")
            if key in self.choices and opts[key] not in self.choices[key]:
                raise UserError(f"{self.name} option {key!r}: {value!r} is not one of {', '.join(self.choices[key])}")
        return opts

    def raw_files(self, **options: Any) -> dict[str, RawFile]:
        """Role -> raw file needed for these options."""
        return self.files(self.options(**options))


def _convert(value: Any, default: Any, what: str) -> Any:
    """Convert a (possibly string, from the CLI) option value to the type of its default."""
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if isinstance(default, (int, float)):
            return type(default)(value)
        if isinstance(default, tuple):
            return tuple(v.strip() for v in value.split(",")) if isinstance(value, str) else tuple(value)
        return str(value)
    except (TypeError, ValueError):
        raise UserError(f"{what}: cannot use {value!r} (expected {type(default).__name__})") from None


# ---- Steam (Kang & McAuley, ICDM'18) ----

_STEAM = "https://cseweb.ucsd.edu/~wckang/"


def _steam_files(opts: dict) -> dict[str, RawFile]:
    return {
        "reviews": RawFile("steam_reviews.json.gz", (_STEAM + "steam_reviews.json.gz",)),
        "games": RawFile("steam_games.json.gz", (_STEAM + "steam_games.json.gz",)),
    }


def read_steam_games(path: Path, title_keys: tuple[str, ...], dropped: Counter) -> dict[str, dict]:
    """Parse ``steam_games.json.gz`` into item metadata keyed by app id (first line wins for repeated ids).

    Lines without an ``id`` exist in the public file (2 of 32,135) and are skipped, not an error.
    """
    items: dict[str, dict] = {}
    for no, rec in _records(path, python_literal=True):
        if rec.get("id") in (None, ""):
            dropped["metadata_lines_without_id"] += 1
            continue
        app_id = _get_id(rec, "id", path, no)
        if app_id in items:
            dropped["metadata_duplicate_ids"] += 1
            continue
        title = next((rec[k] for k in title_keys if rec.get(k)), None)
        items[app_id] = {
            "title": title,
            "genres": rec.get("genres") or [],
            "app_id": app_id,
            "app_name": clean_text(rec.get("app_name")),
            "tags": clean_labels(rec.get("tags")),
        }
    return items


def _read_steam(paths: dict[str, Path], opts: dict, dropped: Counter) -> RawData:
    items = read_steam_games(paths["games"], opts["title_keys"], dropped)

    def interactions() -> Iterator[tuple[str, str, int]]:
        label = paths["reviews"]
        for no, rec in _records(label, python_literal=True):
            # `username` is the only user key every review has (`user_id`, the Steam id, is often missing).
            user = _get_id(rec, "username", label, no)
            yield user, _get_id(rec, "product_id", label, no), _unix_from_date(rec.get("date"), label, no, "date")

    return RawData(items, interactions())


# ---- Goodreads (Wan & McAuley, RecSys'18) ----

_GOODREADS = "https://datarepo.eng.ucsd.edu/mcauley_group/gdrive/goodreads/"
_GOODREADS_MIRROR = "https://mcauleylab.ucsd.edu/public_datasets/gdrive/goodreads/"
GOODREADS_GENRES = (
    "children", "comics_graphic", "fantasy_paranormal", "history_biography",
    "mystery_thriller_crime", "poetry", "romance", "young_adult",
)  # fmt: skip


def _goodreads_files(opts: dict) -> dict[str, RawFile]:
    def rf(name: str, by_genre: bool) -> RawFile:
        sub = "byGenre/" if by_genre else ""
        return RawFile(name, (_GOODREADS + sub + name, _GOODREADS_MIRROR + sub + name))

    g = opts["genre"]
    return {
        "interactions": rf(f"goodreads_interactions_{g}.json.gz", True),
        "books": rf(f"goodreads_books_{g}.json.gz", True),
        "genres": rf("goodreads_book_genres_initial.json.gz", False),
    }


def _read_goodreads(paths: dict[str, Path], opts: dict, dropped: Counter) -> RawData:
    items: dict[str, dict] = {}
    for no, rec in _records(paths["books"], python_literal=False):
        book = _get_id(rec, "book_id", paths["books"], no)
        if book in items:
            dropped["metadata_duplicate_ids"] += 1
        else:
            items[book] = {"title": rec.get("title"), "genres": []}
    # The genre file covers all 2.36M books: keep only ours. Labels keep the file's (dict) order.
    for no, rec in _records(paths["genres"], python_literal=False):
        book = _get_id(rec, "book_id", paths["genres"], no)
        if book in items:
            if not isinstance(rec.get("genres"), dict):
                raise _bad(paths["genres"], no, "genres", f"expected a dict, got {rec.get('genres')!r}")
            items[book]["genres"] = list(rec["genres"])

    def interactions() -> Iterator[tuple[str, str, int]]:
        label, fld = paths["interactions"], opts["timestamp_field"]
        for no, rec in _records(label, python_literal=False):
            user, book = _get_id(rec, "user_id", label, no), _get_id(rec, "book_id", label, no)
            if opts["require_read"] and not rec.get("is_read"):
                dropped["interactions_not_read"] += 1
                continue
            rating = rec.get("rating", 0)
            if not isinstance(rating, (int, float)) or isinstance(rating, bool):
                raise _bad(label, no, "rating", f"expected a number, got {rating!r}")
            if rating < opts["min_rating"]:
                dropped["interactions_below_min_rating"] += 1
                continue
            when = rec.get(fld)
            if not when:  # e.g. read_at is empty for books never marked as read: no time, no place in a sequence
                dropped[f"interactions_without_{fld}"] += 1
                continue
            try:
                ts = parse_goodreads_time(when)
            except (ValueError, AttributeError) as e:
                raise _bad(label, no, fld, str(e)) from None
            yield user, book, ts

    return RawData(items, interactions())


# ---- Amazon review data 2014 (He & McAuley, WWW'16; McAuley et al., SIGIR'15) ----

_AMAZON = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"


def _amazon_files(opts: dict) -> dict[str, RawFile]:
    c = opts["category"]
    return {
        "ratings": RawFile(f"ratings_{c}.csv", (f"{_AMAZON}ratings_{c}.csv",)),
        "meta": RawFile(f"meta_{c}.json.gz", (f"{_AMAZON}meta_{c}.json.gz",)),
    }


def amazon_genres(rec: dict) -> list[str]:
    """Category labels below the root, from a 2014 (``categories``: list of paths) or 2018 (``category``) record.

    ``[["CDs & Vinyl", "Pop", "Adult Contemporary"]]`` -> ``["Pop", "Adult Contemporary"]``; several paths are
    merged in order without duplicates.
    """
    paths = rec.get("categories")
    if paths is None:  # 2018 metadata: one flat path
        paths = [rec.get("category") or []]
    labels: list[str] = []
    for p in paths:
        if isinstance(p, list):
            labels += [x for x in p[1:] if isinstance(x, str)]
    return labels


def _read_amazon(paths: dict[str, Path], opts: dict, dropped: Counter) -> RawData:
    items: dict[str, dict] = {}
    for no, rec in _records(paths["meta"], python_literal=True):
        asin = _get_id(rec, "asin", paths["meta"], no)
        if asin in items:  # the 2018 metadata repeats some products
            dropped["metadata_duplicate_ids"] += 1
        else:
            items[asin] = {"title": rec.get("title"), "genres": amazon_genres(rec), "asin": asin}

    def interactions() -> Iterator[tuple[str, str, int]]:
        label = paths["ratings"]
        for no, line in _lines(label):
            parts = line.split(",")  # user,item,rating,timestamp: ids never contain commas, no header
            if len(parts) != 4:
                raise _bad(label, no, "(whole line)", f"expected 4 comma-separated fields, got {len(parts)}")
            user, asin, rating, ts = (p.strip() for p in parts)
            if not user or not asin:
                raise _bad(label, no, "user" if not user else "item", "empty id")
            if _number(rating, label, no, "rating") < opts["min_rating"]:
                dropped["interactions_below_min_rating"] += 1
                continue
            yield user, asin, _number(ts, label, no, "timestamp", int)

    return RawData(items, interactions())


# ---- MovieLens 100K (Harper & Konstan, TiiS 2015) ----


def _movielens_files(opts: dict) -> dict[str, RawFile]:
    return {
        "archive": RawFile(
            "ml-100k.zip",
            ("https://files.grouplens.org/datasets/movielens/ml-100k.zip",),
            members=("u.data", "u.item", "u.genre"),
            alternatives=("ml-100k", "."),  # the extracted folder, or its files put directly in raw_dir
        )
    }


def _read_movielens(paths: dict[str, Path], opts: dict, dropped: Counter) -> RawData:
    archive = paths["archive"]
    genre_names: dict[int, str] = {}
    for no, line in _lines(archive, "u.genre", "latin-1"):
        name, _, idx = line.partition("|")
        genre_names[_number(idx, _label(archive, "u.genre"), no, "genre index", int)] = name
    label = _label(archive, "u.item")
    items: dict[str, dict] = {}
    for no, line in _lines(archive, "u.item", "latin-1"):
        parts = line.split("|")
        if len(parts) != 5 + len(genre_names):
            raise _bad(label, no, "(whole line)", f"expected {5 + len(genre_names)} '|'-separated fields")
        flags = parts[5:]
        if any(f not in ("0", "1") for f in flags):
            raise _bad(label, no, "genre flags", f"expected 0/1 flags, got {flags}")
        # "unknown" is the flag for "no genre", not a genre: leave it out so genre metrics do not count it.
        genres = [genre_names[i] for i, f in enumerate(flags) if f == "1" and genre_names[i] != "unknown"]
        # Movie 267 is a placeholder titled "unknown" with no date or URL: its title is missing, not "unknown".
        title = None if parts[1] == "unknown" else parts[1]
        items[parts[0].strip()] = {"title": title, "genres": genres, "release_date": parts[2]}

    def interactions() -> Iterator[tuple[str, str, int]]:
        label = _label(archive, "u.data")
        for no, line in _lines(archive, "u.data"):
            parts = line.split("\t")
            if len(parts) != 4:
                raise _bad(label, no, "(whole line)", f"expected 4 tab-separated fields, got {len(parts)}")
            user, item, rating, ts = (p.strip() for p in parts)
            if _number(rating, label, no, "rating") < opts["min_rating"]:
                dropped["interactions_below_min_rating"] += 1
                continue
            yield user, item, _number(ts, label, no, "timestamp", int)

    return RawData(items, interactions())


IMPORTERS: dict[str, Importer] = {
    imp.name: imp
    for imp in (
        Importer(
            "steam",
            "Steam reviews v2 (UCSD McAuley lab): reviews of games with a title, day-level timestamps",
            "Wang-Cheng Kang and Julian McAuley. Self-Attentive Sequential Recommendation. IEEE ICDM 2018.",
            # title_keys=title keeps only games with a store `title`, as Tiny-Snow's Steam-100K (shared steam/)
            # does; the default also keeps the 2,048 games that only have an `app_name`.
            {"title_keys": ("title", "app_name")},
            _steam_files,
            _read_steam,
        ),
        Importer(
            "goodreads",
            "UCSD Book Graph (Goodreads), one genre subset: shelf interactions with book titles and genres",
            "Mengting Wan and Julian McAuley. Item Recommendation on Monotonic Behavior Chains. ACM RecSys 2018.",
            {"genre": "poetry", "timestamp_field": "date_added", "min_rating": 0, "require_read": False},
            _goodreads_files,
            _read_goodreads,
            {"genre": GOODREADS_GENRES, "timestamp_field": ("date_added", "date_updated", "read_at", "started_at")},
        ),
        Importer(
            "amazon",
            "Amazon review data 2014 (UCSD McAuley lab), one category: ratings >= min_rating as implicit feedback",
            "Ruining He and Julian McAuley. Ups and Downs: Modeling the Visual Evolution of Fashion Trends with "
            "One-Class Collaborative Filtering. WWW 2016.",
            {"category": "CDs_and_Vinyl", "min_rating": 4.0},
            _amazon_files,
            _read_amazon,
        ),
        Importer(
            "movielens",
            "MovieLens 100K (GroupLens): all ratings >= min_rating, unix timestamps",
            "F. Maxwell Harper and Joseph A. Konstan. The MovieLens Datasets: History and Context. ACM TiiS 2015.",
            {"min_rating": 0.0},
            _movielens_files,
            _read_movielens,
        ),
    )
}


def _describe_source(role: str, rf: RawFile, path: Path, raw_dir: Path) -> list[dict]:
    """Provenance rows for one located raw file (one per member when it is an extracted folder)."""
    files = [path / m for m in rf.members] if path.is_dir() else [path]
    rows = []
    for f in files:
        try:
            shown = str(f.resolve().relative_to(raw_dir.resolve()))
        except ValueError:
            shown = str(f)
        rows.append(
            {"role": role, "file": rf.name, "path": shown, "url": rf.urls[0], "bytes": f.stat().st_size,
             "sha256": _sha256(f)}  # fmt: skip
        )
    return rows


def import_dataset(name: str, raw_dir: Path, out_dir: Path, download: bool = False, **options: Any) -> Path:
    """Import a public dataset from its original raw files into the canonical ``interactions`` format.

    Args:
        name: An ``IMPORTERS`` key: ``steam``, ``goodreads``, ``amazon`` or ``movielens``.
        raw_dir: Folder holding the original files under their published names.
        out_dir: Output folder; ``interactions.csv.gz``, ``items.jsonl`` and ``SOURCE.json`` are (re)written.
        download: Download missing raw files into ``raw_dir`` from their public URLs.
        **options: Importer options (see ``IMPORTERS[name].defaults``); strings are converted.

    Returns:
        ``out_dir``.

    Raises:
        UserError: unknown importer or option; missing raw file (message: file, URL, where to put it);
            download failure; malformed raw line (message: file, line number, field).
    """
    if name not in IMPORTERS:
        raise unknown_name("importer", name, IMPORTERS)
    imp = IMPORTERS[name]
    opts = imp.options(**options)
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    paths = locate_raw_files(imp, raw_dir, download, **opts)
    files = imp.files(opts)
    sources = [row for role, p in paths.items() for row in _describe_source(role, files[role], p, raw_dir)]

    dropped: Counter = Counter()
    raw = imp.read(paths, opts, dropped)
    result = write_canonical(raw, out_dir, dropped)
    source = {
        "dataset": name,
        "format": "interactions",
        "timestamp_kind": raw.timestamp_kind,
        "original_dataset": {"name": imp.description, "citation": imp.citation},
        "importer": f"benchmark.importers:{name}",
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in opts.items()},
        "sources": sources,
        "processing": [
            "titles and labels HTML-unescaped (repeatedly), Cc/Cf characters removed, whitespace normalised",
            "items with an empty or HTML-garbage title dropped with all their interactions",
            "interactions of items missing from the metadata dropped",
            "rows: users ascending, per user ascending timestamp, ties in source order",
        ],
        "counts": result["counts"],
        "dropped": dict(sorted(dropped.items())),
        "outputs": result["outputs"],
    }
    _write_text(out_dir / "SOURCE.json", [json.dumps(source, indent=1, ensure_ascii=False) + "\n"])
    return out_dir
