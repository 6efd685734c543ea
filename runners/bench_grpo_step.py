"""Benchmark: one GRPO step of our TRL-based trainer vs a minimal hand-written GRPO step on the same batch shape.

Usage: python -m runners.bench_grpo_step [--dataset steam] [--profile cpu] [--steps 12] [--tau-rounds 3]
       [--logps-rounds 3]
Both run in this one process on the shared SFT checkpoint, with the same settings (constrained sampling T 0.8,
repetition penalty 1.05, G x prompts_per_step completions, BLADE proxy reward, grpo loss, beta, bf16 autocast,
AdamW, grad clip 1.0). Prints the median step time of each (first 2 steps dropped) and the ratio.
With --tau-rounds R it also alternates R times between BLADE (tau 0.3) and static BoN alignment (tau 0) trainers
in this process and reports the ratio of their median step times (BLADE's "zero overhead" claim).
With --logps-rounds R it alternates R times between trainers with the constrained log-probs (issue 9) and the raw
full-vocabulary log-softmax (the trainer before it) and reports the ratio of their median step times (goal <= 1.15).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import random
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmark.config import cache_dir, data_dir, get_profile
from benchmark.data import alignment_subset, load_dataset
from benchmark.io import atomic_write_text
from methods.base import RunContext
from methods.common.blade import PROFILE_OVERRIDES, BladeConfig, train_blade, window_reward
from methods.common.estimator import bayes_cdf, proxy_reward
from methods.common.llm import excluded_for, get_trie, prompts_for
from methods.common.sft import load_sft, train_sft
from methods.common.trie import ListConstraintProcessor


def minimal_steps(ctx, cfg: BladeConfig, steps: int) -> list[float]:
    """~60 lines of plain PyTorch GRPO (the reference of docs/grpo_cost.md), BLADE reward included."""
    path = train_sft(ctx.data, ctx.profile, ctx.cache_dir, seed=ctx.seed)
    policy, tok, _ = load_sft(path)
    ref_model = copy.deepcopy(policy).eval()
    policy.train()
    trie = get_trie(ctx, tok)
    train_w, _ = alignment_subset(ctx.data, cfg.n_align_train, cfg.n_align_valid, ctx.seed)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0, foreach=True)
    eos, G = tok.eos_token_id, cfg.G
    ref_sorted = torch.zeros(cfg.prompts_per_step, cfg.M)  # the M reference rewards only enter a searchsorted
    rng = random.Random(0)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        wins = rng.sample(train_w, cfg.prompts_per_step)
        rows = [w for w in wins for _ in range(G)]
        enc = tok(prompts_for(ctx, tok, rows), return_tensors="pt", padding=True, padding_side="left")
        P = enc["input_ids"].shape[1]
        proc = ListConstraintProcessor(trie, ctx.profile.k, eos, P, excluded_for(ctx, rows))
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=ctx.profile.bf16):
            out = policy.generate(**enc, logits_processor=[proc], do_sample=True, temperature=cfg.temperature,
                                  top_k=0, top_p=1.0, repetition_penalty=cfg.repetition_penalty,
                                  max_new_tokens=ctx.profile.k * (trie.max_item_len + len(trie.sep_ids)) + 1,
                                  eos_token_id=eos, pad_token_id=tok.pad_token_id)
        comp = out[:, P:]
        is_eos = comp == eos
        first = torch.where(is_eos.any(1), is_eos.int().argmax(1), torch.full_like(is_eos[:, 0], comp.shape[1],
                                                                                      dtype=torch.long))
        cmask = (torch.arange(comp.shape[1])[None] <= first[:, None]).float()
        raw = torch.tensor([window_reward(cfg, ctx, trie.parse(c[: int(f)].tolist()), w)
                            for c, f, w in zip(comp, first, rows)]).view(-1, G)
        r = proxy_reward(bayes_cdf(raw, ref_sorted, cfg.tau, cfg.smoothing), cfg.n)
        adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).view(-1, 1)
        attn = torch.cat([enc["attention_mask"], torch.ones_like(comp)], 1)
        T = comp.shape[1]

        def logps(m):
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=ctx.profile.bf16):
                h = m.model(input_ids=out, attention_mask=attn).last_hidden_state
                logits = m.lm_head(h[:, -T - 1:-1]).float() / cfg.temperature
            return logits.log_softmax(-1).gather(-1, comp[..., None]).squeeze(-1)

        with torch.no_grad():
            ref_lp = logps(ref_model)
        lp = logps(policy)
        ratio = torch.exp(lp - lp.detach())
        surr = torch.min(ratio * adv, torch.clamp(ratio, 1 - cfg.epsilon, 1 + cfg.epsilon) * adv)
        kl = torch.exp(ref_lp - lp) - (ref_lp - lp) - 1
        per_tok = -(surr - cfg.beta * kl)
        loss = ((per_tok * cmask).sum(1) / cmask.sum(1).clamp(min=1)).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return times


def alternate(ds, profile, cfg: BladeConfig, field: str, values: tuple, rounds: int) -> dict:
    """Step times (first 2 of each run dropped) of trainers that differ only in `field`, run in alternating order."""
    out = {v: [] for v in values}
    for r in range(rounds):
        for v in values if r % 2 == 0 else values[::-1]:
            with tempfile.TemporaryDirectory() as tmp:
                ctx = RunContext(data=ds, profile=profile, seed=r, run_dir=Path(tmp), cache_dir=cache_dir())
                train_blade(ctx, replace(cfg, **{field: v}))
                out[v] += ctx.stats["step_times"][2:]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="steam")
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--tau-rounds", type=int, default=0, help="alternate tau 0.3 / tau 0 trainers this many times")
    ap.add_argument("--logps-rounds", type=int, default=0,
                    help="alternate constrained / raw log-prob trainers this many times")
    ap.add_argument("--skip-minimal", action="store_true", help="skip the hand-written step and the default trainer")
    ap.add_argument("--out", default=None, help="write the numbers as JSON here")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    profile = get_profile(a.profile)
    ds = load_dataset(a.dataset, data_dir())
    cfg = replace(BladeConfig(), **{**PROFILE_OVERRIDES.get(profile.name, {}), "max_steps": a.steps, "eval_every": 0})
    res = {"dataset": a.dataset, "profile": a.profile, "G": cfg.G, "prompts_per_step": cfg.prompts_per_step,
           "torch_threads": torch.get_num_threads()}
    if not a.skip_minimal:
        with tempfile.TemporaryDirectory() as tmp:
            ctx = RunContext(data=ds, profile=profile, seed=0, run_dir=Path(tmp), cache_dir=cache_dir())
            torch.manual_seed(0)
            mine = minimal_steps(ctx, cfg, a.steps)
            torch.manual_seed(0)
            train_blade(ctx, cfg)
            trl = ctx.stats["step_times"]
        m, t = statistics.median(mine[2:]), statistics.median(trl[2:])
        res.update({"minimal_median_s": m, "trl_median_s": t, "ratio_trl_over_minimal": t / m,
                    "minimal_steps_s": mine, "trl_steps_s": trl})
    taus = alternate(ds, profile, cfg, "tau", (0.3, 0.0), a.tau_rounds)
    logps = alternate(ds, profile, cfg, "logps", ("constrained", "raw"), a.logps_rounds)
    if a.logps_rounds:
        c, r = statistics.median(logps["constrained"]), statistics.median(logps["raw"])
        res.update({"constrained_median_s": c, "raw_median_s": r, "ratio_constrained_over_raw": c / r,
                    "logps_steps_each": len(logps["raw"]), "constrained_steps_s": logps["constrained"],
                    "raw_steps_s": logps["raw"]})
    if a.tau_rounds:
        res.update({"blade_median_s": statistics.median(taus[0.3]), "static_median_s": statistics.median(taus[0.0]),
                    "ratio_blade_over_static": statistics.median(taus[0.3]) / statistics.median(taus[0.0]),
                    "tau_steps_each": len(taus[0.3])})
    print(json.dumps({k: v for k, v in res.items() if not k.endswith("steps_s")}, indent=1))
    if a.out:
        atomic_write_text(Path(a.out), json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
