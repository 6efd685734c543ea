"""BLADE's Bayesian dynamic estimator (Eq. 14-15) against hand-computed values."""

import math

import pytest
import torch

from methods.common.estimator import bayes_cdf, batch_counts_below, proxy_reward, zero_spread_fraction

T = torch.tensor


def test_ties_use_strict_counts():
    # rewards (0.5, 0.5, 0.2), reference (0.1, 0.5, 0.9), tau = 1, G = 3, M = 3, add-one:
    #   N_ref(<0.5) = 1, N_batch(<0.5) = 1 (only 0.2; the tied 0.5 does not count)  -> (1 + 1 + 1) / (3 + 3 + 1) = 3/7
    #   N_ref(<0.2) = 1, N_batch(<0.2) = 0                                          -> (1 + 0 + 1) / 7 = 2/7
    f = bayes_cdf(T([[0.5, 0.5, 0.2]]), T([[0.1, 0.5, 0.9]]), tau=1.0)
    assert f.tolist()[0] == pytest.approx([3 / 7, 3 / 7, 2 / 7])
    assert batch_counts_below(T([[0.5, 0.5, 0.2]])).tolist() == [[1, 1, 0]]


def test_all_zero_group_gets_equal_values_and_no_signal():
    # every reward 0, every reference 0: N_ref = N_batch = 0 -> F = 1 / (4 + 0.5*2 + 1) = 1/6 for both
    f = bayes_cdf(T([[0.0, 0.0]]), T([[0.0, 0.0, 0.0, 0.0]]), tau=0.5)
    assert f.tolist()[0] == pytest.approx([1 / 6, 1 / 6])
    assert zero_spread_fraction(T([[0.0, 0.0], [0.1, 0.3]])) == 0.5


def test_candidates_above_every_reference_do_not_saturate_and_stay_ordered():
    # reference (0.1, 0.2), rewards (0.9, 0.8), tau = 0.5, G = 2, M = 2:
    #   F(0.9) = (2 + 0.5*1 + 1) / (2 + 1 + 1) = 3.5/4 = 0.875 ; F(0.8) = (2 + 0 + 1) / 4 = 0.75
    f = bayes_cdf(T([[0.9, 0.8]]), T([[0.1, 0.2]]), tau=0.5)
    assert f.tolist()[0] == pytest.approx([0.875, 0.75])
    assert (f < 1).all() and f[0, 0] > f[0, 1]
    # the static estimator saturates both at (2 + 1) / (2 + 1) = 1: indiscriminate supervision (paper Eq. 8)
    assert bayes_cdf(T([[0.9, 0.8]]), T([[0.1, 0.2]]), tau=0.0).tolist()[0] == [1.0, 1.0]


def test_tau_zero_is_the_static_estimator():
    r, ref = T([[0.3, 0.0, 0.7, 0.3]]), T([[0.0, 0.1, 0.3, 0.5, 0.6]])
    # static: (N_ref(<r) + 1) / (M + 1): 0.3 -> (2+1)/6, 0.0 -> 1/6, 0.7 -> 6/6
    assert bayes_cdf(r, ref, tau=0.0).tolist()[0] == pytest.approx([0.5, 1 / 6, 1.0, 0.5])


def test_m_zero_is_no_prior_eq14_whatever_tau():
    # M = 0: Eq. 14 is tau*n_b / (tau*G) = n_b / G; add-one smoothing on that ratio: (n_b + 1) / (G + 1).
    # rewards (0.2, 0.5, 0.1), G = 3: n_b = (1, 2, 0) -> 2/4, 3/4, 1/4 at tau 0.1 and at tau 1.0 alike
    # (the old (tau*n_b + 1)/(tau*G + 1) gave 1.1/1.3, 1.2/1.3, 1/1.3 at tau 0.1)
    for tau in (0.1, 1.0):
        f = bayes_cdf(T([[0.2, 0.5, 0.1]]), torch.empty(1, 0), tau=tau)
        assert f.tolist()[0] == pytest.approx([0.5, 0.75, 0.25])
    # without smoothing: exactly n_b / G = 1/3, 2/3, 0 (log 0 for the lowest: proxy_reward raises)
    f = bayes_cdf(T([[0.2, 0.5, 0.1]]), torch.empty(1, 0), tau=0.1, smoothing="none")
    assert f.tolist()[0] == pytest.approx([1 / 3, 2 / 3, 0.0])
    with pytest.raises(ValueError, match="no evidence"):
        bayes_cdf(T([[0.2, 0.5]]), torch.empty(1, 0), tau=0.0)


def test_paper_formula_without_smoothing_and_log_zero():
    # no smoothing: F = (N_ref + tau*N_batch) / (M + tau*G): (0 + 0)/(2 + 2) = 0 for the lowest -> log 0 raises
    f = bayes_cdf(T([[0.0, 1.0]]), T([[0.5, 0.5]]), tau=1.0, smoothing="none")
    assert f.tolist()[0] == pytest.approx([0.0, (2 + 1) / 4])
    with pytest.raises(ValueError, match="log F = -inf"):
        proxy_reward(f, n=4)
    with pytest.raises(ValueError, match="0/0"):
        bayes_cdf(T([[0.0, 1.0]]), torch.empty(1, 0), tau=0.0, smoothing="none")
    with pytest.raises(ValueError, match="0/0"):
        bayes_cdf(T([[0.0, 1.0]]), torch.empty(1, 0), tau=0.0, smoothing="add_one")


def test_log_f_is_finite_everywhere_with_add_one():
    g = torch.Generator().manual_seed(0)
    r = (torch.rand(64, 16, generator=g) * 4).floor() / 4  # many ties and zeros
    ref = ((torch.rand(64, 32, generator=g) * 4).floor() / 4).sort(-1).values
    for tau in (0.0, 0.1, 0.3, 1.0):
        p = proxy_reward(bayes_cdf(r, ref, tau), n=4)
        assert torch.isfinite(p).all()


def test_proxy_reward_value():
    # (N-1) log F with N = 4, F = 0.5 -> 3 * ln 0.5
    assert proxy_reward(T([[0.5]]), 4).item() == pytest.approx(3 * math.log(0.5))


def test_rows_are_independent_groups():
    r = T([[1.0, 0.0], [0.0, 1.0]])
    ref = T([[0.5], [0.5]])
    f = bayes_cdf(r, ref, tau=1.0)
    # row 0: F(1) = (1 + 1 + 1)/(1 + 2 + 1) = 3/4, F(0) = 1/4 ; row 1 mirrored
    assert f.tolist() == [pytest.approx([0.75, 0.25]), pytest.approx([0.25, 0.75])]


def test_negative_tau_rejected():
    with pytest.raises(ValueError):
        bayes_cdf(T([[0.0]]), T([[0.0]]), tau=-0.1)


def test_n_does_not_change_group_normalised_advantages():
    # TRL's scale_rewards="group": A = (r - mean_g) / (std_g + 1e-4). The proxy (N - 1) log F scales with N - 1, so the
    # advantages are the same for every N up to the 1e-4 (why N is not a knob there; docs/archive/benchmarks_old_protocol.md §2.5).
    f = bayes_cdf(T([[0.0, 0.3, 0.6, 0.9], [0.1, 0.1, 0.2, 0.0]]), T([[0.1, 0.2, 0.5], [0.0, 0.1, 0.3]]), tau=0.3)

    def adv(n):
        r = proxy_reward(f, n)
        return (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)

    assert torch.allclose(adv(2), adv(8), atol=1e-3)
    assert not torch.allclose(proxy_reward(f, 2), proxy_reward(f, 8))
