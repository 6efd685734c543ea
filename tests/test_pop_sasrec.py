"""Pop and SASRec on hand-built datasets: exact Pop lists, SASRec learning a toy pattern, checkpoint caching."""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import pytest
import torch

from benchmark.data import Dataset, Item, Window
from methods.base import RunContext
from methods.common import sasrec as sasrec_lib
from methods.pop import Pop
from methods.sasrec import SASRec


def _dataset(n_items: int, splits: dict, sequences: dict) -> Dataset:
    data = Dataset(
        name="toy",
        fmt="interactions",
        items=[Item(str(i), f"item {i}") for i in range(n_items)],
        genre_set=(),
        splits=splits,
        data_hash="toyhash",
    )
    data.sequences = sequences  # a field of Dataset in the final data layer; an attribute is enough here
    return data


def _ctx(data: Dataset, tmp_path, k: int = 3, seed: int = 0) -> RunContext:
    return RunContext(
        data=data,
        profile=SimpleNamespace(k=k, name="smoke"),
        seed=seed,
        run_dir=tmp_path / "run",
        cache_dir=tmp_path / "cache",
        log=logging.getLogger("test"),
    )


def test_pop_counts_sequences_breaks_ties_by_index_and_skips_history(tmp_path):
    """Pop ranks by sequence counts, breaks ties by item index and never recommends a history item."""
    # Counts: 1 -> 3, 2 -> 3, 3 -> 2, 0 -> 1, 4 -> 1, 5..7 -> 0. Ranking: 1, 2, 3, 0, 4, 5, 6, 7.
    seqs = [[0, 1, 2], [1, 2, 3], [2, 3, 4, 1]]
    # The sft windows would rank item 7 first: Pop must count sequences, not windows.
    splits = {"sft": [Window("u", (7, 7), (7,))], "align": [], "valid": [], "test": []}
    pop = Pop()
    ctx = _ctx(_dataset(8, splits, {"sft": seqs}), tmp_path)
    pop.fit(ctx)
    windows = [Window("a", (), (1,)), Window("b", (1, 5), (2,)), Window("c", (2, 3, 1), (0,))]
    assert pop.recommend(ctx, windows) == [[1, 2, 3], [2, 3, 0], [0, 4, 5]]


def _toy_successor_data(n_items: int = 30, length: int = 15) -> Dataset:
    """Every sequence is a run i, i+1, i+2, ...: the next item is always the successor of the last one."""
    seqs = [list(range(s, s + length)) for s in range(n_items - length + 1)]
    # Single-item targets, so validation NDCG@10 rewards exactly the successor (a multi-item target would also
    # reward a blurry "next few items" ranking and select an early epoch).
    windows = [Window(str(s), tuple(q[:10]), (q[10],)) for s, q in enumerate(seqs)]
    splits = {"sft": windows, "align": [], "valid": windows, "test": windows}
    return _dataset(n_items, splits, {"sft": seqs})


TOY_CFG = dict(hidden=32, layers=1, heads=1, dropout=0.0, maxlen=10, lr=1e-2, batch_size=32, max_epochs=40, patience=5)


def test_sasrec_learns_successor_pattern():
    """A few epochs suffice to predict "the successor of the last item" as the top-1 non-history item."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    data = _toy_successor_data()
    t0 = time.time()
    model = sasrec_lib.train_sasrec(
        data.sequences["sft"], data.n_items, sasrec_lib.SASRecConfig(**TOY_CFG), data.splits["valid"]
    )
    print(f"toy SASRec trained in {time.time() - t0:.2f}s, best epoch {model.best_epoch}")
    windows = data.splits["test"]
    scores = sasrec_lib.sasrec_scores(model, [w.history for w in windows])
    assert scores.shape == (len(windows), data.n_items)
    assert torch.allclose(scores.exp().sum(1), torch.ones(len(windows)), atol=1e-4)  # log-probabilities
    for b, w in enumerate(windows):  # the benchmark's protocol: history items are never recommended
        scores[b, list(w.history)] = -torch.inf
    top1 = scores.argmax(1).tolist()
    assert sum(t == w.target[0] for t, w in zip(top1, windows, strict=True)) >= 0.8 * len(windows)


def test_get_sasrec_caches_and_method_recommends_distinct_non_history(tmp_path, monkeypatch):
    """The second fit loads the checkpoint instead of training; lists are K distinct non-history items."""
    torch.set_num_threads(1)
    data = _toy_successor_data()
    ctx = _ctx(data, tmp_path, k=10)
    method = SASRec(SASRec.Config(**{**TOY_CFG, "max_epochs": 3}))
    artefacts = method.fit(ctx)
    path = sasrec_lib.sasrec_cache_path(ctx, sasrec_lib.SASRecConfig(**{**TOY_CFG, "max_epochs": 3}))
    assert artefacts["checkpoint"] == str(path) and path.exists()
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind

    def no_training(*args, **kwargs):
        raise AssertionError("the second fit must load the cached checkpoint")

    monkeypatch.setattr(sasrec_lib, "train_sasrec", no_training)
    again = SASRec(method.config)
    again.fit(ctx)
    for a, b in zip(method.model.state_dict().values(), again.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert again.model.train_log == method.model.train_log

    lists = again.recommend(ctx, data.splits["test"])
    assert lists == method.recommend(ctx, data.splits["test"])
    for lst, w in zip(lists, data.splits["test"], strict=True):
        assert len(lst) == 10 and len(set(lst)) == 10 and not set(lst) & set(w.history)

    # Another seed is another cache entry.
    with pytest.raises(AssertionError, match="cached checkpoint"):
        SASRec(method.config).fit(_ctx(data, tmp_path, k=10, seed=1))


def test_sasrec_row_trains_on_every_sft_users_sequence(steam, tmp_path, monkeypatch):
    """The sasrec row stays the classical reference: every prefix of every sft user's full sequence (steam: 1,531
    users, more than the LLM's SFT windows cover), under its unchanged cache key (D³'s assistant has its own)."""
    import hashlib
    import json
    from dataclasses import asdict

    from benchmark.config import get_profile
    from methods.common.configs import sasrec_profile_config

    seen = {}

    def record(sequences, n_items, cfg, valid_windows, log=None, examples=None):
        seen.update(sequences=sequences, examples=examples, valid=valid_windows)
        raise RuntimeError("recorded")

    monkeypatch.setattr(sasrec_lib, "train_sasrec", record)
    ctx = RunContext(data=steam, profile=get_profile("cpu"), seed=0, run_dir=tmp_path / "run",
                     cache_dir=tmp_path / "cache", log=logging.getLogger("test"))
    cfg = sasrec_profile_config("cpu")
    with pytest.raises(RuntimeError, match="recorded"):
        SASRec(SASRec.Config(**asdict(cfg))).fit(ctx)
    assert seen["sequences"] is steam.sequences["sft"] and len(seen["sequences"]) == 1531
    assert seen["examples"] is None and seen["valid"] is steam.splits["valid"]
    assert len(sasrec_lib._prefix_examples(seen["sequences"], cfg.maxlen)[1]) == 25303
    key = {"cfg": asdict(cfg), "data": steam.data_hash, "seed": 0, "version": sasrec_lib._CACHE_VERSION}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    assert sasrec_lib.sasrec_cache_path(ctx, cfg) == tmp_path / "cache" / "sasrec" / f"steam-{digest}.pt"
