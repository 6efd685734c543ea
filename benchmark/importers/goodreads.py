"""Goodreads importer: one genre subset of the UCSD Book Graph -> the canonical ``interactions`` format.

Original dataset: the UCSD Book Graph (Goodreads shelves, books and genres, Wan & McAuley), described on
https://mengtingwan.github.io/data/goodreads and downloaded (JSON lines, gzip) from
https://datarepo.eng.ucsd.edu/mcauley_group/gdrive/goodreads/ (mirror:
https://mcauleylab.ucsd.edu/public_datasets/gdrive/goodreads/):

* ``byGenre/goodreads_interactions_<genre>.json.gz``: shelf interactions (``user_id``, ``book_id``, ``is_read``,
  ``rating``, ``date_added``, ``date_updated``, ``read_at``, ``started_at``);
* ``byGenre/goodreads_books_<genre>.json.gz``: book metadata (``book_id``, ``title``, ...);
* ``goodreads_book_genres_initial.json.gz``: fuzzy genre labels of every book.

Citations: Mengting Wan and Julian McAuley. Item Recommendation on Monotonic Behavior Chains. ACM RecSys 2018;
Mengting Wan, Rishabh Misra, Ndapa Nakashole and Julian McAuley. Fine-Grained Spoiler Detection from
Large-Scale Review Corpora. ACL 2019.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from benchmark.importers.common import Importer, RawData, RawFile, field_error, get_id, read_records

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


def _read_goodreads(paths: dict[str, Path], opts: dict, dropped: Counter) -> RawData:
    items: dict[str, dict] = {}
    for no, rec in read_records(paths["books"], python_literal=False):
        book = get_id(rec, "book_id", paths["books"], no)
        if book in items:
            dropped["metadata_duplicate_ids"] += 1
        else:
            items[book] = {"title": rec.get("title"), "genres": []}
    # The genre file covers all 2.36M books: keep only ours. Labels keep the file's (dict) order.
    for no, rec in read_records(paths["genres"], python_literal=False):
        book = get_id(rec, "book_id", paths["genres"], no)
        if book in items:
            if not isinstance(rec.get("genres"), dict):
                raise field_error(paths["genres"], no, "genres", f"expected a dict, got {rec.get('genres')!r}")
            items[book]["genres"] = list(rec["genres"])

    def interactions() -> Iterator[tuple[str, str, int]]:
        label, fld = paths["interactions"], opts["timestamp_field"]
        for no, rec in read_records(label, python_literal=False):
            user, book = get_id(rec, "user_id", label, no), get_id(rec, "book_id", label, no)
            if opts["require_read"] and not rec.get("is_read"):
                dropped["interactions_not_read"] += 1
                continue
            rating = rec.get("rating", 0)
            if not isinstance(rating, (int, float)) or isinstance(rating, bool):
                raise field_error(label, no, "rating", f"expected a number, got {rating!r}")
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
                raise field_error(label, no, fld, str(e)) from None
            yield user, book, ts

    return RawData(items, interactions())


IMPORTER = Importer(
    "goodreads",
    "UCSD Book Graph (Goodreads), one genre subset: shelf interactions with book titles and genres",
    "Mengting Wan and Julian McAuley. Item Recommendation on Monotonic Behavior Chains. ACM RecSys 2018.",
    {"genre": "poetry", "timestamp_field": "date_added", "min_rating": 0, "require_read": False},
    _goodreads_files,
    _read_goodreads,
    {"genre": GOODREADS_GENRES, "timestamp_field": ("date_added", "date_updated", "read_at", "started_at")},
)
