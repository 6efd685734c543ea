"""The Bayesian dynamic CDF estimator of BLADE (paper Eq. 11-15, Algorithm 1) and its static special case.

For a candidate list with reward r_i in a group of G rollouts for one prompt, and that prompt's static reference set
of M rewards sampled once from pi_ref:

    F_i = (N_ref(<r_i) + tau * N_batch(<r_i) + s) / (M + tau * G + s)          (Eq. 14, with smoothing s)
    r_i' = (N - 1) * log F_i                                                     (Eq. 15)

* Counts are STRICT ("<"), as in Algorithm 1 and vBoN's left `searchsorted`; j = i contributes 0 to N_batch.
* ``smoothing="add_one"`` (s = 1, the vBoN code's (k+1)/(M+1)) keeps log F finite: with NDCG/Recall most lists score
  exactly 0, so the lowest reward of a group usually has no reference reward below it. ``"none"`` (s = 0) is the
  paper's formula verbatim and raises on log 0.
* tau = 0 is static BoN alignment (vBoN); M = 0 is the "No Prior" ablation (Fig. 6). With M = 0 Eq. 14 is
  tau*n_b / (tau*G) = n_b / G for every tau > 0, so the smoothing is applied to that ratio: (n_b + s) / (G + s).
  Smoothing the tau-weighted counts instead, (tau*n_b + 1)/(tau*G + 1), would make "No Prior" depend on tau, which
  Eq. 14 does not (tests/test_estimator.py: hand-computed at tau 0.1 and 1.0).
* With add-one smoothing a candidate above every reference reward gets F < 1 once tau > 0 (no saturation), and two
  such candidates stay ordered: (M + tau*n_b + 1)/(M + tau*G + 1) grows with n_b.
"""

from __future__ import annotations

import torch


def strict_counts_below(values: torch.Tensor, sorted_ref: torch.Tensor) -> torch.Tensor:
    """N_ref(<v): for each row p and value values[p, i], the number of sorted_ref[p, :] strictly below it."""
    if sorted_ref.shape[-1] == 0:
        return torch.zeros_like(values, dtype=torch.long)
    return torch.searchsorted(sorted_ref.contiguous(), values.contiguous(), side="left")


def batch_counts_below(rewards: torch.Tensor) -> torch.Tensor:
    """N_batch(<r_i) = sum_j 1[r_j < r_i] within each row (group) of `rewards` [P, G]."""
    return (rewards.unsqueeze(1) < rewards.unsqueeze(2)).sum(-1)


def bayes_cdf(rewards: torch.Tensor, sorted_ref: torch.Tensor, tau: float, smoothing: str = "add_one") -> torch.Tensor:
    """F_i of Eq. 14 for every rollout.

    Args:
        rewards: [P, G] raw list rewards of the G rollouts of each of P prompts.
        sorted_ref: [P, M] each prompt's reference rewards, sorted ascending (M may be 0).
        tau: dynamic coefficient (>= 0). 0 = static BoN alignment.
        smoothing: "add_one" or "none".
    """
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    if smoothing not in ("add_one", "none"):
        raise ValueError(f"smoothing must be 'add_one' or 'none', got {smoothing!r}")
    P, G = rewards.shape
    M = sorted_ref.shape[-1]
    s = 1.0 if smoothing == "add_one" else 0.0
    n_batch = batch_counts_below(rewards).to(torch.float64)
    if M == 0:  # "No Prior": Eq. 14 is n_b / G for any tau > 0 (module docstring)
        if tau == 0:
            raise ValueError("M = 0 and tau = 0: the estimator has no evidence (0/0). Set M >= 1 or tau > 0")
        return ((n_batch + s) / (G + s)).to(torch.float32)
    n_ref = strict_counts_below(rewards, sorted_ref).to(torch.float64)
    return ((n_ref + tau * n_batch + s) / (M + tau * G + s)).to(torch.float32)


def proxy_reward(cdf: torch.Tensor, n: int) -> torch.Tensor:
    """r_i' = (N - 1) log F_i (Eq. 15). Raises if some F is 0 (only possible with smoothing "none")."""
    if (cdf <= 0).any():
        raise ValueError("log F = -inf: a reward has no reference or batch reward below it. Use smoothing='add_one'")
    return (n - 1) * torch.log(cdf)


def zero_spread_fraction(rewards: torch.Tensor) -> float:
    """Fraction of groups (rows) whose rewards are all equal: such groups give GRPO no learning signal."""
    return float((rewards.max(1).values == rewards.min(1).values).float().mean())
