"""Supervised fine-tuning (= BIGRec, and pi_ref / the initial policy of every alignment method).

TRL's `SFTTrainer` on a prompt/completion dataset built from the training windows (`benchmark.data.sft_windows`:
the sft users', or every training user's under the paper's ``align_source = "train"``), completion-only loss by
default, and the checkpoint chosen by the profile's `sft_select`: the best validation loss or the best validation
NDCG@5 of greedy constrained lists (early stopping; the epoch count is a maximum), or the last one after all epochs
(the paper); with a wall-time cap. The checkpoint is trained ONCE per (dataset, profile, seed) and shared by every
method of that seed: the run seed drives its initialisation, data order and seeded window caps (hence its checkpoint
selection), so a table's seed spread includes the base; the profile field `sft_seed` pins one shared base instead.
It lives in ``cache/sft/<dataset>-<key>/model`` and training state in ``.../work`` (resumable).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, EarlyStoppingCallback, TrainerCallback
from trl import SFTConfig, SFTTrainer

from benchmark.data import Dataset, Window, cap_windows, sft_windows
from benchmark.prompts import build_completion, build_prompt, render_items
from benchmark.io import atomic_save_dir, complete_checkpoint, content_hash
from benchmark.locks import all_processes_lock
from methods.common.guards import EvalProgress, FiniteLoss, TiedWeightsLoad, quiet_progress, trainer_args
from methods.common.models import build_model, get_tokenizer, n_params

def sft_seed(profile, seed: int) -> int:
    """The seed of the SFT a run starts from: the run seed, unless the profile pins one shared base (`sft_seed`)."""
    return seed if profile.sft_seed is None else profile.sft_seed


def _ranking_eval(ds: Dataset, windows: list[Window], profile, tok):
    """A function model -> validation NDCG@5 of greedy constrained lists on `windows` (how the checkpoint is used)."""
    from benchmark.metrics import ndcg_at_k
    from benchmark.prompts import SEP
    from methods.common.generation import generate_lists
    from methods.common.trie import ItemTrie

    rendered = render_items(ds, profile.item_repr)
    trie = ItemTrie(tok, rendered, SEP[profile.item_repr])
    prompts = prompt_completion(ds, windows, profile, tok)["prompt"]
    excluded = [set(w.history) if profile.exclude_history else set() for w in windows]

    def evaluate(model) -> float:
        res = generate_lists(model, tok, trie, prompts, excluded, profile.k,  # greedy: how evaluation decodes
                             batch_size=profile.eval_batch, bf16=profile.bf16 and not torch.cuda.is_available(),
                             progress=False)
        return sum(ndcg_at_k(lst[0], w.target, 5) for lst, w in zip(res.lists, windows)) / len(windows)

    return evaluate


class _RankingSFTTrainer(TiedWeightsLoad, SFTTrainer):
    """`SFTTrainer` whose evaluation also reports ``eval_ndcg@5`` when `ranking` is set (``sft_select = "ndcg"``),
    so transformers' best-checkpoint tracking AND early stopping can use the ranking quality.

    The metric is added in `evaluation_loop`, not after `evaluate`: `Trainer.evaluate` hands the loop's metrics to the
    callbacks (`EarlyStoppingCallback.on_evaluate`) before it returns, so a metric added afterwards is tracked for the
    best checkpoint but never stops training (the bug that let a 20-epoch steam run go on long after its peak)."""

    ranking = None

    def evaluation_loop(self, *args, metric_key_prefix: str = "eval", **kwargs):
        out = super().evaluation_loop(*args, metric_key_prefix=metric_key_prefix, **kwargs)
        if self.ranking is not None:
            out.metrics[f"{metric_key_prefix}_ndcg@5"] = self.ranking(self.model)
        return out


class _LossPatience(TrainerCallback):
    """Stop after `patience` evaluations without a lower validation loss (``sft_stop = "loss"``), whatever metric
    picks the checkpoint. Stateless: the count is read back from the log history, so a resumed run stops where an
    uninterrupted one would."""

    def __init__(self, patience: int):
        self.patience = patience

    def on_evaluate(self, args, state, control, **kw):
        losses = [h["eval_loss"] for h in state.log_history if "eval_loss" in h]  # `evaluate` logs, then calls us
        if len(losses) > self.patience and min(losses[-self.patience:]) >= min(losses[:-self.patience]):
            control.should_training_stop = True


class _TimeLimit(TrainerCallback):
    """Stop training after `limit_s` seconds of wall time (the best checkpoint is still restored)."""

    def __init__(self, limit_s: float):
        self.limit_s, self.t0 = limit_s, time.time()
        self.hit = False  # stopped by the cap: the kept checkpoint then depends on this machine's speed and load

    def on_step_end(self, args, state, control, **kw):
        from accelerate import PartialState

        over = [time.time() - self.t0 > self.limit_s]
        if PartialState().num_processes > 1:  # every process stops at the same step, as the main one decides
            from accelerate.utils import broadcast_object_list

            broadcast_object_list(over, from_process=0)
        if over[0]:
            self.hit = True
            control.should_training_stop = True
            control.should_evaluate = control.should_save = True


def prompt_completion(ds: Dataset, windows: list[Window], profile, tokenizer) -> dict[str, list[str]]:
    """The SFT dataset columns for `windows` (one prompt builder for every method)."""
    rendered = render_items(ds, profile.item_repr)
    chat = profile.model != "scratch"
    return {
        "prompt": [build_prompt(rendered, w.history, profile.item_repr, profile.k, tokenizer, chat) for w in windows],
        "completion": [build_completion(rendered, w.target, profile.item_repr) for w in windows],
    }


def sft_dir(ds: Dataset, profile, cache_dir: Path, seed: int = 0) -> Path:
    """The cache folder of the shared SFT checkpoint for (dataset, profile)."""
    key = content_hash({"data": ds.data_hash, "profile": asdict(profile), "seed": sft_seed(profile, seed), "v": 1})
    return cache_dir / "sft" / f"{ds.name}-{profile.name}-{key}"


def train_sft(ds: Dataset, profile, cache_dir: Path, log=None, seed: int = 0) -> Path:
    """Train (or resume, or reuse) the shared SFT checkpoint; returns the folder with model + tokenizer.

    One trainer per checkpoint: a lock beside it makes another run that needs it wait, then reuse it. Every process
    of an accelerate launch must call this together (they train together, `sft_batch` split across them)."""
    from accelerate import PartialState

    seed = sft_seed(profile, seed)
    root = sft_dir(ds, profile, cache_dir, seed)
    final = root / "model"
    if PartialState().num_processes == 1 and (final / "sft_info.json").exists():
        return final  # (several processes decide together, under the lock, so that none trains alone)
    with all_processes_lock(root.with_name(root.name + ".lock")):
        if (final / "sft_info.json").exists():  # trained by another run while this one waited
            return final
        return _train_sft(ds, profile, cache_dir, log, root, final, seed)


def _windows_note(ds: Dataset, profile, n: int) -> str:
    """Why SFT's window count differs from Table 2's SFT windows (the task's windows of the SFT users), or ""."""
    task = len(sft_windows(ds, profile.align_source))
    if n == task:
        return ""
    parts = [f"{task:,} task windows as Table 2 counts them"]
    shorter = len(sft_windows(ds, profile.align_source, profile.sft_min_target)) - task
    if shorter:
        parts.append(f"{shorter:,} with a shorter target (sft_min_target = {profile.sft_min_target})")
    note = " + ".join(parts)
    if profile.max_sft_windows is not None and n == profile.max_sft_windows:
        note += f", capped at max_sft_windows = {profile.max_sft_windows:,}"
    return f" ({note})"


def _train_sft(ds: Dataset, profile, cache_dir: Path, log, root: Path, final: Path, seed: int) -> Path:
    from accelerate import PartialState
    from datasets import Dataset as HFDataset

    state = PartialState()
    if profile.sft_batch % state.num_processes:
        raise ValueError(f"sft_batch {profile.sft_batch} must be a multiple of the {state.num_processes} processes "
                         f"(--set sft_batch=VALUE, or launch a number of processes that divides it)")

    select = profile.sft_select  # validated with the profile (benchmark.config.SFT_SELECT)
    tok = get_tokenizer(ds, profile, cache_dir)
    train_w = cap_windows(sft_windows(ds, profile.align_source, profile.sft_min_target), profile.max_sft_windows,
                          seed)
    eval_w = cap_windows(ds.splits["valid"], profile.sft_eval_windows, seed)
    train = HFDataset.from_dict(prompt_completion(ds, train_w, profile, tok))
    evals = HFDataset.from_dict(prompt_completion(ds, eval_w, profile, tok))
    model = build_model(profile, tok, cache_dir, seed)
    if profile.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
    work = root / "work"
    args = SFTConfig(
        output_dir=str(work), seed=seed, data_seed=seed,
        per_device_train_batch_size=profile.sft_batch // state.num_processes, per_device_eval_batch_size=max(64, profile.sft_batch),
        learning_rate=profile.sft_lr, weight_decay=profile.sft_weight_decay, adam_beta2=0.95,
        warmup_steps=profile.sft_warmup_steps, lr_scheduler_type=profile.sft_scheduler,
        lr_scheduler_kwargs={"min_lr_rate": 0.1} if profile.sft_scheduler == "cosine_with_min_lr" else {},
        num_train_epochs=profile.sft_max_epochs, max_grad_norm=1.0,
        eval_strategy="steps", eval_steps=profile.sft_eval_every, save_strategy="steps",
        save_steps=profile.sft_eval_every, save_total_limit=2, load_best_model_at_end=select != "last",
        metric_for_best_model="eval_ndcg@5" if select == "ndcg" else "eval_loss", greater_is_better=select == "ndcg",
        logging_steps=profile.sft_eval_every, label_smoothing_factor=profile.sft_label_smoothing,
        bf16=profile.bf16, use_cpu=not torch.cuda.is_available(), **trainer_args(),
        completion_only_loss=profile.sft_completion_only, max_length=1024, report_to="none",
        include_num_input_tokens_seen=True,
        dataloader_num_workers=0, save_only_model=False,
    )
    if select == "last":
        stopping = []
    elif profile.sft_stop == "loss":
        stopping = [_LossPatience(profile.sft_patience)]
    else:
        stopping = [EarlyStoppingCallback(profile.sft_patience)]
    what = f"SFT {ds.name}/{profile.name}"
    watch = "eval_ndcg@5" if select == "ndcg" and profile.sft_stop == "select" else "eval_loss"
    guards = [FiniteLoss(what, "lower the learning rate (--set sft_lr=VALUE) and run again"),
              EvalProgress(what, profile.sft_patience if select != "last" else None, watch, profile.sft_max_time_s)]
    cap = _TimeLimit(profile.sft_max_time_s)
    trainer = _RankingSFTTrainer(model=model, args=args, train_dataset=train, eval_dataset=evals, processing_class=tok,
                                 callbacks=[*guards, *stopping, cap])
    quiet_progress(trainer)
    if select == "ndcg":
        trainer.ranking = _ranking_eval(ds, eval_w, profile, tok)
    resume = complete_checkpoint(work)  # incomplete checkpoints (killed inside a save) are removed
    if log:
        log.info("SFT %s/%s: %s train windows%s, %d eval windows, %.2fM params, resume=%s", ds.name, profile.name,
                 f"{len(train_w):,}", _windows_note(ds, profile, len(train_w)), len(eval_w), n_params(model) / 1e6,
                 resume)
    t0 = time.time()
    out = trainer.train(resume_from_checkpoint=resume or None)
    secs = time.time() - t0
    st = trainer.state
    curve: dict[int, dict] = {}  # eval_loss and eval_ndcg@5 are logged as two entries of the same step
    for h in st.log_history:
        for k in ("eval_loss", "eval_ndcg@5"):
            if k in h:
                curve.setdefault(h["step"], {"step": h["step"]})[k] = h[k]
    evals_hist = list(curve.values())
    train_hist = [{"step": h["step"], "loss": h["loss"]} for h in st.log_history if "loss" in h]
    steps_per_epoch = max(1, -(-len(train_w) // profile.sft_batch))
    best_step = (int(st.best_model_checkpoint.rsplit("-", 1)[1])
                 if select != "last" and st.best_model_checkpoint else st.global_step)
    info = {
        "params": n_params(model), "train_windows": len(train_w), "eval_windows": len(eval_w),
        "steps": st.global_step, "epochs": st.global_step / steps_per_epoch, "best_step": best_step,
        "best_epoch": best_step / steps_per_epoch, "selected_by": select,
        "best_metric": st.best_metric if select != "last" else None, "seconds": secs,
        "tokens_seen": st.num_input_tokens_seen, "tokens_per_s": st.num_input_tokens_seen / max(secs, 1e-9),
        "resumed": bool(resume), "train_loss": out.training_loss, "eval_curve": evals_hist, "train_curve": train_hist,
        # what ended training: the wall-time cap makes the result depend on the machine's speed (reports flag it)
        "stopped_by": ("time cap" if cap.hit else "step cap" if st.global_step >= st.max_steps else "patience"),
    }
    if cap.hit and log:
        log.warning("SFT %s/%s stopped at the wall-time cap (sft_max_time_s = %g) at step %d of %d: the kept "
                    "checkpoint depends on this machine's speed and load; raise it (--set sft_max_time_s=SECONDS) "
                    "for a result that does not", ds.name, profile.name, profile.sft_max_time_s, st.global_step,
                    st.max_steps)
    if profile.lora:
        model = trainer.model.merge_and_unload()
    else:
        model = trainer.model

    def save(d):
        model.save_pretrained(d)
        tok.save_pretrained(d)
        (Path(d) / "sft_info.json").write_text(json.dumps(info, indent=1))

    if state.is_main_process:
        atomic_save_dir(save, final)
    state.wait_for_everyone()
    if log:
        log.info("SFT done in %.0fs: kept step %d (%.2f epochs, by %s; best %.4f), %.0f tok/s", secs, best_step,
                 info["best_epoch"], select, st.best_metric or float("nan"), info["tokens_per_s"])
    return final


def load_sft(path: Path):
    """(model, tokenizer, info) of a trained checkpoint (SFT, or an aligned policy: info is then {}), eval mode."""
    from transformers import AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(path)
    tok.padding_side = "left"
    info_file = Path(path) / "sft_info.json"
    info = json.loads(info_file.read_text()) if info_file.exists() else {}
    return model, tok, info


class _ContinuedSFTTrainer(TiedWeightsLoad, SFTTrainer):
    """`SFTTrainer` that ties the output layer again when it resumes from a checkpoint (`TiedWeightsLoad`)."""


def continue_sft(ctx, start: Path, rows: list[Window], *, batch: int, lr: float, lr_scheduler: str, out: Path,
                 save_every: int) -> tuple[Path, dict]:
    """A fixed budget of SFT from the model at `start`: one optimiser step per `batch` CONSECUTIVE rows of `rows`
    (len(rows) / batch steps; no shuffling, no evaluation, no early stopping, no checkpoint selection). Returns
    (``out/model``, its info: steps, sequences, tokens, seconds, loss curve); resumable from ``out/work``.

    Examples and loss are the shared SFT's (`prompt_completion`: prompt + the window's target list; completion-only
    unless ``profile.sft_completion_only`` is False; ``profile.sft_label_smoothing``; the model's dropout on, as SFT
    trains). The optimiser is `train_grpo`'s (AdamW at `lr` with `lr_scheduler`, no warm-up, no weight decay,
    grad-norm clip 1.0), so a caller that passes an alignment method's lr and schedule changes only the objective.
    The caller orders `rows` (e.g. successive seeded passes over a window set: methods/sft_align.py)."""
    from accelerate import PartialState
    from datasets import Dataset as HFDataset

    final, info_name = out / "model", "continued_sft.json"
    if (final / info_name).exists():
        return final, json.loads((final / info_name).read_text())
    state = PartialState()
    n_proc = state.num_processes
    if not rows or len(rows) % batch or batch % n_proc:
        raise ValueError(f"continue_sft: {len(rows)} rows must be a positive multiple of the batch ({batch}), and the "
                         f"batch a multiple of the {n_proc} processes")
    steps = len(rows) // batch
    model, tok, _ = load_sft(start)
    work = out / "work"
    args = SFTConfig(
        output_dir=str(work), seed=ctx.seed, data_seed=ctx.seed, per_device_train_batch_size=batch // n_proc,
        gradient_accumulation_steps=1, max_steps=steps, train_sampling_strategy="sequential",
        learning_rate=lr, lr_scheduler_type=lr_scheduler, warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        label_smoothing_factor=ctx.profile.sft_label_smoothing, completion_only_loss=ctx.profile.sft_completion_only,
        max_length=1024, bf16=ctx.profile.bf16, use_cpu=not torch.cuda.is_available(), **trainer_args(),
        logging_steps=1, save_strategy="steps", save_steps=max(1, save_every), save_total_limit=1,
        save_only_model=False, include_num_input_tokens_seen=True, dataloader_num_workers=0, report_to="none",
    )
    trainer = _ContinuedSFTTrainer(model=model, args=args, processing_class=tok,
                                   train_dataset=HFDataset.from_dict(prompt_completion(ctx.data, rows, ctx.profile, tok)),
                                   callbacks=[FiniteLoss(f"continued SFT {ctx.data.name}",
                                                         "lower the learning rate (--set lr=VALUE) and run again")])
    quiet_progress(trainer)
    resume = complete_checkpoint(work)  # incomplete checkpoints (killed inside a save) are removed
    ctx.log.info("continued SFT %s: %d rows, %d steps of %d, lr %g (%s), resume=%s", ctx.data.name, len(rows), steps,
                 batch, lr, lr_scheduler, resume)
    t0 = time.time()
    res = trainer.train(resume_from_checkpoint=resume or None)
    secs = time.time() - t0
    st = trainer.state
    if st.global_step != steps:
        raise RuntimeError(f"continue_sft trained {st.global_step} steps, planned {steps}")
    info = {"steps": st.global_step, "sequences": st.global_step * batch, "batch": batch, "seconds": secs,
            "tokens_seen": st.num_input_tokens_seen, "train_loss": res.training_loss, "resumed": bool(resume),
            "train_curve": [{"step": h["step"], "loss": h["loss"]} for h in st.log_history if "loss" in h],
            "start": str(start)}
    if state.is_main_process:
        def save(d):
            trainer.accelerator.unwrap_model(trainer.model).save_pretrained(d)
            tok.save_pretrained(d)
            (Path(d) / info_name).write_text(json.dumps(info))
        atomic_save_dir(save, final)
    state.wait_for_everyone()
    return final, info


__all__ = ["train_sft", "load_sft", "sft_dir", "sft_seed", "prompt_completion"]
