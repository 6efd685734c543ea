"""Importers: original public raw files -> the canonical ``interactions`` format (data/README.md).

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

One module per source (``steam``, ``goodreads``, ``amazon``, ``movielens``), each declaring its ``IMPORTER``;
what they share (raw-file lookup and download, line readers, cleaning, the canonical writer) is in ``common``.
Source modules import only from ``common``, never from one another.

Typical use::

    import_dataset("steam", Path("raw/steam"), Path("data/steam_full"), download=True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmark.errors import unknown_name
from benchmark.importers import amazon, goodreads, movielens, steam
from benchmark.importers.amazon import amazon_genres
from benchmark.importers.common import (
    Importer,
    RawData,
    RawFile,
    clean_labels,
    clean_text,
    id_sort_key,
    locate_raw_files,
    run_importer,
    title_problem,
    write_canonical,
)
from benchmark.importers.goodreads import GOODREADS_GENRES, parse_goodreads_time
from benchmark.importers.steam import read_steam_games

__all__ = [
    "GOODREADS_GENRES",
    "IMPORTERS",
    "Importer",
    "RawData",
    "RawFile",
    "amazon_genres",
    "clean_labels",
    "clean_text",
    "id_sort_key",
    "import_dataset",
    "locate_raw_files",
    "parse_goodreads_time",
    "read_steam_games",
    "title_problem",
    "write_canonical",
]

IMPORTERS: dict[str, Importer] = {
    imp.name: imp for imp in (steam.IMPORTER, goodreads.IMPORTER, amazon.IMPORTER, movielens.IMPORTER)
}


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
    return run_importer(IMPORTERS[name], raw_dir, out_dir, download, **options)
