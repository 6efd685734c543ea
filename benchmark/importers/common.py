"""What every importer shares: raw files, line readers, text cleaning, the canonical writer, ``Importer``.

The source modules (``steam``, ``goodreads``, ``amazon``, ``movielens``) import only from here; each describes
its original files (``RawFile``), reads them into ``RawData`` and declares one ``Importer``. Everything after
reading (cleaning titles and labels, dropping unusable items, sorting, writing ``items.jsonl``,
``interactions.csv.gz`` and ``SOURCE.json`` atomically) is done here, identically for every source.
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


def source_label(path: Path, member: str | None = None) -> str:
    return f"{path}/{member}" if member and path.is_dir() else f"{path}:{member}" if member else str(path)


def read_lines(path: Path, member: str | None = None, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each non-blank line (1-based numbers, newline stripped)."""
    label = source_label(path, member)
    with _open_binary(path, member) as f:
        for no, raw in enumerate(f, 1):
            try:
                line = raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise UserError(f"{label}: line {no}: not valid {encoding} ({e.reason})") from None
            if line.strip():
                yield no, line


def field_error(label: Any, no: int, fld: str, problem: str) -> UserError:
    return UserError(f"{label}: line {no}: field {fld!r}: {problem}")


def _parse_record(line: str, python_literal: bool) -> Any:
    try:
        return json.loads(line)  # fails at once on a Python literal's first quote, so trying it costs little
    except ValueError:
        if not python_literal:
            raise
    return ast.literal_eval(line)


def read_records(path: Path, python_literal: bool) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, dict)`` for a JSON-lines or Python-literal-lines file.

    With ``python_literal``, lines that are not JSON are read by ``ast.literal_eval``: McAuley's Steam and
    Amazon 2014 files are ``str(dict)`` dumps, the Amazon 2018 metadata (same file name) is JSON.
    """
    for no, line in read_lines(path):
        try:
            rec = _parse_record(line, python_literal)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
            raise field_error(path, no, "(whole line)", f"cannot parse the line ({type(e).__name__}: {e})") from None
        if not isinstance(rec, dict):
            raise field_error(path, no, "(whole line)", f"expected a dict, got {type(rec).__name__}")
        yield no, rec


def get_id(rec: dict, key: str, label: Any, no: int) -> str:
    """The id under ``key`` as a non-empty string (ints are accepted and stringified)."""
    value = rec.get(key)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise field_error(label, no, key, f"missing or not an id: {value!r}")
    return str(value).strip()


def unix_from_date(value: Any, label: Any, no: int, fld: str) -> int:
    """Unix seconds of 00:00 UTC of a ``YYYY-MM-DD`` date."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise field_error(label, no, fld, f"expected a YYYY-MM-DD date, got {value!r}")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as e:
        raise field_error(label, no, fld, f"invalid date {value!r} ({e})") from None
    return (day - dt.date(1970, 1, 1)).days * 86400


def parse_number(value: str, label: Any, no: int, fld: str, kind: type = float) -> Any:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise field_error(label, no, fld, f"expected a number, got {value!r}") from None


def read_rating_rows(
    path: Path,
    sep: str,
    min_rating: float,
    dropped: Counter,
    member: str | None = None,
    require_ids: bool = False,
) -> Iterator[tuple[str, str, int]]:
    """Yield ``(user, item, timestamp)`` from a header-less ``user<sep>item<sep>rating<sep>timestamp`` file.

    Ratings below ``min_rating`` are skipped and counted in ``dropped``; with ``require_ids`` an empty user or
    item id is an error (checked before the rating).
    """
    label = source_label(path, member)
    kind = {",": "comma", "\t": "tab"}[sep]
    for no, line in read_lines(path, member):
        parts = line.split(sep)
        if len(parts) != 4:
            raise field_error(label, no, "(whole line)", f"expected 4 {kind}-separated fields, got {len(parts)}")
        user, item, rating, ts = (p.strip() for p in parts)
        if require_ids and (not user or not item):
            raise field_error(label, no, "user" if not user else "item", "empty id")
        if parse_number(rating, label, no, "rating") < min_rating:
            dropped["interactions_below_min_rating"] += 1
            continue
        yield user, item, parse_number(ts, label, no, "timestamp", int)


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
# The importer description, and running one
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


def run_importer(imp: Importer, raw_dir: Path, out_dir: Path, download: bool = False, **options: Any) -> Path:
    """Run ``imp`` on the original raw files in ``raw_dir``; write the canonical files and ``SOURCE.json``.

    ``import_dataset`` (the package's entry point) looks ``imp`` up by name; the arguments are the same.

    Raises:
        UserError: unknown option; missing raw file (message: file, URL, where to put it); download failure;
            malformed raw line (message: file, line number, field).
    """
    name = imp.name
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
