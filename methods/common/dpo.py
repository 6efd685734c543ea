"""Preference optimisation on TRL's `DPOTrainer`, shared by S-DPO, List DPO and SPRec (docs/methods.md §1.5, §1.7,
§1.10, §7; paper §4.1.4).

The family's config (`PreferenceConfig`) and per-profile sizes (`PREFERENCE_PROFILE_OVERRIDES`) live in
methods/common/configs.py (no torch).

A preference row is (window, chosen list, n rejected lists) of item indices, all of one length. The pieces:
  * builders' helpers: `positive_list` (the window's target as the decoder can produce it), `user_items`;
  * `cached_rows`: a method's rows built once per run and stored atomically under ``ctx.run_dir`` (a resumed run
    does not regenerate them);
  * `sft_on_positives`: SFT on the alignment positives from a given model (the paper's warm-up SFT before DPO;
    SPRec's per-iteration SFT step), with TRL's `SFTTrainer` and the one prompt builder;
  * `run_dpo`: TRL's `DPOTrainer` from a given model, pi_ref = that same model (pi_theta = pi_ref at step 0);
  * `fit_preference`: the S-DPO / List DPO pipeline (shared SFT -> warm-up SFT -> rows -> DPO).

`PreferenceTrainer` subclasses `DPOTrainer`. TRL 1.16 computes the chosen/rejected log-probs inside its private
`_compute_loss` (a fused LM head patched into the model's forward, no separate log-prob method), so the narrowest
override is the public `compute_loss`: it scores the rows [chosen; rejected_1..n] under the decoding constraints of
design.md §5 (trie, history and EOS masks, renormalised over the allowed tokens, T = 1) for the policy and, without
grad, for TRL's reference model, and applies the method's loss, a pure function
``loss(chosen_logratios [B], rejected_logratios [B, n], beta) -> [B]``. Everything else (optimiser, schedule,
checkpoints, reference model, multi-process, metric logging) is TRL's. Rows arrive tokenised by the trie (the lists
are the decoder's own token sequences), so `_prepare_dataset` only checks them.

Lists shorter than K (targets with fewer than K distinct non-history items, next-item data) are scored under the
automaton with k = the list's length: the same per-token distributions as the first items of a K-list, with EOS in
place of the separator after the last item (forced, log 1, unless a longer title continues it).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import PartialState
from trl import DPOConfig, DPOTrainer

from benchmark.data import Window, alignment_pool, alignment_subset
from benchmark.io import atomic_save_dir, atomic_write_text, complete_checkpoint
from benchmark.metrics import ndcg_at_k, recall_at_k
from benchmark.prompts import encode_prompts
from methods.common.configs import PreferenceConfig
from methods.common.guards import FiniteLoss, TiedWeightsLoad, quiet_progress, trainer_args
from methods.common.llm import get_trie, greedy_lists, prompts_for
from methods.common.logprobs import completion_logits, constrained_token_logps, constraint_masks, disable_dropout
from methods.common.sft import load_sft, prompt_completion, train_sft

LossFn = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


# ----------------------------------------------------------------------------------------------- losses
def dpo_loss(chosen_logratios: torch.Tensor, rejected_logratios: torch.Tensor, beta: float) -> torch.Tensor:
    """DPO's per-example loss -log sigmoid(beta * (h_w - h_l)) (TRL's ``loss_type="sigmoid"``); [B], [B, 1] -> [B]."""
    if rejected_logratios.dim() != 2 or rejected_logratios.shape != (chosen_logratios.shape[0], 1):
        raise ValueError(f"DPO takes one rejected list per row: rejected_logratios must be [{chosen_logratios.shape[0]}"
                         f", 1], got {tuple(rejected_logratios.shape)}")
    return -F.logsigmoid(beta * (chosen_logratios - rejected_logratios[:, 0]))


# ----------------------------------------------------------------------------------------------- preference rows
def positive_list(w: Window, exclude_history: bool) -> list[int]:
    """The window's target as a list the constrained decoder can produce: first occurrences only, and without the
    history items when the decoder masks them (design.md §4). May be empty."""
    seen = set(w.history) if exclude_history else set()
    out = []
    for i in w.target:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def user_items(windows: Sequence[Window]) -> dict[str, set[int]]:
    """Every item each user interacted with in `windows` (history or target)."""
    out: dict[str, set[int]] = {}
    for w in windows:
        out.setdefault(w.user, set()).update(w.history, w.target)
    return out


def cached_rows(path: Path, build: Callable[[], tuple[list[dict], dict]]) -> tuple[list[dict], dict]:
    """`build()` -> (rows, info) once; stored atomically at `path` and read back on a resumed run."""
    with PartialState().main_process_first():  # several processes: the main one builds, the others read
        if path.exists():
            d = json.loads(path.read_text())
            return d["rows"], d["info"]
        rows, info = build()
        atomic_write_text(path, json.dumps({"rows": rows, "info": info}))
        return rows, info


def tokenize_rows(rows: list[dict], prompts: Sequence[str], windows: Sequence[Window], tok, trie,
                  exclude_history: bool) -> dict[str, list]:
    """Dataset columns: prompt ids exactly as evaluation encodes prompts (`benchmark.prompts.encode_prompts`: the
    tokenizer's own special tokens, BOS where it adds one; design.md §8); each list as the trie's token sequence + EOS.
    """
    enc = encode_prompts(tok, prompts)["input_ids"]
    eos = tok.eos_token_id
    cols: dict[str, list] = {"prompt_ids": [], "chosen_ids": [], "rejected_ids": [], "excluded": [], "k": []}
    for r in rows:
        lists = [r["chosen"], *r["rejected"]]
        if len({len(x) for x in lists}) != 1 or not lists[0]:
            raise ValueError(f"preference row {r['window']}: chosen and rejected lists must be non-empty and of one "
                             f"length, got lengths {[len(x) for x in lists]}")
        w = windows[r["window"]]
        cols["prompt_ids"].append(enc[r["window"]])
        cols["chosen_ids"].append(trie.encode_list(r["chosen"]) + [eos])
        cols["rejected_ids"].append([trie.encode_list(x) + [eos] for x in r["rejected"]])
        cols["excluded"].append(sorted(w.history) if exclude_history else [])
        cols["k"].append(len(r["chosen"]))
    return cols


@dataclass
class PreferenceCollator:
    """Rows -> one batch of (n + 1) * B sequences [chosen_1..B; rejected_1 of 1..B; ...; rejected_n of 1..B].

    Prompts are left-padded and completions right-padded (the layout of generation and of the GRPO trainer), so the
    completion occupies the last C columns of every row. Also returns each sequence's excluded items and list length.
    """

    pad_token_id: int

    def __call__(self, examples: list[dict]) -> dict:
        n = {len(e["rejected_ids"]) for e in examples}
        if len(n) != 1:
            raise ValueError(f"every row of a batch needs the same number of rejected lists, got {sorted(n)}")
        seqs = [(e["prompt_ids"], e["chosen_ids"], e) for e in examples]
        seqs += [(e["prompt_ids"], e["rejected_ids"][j], e) for j in range(n.pop()) for e in examples]
        P = max(len(p) for p, _, _ in seqs)
        C = max(len(c) for _, c, _ in seqs)
        ids = torch.full((len(seqs), P + C), self.pad_token_id, dtype=torch.long)
        attn = torch.zeros_like(ids)
        comp = torch.zeros((len(seqs), C), dtype=torch.long)
        for r, (p, c, _) in enumerate(seqs):
            ids[r, P - len(p):P] = torch.tensor(p)
            ids[r, P:P + len(c)] = torch.tensor(c)
            attn[r, P - len(p):P + len(c)] = 1
            comp[r, :len(c)] = 1
        return {"input_ids": ids, "attention_mask": attn, "completion_mask": comp,
                "excluded": [e["excluded"] for _, _, e in seqs], "k": [e["k"] for _, _, e in seqs],
                "n_prompts": len(examples)}


# ----------------------------------------------------------------------------------------------- trainer
def list_constraints(trie, batch: dict, eos_token_id: int) -> torch.Tensor:
    """[R, C, V'] tokens the decoder allows at each completion position of each row: the trie automaton with the
    row's own list length k and excluded items (rows grouped by k; `constraint_masks` takes one k)."""
    comp = batch["input_ids"][:, -batch["completion_mask"].shape[1]:]
    ks = torch.tensor(batch["k"])
    allowed = None
    for k in ks.unique().tolist():
        rows = (ks == k).nonzero()[:, 0]
        m = constraint_masks(trie, k, eos_token_id, comp[rows], [set(batch["excluded"][r]) for r in rows.tolist()],
                             device=comp.device)  # built where the batch is (a GPU: no host-side mask)
        if allowed is None:
            allowed = torch.zeros(comp.shape + m.shape[2:], dtype=torch.bool, device=comp.device)
        allowed[rows] = m
    return allowed


class PreferenceTrainer(TiedWeightsLoad, DPOTrainer):
    """`DPOTrainer` whose loss sees (n + 1) lists per row, scored under the decoding constraints (module docstring)."""

    def __init__(self, *args, trie, loss_fn: LossFn, constrained: bool = True, **kw):
        self.trie, self.loss_fn, self.constrained = trie, loss_fn, constrained
        super().__init__(*args, **kw)
        if self.ref_model is None:
            raise ValueError("PreferenceTrainer needs TRL's reference model (no PEFT adapter, no precomputed log-probs)")
        for m in (self.model, self.ref_model):  # also Llama's attention dropout, which TRL's disable_dropout misses
            disable_dropout(m)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        missing = {"prompt_ids", "chosen_ids", "rejected_ids", "excluded", "k"} - set(dataset.column_names)
        if missing:
            raise ValueError(f"{dataset_name} preference rows lack {sorted(missing)}: build them with tokenize_rows")
        return dataset

    def list_logps(self, model, batch: dict, allowed: torch.Tensor | None) -> torch.Tensor:
        """Summed completion log-probs [R] of every sequence of the batch (`allowed`: None = unconstrained)."""
        mask = batch["completion_mask"]
        C = mask.shape[1]
        with self.accelerator.autocast():
            logits = completion_logits(model, batch["input_ids"], batch["attention_mask"], C)
        if allowed is None:
            allowed = torch.ones(logits.shape, dtype=torch.bool, device=logits.device)
        return constrained_token_logps(logits, batch["input_ids"][:, -C:], allowed, completion_mask=mask).sum(1)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        B = inputs["n_prompts"]
        allowed = list_constraints(self.trie, inputs, self.processing_class.eos_token_id) if self.constrained else None
        logps = self.list_logps(model, inputs, allowed)
        with torch.no_grad():
            ref = self.list_logps(self.ref_model, inputs, allowed)
        h = (logps - ref).view(-1, B)  # [n + 1, B]: chosen first
        chosen, rejected = h[0], h[1:].T
        losses = self.loss_fn(chosen, rejected, self.beta)
        gather = self.accelerator.gather_for_metrics
        rc, rr = gather(self.beta * chosen.detach()), gather(self.beta * rejected.detach())
        m = self._metrics[mode]
        m["rewards/chosen"].append(rc.mean().item())
        m["rewards/rejected"].append(rr.mean().item())
        m["rewards/margins"].append((rc - rr.mean(1)).mean().item())  # chosen minus the mean of its negatives
        m["rewards/accuracies"].append((rc[:, None] > rr).all(1).float().mean().item())  # above every negative
        lp = logps.detach().view(-1, B)
        m["logps/chosen"].append(gather(lp[0]).mean().item())
        m["logps/rejected"].append(gather(lp[1:]).mean().item())
        loss = losses.mean()
        return (loss, {"losses": losses.detach()}) if return_outputs else loss


# ----------------------------------------------------------------------------------------------- training steps
def _device_args(ctx) -> dict:
    return {"seed": ctx.seed, "data_seed": ctx.seed, "use_cpu": not torch.cuda.is_available(), "bf16": ctx.profile.bf16,
            "report_to": "none", **trainer_args()}


def _save_on_main(save, final: Path) -> None:
    """Write a model folder atomically from the main process only; every process waits for it."""
    state = PartialState()
    if state.is_main_process:
        atomic_save_dir(save, final)
    state.wait_for_everyone()


def sft_on_positives(ctx, start: Path, windows: Sequence[Window], cfg: PreferenceConfig, out: Path) -> Path:
    """`cfg.sft_epochs` of SFT from the model at `start` on (prompt, positive list) of `windows`; resumable.

    Returns the model folder (``out/model``; `start` itself when sft_epochs is 0 or no window has a positive).
    """
    from datasets import Dataset as HFDataset
    from trl import SFTConfig, SFTTrainer

    final = out / "model"
    if (final / "sft_info.json").exists():
        return final
    pos = [Window(w.user, w.history, tuple(positive_list(w, ctx.profile.exclude_history))) for w in windows]
    pos = [w for w in pos if w.target]
    if cfg.sft_epochs <= 0 or not pos:
        return Path(start)
    model, tok, _ = load_sft(start)
    args = SFTConfig(output_dir=str(out / "work"), per_device_train_batch_size=ctx.profile.sft_batch,
                     learning_rate=cfg.sft_lr, weight_decay=ctx.profile.sft_weight_decay, lr_scheduler_type="linear",
                     num_train_epochs=cfg.sft_epochs, max_grad_norm=1.0, logging_steps=10, save_strategy="no",
                     completion_only_loss=True, max_length=1024, **_device_args(ctx))
    trainer = SFTTrainer(model=model, args=args, train_dataset=HFDataset.from_dict(
        prompt_completion(ctx.data, pos, ctx.profile, tok)), processing_class=tok,
        callbacks=[FiniteLoss(f"SFT on the alignment positives ({ctx.data.name})",
                              "lower its learning rate (--set METHOD.sft_lr=VALUE) and run again")])
    quiet_progress(trainer)
    t0 = time.time()
    res = trainer.train()
    info = {"seconds": time.time() - t0, "steps": trainer.state.global_step, "windows": len(pos),
            "train_loss": res.training_loss, "start": str(start)}

    def save(d):
        trainer.accelerator.unwrap_model(trainer.model).save_pretrained(d)
        tok.save_pretrained(d)
        (Path(d) / "sft_info.json").write_text(json.dumps(info))

    _save_on_main(save, final)
    return final


def run_dpo(ctx, start: Path, windows: Sequence[Window], rows: list[dict], cfg: PreferenceConfig, loss_fn: LossFn,
            out: Path) -> tuple[Path, dict]:
    """Preference optimisation from the model at `start` (also pi_ref) on `rows`; resumable from ``out/work``.

    Returns (model folder, info) with the per-step log: loss, rewards/chosen, rewards/rejected, rewards/margins,
    rewards/accuracies (chosen above every negative), grad_norm, learning_rate.
    """
    from datasets import Dataset as HFDataset

    final = out / "final"
    if (final / "dpo_info.json").exists():
        return final, json.loads((final / "dpo_info.json").read_text())
    if not rows:
        ctx.log.warning("DPO skipped: no preference rows (the model at %s is kept)", start)
        return Path(start), {"dpo_steps": 0, "rows": 0, "train_log": []}
    _, tok, _ = load_sft(start)
    trie = get_trie(ctx, tok)
    data = HFDataset.from_dict(tokenize_rows(rows, prompts_for(ctx, tok, windows), windows, tok, trie,
                                             ctx.profile.exclude_history))
    n_proc = PartialState().num_processes
    per_device = max(1, cfg.batch_size // n_proc)
    args = DPOConfig(
        output_dir=str(out / "work"), learning_rate=cfg.lr, lr_scheduler_type=cfg.lr_scheduler,
        warmup_steps=cfg.warmup_ratio, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=per_device, gradient_accumulation_steps=1, beta=cfg.beta,
        max_grad_norm=cfg.max_grad_norm, weight_decay=0.0, logging_steps=1, save_strategy="steps", save_steps=50,
        save_total_limit=1, remove_unused_columns=False, precompute_ref_log_probs=False, max_length=None,
        # dropout would make the policy's log-probs noisy against the reference's (design.md §5)
        disable_dropout=True, **_device_args(ctx),
    )
    trainer = PreferenceTrainer(model=str(start), args=args, train_dataset=data, processing_class=tok,
                                data_collator=PreferenceCollator(tok.pad_token_id), trie=trie, loss_fn=loss_fn,
                                constrained=ctx.profile.constrained,
                                callbacks=[FiniteLoss(f"DPO {ctx.data.name}", "lower the learning rate "
                                                      "(--set METHOD.lr=VALUE) and run again")])
    quiet_progress(trainer)
    work = out / "work"
    resume = complete_checkpoint(work)  # incomplete checkpoints (killed inside a save) are removed
    ctx.log.info("DPO from %s: %d rows x %d rejected, %d processes, resume=%s", start, len(rows),
                 len(rows[0]["rejected"]), n_proc, resume)
    t0 = time.time()
    trainer.train(resume_from_checkpoint=resume or None)
    keys = ("loss", "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "grad_norm",
            "learning_rate")
    log = [{k: h[k] for k in ("step", *keys) if k in h} for h in trainer.state.log_history if "rewards/margins" in h]
    info = {"dpo_seconds": time.time() - t0, "dpo_steps": trainer.state.global_step, "rows": len(rows),
            "n_rejected": len(rows[0]["rejected"]), "n_processes": n_proc, "resumed": bool(resume), "train_log": log}

    def save(d):
        trainer.accelerator.unwrap_model(trainer.model).save_pretrained(d)
        tok.save_pretrained(d)
        (Path(d) / "dpo_info.json").write_text(json.dumps(info))

    _save_on_main(save, final)
    return final, info


def valid_scores(ctx, path: Path, windows: Sequence[Window]) -> dict[str, float]:
    """Greedy validation NDCG@5, Recall@5 and NDCG@10 of the model at `path` on `windows`."""
    model, tok, _ = load_sft(path)
    lists = greedy_lists(ctx, model, tok, list(windows))
    return {"ndcg@5": float(np.mean([ndcg_at_k(x, w.target, 5) for x, w in zip(lists, windows)])),
            "recall@5": float(np.mean([recall_at_k(x, w.target, 5) for x, w in zip(lists, windows)])),
            "ndcg@10": float(np.mean([ndcg_at_k(x, w.target, 10) for x, w in zip(lists, windows)]))}


def iteration_seed(seed: int, t: int) -> int:
    """The alignment-subset seed of iteration t: the run seed itself at t = 0 (the subset of the GRPO methods)."""
    return seed + 10_000 * t


def iteration_subsets(ds, cfg: PreferenceConfig, seed: int, iterations: int, source: str = "align"
                      ) -> tuple[list[list[Window]], list[Window]]:
    """([training windows of iteration t for t < iterations], validation windows), user-disjoint throughout.

    The validation windows and iteration 0's training windows are `alignment_subset`'s at the run seed (the GRPO
    methods' subset; S-DPO and List DPO have only this iteration). Iteration t > 0 samples `n_align_train` windows,
    seeded by `iteration_seed`, from the alignment pool without the validation windows' users, so no iteration trains
    on a validation window or on another window of a validation user (drawing iteration t's whole subset from
    `iteration_seed` put 91 and 77 of the 256 steam validation windows into SPRec's iterations 2 and 3)."""
    train0, valid = alignment_subset(ds, cfg.n_align_train, cfg.n_align_valid, seed, source)
    valid_users = {w.user for w in valid}
    pool = [w for w in alignment_pool(ds, source) if w.user not in valid_users]  # >= n_align_train: train0 fits
    subsets = [train0]
    for t in range(1, iterations):
        rng = random.Random(iteration_seed(seed, t))
        subsets.append([pool[i] for i in rng.sample(range(len(pool)), cfg.n_align_train)])
    return subsets, valid


BuildRows = Callable[..., tuple[list[dict], dict]]  # (ctx, windows, policy folder) -> (rows, info)


def fit_preference(ctx, cfg: PreferenceConfig, build_rows: BuildRows, loss_fn: LossFn, iterations: int = 1,
                   rows_from_start: bool = False) -> Path:
    """The preference pipeline from the shared SFT checkpoint; returns the final model folder. Resumable.

    Each iteration t: its training windows (`iteration_subsets`: never a validation user's), SFT on their positives
    from the current model, `build_rows` with the post-SFT model (or, with `rows_from_start`, the iteration's
    starting model: SPRec's self-play negatives), then `run_dpo` from the post-SFT model. Validation NDCG@5 of the
    SFT checkpoint and after every step goes into ``ctx.stats["valid_curve"]``; the fraction of prompts that gave a
    row into ``pairs_kept``.
    """
    summary = ctx.run_dir / "preference_info.json"
    if summary.exists():
        info = json.loads(summary.read_text())
    else:
        current = train_sft(ctx.data, ctx.profile, ctx.cache_dir, ctx.log, seed=ctx.seed)  # all processes, together
        subsets, valid_w = iteration_subsets(ctx.data, cfg, ctx.seed, iterations, ctx.profile.align_source)
        curve = [{"iteration": 0, "stage": "sft_checkpoint", **valid_scores(ctx, current, valid_w)}]
        iters = []
        for t in range(iterations):
            it = ctx.run_dir / f"it{t}"
            train_w = subsets[t]
            start = current
            sft = sft_on_positives(ctx, start, train_w, cfg, it / "sft")
            curve.append({"iteration": t + 1, "stage": "sft", **valid_scores(ctx, sft, valid_w)})
            t0 = time.time()
            rows, build = cached_rows(it / "preferences.json",
                                      lambda w=train_w, p=(start if rows_from_start else sft): build_rows(ctx, w, p))
            build_s = time.time() - t0
            current, dpo = run_dpo(ctx, sft, train_w, rows, cfg, loss_fn, it / "dpo")
            curve.append({"iteration": t + 1, "stage": "dpo", **valid_scores(ctx, current, valid_w)})
            iters.append({"iteration": t + 1, "pairs_kept": len(rows) / len(train_w), "build": build,
                          "build_seconds": build_s, **dpo})
            ctx.log.info("preference iteration %d: %d/%d prompts kept, valid NDCG@5 %.4f -> %.4f", t + 1, len(rows),
                         len(train_w), curve[-2]["ndcg@5"], curve[-1]["ndcg@5"])
        info = {"final": str(current), "valid_curve": curve, "iterations": iters,
                "pairs_kept": float(np.mean([x["pairs_kept"] for x in iters])), "n_align_train": cfg.n_align_train}
        if PartialState().is_main_process:
            atomic_write_text(summary, json.dumps(info, default=float))
    ctx.stats.update(info)
    return Path(info["final"])


__all__ = ["PreferenceConfig", "dpo_loss", "positive_list", "user_items", "cached_rows",
           "tokenize_rows", "PreferenceCollator", "PreferenceTrainer", "sft_on_positives", "run_dpo", "valid_scores",
           "iteration_seed", "iteration_subsets", "fit_preference"]
