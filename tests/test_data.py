"""Datasets: preprocessing, leak-free splits, windows, Table 2, malformed-file errors."""

import dataclasses
import gzip
import json
import shutil

import pytest

from benchmark.config import DataConfig
from benchmark.data import (SPLITS, alignment_pool, alignment_subset, dataset_config, load_dataset, sft_windows,
                            table2_row)
from benchmark.errors import UserError


def _users(ds, split):
    return {w.user for w in ds.splits[split]}


@pytest.mark.parametrize("name", ["steam", "cds"])
def test_user_splits_are_disjoint_and_cover_all_users(data_dir, name):
    ds = load_dataset(name, data_dir)
    for i, a in enumerate(SPLITS):
        for b in SPLITS[i + 1:]:
            assert not (_users(ds, a) & _users(ds, b)), f"user in {a} and {b}"
    # users without any window (fewer than 10 + 10 interactions) are reported, never silently lost
    with_windows = sum(len(_users(ds, s)) for s in SPLITS)
    assert with_windows + ds.stats["users_without_window"] == ds.stats["users"]
    # only users who can give a full window are shared out (40/20/10/30); the others all train SFT
    full = ds.stats["users"] - ds.stats["users_without_window"]
    fr = [ds.stats["split_users_with_windows"][s] / full for s in SPLITS]
    assert fr == pytest.approx([0.4, 0.2, 0.1, 0.3], abs=0.01)
    for s in ("align", "valid", "test"):
        assert ds.stats["split_users"][s] == ds.stats["split_users_with_windows"][s]  # no window-less user there
    assert ds.stats["split_users"]["sft"] == ds.stats["split_users_with_windows"]["sft"] + ds.stats["users_without_window"]
    assert ds.stats["test_users"] >= 150  # issue 23: a test split with power (steam 157, cds 185)


def test_steam_preprocessing_matches_the_paper_protocol(steam):
    # top 15 % of the 3,591 items of users with >= 10 interactions = 539 items (docs/feasibility.md)
    assert steam.n_items == 539
    assert len({it.title for it in steam.items}) == steam.n_items
    for s in SPLITS:
        for w in steam.splits[s]:
            assert len(w.history) == 10 and len(w.target) == 10  # the paper's 10 -> 10 task, no shorter targets
    # every test user gives ALL its stride-1 windows: #windows = len(sequence) - 10 - 10 + 1
    n = sum(max(0, len(seq) - 19) for seq in steam.sequences["test"])
    assert n == len(steam.splits["test"])
    assert set(steam.genre_set) <= {"Action", "Adventure", "Casual", "Strategy", "RPG", "Simulation",
                                    "Massively Multiplayer", "Sports", "Racing"}


def test_windows_are_consecutive_slices(steam):
    # sequences and windows are both in user order: the first user with >= 21 items owns the first windows
    skipped = 0
    for seq in steam.sequences["valid"]:
        if len(seq) >= 21:
            break
        skipped += max(0, len(seq) - 19)
    wins = steam.splits["valid"][skipped:skipped + 2]
    assert wins[0].history == tuple(seq[:10]) and wins[0].target == tuple(seq[10:20])
    assert wins[1].history == tuple(seq[1:11])


def test_goodreads_samples_keep_their_test_split(data_dir):
    ds = load_dataset("goodreads", data_dir)
    assert len(ds.splits["test"]) == 3442
    assert sum(len(ds.splits[s]) for s in ("sft", "align", "valid")) == 22444
    assert all(len(w.target) == 1 for w in ds.splits["test"])
    assert len(ds.genre_set) == 7


def test_sample_groups_join_sequences_that_share_n_consecutive_items():
    from benchmark.data import sample_groups

    seqs = [(1, 2, 3, 4, 5, 6), (9, 8, 7), (2, 3, 4, 5, 6, 7), (3, 4, 5, 6, 7, 8), (5, 6, 7, 1, 2), (7, 1, 2, 3, 4)]
    # 0 ~ 2 (2..6), 2 ~ 3 (3..7); 4 shares only runs of 3 with the others, 5 only 4 (1, 2, 3, 4 with seq 0)
    assert sample_groups(seqs, 5) == [0, 1, 0, 0, 4, 5]
    assert sample_groups(seqs, 4) == [0, 1, 0, 0, 4, 0]  # 5 joins 0 through 1, 2, 3, 4
    assert sample_groups([(1, 2), (1, 2)], 5) == [0, 1]  # shorter than n: never joined
    assert sample_groups([], 5) == []


def test_goodreads_splits_take_whole_pseudo_readers(data_dir):
    """No validation or alignment sample shares a run of 5 items with an SFT sample (split sample by sample, 48 % of
    the validation samples had their last 5 items verbatim in an SFT sample)."""
    from benchmark.data import SAMPLES_GROUP_NGRAM

    ds = load_dataset("goodreads", data_dir)
    n = SAMPLES_GROUP_NGRAM

    def runs(ws):
        return {tuple((w.history + w.target)[i:i + n]) for w in ws for i in range(len(w.history + w.target) - n + 1)}

    sft = runs(ds.splits["sft"])
    for split in ("align", "valid"):
        assert not runs(ds.splits[split]) & sft, split
    users = {s: {w.user for w in ds.splits[s]} for s in ("sft", "align", "valid")}
    assert not (users["sft"] & users["align"] or users["sft"] & users["valid"] or users["align"] & users["valid"])
    train = sum(len(ds.splits[s]) for s in ("sft", "align", "valid"))
    assert abs(len(ds.splits["align"]) - 0.25 * train) < 400 and abs(len(ds.splits["valid"]) - 0.1 * 0.75 * train) < 400


def test_alignment_subset_is_seeded_and_from_align_users(steam):
    a1, v1 = alignment_subset(steam, 64, 16, seed=0)
    a2, _ = alignment_subset(steam, 64, 16, seed=0)
    a3, _ = alignment_subset(steam, 64, 16, seed=1)
    assert a1 == a2 and a1 != a3
    align_users = _users(steam, "align")
    assert {w.user for w in a1 + v1} <= align_users
    assert not set(a1) & set(v1)


@pytest.mark.parametrize("source", ["align", "train"])
def test_alignment_valid_users_are_not_training_users(steam, source):
    """The alignment-validation prompts come from users with no training prompt (with one pool of stride-1 windows,
    249 of steam's 256 align-valid windows belonged to align-train users, overlapping their windows)."""
    train, valid = alignment_subset(steam, 512, 256, seed=0, align_source=source)
    assert len(train) == 512 and len(valid) == 256 and len(set(train)) == 512 and len(set(valid)) == 256
    assert not {w.user for w in train} & {w.user for w in valid}
    with pytest.raises(UserError, match="do not fit in the"):
        alignment_subset(steam, len(alignment_pool(steam)) - 1, 1, seed=0)


def test_min_target_keeps_the_shorter_end_of_sequence_windows_only_when_asked(data_dir, steam):
    short = load_dataset("steam", data_dir, dataclasses.replace(steam.config, min_target=1))
    assert short.data_hash != steam.data_hash and short.config.min_target == 1
    lengths = [len(w.target) for w in short.splits["test"]]
    assert min(lengths) == 1 and max(lengths) == 10
    # a different task: the users shared out are those with >= 11 interactions, so the test users differ too
    assert {w.user for w in short.splits["test"]} != {w.user for w in steam.splits["test"]}
    assert len(short.splits["test"]) == sum(max(0, len(seq) - 10) for seq in short.sequences["test"])
    with pytest.raises(UserError, match="min_target = 11 is invalid: at most target_len = 10"):
        load_dataset("steam", data_dir, dataclasses.replace(steam.config, min_target=11))


def test_sft_min_target_adds_the_shorter_training_windows_of_the_sft_users_only(data_dir, steam):
    """Profile.sft_min_target: SFT also trains on the windows a dataset built with that min_target would hold, for
    the training users only; evaluation windows are the task's."""
    for source, groups in (("align", ["sft"]), ("train", ["sft", "align"])):
        got = sft_windows(steam, source, min_target=1)
        users = [u for g in groups for u in steam.sequence_users[g]]
        assert [w.user for w in got] == sorted((w.user for w in got), key=users.index)  # the users' order
        assert {w.user for w in got} <= set(users)
        assert set(sft_windows(steam, source)) < set(got)  # the task's windows, and more
    got = sft_windows(steam, "align", min_target=1)
    assert {len(w.target) for w in got} == set(range(1, 11))
    assert {w.user for w in got} <= set(steam.sequence_users["sft"])
    assert len(got) == sum(max(0, len(seq) - 10) for seq in steam.sequences["sft"])  # every next item is a target
    assert sft_windows(steam, "align", min_target=10) == steam.splits["sft"]  # the task's own min_target: unchanged
    goodreads = load_dataset("goodreads", data_dir)  # samples: already L = 1, nothing to add
    assert sft_windows(goodreads, "align", min_target=1) == goodreads.splits["sft"]


def test_paper_alignment_source_draws_from_the_sft_training_windows(steam):
    train = sft_windows(steam, "train")
    assert train == steam.splits["sft"] + steam.splits["align"] and sft_windows(steam) == steam.splits["sft"]
    a, v = alignment_subset(steam, 4096, 512, seed=0, align_source="train")
    assert len(a) == 4096 and len(v) == 512 and not set(a) & set(v) and set(a + v) <= set(train)
    with pytest.raises(UserError, match=r"4096\+512 exceeds the 2,?031 align-user windows"):
        alignment_subset(steam, 4096, 512, seed=0)
    with pytest.raises(UserError, match="align_source 'users' unknown. Valid: align, train"):
        alignment_subset(steam, 4, 4, seed=0, align_source="users")


def test_settings_travel_with_the_dataset_folder(data_dir, steam, tmp_path):
    # a copy given by path is preprocessed exactly as the name: the settings are in its dataset.json
    copy = tmp_path / "my_steam"
    shutil.copytree(data_dir / "steam", copy)
    ds = load_dataset(str(copy), tmp_path)
    assert ds.config == steam.config and ds.n_items == steam.n_items
    assert [w.target for w in ds.splits["test"]] == [w.target for w in steam.splits["test"]]
    assert dataset_config(data_dir / "goodreads") == DataConfig(target_len=1, min_target=1)
    (copy / "dataset.json").write_text('{"top_item_frac": 0.15, "genre": "first"}')
    with pytest.raises(UserError, match=r"dataset.json: unknown field 'genre'. Valid fields: .*genre_rule"):
        load_dataset(str(copy), tmp_path)
    (copy / "dataset.json").write_text('{"min_target": "10"}')
    with pytest.raises(UserError, match=r"dataset.json: data config field min_target = '10' is invalid: expected int"):
        load_dataset(str(copy), tmp_path)


def test_table2_row(steam):
    row = table2_row(steam)
    assert row["items"] == 539 and row["users"] == steam.stats["users"]
    assert row["windows_test"] == len(steam.splits["test"])


def test_data_hash_changes_with_config(data_dir):
    a = load_dataset("steam", data_dir)
    b = load_dataset("steam", data_dir, dataclasses.replace(a.config, split_seed=1))
    assert a.data_hash != b.data_hash


def _write(d, items, rows):
    d.mkdir()
    (d / "items.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
    with gzip.open(d / "interactions.csv.gz", "wt") as f:
        f.write("user_id,item_id,timestamp\n" + "".join(rows))


def test_malformed_files_name_file_line_and_field(tmp_path):
    items = [{"item_id": str(i), "title": f"T{i}", "genres": []} for i in range(3)]
    _write(tmp_path / "bad_ts", items, ["1,0,5\n", "1,1,x\n"])
    with pytest.raises(UserError, match=r"interactions.csv.gz, line 3: field 'timestamp'"):
        load_dataset(str(tmp_path / "bad_ts"), tmp_path)
    _write(tmp_path / "bad_item", items, ["1,9,5\n"])
    with pytest.raises(UserError, match=r"line 2: field 'item_id' = '9'"):
        load_dataset(str(tmp_path / "bad_item"), tmp_path)
    _write(tmp_path / "bad_title", [{"item_id": "0", "title": "", "genres": []}], ["1,0,5\n"])
    with pytest.raises(UserError, match=r"items.jsonl, line 1: field 'title'"):
        load_dataset(str(tmp_path / "bad_title"), tmp_path)


def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(UserError, match="Valid datasets: cds, goodreads, steam"):
        load_dataset("stema", tmp_path)


def test_item_genres_are_built_once(steam):
    ds = steam
    first = ds.item_genres
    assert ds.item_genres is first  # rebuilt on every reward call before (about 3,600 sets each time)
    assert len(first) == ds.n_items and first[0] == frozenset(ds.items[0].genres)


def test_table2_says_why_sft_trained_on_more_windows_and_lists_test_users(steam):
    """Issue 25: the SFT log said 12,441 windows, Table 2 7,376, and nothing said why (cpu: sft_min_target = 1).
    Issue 23: Table 2 lists the test users (the units the bootstraps resample)."""
    from benchmark.config import get_profile
    from benchmark.data import sft_windows
    from benchmark.reporting.table2 import table2

    n = len(sft_windows(steam, "align", 1))
    rec = {"dataset": "steam", "run_id": "r", "seed": 0, "method": "bigrec", "role": "sft", "oracle": False,
           "created": "2026-12-05T00:00:00", "data_hash": steam.data_hash,
           "data_stats": steam.stats, "config": {"profile": dataclasses.asdict(get_profile("cpu"))},
           "stats": {"sft": {"train_windows": n}}}
    md, tex = table2([rec], "cpu")
    task = steam.stats["windows"]["sft"]
    assert n > task
    assert (f"Steam: the SFT (one per seed, shared by its methods) trained on {n:,} windows, not the {task:,} SFT "
            "windows above: sft_min_target = 1") in md
    header = next(x for x in md.splitlines() if x.startswith("| Dataset"))
    row = next(x for x in md.splitlines() if x.startswith("| Steam"))
    cells = dict(zip([c.strip() for c in header.strip("|").split("|")], [c.strip() for c in row.strip("|").split("|")]))
    assert cells["Test users"] == f"{steam.stats['test_users']:,}" == "157"
    assert "Test users" in tex
    assert "seeded sample" not in md  # the cpu profile scores every window


def test_table2_states_the_windows_and_users_a_capped_evaluation_scores(steam, tmp_path):
    """A profile with max_eval_windows (smollm2: 256) scores a sample of the split: Table 2's row keeps the split's
    totals and a note gives the sample's windows and test users (the units its bootstraps resample)."""
    import gzip
    import json

    from benchmark.config import get_profile
    from benchmark.reporting.table2 import table2

    rows = [{"user": u, "metrics": {"ndcg@5": 0.0}} for u in ("a", "b", "a", "c")]
    with gzip.open(tmp_path / "r.p.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    rec = {"dataset": "steam", "run_id": "r", "seed": 0, "method": "bigrec", "role": "sft", "oracle": False,
           "created": "2026-12-05T00:00:00", "data_hash": steam.data_hash,
           "data_stats": steam.stats, "config": {"profile": dataclasses.asdict(get_profile("smollm2"))},
           "n_test": 4, "n_valid": 3, "predictions_file": "r.p.jsonl.gz", "_path": str(tmp_path / "r.json")}
    md, tex = table2([rec], "smollm2")
    w = steam.stats["windows"]
    assert (f"Steam: runs score a seeded sample of 4 of the {w['test']:,} test windows (3 test users) and 3 of the "
            f"{w['valid']:,} valid windows (max_eval_windows = 256).") in md
    assert "seeded sample" in tex
