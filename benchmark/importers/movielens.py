"""MovieLens importer: MovieLens 100K -> the canonical ``interactions`` format.

Original dataset: MovieLens 100K (GroupLens, https://grouplens.org/datasets/movielens/100k/), the archive
https://files.grouplens.org/datasets/movielens/ml-100k.zip (or its extracted folder), of which three files are
read: ``u.data`` (tab-separated user, item, rating, unix timestamp), ``u.item`` (``|``-separated, latin-1: id,
title, release date, video release date, IMDb URL, 19 genre flags) and ``u.genre`` (genre name ``|`` index).

Citation: F. Maxwell Harper and Joseph A. Konstan. The MovieLens Datasets: History and Context. ACM TiiS 2015.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from benchmark.importers.common import (
    Importer,
    RawData,
    RawFile,
    field_error,
    parse_number,
    read_lines,
    read_rating_rows,
    source_label,
)


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
    for no, line in read_lines(archive, "u.genre", "latin-1"):
        name, _, idx = line.partition("|")
        genre_names[parse_number(idx, source_label(archive, "u.genre"), no, "genre index", int)] = name
    label = source_label(archive, "u.item")
    items: dict[str, dict] = {}
    for no, line in read_lines(archive, "u.item", "latin-1"):
        parts = line.split("|")
        if len(parts) != 5 + len(genre_names):
            raise field_error(label, no, "(whole line)", f"expected {5 + len(genre_names)} '|'-separated fields")
        flags = parts[5:]
        if any(f not in ("0", "1") for f in flags):
            raise field_error(label, no, "genre flags", f"expected 0/1 flags, got {flags}")
        # "unknown" is the flag for "no genre", not a genre: leave it out so genre metrics do not count it.
        genres = [genre_names[i] for i, f in enumerate(flags) if f == "1" and genre_names[i] != "unknown"]
        # Movie 267 is a placeholder titled "unknown" with no date or URL: its title is missing, not "unknown".
        title = None if parts[1] == "unknown" else parts[1]
        items[parts[0].strip()] = {"title": title, "genres": genres, "release_date": parts[2]}

    rows = read_rating_rows(archive, "\t", opts["min_rating"], dropped, member="u.data")
    return RawData(items, rows)


IMPORTER = Importer(
    "movielens",
    "MovieLens 100K (GroupLens): all ratings >= min_rating, unix timestamps",
    "F. Maxwell Harper and Joseph A. Konstan. The MovieLens Datasets: History and Context. ACM TiiS 2015.",
    {"min_rating": 0.0},
    _movielens_files,
    _read_movielens,
)
