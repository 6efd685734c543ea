"""SFT + alignment data: the control row for "aligned − BIGRec" (is the gain the objective, or the extra data?).

In the cpu profile (``align_source = "align"``) every alignment method (static BoN, BLADE, the DPO family, ReRe) trains
on alignment windows of users the SFT never saw, so "aligned − BIGRec" mixes the objective with more data. This row
continues the shared SFT checkpoint with the SFT objective on the SAME data, for the same optimiser budget as static
BoN alignment (methods/bon_static.py); reports test every aligned method against it as well as against BIGRec.

Choices (the numbers are static BoN's: the Config takes its defaults and `profile_overrides` from `BoNStatic`, so they
cannot drift; a ``--set bon_static.X`` does not reach this row, set ``sft_align.X`` too):
  * data: static BoN's alignment training windows, ``alignment_subset(ds, n_align_train, n_align_valid, seed,
    profile.align_source)[0]`` (same seed, same windows; the alignment-validation users are held out as BoN holds
    them out, and unused);
  * steps: static BoN's optimiser steps, ``max_steps`` if set, else ceil(ceil(n_align_train / prompts_per_step) ×
    epochs): 128 on cpu, 4 on smoke;
  * batch: prompts_per_step × G sequences per step (cpu 4 × 16 = 64; smoke 4 × 4 = 16), the rollouts BoN's GRPO step
    trains on, so the same number of sequences (and about the same tokens: a K-item list either way) pass through the
    optimiser: 128 × 64 = 8,192 on cpu, i.e. 16 PASSES over the 512 windows (each pass a seeded permutation, passes
    consecutive, no shuffling across them; BoN sees each prompt once, with G sampled lists);
  * objective: the shared SFT's (methods/common/sft.py `continue_sft`): prompt + the window's target list as the
    completion, ``profile.sft_completion_only`` (cpu: loss on the whole sequence), ``profile.sft_label_smoothing``,
    the model's dropout on as SFT trains;
  * optimiser: static BoN's lr (cpu 2e-5) and lr_scheduler (linear to 0 over the steps), with GRPO's settings (no
    warm-up, no weight decay, grad-norm clip 1.0), so only the objective differs; no evaluation and no checkpoint
    selection during training (BoN has none either): the last step is kept;
  * start: the shared SFT checkpoint (BIGRec's model, π_ref); evaluation: greedy constrained lists, as BIGRec.
The paper profile (``align_source = "train"``) draws the alignment windows from the SFT training windows: there this
row is only more SFT epochs on a subset of the SFT data. It is kept anyway (one row in every profile).

``role = "control"``: Table 1 lists it after the SFT model, and the significance report tests every aligned method
(every row whose config names an alignment subset) against it as well as against the SFT model. Its record's stats
hold the steps and sequences it trained (``train_steps``, ``train_sequences``), their plan and the windows' hash.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields

from benchmark.config import check_fields
from benchmark.io import content_hash
from methods.base import Method, RunContext
from methods.bon_static import BoNStatic
from methods.common.configs import GRPO_RULES
from methods.registry import register_method

# static BoN's fields that fix this row's data and budget (their values: its class defaults, its profile overrides)
BON_FIELDS = ("n_align_train", "n_align_valid", "prompts_per_step", "G", "epochs", "max_steps", "lr", "lr_scheduler")
_BON = {f.name: f.default for f in fields(BoNStatic.Config) if f.name in BON_FIELDS}


def bon_budget(cfg) -> tuple[int, int]:
    """(optimiser steps, sequences per step) of static BoN's GRPO with these settings (TRL: ceil(prompts / prompts
    per step) steps per epoch; each step trains prompts_per_step × G rollouts)."""
    steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(math.ceil(cfg.n_align_train / cfg.prompts_per_step)
                                                              * cfg.epochs)
    return steps, cfg.prompts_per_step * cfg.G


def training_rows(windows: list, n_rows: int, seed: int) -> list:
    """`n_rows` rows: successive passes over `windows`, each a permutation seeded by `seed` (the last one cut)."""
    rng, rows = random.Random(seed), []
    while len(rows) < n_rows:
        order = list(windows)
        rng.shuffle(order)
        rows += order
    return rows[:n_rows]


def windows_hash(windows: list) -> str:
    return content_hash([[w.user, list(w.history), list(w.target)] for w in windows])


@register_method("sft_align")
class SFTAlign(Method):
    display_name = "SFT + align data"
    paper = "control row: SFT continued on static BoN's alignment windows, with its steps and sequences"
    category = "llm"
    uses_sft = True
    role = "control"  # what "aligned − BIGRec" is also tested against (module docstring)
    profile_overrides = {p: {k: v for k, v in o.items() if k in BON_FIELDS}
                         for p, o in BoNStatic.profile_overrides.items()}

    @dataclass
    class Config:
        """Static BoN's alignment subset and budget (module docstring): the subset sizes, prompts per step × G
        sequences per step, epochs or max_steps, and its lr and schedule."""

        n_align_train: int = _BON["n_align_train"]
        n_align_valid: int = _BON["n_align_valid"]
        prompts_per_step: int = _BON["prompts_per_step"]
        G: int = _BON["G"]
        epochs: float = _BON["epochs"]
        max_steps: int = _BON["max_steps"]
        lr: float = _BON["lr"]
        lr_scheduler: str = _BON["lr_scheduler"]

        def __post_init__(self):
            check_fields(self, "config", {k: GRPO_RULES[k] for k in BON_FIELDS})

    def fit(self, ctx: RunContext) -> dict:
        from benchmark.data import alignment_subset
        from methods.common.sft import continue_sft, load_sft, train_sft

        cfg = self.config
        sft_path = train_sft(ctx.data, ctx.profile, ctx.cache_dir, ctx.log, seed=ctx.seed)  # all processes, together
        train_w, _ = alignment_subset(ctx.data, cfg.n_align_train, cfg.n_align_valid, ctx.seed,
                                      ctx.profile.align_source)
        steps, batch = bon_budget(cfg)
        rows = training_rows(train_w, steps * batch, ctx.seed)
        final, info = continue_sft(ctx, sft_path, rows, batch=batch, lr=cfg.lr, lr_scheduler=cfg.lr_scheduler,
                                   out=ctx.run_dir, save_every=max(1, steps // 8))
        ctx.stats.update({
            "train_steps": info["steps"], "train_sequences": info["sequences"], "batch_sequences": batch,
            "planned": {"steps": steps, "sequences": steps * batch}, "train_windows": len(train_w),
            "passes": steps * batch / len(train_w), "train_windows_hash": windows_hash(train_w),
            "tokens_seen": info["tokens_seen"], "train_seconds": info["seconds"], "train_loss": info["train_loss"],
            "train_curve": info["train_curve"], "resumed": info["resumed"], "sft_checkpoint": str(sft_path)})
        self.model, self.tok, _ = load_sft(final)  # loaded here so recommend() latency is decoding only
        return {"model": str(final)}

    def recommend(self, ctx: RunContext, windows) -> list[list[int]]:
        from methods.common.llm import greedy_lists

        return greedy_lists(ctx, self.model, self.tok, windows)
