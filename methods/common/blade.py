"""GRPO with list rewards and BLADE's Bayesian dynamic target (shared by blade_n, blade_r and bon_static).

The trainer is TRL's `GRPOTrainer` with four small overrides (docs/grpo_cost.md, docs/methods.md §4):
  1. `_generate_and_score_completions` remembers each row's history so that
  2. `_generate_single_turn` decodes with the catalogue trie (K distinct valid items, history masked);
  3. `_calculate_rewards` turns the raw list rewards (already GATHERED over processes, so no group is ever split)
     into BLADE's proxy reward (N - 1) log F_i (Eq. 14-15) using each prompt's cached reference rewards;
  4. `_get_per_token_logps_and_entropies` is a completion-only log-softmax (TRL's fused kernel falls back to a slow
     path on CPU that also scores prompt positions; measured 1.35-1.75x slower).
Everything else (grouping, advantages (Eq. 2), clipped surrogate + k3 KL with loss_type "grpo" (Eq. 3), optimiser,
checkpoints, multi-process) is TRL's.
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import LogitsProcessorList, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from benchmark.data import Window, alignment_subset
from benchmark.metrics import ndcg_at_k, recall_at_k
from methods.common.estimator import bayes_cdf, proxy_reward, zero_spread_fraction
from methods.common.generation import ROLLOUT_REPETITION_PENALTY, ROLLOUT_TEMPERATURE, DecodingSpec
from methods.common.llm import generate_for, get_trie, prompts_for
from methods.common.models import _atomic_save_dir, content_hash
from methods.common.rewards import REWARDS, list_reward
from methods.common.sft import load_sft, train_sft
from methods.common.trie import ListConstraintProcessor


@dataclass
class BladeConfig:
    """BLADE / static BoN alignment hyper-parameters. Defaults: the paper (§4.1.4) and design.md §5.

    > Objective
    reward: list reward R: "ndcg" (BLADE-N), "recall" (BLADE-R), "fair" (NDCG - lam*MGU), "div" (NDCG + lam*ILD).
    reward_k: the cut-off of R during training (the full list). lam: weight of the composite term.
    tau: dynamic coefficient of Eq. 14 (0 = static BoN alignment). n: the N of (N - 1) log F (Eq. 15).
    smoothing: "add_one" ((k+1)/(M+1) as in vBoN's code; log F finite) or "none" (Eq. 14 verbatim; raises on log 0).
    M: reference lists sampled once per prompt from pi_ref. G: rollouts per prompt (the group).

    > GRPO (TRL GRPOConfig; every value explicit because TRL's defaults differ: beta 0, loss "dapo", lr 1e-6)
    beta: KL coefficient. epsilon: PPO clip. lr, epochs, scheduler: AdamW, linear decay.
    prompts_per_step: prompts per optimiser step (the batch is prompts_per_step x G completions).
    temperature, repetition_penalty: rollout and reference sampling (paper: 0.8 and 1.05).
    max_steps: cap on optimiser steps (-1: epochs decide).

    > Data and evaluation
    n_align_train / n_align_valid: the seeded alignment subset (paper: 4,096 / 512) from the align users.
    eval_every: validation Recall@5/NDCG@5 (greedy) every E steps, for Fig. 4a-style curves.
    """

    reward: str = "ndcg"
    reward_k: int = 10
    lam: float = 0.5
    tau: float = 0.3
    n: int = 4
    smoothing: str = "add_one"
    M: int = 128
    G: int = 16
    beta: float = 0.04
    epsilon: float = 0.2
    lr: float = 5e-6
    epochs: float = 3.0
    lr_scheduler: str = "linear"
    prompts_per_step: int = 4
    temperature: float = ROLLOUT_TEMPERATURE
    repetition_penalty: float = ROLLOUT_REPETITION_PENALTY
    max_steps: int = -1
    n_align_train: int = 4096
    n_align_valid: int = 512
    eval_every: int = 50


# Per-profile defaults for the BoN family (the paper's values are the dataclass defaults, used by `paper`).
PROFILE_OVERRIDES = {
    "smoke": {"M": 8, "G": 4, "n_align_train": 16, "n_align_valid": 16, "epochs": 1.0, "eval_every": 2, "lr": 1e-4},
    # cpu: lr from a 96-step pilot on steam validation (1e-5 flat, 1e-4 rising, 1e-3 diverging; docs/benchmarks.md);
    # one epoch over 512 prompts (128 steps) keeps one dataset's five-method table well inside an hour.
    "cpu": {"M": 64, "G": 16, "n_align_train": 512, "n_align_valid": 256, "epochs": 1.0, "eval_every": 16,
            "lr": 1e-4},
    "smollm2": {"M": 16, "G": 8, "n_align_train": 256, "n_align_valid": 128, "epochs": 1.0, "eval_every": 16},
}


# ----------------------------------------------------------------------------------------------- reference sets
def reference_lists(ctx, sft_path: Path, align_idx: list[int], M: int, cfg: BladeConfig) -> dict[int, np.ndarray]:
    """M lists per alignment prompt sampled once from pi_ref (the SFT model) with the rollout settings.

    Cached per (dataset, profile, SFT checkpoint, M, sampling settings) as grounded item lists (not rewards), so
    every reward kind can be recomputed from them; filled lazily, so seeds whose subsets overlap share samples.
    Returns {align window index: int32 array [M, K]}.
    """
    from accelerate import PartialState

    sft = Path(sft_path)  # keyed relative to the cache, so a moved or copied cache keeps its reference sets
    sft_key = str(sft.relative_to(ctx.cache_dir)) if sft.is_relative_to(ctx.cache_dir) else str(sft)
    key = content_hash({"sft": sft_key, "M": M, "T": cfg.temperature, "rp": cfg.repetition_penalty,
                        "k": ctx.profile.k, "excl": ctx.profile.exclude_history, "data": ctx.data.data_hash})
    path = ctx.cache_dir / "refsets" / f"{ctx.data.name}-{ctx.profile.name}-{key}.npz"
    state = PartialState()
    with state.main_process_first():
        have: dict[int, np.ndarray] = {}
        if path.exists():
            z = np.load(path)
            have = dict(zip(z["idx"].tolist(), z["lists"]))
        missing = [i for i in align_idx if i not in have]
        if missing and state.is_main_process:
            model, tok, _ = load_sft(sft_path)
            wins = [ctx.data.splits["align"][i] for i in missing]
            ctx.log.info("reference set: sampling %d lists for %d prompts (M=%d)", M * len(wins), len(wins), M)
            torch.manual_seed(0)  # the reference set does not depend on the run seed
            t0 = time.time()
            res = generate_for(ctx, model, tok, wins, DecodingSpec.rollout(M, cfg.temperature, cfg.repetition_penalty),
                               batch_size=max(1, 1024 // M))
            ctx.stats["refset_sample_s"] = ctx.stats.get("refset_sample_s", 0.0) + time.time() - t0
            for i, lists in zip(missing, res.lists):
                have[i] = np.asarray(lists, dtype=np.int32)
            idx = np.asarray(sorted(have), dtype=np.int64)
            tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npz")
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, idx=idx, lists=np.stack([have[i] for i in idx.tolist()]))
            os.replace(tmp, path)
    if missing and not state.is_main_process:
        z = np.load(path)
        have = dict(zip(z["idx"].tolist(), z["lists"]))
    ctx.stats["refset_file"] = str(path)
    return {i: have[i] for i in align_idx}


def window_reward(cfg: BladeConfig, ctx, items, w: Window) -> float:
    return list_reward(cfg.reward, items, w.target, w.history, ctx.data.item_genres, ctx.data.genre_set,
                       cfg.reward_k, cfg.lam)


# ----------------------------------------------------------------------------------------------- trainer
class ListGRPOTrainer(GRPOTrainer):
    """`GRPOTrainer` + constrained rollouts + BLADE's proxy reward + a CPU-fast completion-only log-prob."""

    def __init__(self, *args, trie, k: int, cfg: BladeConfig, ref_rewards: torch.Tensor, **kw):
        super().__init__(*args, **kw)
        self.trie, self.k, self.cfg = trie, k, cfg
        self.ref_rewards = ref_rewards  # [n_prompts, M], each row sorted ascending; row = dataset column "ref_row"
        self._excluded: list[set[int]] = []
        self.groups_checked = 0  # groups whose G gathered rows were verified to come from one prompt

    # 1 + 2. constrained rollouts ---------------------------------------------------------------------------------
    def _generate_and_score_completions(self, inputs):
        self._excluded = [set(x["history"]) if x["exclude_history"] else set() for x in inputs]
        return super()._generate_and_score_completions(inputs)

    def _generate_single_turn(self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False):
        base = self.accelerator.unwrap_model(self.model_wrapped)
        width = max(len(p) for p in prompt_ids)  # TRL left-pads to the longest prompt (pad_to_multiple_of None)
        proc = ListConstraintProcessor(self.trie, self.k, self._tokenizer.eos_token_id, width, self._excluded)
        base.generate = functools.partial(type(base).generate, base, logits_processor=LogitsProcessorList([proc]))
        try:
            return super()._generate_single_turn(prompt_ids, images, multimodal_fields, num_generations,
                                                 has_tool_images)
        finally:
            del base.generate  # back to the class method

    # 3. BLADE's proxy reward ---------------------------------------------------------------------------------------
    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        from accelerate.utils import gather

        raw = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)[:, 0]  # gathered
        rows = gather(torch.tensor([x["ref_row"] for x in inputs], device=raw.device))
        G = self.num_generations
        groups, rows_g = raw.view(-1, G), rows.view(-1, G)
        # a group is G consecutive rows of ONE prompt in the gathered order; check it, never assume it
        if not bool((rows_g == rows_g[:, :1]).all()):
            raise RuntimeError("a GRPO group straddles prompts after gathering: the estimator would mix groups")
        self.groups_checked += rows_g.shape[0]
        ref = self.ref_rewards.to(raw.device)[rows_g[:, 0]]
        cdf = bayes_cdf(groups.float().cpu(), ref.float().cpu(), self.cfg.tau, self.cfg.smoothing)
        proxy = proxy_reward(cdf, self.cfg.n).to(raw.device)
        for name, v in (("raw_reward", groups.mean()), ("cdf_mean", cdf.mean()), ("proxy_reward", proxy.mean()),
                        ("frac_zero_spread", zero_spread_fraction(groups.cpu())),
                        # groups the estimator gives no learning signal (all proxies equal): the static
                        # estimator's saturation (every rollout above the reference max) shows up here
                        ("frac_zero_spread_proxy", zero_spread_fraction(proxy.view(-1, G).cpu())),
                        ("raw_reward_best_of_group", groups.max(1).values.mean()),
                        ("frac_above_ref_max", (groups.cpu() > ref.cpu()[:, -1:]).float().mean()
                         if ref.shape[1] else torch.tensor(1.0))):
            self._log_metric(name, float(v))
        return proxy.reshape(-1, 1)

    # 4. completion-only log-probs ------------------------------------------------------------------------------------
    def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep, batch_size=None,
                                           compute_entropy=False, compute_aux_loss=False, **kw):
        inner = self.accelerator.unwrap_model(model)
        with self.accelerator.autocast():
            # DDP: call the wrapped model's backbone through the unwrapped module (grads still flow to the same params)
            h = inner.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            logits = inner.lm_head(h[:, -logits_to_keep - 1:-1]).float() / self.temperature
        lp = logits.log_softmax(-1)
        logps = lp.gather(-1, input_ids[:, -logits_to_keep:, None]).squeeze(-1)
        ent = None
        if compute_entropy:
            with torch.no_grad():
                ent = -(lp.exp() * lp).sum(-1)
        return logps, ent, None


class _Curves(TrainerCallback):
    """Step times, and validation Recall@5/NDCG@5 (greedy) at step 0 and every `every` steps (Fig. 4a)."""

    def __init__(self, evaluate, every: int):
        self.evaluate, self.every = evaluate, every
        self.valid: list[dict] = []
        self.step_times: list[float] = []
        self._t = None

    def on_train_begin(self, args, state, control, **kw):
        if not self.valid or self.valid[0]["step"] != state.global_step:
            self.valid.append({"step": state.global_step, **self.evaluate()})

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        if self._t is not None:
            self.step_times.append(time.perf_counter() - self._t)
        if self.every and state.global_step % self.every == 0:
            self.valid.append({"step": state.global_step, **self.evaluate()})


def train_blade(ctx, cfg: BladeConfig) -> Path:
    """Align the shared SFT model with GRPO + BLADE's estimator. Returns the final model folder (resumable)."""
    from accelerate import PartialState
    from datasets import Dataset as HFDataset

    if cfg.reward not in REWARDS:
        raise ValueError(f"reward {cfg.reward!r} unknown; valid: {', '.join(REWARDS)}")
    final = ctx.run_dir / "final"
    if (final / "blade_info.json").exists():
        ctx.stats.update(json.loads((final / "blade_info.json").read_text()))
        return final
    state = PartialState()
    with state.main_process_first():
        sft_path = train_sft(ctx.data, ctx.profile, ctx.cache_dir, ctx.log)
    model, tok, _ = load_sft(sft_path)
    trie = get_trie(ctx, tok)
    align = ctx.data.splits["align"]
    train_w, valid_w = alignment_subset(ctx.data, cfg.n_align_train, cfg.n_align_valid, ctx.seed)
    pos = {w: i for i, w in enumerate(align)}
    train_idx = [pos[w] for w in train_w]

    # reference rewards, sorted per prompt (N_ref(<r) is a left searchsorted on them)
    ref_lists = reference_lists(ctx, sft_path, train_idx, cfg.M, cfg) if cfg.M > 0 else {}
    ref = torch.zeros(len(train_w), cfg.M)
    for r, (i, w) in enumerate(zip(train_idx, train_w)):
        if cfg.M:
            ref[r] = torch.tensor(sorted(window_reward(cfg, ctx, lst.tolist(), w) for lst in ref_lists[i]))
    ctx.stats["ref_reward_mean"] = float(ref.mean()) if cfg.M else None
    ctx.stats["ref_reward_max_mean"] = float(ref[:, -1].mean()) if cfg.M else None

    data = HFDataset.from_dict({
        "prompt": prompts_for(ctx, tok, train_w),
        "target": [list(w.target) for w in train_w], "history": [list(w.history) for w in train_w],
        "ref_row": list(range(len(train_w))), "exclude_history": [ctx.profile.exclude_history] * len(train_w),
    })

    def reward_fn(completion_ids, target, history, **kw):
        return [window_reward(cfg, ctx, trie.parse(c), Window("", tuple(h), tuple(t)))
                for c, t, h in zip(completion_ids, target, history)]
    reward_fn.__name__ = f"list_{cfg.reward}@{cfg.reward_k}"

    n_proc = state.num_processes
    per_device = cfg.prompts_per_step * cfg.G // n_proc
    if per_device * n_proc != cfg.prompts_per_step * cfg.G:
        raise ValueError(f"prompts_per_step*G = {cfg.prompts_per_step * cfg.G} must divide by {n_proc} processes")
    max_len = cfg_max_completion(trie, ctx.profile.k)
    args = GRPOConfig(
        output_dir=str(ctx.run_dir / "work"), seed=ctx.seed, data_seed=ctx.seed, use_cpu=not torch.cuda.is_available(),
        bf16=ctx.profile.bf16, gradient_checkpointing=False, learning_rate=cfg.lr, lr_scheduler_type=cfg.lr_scheduler,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, per_device_train_batch_size=per_device,
        gradient_accumulation_steps=1, num_generations=cfg.G, max_completion_length=max_len,
        temperature=cfg.temperature, top_p=1.0, top_k=0, repetition_penalty=cfg.repetition_penalty,
        beta=cfg.beta, epsilon=cfg.epsilon, loss_type="grpo", scale_rewards="group", num_iterations=1,
        max_grad_norm=1.0, weight_decay=0.0, warmup_steps=0, logging_steps=1, save_strategy="steps",
        save_steps=cfg.eval_every or 10**9, save_total_limit=1, report_to="none", disable_tqdm=False,
        remove_unused_columns=False, shuffle_dataset=True, mask_truncated_completions=False,
        # dropout would make the policy's log-probs noisy against the (eval-mode) reference: ratio != 1 and KL > 0
        # at step 0 (measured: KL 0.027 at step 1 with the cpu profile's attention dropout 0.2)
        disable_dropout=True,
    )
    valid_prompts_model = {}

    def evaluate():
        if not state.is_main_process:
            return {}
        m = valid_prompts_model.get("trainer").accelerator.unwrap_model(valid_prompts_model["trainer"].model)
        was_training = m.training
        m.eval()
        res = generate_for(ctx, m, tok, valid_w, progress=False)
        m.train(was_training)
        lists = [s[0] for s in res.lists]
        return {"recall@5": float(np.mean([recall_at_k(x, w.target, 5) for x, w in zip(lists, valid_w)])),
                "ndcg@5": float(np.mean([ndcg_at_k(x, w.target, 5) for x, w in zip(lists, valid_w)])),
                "ndcg@10": float(np.mean([ndcg_at_k(x, w.target, 10) for x, w in zip(lists, valid_w)]))}

    curves = _Curves(evaluate, cfg.eval_every)
    trainer = ListGRPOTrainer(model=str(sft_path), reward_funcs=[reward_fn], args=args, train_dataset=data,
                              processing_class=tok, callbacks=[curves], trie=trie, k=ctx.profile.k, cfg=cfg,
                              ref_rewards=ref)
    valid_prompts_model["trainer"] = trainer
    work = ctx.run_dir / "work"
    resume = bool(list(work.glob("checkpoint-*"))) if work.exists() else False
    ctx.log.info("GRPO %s: %d prompts x G=%d, M=%d, tau=%g, reward=%s, %d processes, resume=%s", ctx.data.name,
                 len(train_w), cfg.G, cfg.M, cfg.tau, cfg.reward, n_proc, resume)
    t0 = time.time()
    trainer.train(resume_from_checkpoint=resume or None)
    secs = time.time() - t0
    if curves.every and (not curves.valid or curves.valid[-1]["step"] != trainer.state.global_step):
        curves.valid.append({"step": trainer.state.global_step, **evaluate()})
    keys = ("raw_reward", "proxy_reward", "cdf_mean", "frac_zero_spread", "frac_zero_spread_proxy", "kl",
            "frac_above_ref_max", "raw_reward_best_of_group", "grad_norm", "step_time")
    log = [{k: h[k] for k in ("step", *keys) if k in h} for h in trainer.state.log_history if "raw_reward" in h]
    info = {"grpo_seconds": secs, "grpo_steps": trainer.state.global_step, "train_log": log,
            "valid_curve": curves.valid, "step_times": curves.step_times,
            "mean_step_s": float(np.mean(curves.step_times[1:])) if len(curves.step_times) > 1 else None,
            "n_align_train": len(train_w), "n_processes": n_proc, "resumed": resume,
            "groups_checked": trainer.groups_checked, "rows_per_process": per_device,
            "ref_reward_mean": ctx.stats.get("ref_reward_mean"), "sft_checkpoint": str(sft_path)}
    ctx.stats.update(info)
    if state.is_main_process:
        def save(d):
            trainer.accelerator.unwrap_model(trainer.model).save_pretrained(d)
            tok.save_pretrained(d)
            (Path(d) / "blade_info.json").write_text(json.dumps(info, default=float))
        _atomic_save_dir(save, final)
    state.wait_for_everyone()
    return final


def cfg_max_completion(trie, k: int) -> int:
    """Enough tokens for K items, separators and EOS."""
    return k * (trie.max_item_len + len(trie.sep_ids)) + 1


__all__ = ["BladeConfig", "PROFILE_OVERRIDES", "train_blade", "ListGRPOTrainer",
           "reference_lists"]
