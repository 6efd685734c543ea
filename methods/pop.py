"""Pop: the K most popular items, the non-personalised reference every recommender should beat.

Popularity is the interaction count over the ``sft`` split's complete user sequences
(``ctx.data.sequences["sft"]``), not over its windows: stride-1 windows repeat each interaction up to
20 times (10 as history, 10 as target) and would over-weight the middle of long sequences. Items the
window's history already contains are skipped (the benchmark masks history items for every method,
design.md §4). Ties are broken by item index, so the list is deterministic.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from methods.base import Method, RunContext
from methods.registry import register_method


def popularity_ranking(sequences: list[list[int]], n_items: int) -> list[int]:
    """Rank every catalogue item by interaction count (descending), ties by item index (ascending).

    Items that never occur are ranked last (count 0), so a list can always be filled to K items.
    """
    counts = Counter(i for seq in sequences for i in seq)
    return sorted(range(n_items), key=lambda i: (-counts[i], i))


@register_method("pop")
class Pop(Method):
    """Most popular items of the training users, excluding the window's history."""

    display_name = "Pop"
    paper = "Most-popular baseline (non-personalised reference)"
    category = "reference"
    role = "popularity"  # the sanity bar's floor

    def fit(self, ctx: RunContext) -> dict[str, Any]:
        """Count interactions in the ``sft`` users' sequences (instant, so nothing to resume)."""
        sequences = getattr(ctx.data, "sequences", {}).get("sft")
        if not sequences:
            raise ValueError("pop needs ctx.data.sequences['sft'] (the sft users' complete item sequences)")
        self.ranking = popularity_ranking(sequences, ctx.data.n_items)
        return {}

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        """The top ``ctx.profile.k`` items of the popularity ranking that are not in the window's history."""
        k = ctx.profile.k
        # At most len(history) ranked items are skipped, so this prefix always holds the answer.
        lists = []
        for w in windows:
            seen = set(w.history)
            head = self.ranking[: k + len(seen)]
            lists.append([i for i in head if i not in seen][:k])
        return lists
