"""GRPO with constrained list rollouts on TRL's `GRPOTrainer` (shared by BLADE, static BoN alignment and ReRe).

The trainer is TRL's `GRPOTrainer` with small overrides (docs/grpo_cost.md, docs/methods.md §4):
  1. `_generate_and_score_completions` remembers each row's history so that
  2. `_generate_single_turn` decodes with the catalogue trie (K distinct valid items, history masked), through a
     ROLLOUT HOOK: how a group's completions are produced (`sample_rollouts`, plain sampling, is the default; a
     method passes another callable, e.g. constrained beam search for ReRe);
  3. `_calculate_rewards` hands the raw list rewards (already GATHERED over processes, checked to form whole
     groups of one prompt) to the method's GROUP REWARD function (e.g. BLADE's proxy (N - 1) log F, Eq. 14-15) and
     logs per-step diagnostics;
  4. `_get_per_token_logps_and_entropies` scores the completion positions only (TRL's fused kernel falls back to a
     slow path on CPU that also scores prompt positions; measured 1.35-1.75x slower) with the log-probs of the
     CONSTRAINED policy the rollouts were sampled from (methods/common/logprobs.py, issue 9): the trie/history/EOS
     masks of each position, computed once per generation batch in (2) and carried with the rows through TRL's
     shuffle and split as the ``allowed`` entry of the batch, the repetition penalty and the temperature, all
     renormalised over the allowed tokens. Policy, old policy and reference (the KL term) all use it.
  5. every dropout of the policy and the reference is off (`disable_dropout`: TRL's `disable_dropout` misses Llama's
     attention dropout, a float on the attention modules), so policy = reference gives KL 0 and ratio 1 at step 1.
Everything else (grouping, advantages (Eq. 2), clipped surrogate + k3 KL with loss_type "grpo" (Eq. 3), optimiser,
checkpoints, multi-process) is TRL's. `train_grpo` runs it on an alignment subset with validation curves (Fig. 4a).

This module imports nothing from a method: a method passes its settings (its config, a `GRPOSettings` from
methods/common/configs.py, where the fields and their validation rules live), its list reward and its group reward.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from transformers import LogitsProcessorList, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from benchmark.data import Window
from benchmark.io import atomic_save_dir, complete_checkpoint
from benchmark.metrics import score_lists
from methods.common.configs import LOGPS, GRPOSettings
from methods.common.estimator import zero_spread_fraction
from methods.common.guards import FiniteLoss, TiedWeightsLoad, quiet_progress, trainer_args
from methods.common.llm import generate_for, prompts_for
from methods.common.logprobs import completion_logits, constrained_token_logps, constraint_masks, disable_dropout
from methods.common.trie import ListConstraintProcessor

# the validation curve's metrics (Fig. 4a: Recall@5; Fig. 7: Recall@5 and MGU); MGU/ILD are None when undefined
CURVE_METRICS = ("recall@5", "ndcg@5", "ndcg@10", "mgu", "ild")
INFO_FILE = "grpo_info.json"  # written into the final model folder; its presence means the run is finished


# (raw rewards [n_groups, G] gathered over processes, each group's training row [n_groups]) ->
# (rewards [n_groups, G] that GRPO normalises per group, {name: value} diagnostics logged per step)
GroupReward = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


def sample_rollouts(model, logits_processor: LogitsProcessorList, **generate_kwargs) -> torch.Tensor:
    """The default rollout hook: `model.generate` with the trie processor (TRL's generation config: sampling).

    A rollout hook receives the unwrapped model, the constraint processor (one excluded set per ROW, so it fits any
    row order in which a prompt's rows stay together) and TRL's generate kwargs (``input_ids`` left-padded,
    ``attention_mask``, ``generation_config``), and returns ``[rows, prompt width + T]`` token ids, one row per input
    row (the G rows of a group are consecutive copies of one prompt when the group is whole on this process).
    """
    return type(model).generate(model, logits_processor=logits_processor, **generate_kwargs)


def check_settings(cfg: GRPOSettings) -> None:
    """Raise a clear error for a GRPO setting no run could use (called before any training starts)."""
    if cfg.logps not in LOGPS:
        raise ValueError(f"logps={cfg.logps!r} unknown; valid: {', '.join(LOGPS)}")
    if cfg.num_iterations < 1:
        raise ValueError(f"num_iterations must be >= 1, got {cfg.num_iterations}")


def shift_groups(rewards: torch.Tensor) -> torch.Tensor:
    """Each group's rewards [n_groups, G] minus the group's first reward.

    GRPO's advantages (r - mean) / (std + 1e-4) (Eq. 2, TRL's scale_rewards "group") do not change when a group's
    rewards are shifted, except in float rounding; but a group of EQUAL rewards is only exact at 0. TRL's float32
    mean of 16 copies of -12.74 (BLADE's proxy when every rollout misses) is off by one ulp, so its std is 1e-6 and
    every member gets the same advantage of about -0.01 instead of 0 (a push on the group's own samples that Eq. 2
    does not have). Shifted, such a group is exactly 0: mean 0, std 0, advantages 0.
    """
    return rewards - rewards[:, :1]


def max_completion_len(trie, k: int) -> int:
    """Enough tokens for K items, separators and EOS."""
    return k * (trie.max_item_len + len(trie.sep_ids)) + 1


# ----------------------------------------------------------------------------------------------- trainer
class ListGRPOTrainer(TiedWeightsLoad, GRPOTrainer):
    """`GRPOTrainer` + constrained rollouts + a method's group reward + a CPU-fast completion-only log-prob.

    Args (besides GRPOTrainer's):
        trie, k: the catalogue trie and the list length of the constraint.
        group_reward: turns gathered raw rewards into the rewards GRPO normalises (see `GroupReward`).
        rollout: the rollout hook (`sample_rollouts` by default).
        logps: "constrained" (default) or "raw" (the full-vocabulary log-softmax at the rollout temperature that
            the trainer used before issue 9; kept to measure the difference and the cost).
    The train dataset needs the columns ``row`` (the prompt's index), ``history`` and ``exclude_history``.
    """

    def __init__(self, *args, trie, k: int, group_reward: GroupReward, rollout=sample_rollouts,
                 logps: str = "constrained", **kw):
        if logps not in LOGPS:
            raise ValueError(f"logps={logps!r} unknown; valid: {', '.join(LOGPS)}")
        super().__init__(*args, **kw)
        self.trie, self.k, self.group_reward, self.rollout, self.logps = trie, k, group_reward, rollout, logps
        for m in (self.model, self.ref_model):
            if m is not None:
                disable_dropout(m)
        self._excluded: list[set[int]] = []
        self._allowed: torch.Tensor | None = None  # constraint masks of the rows being scored
        self._last_logps: torch.Tensor | None = None  # the policy's log-probs of the last loss forward
        self.train_eval_gap: float | None = None  # max |train-mode - eval-mode log-prob| on the first batch
        self.metric_names: list[str] = []  # the per-step diagnostics logged by _calculate_rewards, in order
        self.groups_checked = 0  # groups whose G gathered rows were verified to come from one prompt
        self.masks_recorded = 0  # generation batches whose constraint masks came from the sampler's record

    # 1 + 2. constrained rollouts ---------------------------------------------------------------------------------
    def _generate_and_score_completions(self, inputs):
        self._excluded = [set(x["history"]) if x["exclude_history"] else set() for x in inputs]
        out = super()._generate_and_score_completions(inputs)
        if self._allowed is not None:
            if self._allowed.shape[:2] != out["completion_ids"].shape:
                raise RuntimeError(f"constraint masks {tuple(self._allowed.shape)} do not match the completions "
                                   f"{tuple(out['completion_ids'].shape)}")
            out["allowed"] = self._allowed  # travels with its rows through TRL's shuffle and split
        if self.train_eval_gap is None and self.model.training:
            self.train_eval_gap = self._train_eval_gap(out)
        return out

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        base = self.accelerator.unwrap_model(self.model_wrapped)
        width = max(len(p) for p in prompt_ids)  # TRL left-pads to the longest prompt (pad_to_multiple_of None)
        # the default sampler calls the processor once per position over these rows: it records the masks it applies,
        # and the log-probs take them instead of replaying the automaton (a custom rollout hook, e.g. ReRe's beams,
        # reorders rows: replayed)
        proc = ListConstraintProcessor(self.trie, self.k, self._tokenizer.eos_token_id, width, self._excluded,
                                       record=self.rollout is sample_rollouts and self.logps == "constrained")
        base.generate = functools.partial(self.rollout, base, LogitsProcessorList([proc]))
        try:
            ids, logprobs = super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                          has_tool_images)
        finally:
            del base.generate  # back to the class method
        self._allowed = None
        if self.logps == "constrained":  # once per generation batch, padded as TRL pads the completions
            comp = torch.full((len(ids), max(map(len, ids))), self._tokenizer.pad_token_id, dtype=torch.long)
            for r, c in enumerate(ids):
                comp[r, :len(c)] = torch.tensor(c, dtype=torch.long)
            V = base.get_output_embeddings().weight.shape[0]
            W, dev = comp.shape[1], self.accelerator.device
            if proc.trace is not None and len(proc.trace) >= W and proc.trace[0][0] == len(ids):
                self._allowed = proc.masks(W, V, device=dev)  # recorded while sampling: no host replay
            else:
                self._allowed = constraint_masks(self.trie, self.k, self._tokenizer.eos_token_id, comp,
                                                 self._excluded, vocab_size=V, device=dev)  # built on the device
            self.masks_recorded += proc.trace is not None and len(proc.trace) >= W
        return ids, logprobs

    # 3. the method's group reward + diagnostics --------------------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        from accelerate.utils import gather

        raw = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)[:, 0]  # gathered
        rows = gather(torch.tensor([x["row"] for x in inputs], device=raw.device))
        G = self.num_generations
        groups, rows_g = raw.view(-1, G), rows.view(-1, G)
        # a group is G consecutive rows of ONE prompt in the gathered order; check it, never assume it
        if not bool((rows_g == rows_g[:, :1]).all()):
            raise RuntimeError("a GRPO group straddles prompts after gathering: the estimator would mix groups")
        self.groups_checked += rows_g.shape[0]
        rewards, extra = self.group_reward(groups, rows_g[:, 0])
        for name, v in (("raw_reward", groups.mean()), *extra.items(),
                        ("frac_zero_spread", zero_spread_fraction(groups.cpu())),
                        # groups the reward gives no learning signal (all rewards equal): e.g. the static
                        # estimator's saturation (every rollout above the reference max) shows up here
                        ("frac_zero_spread_proxy", zero_spread_fraction(rewards.view(-1, G).cpu())),
                        ("raw_reward_best_of_group", groups.max(1).values.mean())):
            self._log_metric(name, float(v))
            if name not in self.metric_names:
                self.metric_names.append(name)
        return shift_groups(rewards.view(-1, G)).to(raw.device).reshape(-1, 1)

    # 4. completion-only log-probs of the constrained policy ----------------------------------------------------------
    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **kw):
        with self.accelerator.autocast():
            logits = completion_logits(model, input_ids, attention_mask, logits_to_keep)
        P = input_ids.shape[1] - logits_to_keep
        if self.logps == "raw":
            lp = (logits / self.temperature).log_softmax(-1)
            logps = lp.gather(-1, input_ids[:, P:, None]).squeeze(-1)
            ent = None
            if compute_entropy:
                with torch.no_grad():
                    ent = -(lp.exp() * lp).sum(-1)
        else:
            if self._allowed is None or self._allowed.shape[:2] != (input_ids.shape[0], logits_to_keep):
                got = None if self._allowed is None else tuple(self._allowed.shape)
                raise RuntimeError(f"no constraint masks for these {input_ids.shape[0]} x {logits_to_keep} "
                                   f"completions (have {got})")
            logps, ent = constrained_token_logps(
                logits, input_ids[:, P:], self._allowed, self.temperature, self.repetition_penalty, input_ids[:, :P],
                prompt_mask=attention_mask[:, :P], completion_mask=attention_mask[:, P:], return_entropy=True)
            ent = ent if compute_entropy else None
        if torch.is_grad_enabled():
            self._last_logps = logps.detach()
        return logps, ent, None

    def _compute_loss(self, model, inputs):
        self._allowed = inputs.get("allowed")  # this micro-batch's rows, in its (shuffled) order
        loss = super()._compute_loss(model, inputs)
        old = inputs.get("old_per_token_logps")
        if old is not None:  # mu > 1: |ratio - 1| of the policy against the policy that sampled (1 at step 1)
            mask = inputs["completion_mask"].bool()
            dev = (torch.exp(self._last_logps - old) - 1).abs()[mask]
            self._metrics["train" if self.model.training else "eval"]["ratio_max_dev"].append(
                float(self.accelerator.gather(dev.max() if dev.numel() else dev.new_zeros(())).max()))
        return loss

    def _train_eval_gap(self, batch) -> float:
        """Max |train-mode - eval-mode log-prob| of the policy on a generated batch (0 when no dropout is active)."""
        ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
        mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
        T = batch["completion_ids"].shape[1]
        with torch.no_grad():
            a = self._get_per_token_logps_and_entropies(self.model, ids, mask, T)[0]
            self.model.eval()
            try:
                b = self._get_per_token_logps_and_entropies(self.model, ids, mask, T)[0]
            finally:
                self.model.train()
        return float((a - b).abs().max())


class ValidationCurve(TrainerCallback):
    """Step times, and validation `CURVE_METRICS` (greedy) at step 0 and every `every` steps (Fig. 4a, Fig. 7).

    Each point also goes into the trainer's log history (key `CURVE_KEY`), which every checkpoint saves, so a resumed
    run restores the points made before its checkpoint and its curve equals an uninterrupted run's."""

    CURVE_KEY = "valid_curve_point"

    def __init__(self, evaluate, every: int):
        self.evaluate, self.every = evaluate, every
        self.valid: list[dict] = []
        self.step_times: list[float] = []
        self._t = None

    def add_point(self, state) -> None:
        point = {"step": state.global_step, **self.evaluate()}
        self.valid.append(point)
        state.log_history.append({"step": state.global_step, self.CURVE_KEY: point})

    def on_train_begin(self, args, state, control, **kw):
        self.valid = [h[self.CURVE_KEY] for h in state.log_history if self.CURVE_KEY in h]  # [] unless resumed
        if not self.valid:  # step 0 (or a checkpoint written before curves were logged: the resume step)
            self.add_point(state)

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        if self._t is not None:
            self.step_times.append(time.perf_counter() - self._t)
        if self.every and state.global_step % self.every == 0:
            self.add_point(state)


def finished_grpo(ctx) -> Path | None:
    """The final model folder of a finished `train_grpo` in this run dir (its info restored into ctx.stats)."""
    final = ctx.run_dir / "final"
    if (final / INFO_FILE).exists():
        ctx.stats.update(json.loads((final / INFO_FILE).read_text()))
        return final
    return None


def train_grpo(ctx, cfg: GRPOSettings, *, sft_path: Path, tok, trie, train_w: list[Window], valid_w: list[Window],
               list_reward: Callable[[list[int], Window], float], reward_name: str, group_reward: GroupReward,
               rollout=sample_rollouts, extra_info: dict | None = None) -> Path:
    """GRPO from the SFT checkpoint on the prompts `train_w`. Returns the final model folder (resumable).

    Args:
        ctx: the run context.
        cfg: the GRPO/rollout settings.
        sft_path: the SFT checkpoint (policy init and KL reference; TRL rebuilds the reference from the path).
        tok, trie: its tokenizer and the catalogue trie.
        train_w, valid_w: alignment prompts, and the windows of the validation curve.
        list_reward: R(list, window), the raw reward of one generated list.
        reward_name: its name in TRL's logs.
        group_reward: raw group rewards -> GRPO rewards (+ diagnostics).
        rollout: the rollout hook.
        extra_info: more numbers for the record (saved with the model, restored on resume).
    """
    from accelerate import PartialState
    from datasets import Dataset as HFDataset

    state = PartialState()
    data = HFDataset.from_dict({
        "prompt": prompts_for(ctx, tok, train_w),
        "target": [list(w.target) for w in train_w], "history": [list(w.history) for w in train_w],
        "row": list(range(len(train_w))), "exclude_history": [ctx.profile.exclude_history] * len(train_w),
    })

    def reward_fn(completion_ids, target, history, **kw):
        return [list_reward(trie.parse(c), Window("", tuple(h), tuple(t)))
                for c, t, h in zip(completion_ids, target, history)]
    reward_fn.__name__ = reward_name

    n_proc = state.num_processes
    per_device = cfg.prompts_per_step * cfg.G // n_proc
    if per_device * n_proc != cfg.prompts_per_step * cfg.G:
        raise ValueError(f"prompts_per_step*G = {cfg.prompts_per_step * cfg.G} must divide by {n_proc} processes")
    args = GRPOConfig(
        output_dir=str(ctx.run_dir / "work"), seed=ctx.seed, data_seed=ctx.seed, use_cpu=not torch.cuda.is_available(),
        bf16=ctx.profile.bf16, **trainer_args(), learning_rate=cfg.lr, lr_scheduler_type=cfg.lr_scheduler,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, per_device_train_batch_size=per_device,
        gradient_accumulation_steps=1, num_generations=cfg.G,
        max_completion_length=max_completion_len(trie, ctx.profile.k), temperature=cfg.temperature, top_p=1.0,
        top_k=0, repetition_penalty=cfg.repetition_penalty, beta=cfg.beta, epsilon=cfg.epsilon, loss_type="grpo",
        scale_rewards="group", num_iterations=cfg.num_iterations,
        max_grad_norm=1.0, weight_decay=0.0, warmup_steps=0, logging_steps=1, save_strategy="steps",
        save_steps=cfg.eval_every or 10**9, save_total_limit=1, report_to="none",
        remove_unused_columns=False, shuffle_dataset=True, mask_truncated_completions=False,
        # dropout would make the policy's log-probs noisy against the (eval-mode) reference: ratio != 1 and KL > 0
        # at step 0 (measured: KL 0.027 at step 1 with the cpu profile's attention dropout 0.2); TRL's switch misses
        # Llama's attention dropout, which ListGRPOTrainer zeroes too
        disable_dropout=True,
    )
    holder = {}

    def evaluate():
        if not state.is_main_process:
            return {}
        m = holder["trainer"].accelerator.unwrap_model(holder["trainer"].model)
        was_training = m.training
        m.eval()
        res = generate_for(ctx, m, tok, valid_w, progress=False)
        m.train(was_training)
        agg, _ = score_lists([s[0] for s in res.lists], valid_w, ctx.data.item_genres, ctx.data.genre_set,
                             ctx.data.n_items, list_len=ctx.profile.k)
        return {k: agg[k] for k in CURVE_METRICS}

    curves = ValidationCurve(evaluate, cfg.eval_every)
    finite = FiniteLoss(f"GRPO {ctx.data.name} ({reward_name})", "lower the learning rate (--set METHOD.lr=VALUE) "
                        "and run again")
    trainer = ListGRPOTrainer(model=str(sft_path), reward_funcs=[reward_fn], args=args, train_dataset=data,
                              processing_class=tok, callbacks=[curves, finite], trie=trie, k=ctx.profile.k,
                              group_reward=group_reward, rollout=rollout, logps=cfg.logps)
    quiet_progress(trainer)
    holder["trainer"] = trainer
    work = ctx.run_dir / "work"
    resume = complete_checkpoint(work)  # incomplete checkpoints (killed inside a save) are removed
    ctx.log.info("GRPO %s: %d prompts x G=%d, %s, %d processes, resume=%s", ctx.data.name, len(train_w), cfg.G,
                 reward_name, n_proc, resume)
    t0 = time.time()
    trainer.train(resume_from_checkpoint=resume or None)
    secs = time.time() - t0
    if curves.every and (not curves.valid or curves.valid[-1]["step"] != trainer.state.global_step):
        curves.add_point(trainer.state)
    keys = ("step", *trainer.metric_names, "kl", "ratio_max_dev", "grad_norm", "step_time")
    log = [{k: h[k] for k in keys if k in h} for h in trainer.state.log_history if "raw_reward" in h]
    info = {"grpo_seconds": secs, "grpo_steps": trainer.state.global_step, "train_log": log,
            "valid_curve": curves.valid, "step_times": curves.step_times,
            "mean_step_s": float(np.mean(curves.step_times[1:])) if len(curves.step_times) > 1 else None,
            "n_align_train": len(train_w), "n_processes": n_proc, "resumed": bool(resume),
            "groups_checked": trainer.groups_checked, "rows_per_process": per_device,
            "masks_recorded": trainer.masks_recorded,
            "train_eval_logp_gap": trainer.train_eval_gap,
            **(extra_info or {}), "sft_checkpoint": str(sft_path)}
    ctx.stats.update(info)
    if state.is_main_process:
        def save(d):
            trainer.accelerator.unwrap_model(trainer.model).save_pretrained(d)
            tok.save_pretrained(d)
            (Path(d) / INFO_FILE).write_text(json.dumps(info, default=float))
        atomic_save_dir(save, ctx.run_dir / "final")
    state.wait_for_everyone()
    return ctx.run_dir / "final"
