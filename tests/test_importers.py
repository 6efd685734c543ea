"""Raw-data importers: each fixture (tiny, in the exact published raw format) -> the canonical format."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
import shutil
import unicodedata
import urllib.error
import zipfile
from pathlib import Path

import pytest

from benchmark import importers
from benchmark.errors import UserError
from benchmark.importers import IMPORTERS, clean_text, import_dataset, parse_goodreads_time

RAW = Path(__file__).parent / "fixtures" / "raw"
REPO = Path(__file__).resolve().parents[1]
# the original public steam_games.json.gz (2.7 MB) is not shipped in data/ (the loader never reads it): the test on it
# runs where the curated data folder that holds it is present
SHARED_DATA = Path(os.environ.get("BENCHMARK_DATA_DIR") or REPO.parent / "shared" / "data")
REAL_GAMES = SHARED_DATA / "steam" / "steam_games.json.gz"


def day(date: str) -> int:
    """Unix seconds of 00:00 UTC of a YYYY-MM-DD date (independent of the importer's own parsing)."""
    import calendar
    import time

    return calendar.timegm(time.strptime(date, "%Y-%m-%d"))


def load(out: Path) -> tuple[list[tuple[str, str, int]], list[dict], dict]:
    """Read an importer's output and assert every rule of the canonical ``interactions`` format."""
    with gzip.open(out / "interactions.csv.gz", "rt", encoding="utf-8", newline="") as f:
        raw_text = f.read()
    assert "\r" not in raw_text and raw_text.endswith("\n")
    table = list(csv.reader(raw_text.splitlines()))
    assert table[0] == ["user_id", "item_id", "timestamp"]
    rows = [(u, i, int(t)) for u, i, t in table[1:]]
    assert all(re.fullmatch(r"-?[0-9]+", t) for _, _, t in table[1:])

    items = [json.loads(line) for line in (out / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    source = json.loads((out / "SOURCE.json").read_text(encoding="utf-8"))

    def ascending(ids: list[str]) -> bool:
        numeric = all(re.fullmatch(r"[0-9]+", i) for i in set(ids))
        key = (lambda i: int(i)) if numeric else (lambda i: i)
        return all(key(a) < key(b) for a, b in zip(ids, ids[1:]))

    # Users contiguous and ascending; timestamps non-decreasing within a user.
    users = [u for n, (u, _, _) in enumerate(rows) if n == 0 or rows[n - 1][0] != u]
    assert len(users) == len({u for u, _, _ in rows}) and ascending(users)
    assert all(a[2] <= b[2] for a, b in zip(rows, rows[1:]) if a[0] == b[0])

    # Items: unique, ascending, key order, exactly the items used, clean non-empty titles, clean genre lists.
    ids = [d["item_id"] for d in items]
    assert ascending(ids) and set(ids) == {i for _, i, _ in rows}
    for d in items:
        assert list(d)[:3] == ["item_id", "title", "genres"]
        assert isinstance(d["item_id"], str) and isinstance(d["title"], str) and d["title"]
        assert d["title"] == " ".join(d["title"].split()) and not re.search(r"&[A-Za-z#][A-Za-z0-9]*;", d["title"])
        assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in d["title"])
        assert all(isinstance(g, str) and g for g in d["genres"]) and len(set(d["genres"])) == len(d["genres"])

    assert source["format"] == "interactions" and source["timestamp_kind"] == "unix"
    c = source["counts"]
    assert (c["users"], c["items"], c["interactions"]) == (len(users), len(items), len(rows))
    for name, digest in source["outputs"].items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    for s in source["sources"]:
        assert re.fullmatch(r"[0-9a-f]{64}", s["sha256"]) and s["url"].startswith("http")
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary files
    return rows, items, source


def run(name: str, tmp_path: Path, raw_dir: Path | None = None, **options) -> tuple[list, list, dict]:
    out = import_dataset(name, raw_dir or RAW / name, tmp_path / "out", **options)
    return load(out)


# ---------------------------------------------------------------------------------------------- per importer


def test_steam(tmp_path):
    rows, items, source = run("steam", tmp_path)
    assert rows == [
        ("123", "100", day("2012-02-02")),
        ("Alice", "20", day("2015-05-05")),
        ("Alice", "100", day("2016-01-02")),  # same day as the next row: source order kept
        ("Alice", "9", day("2016-01-02")),
        ("alice", "9", day("2013-03-03")),
        ("bob", "20", day("2014-01-04")),  # bob's garbage / untitled / unknown products are gone
        ("zed", "20", day("2017-12-17")),
        ("zed", "20", day("2017-12-18")),  # re-consumption kept
    ]
    assert items == [
        {"item_id": "9", "title": "Only App Name", "genres": [], "app_id": "9", "app_name": "Only App Name",
         "tags": ["Casual"]},  # no `title`: app_name is used
        {"item_id": "20", "title": "Team Fortress Classic", "genres": ["Action"], "app_id": "20",
         "app_name": "Team Fortress Classic", "tags": ["Action", "FPS"]},  # first of the two id-20 lines
        {"item_id": "100", "title": "Sam & Max Save the World", "genres": ["Adventure", "Animation & Modeling"],
         "app_id": "100", "app_name": "Sam & Max", "tags": ["Point & Click", "Comedy"]},
    ]  # fmt: skip
    assert source["dropped"] == {
        "items_garbage_title": 2, "interactions_garbage_title": 2,  # "<span ...", 'Foo" /> bar'
        "items_empty_title": 1, "interactions_empty_title": 1,
        "items_not_in_metadata": 1, "interactions_not_in_metadata": 1,
        "metadata_duplicate_ids": 1, "metadata_lines_without_id": 1,
    }  # fmt: skip
    assert source["counts"]["interactions_read"] == 12 and source["counts"]["repeat_interactions"] == 1
    assert {s["file"] for s in source["sources"]} == {"steam_reviews.json.gz", "steam_games.json.gz"}
    games = next(s for s in source["sources"] if s["file"] == "steam_games.json.gz")
    assert games["sha256"] == hashlib.sha256((RAW / "steam" / "steam_games.json.gz").read_bytes()).hexdigest()


def test_steam_title_keys_option(tmp_path):
    rows, items, source = run("steam", tmp_path, title_keys="title")  # CLI-style string -> tuple
    assert "9" not in {d["item_id"] for d in items}
    assert source["options"]["title_keys"] == ["title"] and source["dropped"]["items_empty_title"] == 2


@pytest.fixture(scope="module")
def real_steam(tmp_path_factory):
    """The fixture reviews (real app ids) imported against the real public steam_games.json.gz."""
    if not REAL_GAMES.is_file():
        pytest.skip(f"real {REAL_GAMES} not available (set BENCHMARK_DATA_DIR)")
    raw = tmp_path_factory.mktemp("raw")
    shutil.copy(RAW / "steam_real" / "steam_reviews.json.gz", raw)
    (raw / "steam_games.json.gz").symlink_to(REAL_GAMES.resolve())
    return run("steam", tmp_path_factory.mktemp("real"), raw)


def test_steam_real_games_file(real_steam):
    rows, items, source = real_steam
    by_id = {d["item_id"]: d for d in items}
    assert [(u, i) for u, i, _ in rows] == [
        ("u1", "20"), ("u1", "8200"), ("u1", "1840"),
        ("u2", "220700"), ("u2", "22340"), ("u2", "773570"), ("u2", "612880"),
        ("u3", "2100"),
    ]  # fmt: skip
    assert source["dropped"]["interactions_not_in_metadata"] == 1  # 99999999 is no Steam app id
    assert source["dropped"]["metadata_lines_without_id"] == 2 and source["dropped"]["metadata_duplicate_ids"] == 1
    assert source["counts"]["items_in_metadata"] == 32135 - 2 - 1
    assert by_id["8200"]["title"] == "Sam & Max 101: Culture Shock"  # "&amp;" in the raw file
    assert by_id["1840"]["genres"] == ["Animation & Modeling", "Video Production"]
    assert by_id["22340"]["genres"] == []  # genres missing in the raw file
    assert by_id["773570"]["title"] == "Log Challenge"  # only app_name in the raw file
    assert "Room-Scale" not in by_id["773570"]["tags"] and "Casual" in by_id["773570"]["tags"]
    assert by_id["612880"]["title"] == "Wolfenstein II: The New Colossus"
    # Independent cross-check: the curated items.jsonl (built by another pipeline from the same file).
    curated_path = SHARED_DATA / "steam" / "items.jsonl"
    if curated_path.is_file():
        curated = {d["item_id"]: d for d in map(json.loads, curated_path.read_text(encoding="utf-8").splitlines())}
        for iid in ("20", "8200", "1840", "220700", "22340", "2100"):
            assert (by_id[iid]["title"], by_id[iid]["genres"]) == (curated[iid]["title"], curated[iid]["genres"])
            assert by_id[iid]["tags"] == curated[iid]["tags"]


U1, U2, U3 = "8842281e1d1347389f2ab93d60773d4d", "72fb0d0087d28c832f9c7f8ae9ab5dd2", "ab2923b738ea3082f5f3efcbbfacb218"


def test_goodreads(tmp_path):
    rows, items, source = run("goodreads", tmp_path)
    oct17 = 1508259704  # Tue Oct 17 10:01:44 -0700 2017 = 2017-10-17 17:01:44 UTC
    assert rows == [
        (U2, "287141", day("2017-03-02")),  # U2's untitled and garbage-titled books are dropped
        (U1, "287141", day("2017-01-02") + 8 * 3600),
        (U1, "1384", oct17),
        (U1, "30119", oct17),
        (U3, "1384", day("2006-12-02") + 7 * 3600 + 59 * 60 + 59),
    ]
    assert items == [
        {"item_id": "1384", "title": "Leaves of Grass", "genres": ["poetry", "fiction"]},
        {"item_id": "30119", "title": "Ariel", "genres": []},
        {"item_id": "287141", "title": "The Aeneid & Other Poems",
         "genres": ["history, historical fiction, biography", "poetry"]},
    ]  # fmt: skip
    d = source["dropped"]
    assert (d["items_empty_title"], d["items_garbage_title"], d["interactions_garbage_title"]) == (1, 1, 1)
    assert [s["file"] for s in source["sources"]] == [
        "goodreads_interactions_poetry.json.gz", "goodreads_books_poetry.json.gz",
        "goodreads_book_genres_initial.json.gz",
    ]  # fmt: skip
    assert source["sources"][0]["url"].endswith("/goodreads/byGenre/goodreads_interactions_poetry.json.gz")


def test_goodreads_options(tmp_path):
    rows, _, source = run("goodreads", tmp_path, require_read="true", min_rating="4", timestamp_field="read_at")
    assert rows == [(U2, "287141", day("2017-03-03")), (U1, "1384", day("2017-10-21") + 7 * 3600)]
    assert source["dropped"]["interactions_not_read"] == 1 and source["dropped"]["interactions_below_min_rating"] == 2
    assert source["options"] == {
        "genre": "poetry", "timestamp_field": "read_at", "min_rating": 4, "require_read": True,
    }  # fmt: skip


def test_amazon_2014(tmp_path):
    rows, items, source = run("amazon", tmp_path)
    assert rows == [
        ("A1WR23ER5HMAA9", "5555991584", 953424000),
        ("A2EFCYXHNK06IS", "5555991584", 978480000),
        ("A2EFCYXHNK06IS", "0001393774", 978480000),  # tie: source order
        ("A2IR4Q0GPAFJKW", "B00000016T", 1393545600),
    ]
    assert items == [
        {"item_id": "0001393774", "title": "Songs for the Shepherd", "genres": [], "asin": "0001393774"},
        {"item_id": "5555991584", "title": "Memory of Trees",
         "genres": ["New Age", "Pop", "Adult Contemporary", "Celtic New Age"], "asin": "5555991584"},
        {"item_id": "B00000016T", "title": "Rock & Roll", "genres": ["Rock"], "asin": "B00000016T"},
    ]  # fmt: skip
    d = source["dropped"]
    assert d["interactions_below_min_rating"] == 1 and d["items_garbage_title"] == 1
    assert d["interactions_not_in_metadata"] == 1
    assert source["sources"][0]["url"] == (
        "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/ratings_CDs_and_Vinyl.csv"
    )


def test_amazon_2018_metadata(tmp_path):
    """The 2018 metadata (JSON lines, flat ``category``, HTML artefacts, repeated asins) under the same name."""
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(RAW / "amazon" / "ratings_CDs_and_Vinyl.csv", raw)
    meta = [
        {"category": ["CDs & Vinyl", "Pop", "Adult Contemporary"], "title": "Memory of Trees", "asin": "5555991584"},
        {"category": ["CDs & Vinyl", "Pop"], "title": "Again", "asin": "5555991584"},
        {"category": ["CDs & Vinyl", "Rock"], "asin": "B00000016T",
         "title": '<span class="a-size-medium a-color-secondary a-text-normal">Rock</span>'},
        {"category": [], "title": "Songs &amp;quot;for&amp;quot; the Shepherd", "asin": "0001393774"},
        {"category": ["CDs & Vinyl", "Pop"], "title": 'x" /> y', "asin": "B0000GARB0", "also_buy": [], "rank": True},
    ]  # fmt: skip
    with gzip.open(raw / "meta_CDs_and_Vinyl.json.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(m) + "\n" for m in meta)
    rows, items, source = run("amazon", tmp_path, raw, min_rating=5)
    assert [(u, i) for u, i, _ in rows] == [("A1WR23ER5HMAA9", "5555991584"), ("A2EFCYXHNK06IS", "5555991584")]
    assert items == [{"item_id": "5555991584", "title": "Memory of Trees", "genres": ["Pop", "Adult Contemporary"],
                      "asin": "5555991584"}]  # fmt: skip
    assert source["dropped"]["metadata_duplicate_ids"] == 1 and source["dropped"]["items_garbage_title"] == 1
    assert source["dropped"]["interactions_below_min_rating"] == 3


@pytest.mark.parametrize("layout", ["zip", "folder"])
def test_movielens(tmp_path, layout):
    raw = RAW / "movielens"
    if layout == "folder":  # the extracted archive is accepted as well
        raw = tmp_path / "raw"
        with zipfile.ZipFile(RAW / "movielens" / "ml-100k.zip") as z:
            z.extractall(raw)
    rows, items, source = run("movielens", tmp_path, raw)
    assert rows == [
        ("22", "242", 875747190), ("22", "377", 878887116),
        ("186", "1", 891717700), ("186", "302", 891717742),  # movie 267 ("unknown") dropped
        ("196", "242", 881250949), ("196", "302", 881250949),
    ]  # fmt: skip
    assert [(d["item_id"], d["title"], d["genres"]) for d in items] == [
        ("1", "Toy Story (1995)", ["Animation", "Children's", "Comedy"]),
        ("242", "Kolya (1996)", ["Comedy"]),
        ("302", "L.A. Confidential (1997)", ["Crime", "Film-Noir", "Mystery", "Thriller"]),
        ("377", "Cité des enfants perdus, La (1995)", ["Adventure", "Sci-Fi"]),  # latin-1 decoded
    ]
    assert source["dropped"]["items_empty_title"] == 1 and source["dropped"]["interactions_empty_title"] == 1
    files = sorted(Path(s["path"]).name for s in source["sources"])
    assert files == (["ml-100k.zip"] if layout == "zip" else ["u.data", "u.genre", "u.item"])


def test_movielens_min_rating(tmp_path):
    rows, _, source = run("movielens", tmp_path, min_rating=4)
    assert [(u, i) for u, i, _ in rows] == [("22", "242"), ("186", "1"), ("196", "302")]
    assert source["dropped"]["interactions_below_min_rating"] == 3


def test_output_is_deterministic(tmp_path):
    a = import_dataset("steam", RAW / "steam", tmp_path / "a")
    b = import_dataset("steam", RAW / "steam", tmp_path / "b")
    for name in ("interactions.csv.gz", "items.jsonl", "SOURCE.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()


# ---------------------------------------------------------------------------------------------- helpers


def test_clean_text_and_time():
    assert clean_text("Sam &amp;amp; Max\u200e\u00a0 <i>") == "Sam & Max <i>"
    assert clean_text("AT&T R&B &amp") == "AT&T R&B &amp"  # no ';': not a well-formed entity, left as is
    assert clean_text("a\tb\n\x00c\ufeff") == "a b c"
    assert parse_goodreads_time("Tue Oct 17 10:01:44 -0700 2017") == 1508259704
    with pytest.raises(ValueError):
        parse_goodreads_time("2017-10-17")


def test_registry_knows_files_and_urls():
    assert set(IMPORTERS) == {"steam", "goodreads", "amazon", "movielens"}
    files = IMPORTERS["steam"].raw_files()
    assert files["reviews"].urls[0] == "https://cseweb.ucsd.edu/~wckang/steam_reviews.json.gz"
    assert IMPORTERS["amazon"].raw_files(category="Books")["meta"].name == "meta_Books.json.gz"
    assert IMPORTERS["movielens"].raw_files()["archive"].urls == (
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
    )


# ---------------------------------------------------------------------------------------------- errors


def test_unknown_importer_and_options(tmp_path):
    with pytest.raises(UserError, match="unknown importer 'stean'.*'steam'"):
        import_dataset("stean", RAW / "steam", tmp_path)
    with pytest.raises(UserError, match="min_ratin"):
        import_dataset("amazon", RAW / "amazon", tmp_path, min_ratin=4)
    with pytest.raises(UserError, match="'genre'.*not one of"):
        import_dataset("goodreads", RAW / "goodreads", tmp_path, genre="scifi")
    with pytest.raises(UserError, match="cannot use 'four'"):
        import_dataset("amazon", RAW / "amazon", tmp_path, min_rating="four")


def test_missing_file_offline_message(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(RAW / "steam" / "steam_games.json.gz", raw)
    with pytest.raises(UserError) as e:
        import_dataset("steam", raw, tmp_path / "out")
    msg = str(e.value)
    assert "steam_reviews.json.gz" in msg and "https://cseweb.ucsd.edu/~wckang/steam_reviews.json.gz" in msg
    assert str((raw / "steam_reviews.json.gz").resolve()) in msg and "--download" in msg
    assert "steam_games" not in msg  # present files are not reported
    assert not (tmp_path / "out").exists()


def test_download_failure_message(tmp_path, monkeypatch):
    """download=True goes through urlretrieve; a network error becomes a UserError and leaves no partial file."""
    calls = []

    def offline(url, dest):
        calls.append(url)
        Path(dest).write_bytes(b"partial")
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(importers.common.urllib.request, "urlretrieve", offline)
    raw = tmp_path / "raw"
    with pytest.raises(UserError) as e:
        import_dataset("movielens", raw, tmp_path / "out", download=True)
    msg = str(e.value)
    assert calls == ["https://files.grouplens.org/datasets/movielens/ml-100k.zip"]
    assert "could not download 'ml-100k.zip'" in msg and "offline" in msg
    assert calls[0] in msg and str((raw / "ml-100k.zip").resolve()) in msg
    assert list(raw.iterdir()) == []


def test_download_success(tmp_path, monkeypatch):
    """A download lands under the published name and is then imported like a local file."""

    def fake(url, dest):
        shutil.copy(RAW / "goodreads" / url.rsplit("/", 1)[1], dest)

    monkeypatch.setattr(importers.common.urllib.request, "urlretrieve", fake)
    rows, _, _ = run("goodreads", tmp_path, tmp_path / "raw", download=True)
    assert len(rows) == 5 and (tmp_path / "raw" / "goodreads_book_genres_initial.json.gz").is_file()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{'username': 'x', 'product_id': '20', 'date': '17 Dec 2017'}", "line 2: field 'date'"),
        ("{'username': 'x', 'date': '2017-12-17'}", "line 2: field 'product_id'"),
        ("{'username': 'x', 'product_id': '20', 'date': '2017-12-17'", "line 2: field '(whole line)'"),
    ],
)
def test_malformed_line(tmp_path, line, problem):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(RAW / "steam" / "steam_games.json.gz", raw)
    good = "{'username': 'a', 'product_id': '20', 'date': '2017-12-17'}"
    with gzip.open(raw / "steam_reviews.json.gz", "wt", encoding="utf-8") as f:
        f.write(f"{good}\n{line}\n")
    with pytest.raises(UserError, match=re.escape(problem)) as e:
        import_dataset("steam", raw, tmp_path / "out")
    assert "steam_reviews.json.gz" in str(e.value)


def test_malformed_csv_line(tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(RAW / "amazon", raw)
    with open(raw / "ratings_CDs_and_Vinyl.csv", "a") as f:
        f.write("A1,B2,five,123\n")
    with pytest.raises(UserError, match=r"ratings_CDs_and_Vinyl.csv: line 8: field 'rating'"):
        import_dataset("amazon", raw, tmp_path / "out")
