"""List-wise rewards R(y) for alignment (design.md §5): NDCG@K / Recall@K against the window's targets, the RQ3
composites R_fair = NDCG - lambda * MGU (Eq. 18) and R_div = NDCG + lambda * ILD (Eq. 19), and the fairness objective
alone, R = -MGU ("neg_mgu", Fig. 7).

Reward and metric use the same functions, so they agree (benchmark/metrics.py states the conventions): a list that
leaves the genre space has MGU 2/|C|, the worst, in both. What stays undefined counts as 0 here, where it cannot be
gained: an MGU undefined because the HISTORY has no genre-bearing item is undefined for every list of the window (the
term is the same constant for the whole group), and an undefined ILD (< 2 genre-bearing items) counts as 0, the
lowest diversity."""

from __future__ import annotations

from collections.abc import Sequence

from benchmark.metrics import ild, mgu, ndcg_at_k, recall_at_k

REWARDS = ("ndcg", "recall", "fair", "div", "neg_mgu")


def list_reward(kind: str, items: Sequence[int], target: Sequence[int], history: Sequence[int] = (),
                item_genres=None, genre_set=(), k: int = 10, lam: float = 0.5) -> float:
    """R(y) of one generated list `items` (item indices, -1 = invalid) for a window."""
    if kind == "ndcg":
        return ndcg_at_k(items, target, k)
    if kind == "recall":
        return recall_at_k(items, target, k)
    if kind == "fair":
        return ndcg_at_k(items, target, k) - lam * (mgu(items[:k], history, item_genres, genre_set) or 0.0)
    if kind == "div":
        return ndcg_at_k(items, target, k) + lam * (ild(items[:k], item_genres) or 0.0)
    if kind == "neg_mgu":  # no relevance term: the target is not read
        return -(mgu(items[:k], history, item_genres, genre_set) or 0.0)
    raise ValueError(f"unknown reward {kind!r}; valid: {', '.join(REWARDS)}")
