"""Amazon importer: one category of the Amazon review data -> the canonical ``interactions`` format.

Original dataset: Amazon review data 2014 (UCSD McAuley lab, http://jmcauley.ucsd.edu/data/amazon/), one
category, downloaded from http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/:

* ``ratings_<category>.csv``: ``user,item,rating,timestamp`` (no header, unix seconds);
* ``meta_<category>.json.gz``: product metadata (``asin``, ``title``, ``categories``; Python-literal dicts).

The 2018 metadata of the same category (https://nijianmo.github.io/amazon/index.html, JSON lines with a flat
``category`` path) is accepted under the same file name. Ratings >= ``min_rating`` are the implicit feedback.

Citations: Ruining He and Julian McAuley. Ups and Downs: Modeling the Visual Evolution of Fashion Trends with
One-Class Collaborative Filtering. WWW 2016; Julian McAuley, Christopher Targett, Qinfeng Shi and Anton van den
Hengel. Image-based Recommendations on Styles and Substitutes. SIGIR 2015; for the 2018 metadata: Jianmo Ni,
Jiacheng Li and Julian McAuley. Justifying Recommendations using Distantly-Labeled Reviews and Fine-Grained
Aspects. EMNLP 2019.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from benchmark.importers.common import (
    Importer,
    RawData,
    RawFile,
    field_error,
    get_id,
    read_rating_rows,
    read_records,
)

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
    for no, rec in read_records(paths["meta"], python_literal=True):
        asin = get_id(rec, "asin", paths["meta"], no)
        if asin in items:  # the 2018 metadata repeats some products
            dropped["metadata_duplicate_ids"] += 1
        else:
            items[asin] = {"title": rec.get("title"), "genres": amazon_genres(rec), "asin": asin}

    # user,item,rating,timestamp: ids never contain commas, no header
    rows = read_rating_rows(paths["ratings"], ",", opts["min_rating"], dropped, require_ids=True)
    return RawData(items, rows)


IMPORTER = Importer(
    "amazon",
    "Amazon review data 2014 (UCSD McAuley lab), one category: ratings >= min_rating as implicit feedback",
    "Ruining He and Julian McAuley. Ups and Downs: Modeling the Visual Evolution of Fashion Trends with "
    "One-Class Collaborative Filtering. WWW 2016.",
    {"category": "CDs_and_Vinyl", "min_rating": 4.0},
    _amazon_files,
    _read_amazon,
)
