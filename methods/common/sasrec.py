"""A compact SASRec: the `sasrec` reference method and D³'s text-free assistant (two checkpoints, two training sets).

Wang-Cheng Kang and Julian McAuley. Self-Attentive Sequential Recommendation. IEEE ICDM 2018.
Upstream code: https://github.com/kang205/SASRec (TensorFlow; PyTorch port: pmixer/SASRec.pytorch).

Kept from the paper: a causal self-attention encoder over the item sequence with learned positional
embeddings, item embeddings scaled by sqrt(d), layer norm before attention and feed-forward (the
upstream order), ReLU feed-forward, dropout, a final layer norm, and the item embedding table shared as
the output layer (score = <h_t, e_i>).

Deliberate difference, as in modern re-implementations (RecBole's ``loss_type="CE"``; Klenitskiy &
Vasilev, "Turning Dross Into Gold Loss: is BERT4Rec really better than SASRec?", RecSys'23): training
uses full-softmax cross-entropy over the whole catalogue instead of the paper's binary cross-entropy
with one sampled negative. It is cheap at our catalogue sizes (a few thousand items), converges in fewer
epochs and gives calibrated log-probabilities, which D³ needs.

Training data (`get_sasrec`'s ``windows``):
  * the `sasrec` row (``windows=None``): every prefix of every sft user's full sequence is one example (the previous
    <= `maxlen` items -> the next item), as in RecBole's data augmentation, so short histories like the benchmark's
    10-item windows are trained on directly;
  * D³'s assistant (``windows`` = the LLM's SFT training windows): `window_examples`, one example per target item
    of each window, its input the window's history plus the target items before it (what the LLM conditions on when
    it writes that item), so the assistant learns from exactly the windows, users and next items the LLM's SFT saw.
    Upstream DecodingMatters trains its SASRec on the LLM's training rows (<= 10-item history -> next item); with
    one-item targets these examples are exactly those rows. The two get separate cache keys.

Item ``i`` of the dataset is token ``i + 1``; token 0 is left padding. Positions are counted from the
right (the newest item always sits at position ``maxlen - 1``), as in upstream's left-padded inputs,
so a 10-item window and a 20-item training prefix put their latest items at the same positions.

The config (`SASRecConfig`), its per-profile values and `sasrec_profile_config` live in methods/common/configs.py
(no torch).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from benchmark.errors import TrainingDiverged
from benchmark.io import atomic_write
from methods.common.configs import SASRecConfig

if TYPE_CHECKING:  # pragma: no cover
    from benchmark.data import Window
    from methods.base import RunContext

# Bump when the model or training changes in a way that invalidates cached checkpoints.
_CACHE_VERSION = 1


class SASRecModel(nn.Module):
    """Causal transformer over left-padded item tokens; scores every catalogue item for the next position."""

    def __init__(self, n_items: int, cfg: SASRecConfig):
        """Build an untrained model for items ``0 .. n_items - 1`` (tokens ``1 .. n_items``)."""
        super().__init__()
        self.n_items, self.cfg = n_items, cfg
        self.train_log: list[dict] = []  # one entry per validation evaluation, kept in the checkpoint
        self.best_epoch = 0  # the epoch whose state this model holds (set by training or loading)
        self.item_emb = nn.Embedding(n_items + 1, cfg.hidden, padding_idx=0)
        self.pos_emb = nn.Embedding(cfg.maxlen, cfg.hidden)
        # Upstream initialises with Xavier; torch's default N(0, 1) embeddings, scaled by sqrt(d), would start
        # the shared output layer with huge logits.
        for emb in (self.item_emb, self.pos_emb):
            nn.init.xavier_normal_(emb.weight)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.drop = nn.Dropout(cfg.dropout)
        block = nn.TransformerEncoderLayer(
            cfg.hidden,
            cfg.heads,
            dim_feedforward=cfg.hidden,
            dropout=cfg.dropout,
            activation="relu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(block, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.hidden)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits [B, n_items] for the item following each left-padded sequence of tokens [B, L] (L <= maxlen)."""
        B, L = tokens.shape
        valid = tokens > 0
        x = self.item_emb(tokens) * math.sqrt(self.cfg.hidden) + self.pos_emb.weight[self.cfg.maxlen - L :]
        x = self.drop(x) * valid.unsqueeze(-1)
        # Causal attention to real items only. A padding query may attend to itself: a row with every key
        # masked would give NaN, which would then leak into real positions through the next block.
        eye = torch.eye(L, dtype=torch.bool, device=tokens.device)
        allowed = torch.tril(torch.ones(L, L, dtype=torch.bool, device=tokens.device)) & (valid[:, None, :] | eye)
        mask = (~allowed).repeat_interleave(self.cfg.heads, dim=0)  # [B * heads, L, L], True = blocked
        h = self.norm(self.encoder(x, mask=mask)[:, -1])
        return h @ self.item_emb.weight[1:].T  # shared item embeddings as the output layer


def _left_pad(histories, maxlen: int) -> torch.Tensor:
    """Tokens [B, L] (L = longest truncated history): item i -> i + 1, left-padded with 0."""
    rows = [list(h)[-maxlen:] for h in histories]
    L = max(1, max((len(r) for r in rows), default=1))
    out = torch.zeros(len(rows), L, dtype=torch.long)
    for b, r in enumerate(rows):
        if r:
            out[b, L - len(r) :] = torch.tensor(r) + 1
    return out


def _prefix_examples(sequences: list[list[int]], maxlen: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (previous <= maxlen items -> next item) pair of every sequence: inputs [N, maxlen], targets [N]."""
    inputs, targets = [], []
    for seq in sequences:
        if len(seq) < 2:
            continue
        # Left-pad by maxlen zeros; window j of width maxlen + 1 ends at item j, so window j's first maxlen
        # tokens are exactly the (padded) items before item j. Window 0 has no context and is dropped.
        padded = np.concatenate([np.zeros(maxlen, dtype=np.int64), np.asarray(seq, dtype=np.int64) + 1])
        win = np.lib.stride_tricks.sliding_window_view(padded, maxlen + 1)[1:]
        inputs.append(win[:, :-1])
        targets.append(win[:, -1] - 1)
    if not inputs:
        raise ValueError("SASRec needs at least one training sequence with two or more items")
    return torch.from_numpy(np.concatenate(inputs)), torch.from_numpy(np.concatenate(targets))


def window_examples(windows: list[Window], maxlen: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One example per target item of each window: (history + the target items before it)[-maxlen:] -> that item.

    Inputs [N, maxlen] left-padded tokens (item i -> i + 1), targets [N] item indices; N = the windows' total target
    length. What the SFT'd LLM learns from the same windows (its completion is the target list, item by item)."""
    inputs, targets = [], []
    for w in windows:
        seq = list(w.history) + list(w.target)
        for j in range(len(w.history), len(seq)):
            ctx = seq[max(0, j - maxlen) : j]
            inputs.append([0] * (maxlen - len(ctx)) + [i + 1 for i in ctx])
            targets.append(seq[j])
    if not inputs:
        raise ValueError("SASRec needs at least one training window")
    return torch.tensor(inputs, dtype=torch.long), torch.tensor(targets, dtype=torch.long)


def _ndcg_at_10(ranked: list[int], target) -> float:
    """Binary-relevance NDCG@10 of one ranked list against a target set (design.md §3)."""
    target = set(target)
    dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(ranked[:10]) if i in target)
    idcg = sum(1 / math.log2(r + 2) for r in range(min(10, len(target))))
    return dcg / idcg if idcg else 0.0


@torch.no_grad()
def sasrec_scores(model: SASRecModel, histories: list[tuple[int, ...]], batch_size: int = 512) -> torch.Tensor:
    """Next-item log-probabilities over the full catalogue, [len(histories), n_items] float32 on the CPU.

    Nothing is masked (callers mask history items if they want to); D³ uses these as its text-free assistant.
    Histories longer than ``maxlen`` keep their latest items. Puts the model in eval mode.
    """
    model.eval()
    device = next(model.parameters()).device
    out = [
        torch.log_softmax(
            model(_left_pad(histories[s : s + batch_size], model.cfg.maxlen).to(device)).float(), -1
        ).cpu()
        for s in range(0, len(histories), batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, model.n_items)


def _validate(model: SASRecModel, windows: list[Window]) -> float:
    """Mean NDCG@10 over windows: full-catalogue scores, history items masked (the benchmark's protocol)."""
    scores = sasrec_scores(model, [w.history for w in windows])
    for b, w in enumerate(windows):
        scores[b, list(w.history)] = -math.inf
    top = scores.topk(min(10, model.n_items), dim=1).indices.tolist()
    return sum(_ndcg_at_10(t, w.target) for t, w in zip(top, windows, strict=True)) / len(windows)


def train_sasrec(
    sequences: list[list[int]],
    n_items: int,
    cfg: SASRecConfig,
    valid_windows: list[Window],
    log: logging.Logger | None = None,
    examples: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> SASRecModel:
    """Train SASRec on every prefix of `sequences` (or on `examples`); early-stop on the validation windows' NDCG@10.

    Args:
        sequences: complete item sequences (item indices, oldest first) of the training users; ignored when
            `examples` is given.
        n_items: catalogue size; items are ``0 .. n_items - 1``.
        cfg: hyper-parameters. Randomness (init, dropout, order) comes from torch's global RNG: seed it first.
        valid_windows: windows whose NDCG@10 selects the epoch; if empty, the last epoch is kept.
        log: logger for one line per evaluation (defaults to this module's logger).
        examples: (inputs [N, maxlen], targets [N]) to train on instead of the prefixes of `sequences`
            (`window_examples`: D³'s assistant).

    Returns:
        The model with the best validation state, in eval mode; ``model.train_log`` holds the curve.
    """
    log = log or logging.getLogger("benchmark")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    inputs, targets = examples if examples is not None else _prefix_examples(sequences, cfg.maxlen)
    model = SASRecModel(n_items, cfg).to(device)
    # Adam with upstream's beta2 = 0.98; weight decay is coupled L2 like upstream's embedding regulariser.
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.98), weight_decay=cfg.weight_decay)
    best, best_epoch, best_state = -1.0, 0, None
    t0 = time.time()
    bar = tqdm(range(1, cfg.max_epochs + 1), desc="sasrec", unit="epoch", leave=False,
               disable=not sys.stderr.isatty())  # a log file gets the per-evaluation lines only
    for epoch in bar:
        model.train()
        total = 0.0
        for idx in torch.randperm(len(targets)).split(cfg.batch_size):
            loss = nn.functional.cross_entropy(model(inputs[idx].to(device)), targets[idx].to(device))
            value = loss.item()
            if not math.isfinite(value):  # a diverged model: fail the run (one line, no record), never train on
                raise TrainingDiverged(f"SASRec diverged: loss = {value} in epoch {epoch}. No record was written; "
                                       "lower the learning rate (--set sasrec.lr=VALUE) and run again")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += value * len(idx)
        if epoch % cfg.eval_every and epoch != cfg.max_epochs:
            continue
        ndcg = _validate(model, valid_windows) if valid_windows else float("nan")
        row = {"epoch": epoch, "loss": total / len(targets), "valid_ndcg@10": ndcg, "seconds": time.time() - t0}
        model.train_log.append(row)
        log.info("sasrec epoch %d loss %.4f valid ndcg@10 %.4f %.1fs", epoch, row["loss"], ndcg, row["seconds"])
        bar.set_postfix(loss=f"{row['loss']:.3f}", ndcg=f"{ndcg:.4f}")
        if not valid_windows or ndcg > best:
            best, best_epoch, best_state = ndcg, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= cfg.patience:
            break
    model.load_state_dict(best_state)
    model.best_epoch = best_epoch
    return model.eval()


def sasrec_cache_path(ctx: RunContext, cfg: SASRecConfig, windows: list[Window] | None = None) -> Path:
    """Where `get_sasrec` keeps the checkpoint: keyed by the config, the data hash and the seed, and for a model
    trained on `windows` (D³'s assistant) by those windows' content too, so it never shares the `sasrec` row's
    checkpoint (whose key, without windows, is unchanged)."""
    key = {"cfg": asdict(cfg), "data": ctx.data.data_hash, "seed": ctx.seed, "version": _CACHE_VERSION}
    name = ctx.data.name
    if windows is not None:
        rows = [[w.user, list(w.history), list(w.target)] for w in windows]
        key["train"] = {"examples": "window_targets", "windows": hashlib.sha256(json.dumps(rows).encode()).hexdigest()}
        name += "-windows"
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return Path(ctx.cache_dir) / "sasrec" / f"{name}-{digest}.pt"


def get_sasrec(ctx: RunContext, cfg: SASRecConfig, windows: list[Window] | None = None) -> SASRecModel:
    """Train SASRec once per (config, data, seed[, windows]); later calls load the checkpoint.

    ``windows=None`` (the `sasrec` row): every prefix of the ``sft`` users' full sequences. Given `windows` (D³'s
    assistant: the LLM's SFT training windows): `window_examples` of exactly those windows, cached apart.
    Training runs under ``ctx.seed`` in a forked RNG, so the checkpoint is a function of its cache key and the
    caller's random stream is left untouched. Validation uses the ``valid`` split's windows.
    """
    path = sasrec_cache_path(ctx, cfg, windows)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if path.exists():
        blob = torch.load(path, map_location=device, weights_only=True)
        model = SASRecModel(blob["n_items"], SASRecConfig(**blob["cfg"])).to(device)
        model.load_state_dict(blob["state_dict"])
        model.train_log, model.best_epoch = blob["train_log"], blob["best_epoch"]
        ctx.log.info("sasrec: loaded %s", path)
        return model.eval()
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
        torch.manual_seed(ctx.seed)
        examples = None if windows is None else window_examples(windows, cfg.maxlen)
        model = train_sasrec(ctx.data.sequences["sft"], ctx.data.n_items, cfg, ctx.data.splits["valid"], ctx.log,
                             examples=examples)
    blob = {
        "cfg": asdict(cfg),
        "n_items": model.n_items,
        "state_dict": model.state_dict(),
        "train_log": model.train_log,
        "best_epoch": model.best_epoch,
    }
    atomic_write(path, lambda f: torch.save(blob, f))  # a concurrent reader sees no file or a complete one
    return model
