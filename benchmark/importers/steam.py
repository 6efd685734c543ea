"""Steam importer: the Steam v2 review data of the UCSD McAuley lab -> the canonical ``interactions`` format.

Original dataset: Steam reviews v2 and game metadata (Kang & McAuley), listed on
https://cseweb.ucsd.edu/~jmcauley/datasets.html and downloaded from

* https://cseweb.ucsd.edu/~wckang/steam_reviews.json.gz (one review per line: ``username``, ``product_id``,
  ``date`` as ``YYYY-MM-DD``; Python-literal dicts, not JSON);
* https://cseweb.ucsd.edu/~wckang/steam_games.json.gz (one game per line: ``id``, ``title``, ``app_name``,
  ``genres``, ``tags``; Python-literal dicts).

Interactions are reviews at day granularity (00:00 UTC of the review date); users are ``username``.

Citation: Wang-Cheng Kang and Julian McAuley. Self-Attentive Sequential Recommendation. IEEE ICDM 2018.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from benchmark.importers.common import (
    Importer,
    RawData,
    RawFile,
    clean_labels,
    clean_text,
    get_id,
    read_records,
    unix_from_date,
)

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
    for no, rec in read_records(path, python_literal=True):
        if rec.get("id") in (None, ""):
            dropped["metadata_lines_without_id"] += 1
            continue
        app_id = get_id(rec, "id", path, no)
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
        for no, rec in read_records(label, python_literal=True):
            # `username` is the only user key every review has (`user_id`, the Steam id, is often missing).
            user = get_id(rec, "username", label, no)
            yield user, get_id(rec, "product_id", label, no), unix_from_date(rec.get("date"), label, no, "date")

    return RawData(items, interactions())


IMPORTER = Importer(
    "steam",
    "Steam reviews v2 (UCSD McAuley lab): reviews of games with a title, day-level timestamps",
    "Wang-Cheng Kang and Julian McAuley. Self-Attentive Sequential Recommendation. IEEE ICDM 2018.",
    # title_keys=title keeps only games with a store `title`, as Tiny-Snow's Steam-100K (shared steam/)
    # does; the default also keeps the 2,048 games that only have an `app_name`.
    {"title_keys": ("title", "app_name")},
    _steam_files,
    _read_steam,
)
