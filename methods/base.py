"""The `Method` interface every recommender implements.

A method is one file in `methods/` with one `Method` subclass decorated by `@register_method("key")`.
The base class is an interface, not a vehicle for code reuse: shared code lives in plain functions in
`methods/common/`. Importing a method module loads no torch, transformers, trl, peft, accelerate or datasets
(`--dry-run`, `ls`, `profiles` and `report` import every method; tests/test_layering_torch.py): a method imports its
trainers and models inside `fit` / `recommend`, and takes shared configs and constants from
`methods/common/configs.py`. A minimal example (the README's, run by `tests/test_registry.py`)::

    from dataclasses import dataclass
    from methods.base import Method, RunContext
    from methods.registry import register_method

    @register_method("my_pop")
    class MyPop(Method):
        display_name = "MyPop"
        paper = "my own idea"

        @dataclass
        class Config:
            k: int = 10        # list length

        def fit(self, ctx: RunContext) -> dict:
            counts = {}
            for w in ctx.data.splits["sft"]:
                for i in w.history + w.target:
                    counts[i] = counts.get(i, 0) + 1
            self.ranking = sorted(counts, key=lambda i: (-counts[i], i))
            return {}

        def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
            return [[i for i in self.ranking if i not in w.history][: self.config.k] for w in windows]
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from benchmark.config import Profile
    from benchmark.data import Dataset, Window


@dataclass
class RunContext:
    """Everything a method may use during one run. Built by the runner; methods never read globals.

    Attributes:
        data: the preprocessed dataset with its four user-disjoint splits (`sft`, `align`, `valid`, `test`).
        profile: the resolved profile (model size, item representation, SFT and alignment budgets).
        seed: the run's seed (alignment subset, rollouts, training order). Already applied to torch/numpy/random.
        run_dir: a private directory for this run's resumable state (checkpoints). Deleted never; reused on resume.
        cache_dir: a directory shared by all runs (tokenizers, the SFT checkpoint per (dataset, profile), reference
            sets). Shared artefacts are keyed by content hashes, so concurrent methods never disagree.
        log: the run's logger.
        stats: free-form numbers the method wants in the record (e.g. ``tokens_generated``, training curves).
    """

    data: Dataset
    profile: Profile
    seed: int
    run_dir: Path
    cache_dir: Path
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("benchmark"))
    stats: dict[str, Any] = field(default_factory=dict)


class Method(abc.ABC):
    """A list-wise recommender: `fit` once, then `recommend` a K-item list for each window.

    Class metadata (used by reports, never by the runner's logic):
        name: the registry key (set by `@register_method`).
        display_name: how tables print it (``"S-DPO"``, ``"D³"``).
        paper: citation of the method's paper.
        category: Table 3 group: ``"llm"``, ``"inference"``, ``"listwise"``, ``"ours"`` or ``"reference"``.
        uses_sft: starts from the shared SFT checkpoint (π_ref); `--dry-run` lists that stage for it.
        oracle: selects with the window's target (an upper bound, not a recommender): reports show it, never rank
            it and never test against it. Copied into every record as ``oracle``.
        role: what reports compare against, copied into every record as ``role``: ``"sft"`` (the shared SFT
            model itself: Table 1's base and cost unit, the start of every alignment comparison), ``"popularity"``
            (the sanity bar's floor: the SFT model should beat it on validation), ``"control"`` (SFT continued on the
            alignment data: every aligned method is also tested against it), or ``""``.
        in_all: planned by ``--methods all`` (the main comparison, one training per method). False for a method
            that repeats another's training several times to select among them (``blade_n_tau``: BLADE-N once per τ
            of the paper's grid): it is named explicitly, and the ``table3`` experiment names it.
        Config: a dataclass of the method's hyper-parameters with the paper's defaults. The runner resolves it
            (defaults, then ``--set key=value`` overrides, type-checked) and stores it in every record.
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    category: ClassVar[str] = "reference"
    uses_sft: ClassVar[bool] = False
    oracle: ClassVar[bool] = False
    role: ClassVar[str] = ""
    in_all: ClassVar[bool] = True

    @dataclass
    class Config:
        """No hyper-parameters."""

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    @abc.abstractmethod
    def fit(self, ctx: RunContext) -> dict[str, Any]:
        """Train (or load cached artefacts). Returns a dict of artefact paths/values stored in the record.

        Must be resumable: an interrupted fit, called again with the same `ctx.run_dir`, continues where it stopped.
        """

    @abc.abstractmethod
    def recommend(self, ctx: RunContext, windows: list[Window]) -> list[list[int]]:
        """Return one ranked list of item indices per window (``ctx.data.items[i]``), best first.

        Lists should have ``ctx.profile.k`` entries. An entry of ``-1`` marks a generated title that could not be
        grounded to a catalogue item (scored as a miss, counted by the valid-title rate). Duplicates are allowed
        (the metrics de-duplicate and report the duplicate rate).
        """
