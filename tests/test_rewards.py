"""List rewards, checked against hand-computed values (design.md §5, Eq. 18-19, Fig. 7's R = -MGU)."""

import math

import pytest

from methods.common.rewards import REWARDS, list_reward

# items 0-3; genres: 0 {a}, 1 {b}, 2 {a, b}, 3 {c}; C = {a, b, c}
GENRES = [{"a"}, {"b"}, {"a", "b"}, {"c"}]
C = ("a", "b", "c")


def test_neg_mgu_is_minus_mgu_and_ignores_the_target():
    # L = [0, 3]: P(a) = 1/2, P(c) = 1/2. H = [0, 1]: P(a) = 1/2, P(b) = 1/2. MGU = (0 + 1/2 + 1/2) / 3 = 1/3
    r = list_reward("neg_mgu", [0, 3], target=[1], history=[0, 1], item_genres=GENRES, genre_set=C)
    assert r == pytest.approx(-1 / 3)
    assert list_reward("neg_mgu", [0, 3], target=[0, 3], history=[0, 1], item_genres=GENRES, genre_set=C) == r
    # the same genre distribution as the history: MGU 0, the best reward
    assert list_reward("neg_mgu", [1, 0], target=[3], history=[0, 1], item_genres=GENRES, genre_set=C) == 0.0


def test_fair_with_lambda_zero_is_ndcg():
    kw = {"target": [3], "history": [0, 1], "item_genres": GENRES, "genre_set": C}
    assert list_reward("fair", [0, 3], lam=0.0, **kw) == list_reward("ndcg", [0, 3], **kw)
    # NDCG@10 of a hit at rank 2 with one target: 1/log2(3); minus 0.5 * MGU (1/3)
    assert list_reward("fair", [0, 3], lam=0.5, **kw) == pytest.approx(1 / math.log2(3) - 0.5 / 3)


def test_every_reward_is_listed():
    assert REWARDS == ("ndcg", "recall", "fair", "div", "neg_mgu")
    with pytest.raises(ValueError, match="unknown reward 'mgu'"):
        list_reward("mgu", [0], [0])


def test_no_list_gains_reward_by_leaving_the_genre_space():
    genres = [*GENRES, set()]  # item 4 has no genre
    # history [0, 1] ({a}, {b}); the list [4] has no genre-bearing item: MGU 2/|C| = 2/3, the worst, in the metric
    # and in the reward, so R_fair (lam 0.5, NDCG 0) = -1/3; every list that keeps genres gets at least that:
    # [3] ({c}: (1/2 + 1/2 + 1)/3 = 2/3, equal), [2] ({a, b}: MGU 0 -> 0), [0] ({a}: (1/2 + 1/2)/3 -> -1/6)
    leave = list_reward("fair", [4], target=[7], history=[0, 1], item_genres=genres, genre_set=C, lam=0.5)
    assert leave == pytest.approx(-1 / 3)
    for keeps, want in (([3], -1 / 3), ([2], 0.0), ([0], -1 / 6)):
        assert list_reward("fair", keeps, target=[7], history=[0, 1], item_genres=genres, genre_set=C,
                           lam=0.5) == pytest.approx(want)
    assert list_reward("neg_mgu", [4], target=[7], history=[0, 1], item_genres=genres, genre_set=C) == \
        pytest.approx(-2 / 3)
    # a history without genres: undefined for every list, the same constant 0 for all
    assert list_reward("fair", [4], target=[7], history=[4], item_genres=genres, genre_set=C) == \
        list_reward("fair", [2], target=[7], history=[4], item_genres=genres, genre_set=C) == 0.0
