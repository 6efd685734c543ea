"""Decoding diagnostics (Beam Search, D³ and any method whose record has ``stats.beam_scores``), beside the SFT model
they decode from, on the test split: what explains a decoding method's place against greedy SFT decoding.

Columns (means over seeds): NDCG@5, duplicate rate, catalogue coverage, ILD, MGU, how many of the SFT model's greedy
10 items the list shares and how often its first item is the SFT's (window by window, same seed's SFT record if
there is one, else the first), tokens generated and seconds to decode the test split (median over seeds), and the
mean beam score at ranks 1, 5 and 10 (``stats.beam_scores``: log-probabilities, length-penalised as the method ranks
them).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.reporting.common import (Inputs, Output, Table, dataset_name, mean_of, median_of, order_datasets,
                                        simple_table)
from benchmark.records import row_key, window_lists


def has_beams(record: dict[str, Any]) -> bool:
    return bool((record.get("stats") or {}).get("beam_scores"))


def _overlap(rec: dict, sft: dict | None, cache: dict) -> tuple[float | None, float | None]:
    """(mean items shared with the SFT list, fraction with the same first item), window by window."""
    if sft is None:
        return None, None
    for r in (rec, sft):
        if r["run_id"] not in cache:
            cache[r["run_id"]] = window_lists(r)
    mine, base = cache[rec["run_id"]], cache[sft["run_id"]]
    common = [k for k in mine if k in base]
    if not common:
        return None, None
    shared = np.mean([len(set(mine[k]) & set(base[k])) for k in common])
    first = np.mean([bool(mine[k]) and bool(base[k]) and mine[k][0] == base[k][0] for k in common])
    return float(shared), float(first)


def _beam(rec: dict, rank: int) -> float | None:
    scores = [b["mean_score_by_rank"] for b in rec["stats"].get("beam_scores") or [] if b.get("n_windows")]
    # the last entry is the test split's (validation is decoded first)
    return float(scores[-1][rank - 1]) if scores and len(scores[-1]) >= rank else None


def decoding_table(records: list[dict], profile: str) -> tuple[str, str, list]:
    cache: dict = {}
    body = []
    for d in order_datasets({r["dataset"] for r in records}):
        recs = [r for r in records if r["dataset"] == d]
        sfts = {r["seed"]: r for r in sorted(recs, key=lambda r: r["seed"], reverse=True) if r["role"] == "sft"}
        groups: dict[str, list[dict]] = {}
        for r in sorted(recs, key=lambda r: r["seed"]):
            if r["role"] == "sft" or has_beams(r):
                groups.setdefault(row_key(r), []).append(r)
        order = sorted(groups, key=lambda k: (groups[k][0]["role"] != "sft", groups[k][0]["display_name"].lower()))
        for key in order:
            g = groups[key]
            m = lambda k: mean_of([r["metrics"].get(k) for r in g], 4 if k in ("ndcg@5", "ild", "mgu") else 3)  # noqa
            over = [_overlap(r, sfts.get(r["seed"]) or next(iter(sfts.values()), None), cache)
                    if r["role"] != "sft" else (None, None) for r in g]
            body.append([dataset_name(d), g[0]["display_name"], ",".join(str(r["seed"]) for r in g), m("ndcg@5"),
                         m("duplicate_rate"), m("coverage"), m("ild"), m("mgu"),
                         mean_of([o[0] for o in over], 2), mean_of([o[1] for o in over], 3),
                         mean_of([r.get("tokens_generated_test") for r in g], 0),
                         median_of([r["timings"].get("recommend_s") for r in g], 1),
                         " / ".join(mean_of([_beam(r, k) for r in g], 3) for k in (1, 5, 10))])
    head = ["Dataset", "Method", "Seeds", "N@5", "Dup. rate", "Coverage", "ILD", "MGU", "Shared with SFT (of 10)",
            "Same first item", "Tokens", "Decode s", "Beam score rank 1 / 5 / 10"]
    md, tex = simple_table(f"# Decoding diagnostics ({profile} profile)", head, body, [
        "Test split, means over seeds. Shared / same first item: against the SFT model's greedy list of the same "
        "window (the SFT record of the same seed). Tokens and decode s: the whole test split (decode s: the median "
        "over seeds, so that one run slowed by a shared machine does not set it). Beam scores: the mean score of each "
        "beam rank as the method ranks beams (lower MGU is better)."])
    return md, tex, body


def render(inp: Inputs) -> list:
    beams = [r for r in inp.records if has_beams(r)]
    if not beams:
        return []
    shown = beams + [r for r in inp.records if r["role"] == "sft" and r["dataset"] in {b["dataset"] for b in beams}]
    md, tex, _ = decoding_table(shown, inp.profile)
    return [Table(md, tex, shown)]


OUTPUT = Output("decoding", "Decoding diagnostics", render)
