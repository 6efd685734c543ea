"""List-wise recommendation metrics (design.md §3): Recall@K, NDCG@K, MGU (Eq. 16), ILD (Eq. 17), list
quality rates, the paired user bootstrap and its two-level (seed, then user) extension. Pure Python + numpy.

Conventions (every method is scored by these, so they are fixed here):

* Items are int indices into the dataset's catalogue. ``-1`` marks an invalid (ungrounded) entry.
* Lists are never compacted: an invalid entry stays in its position and counts as a miss, so a list with
  an ungrounded title at rank 1 cannot shift its later hits up.
* A repeated item is a miss in its position: a hit is credited once, at its first occurrence. (Equivalent to
  "duplicates removed, kept as misses in place".)
* Lists shorter than k are fine: the missing positions are misses. An empty list scores 0.
* The target is a set: |T| counts distinct items. An empty target raises ``ValueError`` (the data layer never
  produces one).
* MGU/ILD use genre sets restricted to the dataset's genre set; invalid entries and items without a genre in
  it are skipped. Duplicates are kept (they are part of the list the user sees): in MGU they add mass again,
  in ILD a duplicate pair has distance 0. MGU/ILD are ``None`` when undefined (MGU: the list or the history
  has no genre-bearing item; ILD: fewer than 2 genre-bearing entries), and undefined windows are excluded from
  the means (the aggregate reports how many windows were defined: ``mgu_n``, ``ild_n``).
* MGU, ILD, valid/duplicate rates and coverage use the first ``list_len`` entries of each list; Recall/NDCG@k
  use the first k.
* Every float sum runs in a fixed order (genres sorted, never in set order), so metrics are bit-identical across
  processes whatever PYTHONHASHSEED is.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

K_VALUES = (3, 5, 10)

# Direction of every metric key in the aggregate (used by reports/ to mark best values). Counts such as
# ``n_windows``, ``mgu_n``, ``ild_n`` and ``mean_list_len`` are bookkeeping, not metrics, and are not listed.
HIGHER_IS_BETTER: dict[str, bool] = {
    **{f"recall@{k}": True for k in K_VALUES},
    **{f"ndcg@{k}": True for k in K_VALUES},
    "mgu": False,  # a distance between genre distributions: lower is fairer
    "ild": True,
    "valid_rate": True,
    "duplicate_rate": False,
    "coverage": True,
    "coverage_items": True,
}

def _target_set(target: Collection[int]) -> set[int]:
    t = set(target)
    if not t:
        raise ValueError("empty target: every window must have at least one target item")
    return t


def _hits(ranked: Sequence[int], target: set[int], k: int) -> list[int]:
    """1-based positions i <= k whose item is a first-occurrence hit (invalid -1 is never in the target)."""
    seen: set[int] = set()
    pos = []
    for i, item in enumerate(ranked[:k], start=1):
        if item in target and item not in seen:
            pos.append(i)
        seen.add(item)
    return pos


def recall_at_k(ranked: Sequence[int], target: Collection[int], k: int) -> float:
    """Recall@k = |top-k(y) ∩ T| / |T| (conventions in the module docstring).

    Args:
        ranked: the generated list, best first; ``-1`` marks an invalid entry.
        target: the window's target items (a set; duplicates are ignored).
        k: the cut-off.

    Returns:
        The fraction of distinct target items found in the first k positions.
    """
    t = _target_set(target)
    return len(_hits(ranked, t, k)) / len(t)


def ndcg_at_k(ranked: Sequence[int], target: Collection[int], k: int) -> float:
    """NDCG@k with binary relevance: DCG@k / IDCG@k (conventions in the module docstring).

    DCG = Σ_{i<=k, y_i ∈ T} 1/log2(i+1) with i 1-based; IDCG is the DCG of min(k, |T|) hits at the top.

    Args:
        ranked: the generated list, best first; ``-1`` marks an invalid entry.
        target: the window's target items (a set).
        k: the cut-off.

    Returns:
        A value in [0, 1].
    """
    t = _target_set(target)
    dcg = sum(1.0 / math.log2(i + 1) for i in _hits(ranked, t, k))
    idcg = sum(1.0 / math.log2(i + 1) for i in range(1, min(k, len(t)) + 1))
    return dcg / idcg


MULTI_GENRE = ("split", "count")  # the two readings of "normalised frequency" (see `mgu`)


def _genre_distribution(items: Sequence[int], item_genres: Sequence[Any], genre_set: frozenset,
                        multi_genre: str = "split") -> dict | None:
    """P(c|items) over the genre-bearing items (genres outside `genre_set` dropped); None if there is no such item.

    ``"split"``: each item spreads mass 1 equally over its genres, divided by the number of items.
    ``"count"``: every (item, genre) pair counts 1, divided by the number of pairs."""
    if multi_genre not in MULTI_GENRE:
        raise ValueError(f"multi_genre must be one of {MULTI_GENRE}, got {multi_genre!r}")
    mass: dict[str, float] = {}
    total = 0.0
    for item in items:
        if item < 0:
            continue
        g = frozenset(item_genres[item]) & genre_set
        if not g:
            continue
        total += 1.0 if multi_genre == "split" else len(g)
        for c in sorted(g):  # sorted: float sums must not depend on the string hash seed (PYTHONHASHSEED)
            mass[c] = mass.get(c, 0.0) + (1.0 / len(g) if multi_genre == "split" else 1.0)
    if total == 0:
        return None
    return {c: m / total for c, m in mass.items()}


def mgu(
    ranked: Sequence[int], history: Sequence[int], item_genres: Sequence[Any], genre_set: Collection[str],
    multi_genre: str = "split",
) -> float | None:
    """Mean Group Unfairness (BLADE Eq. 16): (1/|C|) Σ_{c∈C} |P(c|L) − P(c|H)|, of ONE list against its history.

    Conventions (tests/test_metrics.py computes each by hand):

    * P(c|·), "the normalised frequency of genre c", for items with several genres: ``multi_genre="split"`` (the
      default) spreads each genre-bearing item's mass 1 equally over its genres, so P sums to 1 over the ITEMS
      (L = [{A, B}, {A}]: P(A) = 0.75). ``"count"`` counts every (item, genre) pair and divides by all pairs
      (P(A) = 2/3). The source of MGU (Jiang et al., WWW 2024, ref. [19]) does not settle it: its released code
      (JiangM-C/IFairLRS, code/evaluate_all.py) stops at raw per-(item, genre) counts and the only normalisation in
      that repository (a training weight) divides by all pairs, i.e. "count"; SPRec's evaluate.py (RegionCh/SPRec,
      the BLADE authors' group, citing [19] for MGU) spreads 1/|g|, i.e. "split". Since it cannot be determined, the
      reading used before this was checked ("split", the BLADE group's code) is kept.
    * Per list: BLADE's Eq. 18 needs MGU(y) of one list as a reward, so MGU is computed per (list, history) and the
      metric is its mean over windows. (Both source repositories pool all lists and all histories into one pair of
      distributions instead.)
    * A list without any genre-bearing item (it left the genre space) against a history with some gets 2/|C|, the
      largest value MGU takes, in the metric and in the reward alike, so no list gains reward or looks fairer by
      leaving the genre space. A history without genre-bearing items leaves MGU undefined (None) for every list.

    Args:
        ranked: the generated list L (already cut to the list length); ``-1`` entries are skipped.
        history: the window's history H.
        item_genres: genre set per item index.
        genre_set: the dataset's genre set C.
        multi_genre: ``"split"`` or ``"count"`` (see above).

    Returns:
        MGU in [0, 2/|C|], or None when H has no genre-bearing item.
    """
    cs = frozenset(genre_set)
    if not cs:
        raise ValueError("empty genre set: MGU is undefined")
    p_h = _genre_distribution(history, item_genres, cs, multi_genre)
    if p_h is None:
        return None
    p_l = _genre_distribution(ranked, item_genres, cs, multi_genre)
    if p_l is None:
        return 2.0 / len(cs)
    return sum(abs(p_l.get(c, 0.0) - p_h.get(c, 0.0)) for c in sorted(cs)) / len(cs)  # sorted: see above


def ild(ranked: Sequence[int], item_genres: Sequence[Any]) -> float | None:
    """Intra-List Diversity (BLADE Eq. 17): mean Jaccard distance 1 − |g_i∩g_j|/|g_i∪g_j| over pairs i≠j.

    Pairs are taken over the valid, genre-bearing entries; duplicates are kept (their distance is 0). The mean
    over ordered pairs equals the mean over unordered pairs because the distance is symmetric.

    Args:
        ranked: the generated list (already cut to the list length).
        item_genres: genre set per item index (already restricted to the dataset's genre set).

    Returns:
        ILD in [0, 1], or None when fewer than 2 entries are valid and genre-bearing.
    """
    gs = [frozenset(item_genres[i]) for i in ranked if i >= 0]
    gs = [g for g in gs if g]
    n = len(gs)
    if n < 2:
        return None
    total = sum(1.0 - len(gs[a] & gs[b]) / len(gs[a] | gs[b]) for a in range(n) for b in range(a + 1, n))
    return total / (n * (n - 1) / 2)


def score_lists(
    lists: Sequence[Sequence[int]],
    windows: Sequence[Any],
    item_genres: Sequence[Any],
    genre_set: Collection[str],
    n_items: int,
    k_values: Sequence[int] = K_VALUES,
    list_len: int = 10,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Score one list per window and aggregate.

    Args:
        lists: one ranked list of item indices per window (``-1`` = invalid).
        windows: objects with ``.user``, ``.history`` and ``.target`` (tuples of int), aligned with `lists`.
        item_genres: genre set per item index.
        genre_set: the dataset's genre set (for MGU).
        n_items: catalogue size (for coverage and to reject out-of-range indices).
        k_values: cut-offs for Recall/NDCG.
        list_len: how many leading entries MGU, ILD, valid/duplicate rates and coverage look at.

    Returns:
        ``(aggregate, per_window)``. Per window: ``recall@k``, ``ndcg@k``, ``mgu``, ``ild`` (may be None),
        ``n_valid``, ``n_dup``. Aggregate (full precision): means of ``recall@k``/``ndcg@k`` over windows,
        ``mgu``/``ild`` means over windows where defined (None if none) with counts ``mgu_n``/``ild_n``,
        ``valid_rate``, ``duplicate_rate`` (both over all entries in the first `list_len` positions; 0.0 if
        there are none), ``coverage`` and ``coverage_items``, ``mean_list_len`` (of the full lists) and
        ``n_windows``.

    Raises:
        ValueError: mismatched lengths, no windows, an empty target, or an item index outside [-1, n_items).
    """
    if len(lists) != len(windows):
        raise ValueError(f"{len(lists)} lists for {len(windows)} windows")
    if not windows:
        raise ValueError("no windows to score")
    genres = [frozenset(g) for g in item_genres]  # convert once, not per window
    per_window: list[dict[str, Any]] = []
    n_entries = n_valid_all = n_dup_all = 0
    covered: set[int] = set()
    for ranked, w in zip(lists, windows):
        ranked = [int(i) for i in ranked]
        bad = [i for i in ranked if i < -1 or i >= n_items]
        if bad:
            raise ValueError(f"item index {bad[0]} outside [-1, {n_items}) in the list for user {w.user!r}")
        row: dict[str, Any] = {}
        for k in k_values:
            row[f"recall@{k}"] = recall_at_k(ranked, w.target, k)
            row[f"ndcg@{k}"] = ndcg_at_k(ranked, w.target, k)
        head = ranked[:list_len]
        valid = [i for i in head if i >= 0]
        row["mgu"] = mgu(head, w.history, genres, genre_set)
        row["ild"] = ild(head, genres)
        row["n_valid"] = len(valid)
        row["n_dup"] = len(valid) - len(set(valid))
        per_window.append(row)
        n_entries += len(head)
        n_valid_all += row["n_valid"]
        n_dup_all += row["n_dup"]
        covered.update(valid)

    agg: dict[str, Any] = {}
    for k in k_values:
        for m in ("recall", "ndcg"):
            agg[f"{m}@{k}"] = float(np.mean([r[f"{m}@{k}"] for r in per_window]))
    for m in ("mgu", "ild"):
        defined = [r[m] for r in per_window if r[m] is not None]
        agg[m] = float(np.mean(defined)) if defined else None
        agg[f"{m}_n"] = len(defined)
    agg["valid_rate"] = n_valid_all / n_entries if n_entries else 0.0
    agg["duplicate_rate"] = n_dup_all / n_entries if n_entries else 0.0
    agg["coverage"] = len(covered) / n_items
    agg["coverage_items"] = len(covered)
    agg["mean_list_len"] = float(np.mean([len(x) for x in lists]))
    agg["n_windows"] = len(windows)
    return agg, per_window


def user_means(per_window_values: Sequence[float | None], users: Sequence[str]) -> dict[str, float]:
    """Average a per-window value within each user, so that a bootstrap resamples users, not windows.

    Windows whose value is None (undefined MGU/ILD) are skipped; a user with no defined window is left out.

    Args:
        per_window_values: one value per window.
        users: the window's user, aligned with `per_window_values`.

    Returns:
        ``{user: mean}``, sorted by user.
    """
    if len(per_window_values) != len(users):
        raise ValueError(f"{len(per_window_values)} values for {len(users)} users")
    acc: dict[str, list[float]] = {}
    for v, u in zip(per_window_values, users):
        if v is not None:
            acc.setdefault(u, []).append(float(v))
    return {u: float(np.mean(acc[u])) for u in sorted(acc)}


def paired_bootstrap(
    per_user_a: dict[str, float],
    per_user_b: dict[str, float] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    weights: dict[str, float] | None = None,
) -> dict[str, float]:
    """Percentile bootstrap over users of a mean (or of the paired difference a − b).

    The same user resample is applied to a and b, so the test is paired. With `weights` (e.g. each user's
    number of windows) the statistic is the weighted mean Σ w_u x_u / Σ w_u, which for per-user means weighted
    by window counts equals the mean over windows (the number the tables print).

    Args:
        per_user_a: ``{user: value}`` for system a.
        per_user_b: ``{user: value}`` for system b over the same users, or None for a one-sample CI.
        n_boot: number of bootstrap resamples.
        seed: seed of the resampling generator.
        weights: optional ``{user: weight}`` covering the same users.

    Returns:
        ``mean`` (on the full sample), ``ci_low``, ``ci_high`` (2.5/97.5 percentiles), ``n_users``, and, when b is
        given, ``p_value``: two-sided, 2 × the fraction of resampled differences on the other side of 0 from
        the observed one (a difference of exactly 0 counts as crossing), clipped to 1; 1.0 if the observed
        difference is 0.

    Raises:
        ValueError: no users, or a and b (or the weights) cover different users.
    """
    users = sorted(per_user_a)
    if not users:
        raise ValueError("paired_bootstrap needs at least one user")
    x = np.array([per_user_a[u] for u in users], dtype=float)
    if per_user_b is not None:
        if set(per_user_b) != set(users):
            raise ValueError(
                f"paired bootstrap over different users: {len(set(users) - set(per_user_b))} only in a, "
                f"{len(set(per_user_b) - set(users))} only in b"
            )
        x = x - np.array([per_user_b[u] for u in users], dtype=float)
    if weights is not None:
        if set(weights) != set(users):
            raise ValueError("weights must cover exactly the users being resampled")
        w = np.array([weights[u] for u in users], dtype=float)
    else:
        w = np.ones_like(x)

    n = len(users)
    boot = _user_replicates(np.random.default_rng(seed), x[None, :], w[None, :], n_boot)[:, 0]
    mean = float((x * w).sum() / w.sum())
    out = {
        "mean": mean,
        "ci_low": float(np.percentile(boot, 2.5)),
        "ci_high": float(np.percentile(boot, 97.5)),
        "n_users": n,
    }
    if per_user_b is not None:
        out["p_value"] = _two_sided_p(mean, boot)
    return out


def _user_replicates(rng: np.random.Generator, x: np.ndarray, w: np.ndarray, n_boot: int) -> np.ndarray:
    """`n_boot` user resamples, each applied to every row of `x` / `w` (shape: rows × users; a row's users of
    weight 0 are absent from it): returns n_boot × rows weighted means (nan for a row none of whose users was
    drawn). The draws (``rng.integers(0, n, (chunk, n))``, chunks of ~2M indices) do not depend on the number of
    rows, so one row reproduces `paired_bootstrap` and several rows share each user resample."""
    n = x.shape[1]
    out = np.empty((n_boot, x.shape[0]))
    chunk = max(1, 2_000_000 // n)  # bound memory: at most ~2M resampled indices at a time
    for start in range(0, n_boot, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_boot - start), n))
        for r in range(x.shape[0]):
            wi = w[r][idx]
            with np.errstate(invalid="ignore", divide="ignore"):
                out[start : start + len(idx), r] = (x[r][idx] * wi).sum(axis=1) / wi.sum(axis=1)
    return out


def _two_sided_p(mean: float, boot: np.ndarray) -> float:
    """2 × the fraction of replicates on the other side of 0 from `mean` (0 counts as crossing), clipped to 1;
    1.0 when `mean` is 0."""
    if mean > 0:
        crossing = float(np.mean(boot <= 0))
    elif mean < 0:
        crossing = float(np.mean(boot >= 0))
    else:
        crossing = 0.5
    return min(1.0, 2.0 * crossing)


def two_level_bootstrap(
    per_seed_a: Mapping[Any, Mapping[str, float]],
    per_seed_b: Mapping[Any, Mapping[str, float]] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    weights: Mapping[Any, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """Two-level (seed, then user) percentile bootstrap of a cell's mean, or of the paired difference a − b.

    Each training seed re-trains the whole pipeline (SFT included), so a cell's spread has two sources: which seed
    (the base model and everything on it) and which users (the test windows). The statistic is the one the tables
    print: per seed the weighted mean over users Σ_u w_su x_su / Σ_u w_su (with window counts as weights: the
    seed's window mean), then the plain mean over seeds.

    What is paired: seed s of a with seed s of b (the same seed drives the same base model), and within a seed
    user u of a with user u of b (the same test windows); a seed present on one side only is DROPPED (listed in
    ``dropped_seeds``), so the point estimate is over the common seeds only; no common seed is a ValueError.

    What is resampled, per replicate: (1) S seeds with replacement out of the S common seeds; (2) the users with
    replacement, ONE user resample per replicate applied to every drawn seed. Users are crossed with seeds, not
    nested in them: every seed evaluates the same test users, so a user's effect is shared by the seeds, and
    drawing users afresh within each seed would shrink the user part of the variance by 1/S. A seed whose users
    differ (undefined MGU/ILD windows) gives weight 0 to the users it lacks. The replicate statistic is the mean
    over the drawn seeds of each seed's weighted mean (difference) on the user resample (over the drawn seeds that
    have a drawn user; a replicate where none has is left out, possible only with a handful of users).

    Reduction: the user draws come from ``default_rng(seed)`` in `paired_bootstrap`'s order and the seed draws from
    a second generator, ``default_rng([seed, 1])``, so with one common seed the result is exactly
    `paired_bootstrap(a[s], b[s], n_boot, seed, weights[s])` (plus the keys above), and with S seeds of identical
    per-user values (no seed variance) its replicates equal `paired_bootstrap`'s up to float rounding.

    Args:
        per_seed_a: ``{seed: {user: value}}`` of system a.
        per_seed_b: the same for system b, or None for a one-sample CI of a's mean.
        n_boot: number of bootstrap replicates.
        seed: seed of the resampling generators.
        weights: ``{seed: {user: weight}}`` (window counts) covering each common seed's users; None: weight 1.

    Returns:
        ``mean`` (on the full sample: the mean over common seeds of the per-seed weighted means), ``ci_low``,
        ``ci_high`` (2.5/97.5 percentiles of the replicates), ``se`` (sample std of the replicates, ddof = 1),
        ``per_seed`` (``{seed: weighted mean}``), ``seed_std`` (sample std of ``per_seed``, None with one seed),
        ``n_seeds``, ``seeds``, ``dropped_seeds``, ``n_users`` (distinct users over the common seeds), and, when b
        is given, ``p_value``: two-sided, 2 × the fraction of replicates on the other side of 0 from the observed
        difference (a replicate of exactly 0 counts as crossing), clipped to 1; 1.0 if the observed difference
        is 0 (`paired_bootstrap`'s convention).

    Raises:
        ValueError: no common seed, a seed without users, a and b covering different users in one seed, or weights
            that do not cover a seed's users.
    """
    if per_seed_b is None:
        common, dropped = sorted(per_seed_a), []
    else:
        common = sorted(set(per_seed_a) & set(per_seed_b))
        dropped = sorted(set(per_seed_a) ^ set(per_seed_b))
        if not common:
            raise ValueError(f"two_level_bootstrap: no seed on both sides (a has seeds {sorted(per_seed_a)}, "
                             f"b has seeds {sorted(per_seed_b)}); the sides are paired by seed")
    if not common:
        raise ValueError("two_level_bootstrap needs at least one seed")
    users = sorted({u for s in common for u in per_seed_a[s]})
    if not users:
        raise ValueError("two_level_bootstrap needs at least one user")
    col = {u: i for i, u in enumerate(users)}
    x = np.zeros((len(common), len(users)))
    w = np.zeros((len(common), len(users)))
    for r, s in enumerate(common):
        a = per_seed_a[s]
        if not a:
            raise ValueError(f"two_level_bootstrap: seed {s} has no users")
        if per_seed_b is not None and set(per_seed_b[s]) != set(a):
            only_a, only_b = len(set(a) - set(per_seed_b[s])), len(set(per_seed_b[s]) - set(a))
            raise ValueError(f"two_level_bootstrap over different users in seed {s}: {only_a} only in a, "
                             f"{only_b} only in b")
        if weights is not None and set(weights.get(s, ())) != set(a):
            raise ValueError(f"two_level_bootstrap: the weights of seed {s} must cover exactly its users")
        for u, v in a.items():
            x[r, col[u]] = float(v) - (float(per_seed_b[s][u]) if per_seed_b is not None else 0.0)
            w[r, col[u]] = float(weights[s][u]) if weights is not None else 1.0
    per_seed = (x * w).sum(axis=1) / w.sum(axis=1)
    mean = float(np.mean(per_seed))

    stats = _user_replicates(np.random.default_rng(seed), x, w, n_boot)  # n_boot × S: every seed, one user draw
    if len(common) == 1:
        boot = stats[:, 0]
    else:
        draws = np.random.default_rng([seed, 1]).integers(0, len(common), size=(n_boot, len(common)))
        picked = np.take_along_axis(stats, draws, axis=1)
        defined = ~np.isnan(picked)
        with np.errstate(invalid="ignore"):  # nan: no drawn seed has a drawn user (tiny samples only)
            boot = np.where(defined, picked, 0.0).sum(axis=1) / defined.sum(axis=1)
    out = {
        "mean": mean,
        "ci_low": float(np.nanpercentile(boot, 2.5)),
        "ci_high": float(np.nanpercentile(boot, 97.5)),
        "se": float(np.nanstd(boot, ddof=1)) if n_boot > 1 else 0.0,
        "per_seed": {s: float(v) for s, v in zip(common, per_seed)},
        "seed_std": float(np.std(per_seed, ddof=1)) if len(common) > 1 else None,
        "n_seeds": len(common),
        "seeds": common,
        "dropped_seeds": dropped,
        "n_users": len(users),
    }
    if per_seed_b is not None:
        out["p_value"] = _two_sided_p(mean, boot[~np.isnan(boot)])
    return out
