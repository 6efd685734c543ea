"""Metrics against hand-computed values (the arithmetic is in the comments). log2(3) = 1.58496, so
1/log2(3) = 0.63093, 1/log2(4) = 0.5, 1/log2(5) = 0.43068."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from benchmark.metrics import (
    HIGHER_IS_BETTER,
    K_VALUES,
    _genre_distribution,
    ild,
    mgu,
    ndcg_at_k,
    paired_bootstrap,
    recall_at_k,
    score_lists,
    user_means,
)

D2, D3, D4, D5 = 1.0, 1 / math.log2(3), 0.5, 1 / math.log2(5)  # discounts at positions 1..4

# Items 0..7 and their genres; item 3 has none; item 5 also has a genre outside C (mgu must drop it).
C = ("A", "B", "C")
GENRES = [
    frozenset({"A"}),  # 0
    frozenset({"B"}),  # 1
    frozenset({"A", "B"}),  # 2
    frozenset(),  # 3
    frozenset({"C"}),  # 4
    ("A", "Z"),  # 5 (tuples are accepted too)
    frozenset({"A", "B"}),  # 6
    frozenset({"C"}),  # 7
]


@dataclass(frozen=True)
class W:
    user: str
    history: tuple[int, ...]
    target: tuple[int, ...]


# --- Recall / NDCG --------------------------------------------------------------------------------------------


def test_recall_ndcg_basic():
    ranked, target = [5, 1, 7, 2], {1, 2, 9}
    # k=3: only item 1 (position 2) hits. Recall = 1/3. DCG = 1/log2(3); IDCG over min(3, 3) = 3 positions.
    assert recall_at_k(ranked, target, 3) == pytest.approx(1 / 3)
    assert ndcg_at_k(ranked, target, 3) == pytest.approx(D3 / (D2 + D3 + D4))  # 0.63093 / 2.13093 = 0.29608
    # k=5: item 2 at position 4 also hits. Recall = 2/3; DCG = 1/log2(3) + 1/log2(5).
    assert recall_at_k(ranked, target, 5) == pytest.approx(2 / 3)
    assert ndcg_at_k(ranked, target, 5) == pytest.approx((D3 + D5) / (D2 + D3 + D4))  # 1.06161 / 2.13093 = 0.49819


def test_duplicate_is_a_miss_in_its_position():
    # [1, 1, 2], T = {1, 2}: hits at positions 1 and 3; the repeat at 2 is a miss.
    # Recall@3 = 2/2 = 1. DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) = 1.63093 -> NDCG = 0.91972.
    assert recall_at_k([1, 1, 2], {1, 2}, 3) == 1.0
    assert ndcg_at_k([1, 1, 2], {1, 2}, 3) == pytest.approx(1.5 / (D2 + D3))
    # Only a repeat of a hit: [1, 1], T = {1} -> Recall@2 = 1 (credited once), NDCG = 1.
    assert recall_at_k([1, 1], {1}, 2) == 1.0
    assert ndcg_at_k([1, 1], {1}, 2) == 1.0


def test_invalid_entries_stay_in_place():
    # [-1, 3, -1], T = {3}: the hit stays at position 2 (compacting would move it to 1 and give NDCG 1).
    # DCG = 1/log2(3); IDCG over min(3, 1) = 1 position = 1 -> NDCG = 0.63093.
    assert recall_at_k([-1, 3, -1], {3}, 3) == 1.0
    assert ndcg_at_k([-1, 3, -1], {3}, 3) == pytest.approx(D3)
    assert recall_at_k([-1, -1, -1], {3}, 3) == 0.0


def test_target_smaller_than_k():
    # |T| = 1 < k = 5: IDCG has one position, so a hit at rank 1 gives NDCG 1 and Recall 1.
    assert ndcg_at_k([4, 0, 1, 2, 6], {4}, 5) == 1.0
    assert recall_at_k([4, 0, 1, 2, 6], {4}, 5) == 1.0
    # Hit at rank 2: NDCG = 1/log2(3) / 1.
    assert ndcg_at_k([0, 4], {4}, 5) == pytest.approx(D3)


def test_list_shorter_than_k_and_empty_list():
    # [8], T = {8, 9}, k = 5: Recall = 1/2; DCG = 1; IDCG = 1 + 1/log2(3) -> 0.61315.
    assert recall_at_k([8], {8, 9}, 5) == 0.5
    assert ndcg_at_k([8], {8, 9}, 5) == pytest.approx(1 / (D2 + D3))
    assert recall_at_k([], {8}, 5) == 0.0
    assert ndcg_at_k([], {8}, 5) == 0.0


def test_target_is_a_set_and_empty_target_raises():
    # (3, 3, 4) has 2 distinct items: finding 3 gives Recall 1/2.
    assert recall_at_k([3], (3, 3, 4), 3) == 0.5
    with pytest.raises(ValueError, match="empty target"):
        recall_at_k([1], (), 3)
    with pytest.raises(ValueError, match="empty target"):
        ndcg_at_k([1], set(), 3)


# --- MGU -------------------------------------------------------------------------------------------------------


def test_mgu_hand_computed():
    # L = [0, 2, 3, -1]: item 0 {A} gives A += 1; item 2 {A, B} gives A += .5, B += .5; item 3 (no genre) and
    # -1 are skipped. Two genre-bearing items: P(A|L) = 1.5/2 = .75, P(B|L) = .25, P(C|L) = 0.
    # H = [1, 4, 5]: B += 1, C += 1, A += 1 (item 5's "Z" is outside C). P = 1/3 each.
    # MGU = (|.75 - 1/3| + |.25 - 1/3| + |0 - 1/3|) / 3 = (5/12 + 1/12 + 4/12) / 3 = 5/18 = 0.27778.
    assert mgu([0, 2, 3, -1], [1, 4, 5], GENRES, C) == pytest.approx(5 / 18)


def test_mgu_identical_distributions_and_duplicates():
    # L = [2, 2] -> A .5, B .5 (duplicates add mass again, same shares); H = [0, 1] -> A .5, B .5 -> MGU 0.
    assert mgu([2, 2], [0, 1], GENRES, C) == pytest.approx(0.0)
    # L = [0, 0, 1] -> A 2/3, B 1/3; H = [0, 1] -> A .5, B .5. MGU = (1/6 + 1/6 + 0) / 3 = 1/9.
    assert mgu([0, 0, 1], [0, 1], GENRES, C) == pytest.approx(1 / 9)


def test_mgu_single_genre():
    # With C = {A}, every defined distribution is P(A) = 1, so MGU = 0; items without A are skipped.
    assert mgu([0, 4], [2, 6], GENRES, ("A",)) == 0.0
    # Only item 4 ({C}) in L: no item bears a genre of {A}: the list left the genre space -> 2/|C| = 2.
    assert mgu([4], [0], GENRES, ("A",)) == 2.0


def test_mgu_a_list_that_leaves_the_genre_space_gets_the_worst_value():
    # no genre-bearing item in L (item 3 has none, -1 is invalid, an empty list has none) while H has: 2/|C| = 2/3,
    # above any list that keeps genres (here L = [4] {C} against H = [0, 1] {A}, {B}: (1/2 + 1/2 + 1)/3 = 2/3 is the max)
    assert mgu([3, -1], [0, 1], GENRES, C) == pytest.approx(2 / 3)
    assert mgu([], [0], GENRES, C) == pytest.approx(2 / 3)
    assert mgu([4], [0, 1], GENRES, C) == pytest.approx(2 / 3)
    assert mgu([0], [3], GENRES, C) is None  # no genre-bearing item in H: undefined for every list


def test_mgu_both_readings_of_normalised_frequency():
    # L = [2, 0]: item 2 {A, B}, item 0 {A}; H = [1] {B}.
    # "split" (default): A = .5 + 1 = 1.5, B = .5 over 2 items -> P(A|L) = .75, P(B|L) = .25;
    #   MGU = (|.75 - 0| + |.25 - 1| + 0) / 3 = 1.5/3 = 0.5
    # "count": pairs (2,A), (2,B), (0,A) -> P(A|L) = 2/3, P(B|L) = 1/3; MGU = (2/3 + 2/3 + 0) / 3 = 4/9
    assert _genre_distribution([2, 0], GENRES, frozenset(C)) == pytest.approx({"A": 0.75, "B": 0.25})
    assert _genre_distribution([2, 0], GENRES, frozenset(C), "count") == pytest.approx({"A": 2 / 3, "B": 1 / 3})
    assert mgu([2, 0], [1], GENRES, C) == pytest.approx(0.5)
    assert mgu([2, 0], [1], GENRES, C, multi_genre="count") == pytest.approx(4 / 9)
    with pytest.raises(ValueError, match="multi_genre"):
        mgu([2, 0], [1], GENRES, C, multi_genre="pairs")


# --- ILD -------------------------------------------------------------------------------------------------------


def test_ild_hand_computed():
    # Genre-bearing entries of [0, 2, 4, 3, -1]: {A}, {A,B}, {C}.
    # d({A},{A,B}) = 1 - 1/2 = .5; d({A},{C}) = 1; d({A,B},{C}) = 1. Mean over 3 pairs = 2.5/3 = 0.83333
    # (the 6 ordered pairs give 5/6 as well).
    assert ild([0, 2, 4, 3, -1], GENRES) == pytest.approx(2.5 / 3)


def test_ild_duplicates_kept():
    # [0, 0, 1]: {A},{A},{B}: distances 0, 1, 1 -> 2/3.
    assert ild([0, 0, 1], GENRES) == pytest.approx(2 / 3)


def test_ild_identical_genre_sets_is_zero():
    assert ild([2, 6], GENRES) == 0.0  # distinct items, both {A, B}
    assert ild([4, 7, 4], GENRES) == 0.0


def test_ild_fewer_than_two_is_none():
    assert ild([0, 3, -1], GENRES) is None
    assert ild([0], GENRES) is None
    assert ild([], GENRES) is None


# --- score_lists -----------------------------------------------------------------------------------------------


def test_score_lists_hand_computed():
    windows = [W("u1", (0, 1), (1, 2)), W("u2", (4,), (7,))]
    lists = [[2, -1, 2, 1], [3, 5]]
    agg, rows = score_lists(lists, windows, GENRES, C, n_items=8, k_values=(3, 5), list_len=3)

    # W1, ranked [2, -1, 2, 1], T = {1, 2}: k=3 hits only at 1 (position 3 repeats item 2).
    # Recall@3 = 1/2; NDCG@3 = 1 / (1 + 1/log2 3) = 0.61315. k=5 adds item 1 at position 4:
    # Recall@5 = 1; NDCG@5 = (1 + 1/log2 5) / (1 + 1/log2 3) = 0.87722.
    r1 = rows[0]
    assert r1["recall@3"] == 0.5 and r1["ndcg@3"] == pytest.approx(1 / (D2 + D3))
    assert r1["recall@5"] == 1.0 and r1["ndcg@5"] == pytest.approx((D2 + D5) / (D2 + D3))
    # head (list_len 3) = [2, -1, 2]: MGU: L -> A .5, B .5; H = [0, 1] -> A .5, B .5 -> 0. ILD: {A,B} twice -> 0.
    assert r1["mgu"] == pytest.approx(0.0) and r1["ild"] == 0.0
    assert (r1["n_valid"], r1["n_dup"]) == (2, 1)

    # W2, ranked [3, 5] (shorter than k), T = {7}: no hit. MGU: L -> only item 5 -> P(A) = 1; H = [4] -> P(C) = 1;
    # MGU = (1 + 0 + 1) / 3 = 2/3. ILD: one genre-bearing entry -> None.
    r2 = rows[1]
    assert r2["recall@3"] == r2["ndcg@5"] == 0.0
    assert r2["mgu"] == pytest.approx(2 / 3) and r2["ild"] is None
    assert (r2["n_valid"], r2["n_dup"]) == (2, 0)

    assert agg["recall@3"] == pytest.approx(0.25)
    assert agg["ndcg@3"] == pytest.approx(0.5 / (D2 + D3))
    assert agg["recall@5"] == pytest.approx(0.5)
    assert agg["ndcg@5"] == pytest.approx(0.5 * (D2 + D5) / (D2 + D3))
    assert agg["mgu"] == pytest.approx(1 / 3) and agg["mgu_n"] == 2  # (0 + 2/3) / 2
    assert agg["ild"] == 0.0 and agg["ild_n"] == 1  # W2 undefined, excluded
    # Entries in the heads: 3 + 2 = 5; valid 2 + 2 = 4; one repeat.
    assert agg["valid_rate"] == pytest.approx(4 / 5)
    assert agg["duplicate_rate"] == pytest.approx(1 / 5)
    # Distinct valid items in the heads: {2, 3, 5} (item 1 sits at position 4, beyond list_len) -> 3/8.
    assert agg["coverage_items"] == 3 and agg["coverage"] == pytest.approx(3 / 8)
    assert agg["mean_list_len"] == 3.0 and agg["n_windows"] == 2


def test_score_lists_defaults_and_direction_table():
    agg, rows = score_lists([[0, 1]], [W("u", (0,), (1,))], GENRES, C, n_items=8)
    assert set(rows[0]) == {f"{m}@{k}" for m in ("recall", "ndcg") for k in K_VALUES} | {
        "mgu",
        "ild",
        "n_valid",
        "n_dup",
    }
    # every metric with a direction is in the aggregate
    assert set(HIGHER_IS_BETTER) <= set(agg)
    assert HIGHER_IS_BETTER["mgu"] is False and HIGHER_IS_BETTER["ndcg@10"] is True


def test_score_lists_all_undefined_and_empty_lists():
    agg, _ = score_lists([[], [-1]], [W("u", (3,), (1,)), W("v", (0,), (2,))], GENRES, C, n_items=8)
    # u's history (item 3) has no genre: undefined; v's empty-of-genres list against a history with one: 2/|C|
    assert agg["mgu"] == pytest.approx(2 / 3) and agg["mgu_n"] == 1
    agg, _ = score_lists([[], [-1]], [W("u", (3,), (1,)), W("v", (3,), (2,))], GENRES, C, n_items=8)
    assert agg["mgu"] is None and agg["mgu_n"] == 0
    assert agg["ild"] is None and agg["ild_n"] == 0
    assert agg["valid_rate"] == 0.0 and agg["coverage_items"] == 0  # 1 entry, 0 valid
    assert agg["mean_list_len"] == 0.5


def test_score_lists_rejects_bad_input():
    with pytest.raises(ValueError, match="outside"):
        score_lists([[8]], [W("u", (0,), (1,))], GENRES, C, n_items=8)
    with pytest.raises(ValueError, match="outside"):
        score_lists([[-2]], [W("u", (0,), (1,))], GENRES, C, n_items=8)
    with pytest.raises(ValueError, match="lists for"):
        score_lists([[0], [1]], [W("u", (0,), (1,))], GENRES, C, n_items=8)
    with pytest.raises(ValueError, match="empty target"):
        score_lists([[0]], [W("u", (0,), ())], GENRES, C, n_items=8)


# --- user means and bootstrap ----------------------------------------------------------------------------------


def test_user_means():
    # u1: (1 + 0) / 2 = .5; u2's only window is undefined -> left out; u3: .25.
    assert user_means([1.0, 0.0, None, 0.25], ["u1", "u1", "u2", "u3"]) == {"u1": 0.5, "u3": 0.25}


def test_bootstrap_constant_difference_collapses():
    a = {"u1": 0.5, "u2": 0.6, "u3": 0.7}
    b = {u: v - 0.1 for u, v in a.items()}
    # Every resample's mean difference is 0.1: the CI collapses and no resample crosses 0 -> p = 0.
    r = paired_bootstrap(a, b, n_boot=200)
    assert r["mean"] == pytest.approx(0.1)
    assert r["ci_low"] == pytest.approx(0.1) and r["ci_high"] == pytest.approx(0.1)
    assert r["p_value"] == 0.0


def test_bootstrap_identical_systems_p_one():
    a = {"u1": 0.1, "u2": 0.9}
    r = paired_bootstrap(a, dict(a), n_boot=100)
    assert r["mean"] == 0.0 and r["p_value"] == 1.0


def test_bootstrap_one_sample():
    # Two users with values 0 and 1: resample means lie in {0, .5, 1}; the full-sample mean is .5.
    r = paired_bootstrap({"u1": 0.0, "u2": 1.0}, n_boot=1000, seed=3)
    assert r["mean"] == 0.5 and "p_value" not in r
    assert r["ci_low"] == 0.0 and r["ci_high"] == 1.0  # P(both draws equal) = 1/2 > 2.5 % on each side
    assert r == paired_bootstrap({"u1": 0.0, "u2": 1.0}, n_boot=1000, seed=3)  # deterministic


def test_bootstrap_weights_give_the_window_mean():
    # u1 has 3 windows averaging 1.0, u2 one window of 0.0: the window mean is 3/4, the user mean 1/2.
    r = paired_bootstrap({"u1": 1.0, "u2": 0.0}, weights={"u1": 3, "u2": 1}, n_boot=50)
    assert r["mean"] == pytest.approx(0.75)


def test_bootstrap_rejects_unpaired_users():
    with pytest.raises(ValueError, match="different users"):
        paired_bootstrap({"u1": 0.1}, {"u2": 0.1})
    with pytest.raises(ValueError, match="at least one user"):
        paired_bootstrap({})
