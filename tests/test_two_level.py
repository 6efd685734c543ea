"""The two-level (seed, then user) paired bootstrap every report comparison uses (`two_level_bootstrap`): its
reduction to the user bootstrap, what seed variance does to it, a hand-computed point estimate, and unpaired seeds."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.metrics import paired_bootstrap, two_level_bootstrap

USERS = [f"u{i:02d}" for i in range(20)]


def _random_side(rng: np.random.Generator) -> dict[str, float]:
    return {u: float(rng.random()) for u in USERS}


def test_one_seed_is_exactly_the_user_bootstrap():
    rng = np.random.default_rng(7)
    a, b = _random_side(rng), _random_side(rng)
    w = {u: int(rng.integers(1, 4)) for u in USERS}
    for kwargs in ({}, {"weights": w}):
        user = paired_bootstrap(a, b, n_boot=500, seed=3, **kwargs)
        two = two_level_bootstrap({5: a}, {5: b}, n_boot=500, seed=3,
                                  **({"weights": {5: w}} if kwargs else {}))
        assert {k: two[k] for k in user} == user  # the same rng draws: every number identical
        assert two["n_seeds"] == 1 and two["seeds"] == [5] and two["dropped_seeds"] == [] and two["seed_std"] is None
        one = two_level_bootstrap({5: a}, n_boot=500, seed=3, **({"weights": {5: w}} if kwargs else {}))
        assert {k: one[k] for k in ("mean", "ci_low", "ci_high", "n_users")} == paired_bootstrap(
            a, n_boot=500, seed=3, **kwargs)
        assert "p_value" not in one


def test_zero_seed_variance_equals_the_user_bootstrap():
    """(a) Every seed has the same per-user values: the seed draw changes nothing, and because the users are crossed
    with the seeds (one user draw shared by the drawn seeds) the user part of the variance is not divided by S: the
    result is the user bootstrap of the pooled values (point estimate exactly, CI / SE / p up to float rounding)."""
    rng = np.random.default_rng(1)
    # dyadic values and integer weights: every mean below is exact in floating point
    a = {u: float(rng.integers(0, 64)) / 64 for u in USERS}
    b = {u: float(rng.integers(0, 64)) / 64 for u in USERS}
    w = {u: int(rng.integers(1, 4)) for u in USERS}
    seeds = (0, 1, 2)
    two = two_level_bootstrap({s: a for s in seeds}, {s: b for s in seeds}, n_boot=2000, seed=0,
                              weights={s: w for s in seeds})
    user = paired_bootstrap(a, b, n_boot=2000, seed=0, weights=w)
    assert two["mean"] == user["mean"]
    assert two["ci_low"] == pytest.approx(user["ci_low"], abs=1e-12)
    assert two["ci_high"] == pytest.approx(user["ci_high"], abs=1e-12)
    assert two["p_value"] == user["p_value"]
    one_seed = two_level_bootstrap({0: a}, {0: b}, n_boot=2000, seed=0, weights={0: w})
    assert two["se"] == pytest.approx(one_seed["se"], abs=1e-12) and two["se"] > 0
    assert two["seed_std"] == 0.0 and two["n_seeds"] == 3 and two["n_users"] == len(USERS)


def test_seed_variance_dominates():
    """(b) Per-user differences constant within a seed, +d in seeds 0 and 2 and −d in seed 1: the user-only bootstrap
    of the seed-pooled values sees a constant d/3 (a zero-width CI, p = 0), the two-level bootstrap sees three seeds
    of ±d: its CI spans [−d, +d] and covers 0, its SE is near the seed mean's sqrt(8/27) d."""
    d = 0.05
    base = {u: 0.2 + 0.01 * i for i, u in enumerate(USERS)}  # users differ; the difference does not
    a = {s: {u: v + sign * d for u, v in base.items()} for s, sign in ((0, 1), (1, -1), (2, 1))}
    b = {s: dict(base) for s in a}
    two = two_level_bootstrap(a, b, n_boot=4000, seed=0)
    pooled_a = {u: float(np.mean([a[s][u] for s in a])) for u in USERS}
    user = paired_bootstrap(pooled_a, base, n_boot=4000, seed=0)
    assert user["mean"] == pytest.approx(d / 3) and user["ci_high"] - user["ci_low"] < 1e-12 and user["p_value"] == 0
    assert two["mean"] == pytest.approx(d / 3)
    assert two["ci_low"] == pytest.approx(-d) and two["ci_high"] == pytest.approx(d)  # all −d: 1/27 > 2.5 %
    assert two["ci_low"] < 0 < two["ci_high"] and two["p_value"] > 0.05
    assert two["se"] == pytest.approx(math.sqrt(8 / 27) * d, rel=0.05)
    assert two["seed_std"] == pytest.approx(np.std([d, -d, d], ddof=1))
    # +d in one seed, −d in the other: the mean is 0, p = 1 by convention, the CI is [−d, +d]
    sym = two_level_bootstrap({0: a[0], 1: a[1]}, {0: base, 1: base}, n_boot=4000, seed=0)
    assert sym["mean"] == pytest.approx(0, abs=1e-12) and sym["p_value"] == 1.0
    assert sym["ci_low"] == pytest.approx(-d) and sym["ci_high"] == pytest.approx(d)


def test_point_estimate_by_hand():
    """(c) Two seeds, u1 with 2 windows and u2 with 1. Seed 0: differences +0.25 (u1), −0.25 (u2): window mean
    (2 × 0.25 − 0.25) / 3 = 1/12. Seed 1: +0.5, −0.5: (2 × 0.5 − 0.5) / 3 = 1/6. Mean over seeds 1/8; std over seeds
    (1/6 − 1/12) / sqrt(2)."""
    a = {0: {"u1": 0.5, "u2": 0.25}, 1: {"u1": 1.0, "u2": 0.0}}
    b = {0: {"u1": 0.25, "u2": 0.5}, 1: {"u1": 0.5, "u2": 0.5}}
    w = {0: {"u1": 2, "u2": 1}, 1: {"u1": 2, "u2": 1}}
    res = two_level_bootstrap(a, b, n_boot=200, seed=0, weights=w)
    assert res["per_seed"] == {0: pytest.approx(1 / 12), 1: pytest.approx(1 / 6)}
    assert res["mean"] == pytest.approx(1 / 8)
    assert res["seed_std"] == pytest.approx((1 / 12) / math.sqrt(2))
    assert res["n_seeds"] == 2 and res["n_users"] == 2
    # a replicate is a mean of per-seed window means over one user draw: it lies between the extremes
    assert -0.5 <= res["ci_low"] <= res["mean"] <= res["ci_high"] <= 0.5
    # the one-sample CI of a cell: seed 0 (2 × 0.5 + 0.25) / 3 = 5/12, seed 1 (2 × 1.0 + 0) / 3 = 2/3: mean 13/24
    assert two_level_bootstrap(a, n_boot=200, weights=w)["mean"] == pytest.approx(13 / 24)


def test_unpaired_seed_is_dropped_and_no_common_seed_is_refused():
    """(d) Seed s of a is paired with seed s of b: a seed on one side only is dropped (and listed), which gives the
    same result as leaving it out; no common seed is an error naming both sides' seeds."""
    rng = np.random.default_rng(3)
    a = {s: _random_side(rng) for s in (0, 1, 2)}
    b = {s: _random_side(rng) for s in (0, 1, 4)}
    res = two_level_bootstrap(a, b, n_boot=300, seed=0)
    same = two_level_bootstrap({s: a[s] for s in (0, 1)}, {s: b[s] for s in (0, 1)}, n_boot=300, seed=0)
    assert res["dropped_seeds"] == [2, 4] and res["seeds"] == [0, 1]
    assert {k: v for k, v in res.items() if k != "dropped_seeds"} == {k: v for k, v in same.items()
                                                                     if k != "dropped_seeds"}
    with pytest.raises(ValueError, match=r"no seed on both sides \(a has seeds \[0, 1, 2\], b has seeds \[7\]\)"):
        two_level_bootstrap(a, {7: b[0]})


def test_refuses_unpaired_users_and_bad_weights():
    a = {0: {"u1": 0.1, "u2": 0.2}}
    with pytest.raises(ValueError, match="different users in seed 0"):
        two_level_bootstrap(a, {0: {"u1": 0.1, "u3": 0.2}})
    with pytest.raises(ValueError, match="weights of seed 0"):
        two_level_bootstrap(a, a, weights={0: {"u1": 1}})
    with pytest.raises(ValueError, match="at least one seed"):
        two_level_bootstrap({})


def test_seeds_may_lack_users_and_the_result_is_deterministic():
    """A seed without a user (an undefined MGU window) gives that user weight 0 in that seed only."""
    a = {0: {"u1": 0.5, "u2": 0.25, "u3": 0.0}, 1: {"u1": 0.75, "u2": 0.5}}
    res = two_level_bootstrap(a, n_boot=300, seed=1)
    assert res["per_seed"] == {0: pytest.approx(0.25), 1: pytest.approx(0.625)} and res["n_users"] == 3
    assert res == two_level_bootstrap(a, n_boot=300, seed=1)
    assert res["ci_low"] != two_level_bootstrap(a, n_boot=300, seed=2)["ci_low"] or \
        res["ci_high"] != two_level_bootstrap(a, n_boot=300, seed=2)["ci_high"]
