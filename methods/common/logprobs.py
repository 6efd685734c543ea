"""Log-probabilities of the CONSTRAINED policy: the distribution the lists are sampled from (design.md §5, issue 9).

Every list is generated under the catalogue trie processor (K distinct valid items, the prompt's history masked,
EOS masked until the K-th item and forced after it), with HF's repetition penalty and a temperature. The policy
that produced a list is therefore NOT the raw model's softmax over the vocabulary but, at each completion position
t, the softmax over the tokens the constraint allows, of the processed logits:

    z_t = mask_t(rep_penalty(logits_t; tokens seen in the prompt and completion[:t])) / temperature
    log pi(y_t | y_<t) = log_softmax(z_t)[y_t]

in transformers' processor order (repetition penalty, then the user's processors, i.e. the trie mask, then the
temperature warper; see `GenerationMixin._get_logits_processor`). A token the constraint forces has log-prob 0
whatever the model thinks of it. One function family serves every trained log-prob: the GRPO policy, its old
policy and its reference (the KL term), and the chosen/rejected lists of the preference methods.

`disable_dropout` switches off every kind of dropout of a policy trained against a reference (TRL's
`disable_dropout` only reaches `nn.Dropout` modules; Llama's attention dropout is a float on each attention module).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from methods.common.trie import ItemTrie, ListConstraintProcessor


def disable_dropout(model: torch.nn.Module) -> None:
    """Zero every dropout of `model` in place: ``nn.Dropout*`` modules, and every float attribute whose name
    contains ``dropout`` or ``pdrop`` on any module or model config (Llama's ``attention_dropout``, GPT-2's
    ``attn_pdrop``, ...). Afterwards train-mode and eval-mode forward passes agree exactly."""
    configs = []
    for module in model.modules():
        if isinstance(module, torch.nn.modules.dropout._DropoutNd):
            module.p = 0.0
        for name, value in list(vars(module).items()):
            if _is_dropout_rate(name, value):
                setattr(module, name, 0.0)
        cfg = getattr(module, "config", None)
        if cfg is not None and not isinstance(cfg, torch.nn.Module) and all(cfg is not c for c in configs):
            configs.append(cfg)
    for cfg in configs:
        for name, value in list(vars(cfg).items()):
            if _is_dropout_rate(name, value):
                setattr(cfg, name, 0.0)


def _is_dropout_rate(name: str, value) -> bool:
    return isinstance(value, float) and ("dropout" in name or "pdrop" in name)


def constraint_masks(trie: ItemTrie, k: int, eos_token_id: int, completion_ids: torch.LongTensor,
                     excluded: Sequence[set[int]], vocab_size: int | None = None,
                     device: torch.device | str | None = None) -> torch.BoolTensor:
    """The tokens the list constraint allows at each completion position, by replaying `ListConstraintProcessor`.

    The processor derives each row's automaton state from its tokens and caches the states of the previous call,
    so one call per position over the whole batch costs O(B) Python steps.

    Args:
        trie: the catalogue trie; k: the list length; eos_token_id: the EOS id (as in decoding).
        completion_ids: [B, T] completion tokens (right-padded after EOS).
        excluded: one set of banned items per row (or per prompt, rows grouped prompt by prompt), as in decoding.
        vocab_size: V of the returned mask (the model's logits width); default: the largest id the constraint can
            allow + 1 (`constrained_logits` pads it with False up to the logits' width).
        device: where the mask is built and returned (default the CPU). On a GPU only the automaton's replay (token
            ids, O(B) Python steps per position) stays on the host; the [B, T, V] mask is written on the device, so
            the host never allocates it nor copies it over (at the paper's shape, 64 x ~150 x 128,256 bools = 1.2 GB
            per GRPO step).

    Returns:
        [B, T, V] bool on `device`. Positions after EOS (or after a token the constraint forbids) allow only EOS.
    """
    ids = completion_ids.detach().cpu()
    B, T = ids.shape
    if vocab_size is None:
        vocab_size = 1 + max(eos_token_id, *trie.sep_ids, *(t for toks in trie.item_tokens for t in toks))
    proc = ListConstraintProcessor(trie, k, eos_token_id, 0, excluded)
    dev = torch.device(device) if device is not None else torch.device("cpu")
    allowed = torch.zeros(B, T, vocab_size, dtype=torch.bool, device=dev)
    zeros = torch.zeros(B, vocab_size, device=dev)
    for t in range(T):
        allowed[:, t] = proc(ids[:, :t], zeros) == 0  # the processor adds 0 at allowed ids, -inf elsewhere
    return allowed


def constrained_logits(logits: torch.Tensor, completion_ids: torch.LongTensor, allowed: torch.BoolTensor,
                       temperature: float = 1.0, repetition_penalty: float = 1.0,
                       prompt_ids: torch.LongTensor | None = None,
                       prompt_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The sampler's processed scores: repetition penalty, -inf outside `allowed`, divided by the temperature.

    Args:
        logits: [B, T, V] raw logits of the completion positions (position t predicts ``completion_ids[:, t]``).
        completion_ids: [B, T] the completion tokens.
        allowed: [B, T, V'] with V' <= V (`constraint_masks`); ids >= V' are not allowed.
        temperature: the sampling temperature.
        repetition_penalty: HF's penalty (1.0: none) on every token seen in the prompt or in ``completion[:t]``:
            a seen token's logit x becomes x / p if x > 0, x * p otherwise.
        prompt_ids: [B, P] the prompt tokens the penalty also counts (None: completion only).
        prompt_mask: [B, P] 1 for real prompt tokens, 0 for padding (generate ignores left padding); None: all real.

    Returns:
        [B, T, V] float, differentiable in `logits`.
    """
    B, T, V = logits.shape
    if allowed.shape[:2] != (B, T) or allowed.shape[2] > V:
        raise ValueError(f"allowed has shape {tuple(allowed.shape)}; expected ({B}, {T}, <= {V}) like the logits")
    allowed = allowed.to(logits.device)
    if allowed.shape[2] < V:
        allowed = torch.nn.functional.pad(allowed, (0, V - allowed.shape[2]), value=False)
    # the penalty scales a logit by 1/p or p, so it commutes with the division by the temperature (T > 0)
    z = (logits / temperature).masked_fill_(~allowed, float("-inf"))
    if repetition_penalty != 1.0:
        # only the seen tokens change: a sparse update instead of three passes over [B, T, V]
        b, t, v = _seen_tokens(completion_ids.to(logits.device), V, prompt_ids, prompt_mask)
        g = z[b, t, v]
        z = z.index_put((b, t, v), torch.where(g < 0, g * repetition_penalty, g / repetition_penalty))
    return z


def _seen_tokens(completion_ids: torch.LongTensor, V: int, prompt_ids, prompt_mask):
    """Index triples (b, t, v), each once: token v occurs in row b's (unpadded) prompt or in completion_ids[b, :t]."""
    B, T = completion_ids.shape
    dev = completion_ids.device
    pos = torch.arange(T, device=dev)
    s, t = torch.nonzero(pos[:, None] < pos[None, :], as_tuple=True)  # completion position s is seen at t > s
    b = torch.arange(B, device=dev).repeat_interleave(len(s))
    parts = [(b, t.repeat(B), completion_ids[:, s].reshape(-1))]
    if prompt_ids is not None:
        ids = prompt_ids.to(dev)
        keep = torch.ones_like(ids, dtype=torch.bool) if prompt_mask is None else prompt_mask.to(dev) != 0
        pb, pj = torch.nonzero(keep, as_tuple=True)
        parts.append((pb.repeat_interleave(T), pos.repeat(len(pb)), ids[pb, pj].repeat_interleave(T)))
    b, t, v = (torch.cat(x) for x in zip(*parts))
    lin = torch.unique((b * T + t) * V + v)  # once each: a duplicate index would count its gradient twice
    return lin // (T * V), lin // V % T, lin % V


def constrained_token_logps(logits: torch.Tensor, completion_ids: torch.LongTensor, allowed: torch.BoolTensor,
                            temperature: float = 1.0, repetition_penalty: float = 1.0,
                            prompt_ids: torch.LongTensor | None = None, *, prompt_mask: torch.Tensor | None = None,
                            completion_mask: torch.Tensor | None = None, return_entropy: bool = False):
    """Log-prob of each completion token under the constrained, processed distribution the sampler used.

    Args: as `constrained_logits`, and
        completion_mask: [B, T] 1 up to and including EOS, 0 on the padding after it (None: every position
            counts). Padding positions get log-prob 0 (never -inf, so a masked loss stays finite).
        return_entropy: also return the entropy [B, T] of the constrained distribution (no gradient).

    Returns:
        [B, T] log-probs, differentiable in `logits` (and the entropies with `return_entropy`).

    Raises:
        ValueError: a counted completion token is one the constraint forbids (the list was not generated under
            this trie / k / excluded set): its log-prob would be -inf.
    """
    z = constrained_logits(logits, completion_ids, allowed, temperature, repetition_penalty, prompt_ids, prompt_mask)
    lp = z.log_softmax(-1)
    ids = completion_ids.to(lp.device)
    out = lp.gather(-1, ids[..., None]).squeeze(-1)
    counted = torch.ones_like(out, dtype=torch.bool) if completion_mask is None else completion_mask.to(lp.device) != 0
    bad = torch.isneginf(out.detach()) & counted
    if bool(bad.any()):
        r, t = (int(v) for v in bad.nonzero()[0])
        raise ValueError(f"completion token {int(ids[r, t])} at row {r}, position {t} is not allowed by the list "
                         "constraint (trie, k, excluded items, EOS); score only lists generated under it, and pass "
                         "completion_mask so that the padding after EOS is not scored")
    out = out.masked_fill(~counted, 0.0)
    if not return_entropy:
        return out
    with torch.no_grad():
        ent = -(lp.exp() * lp).nansum(-1)  # 0 * -inf = nan outside the allowed tokens: dropped
    return out, ent


def completion_logits(model, input_ids: torch.LongTensor, attention_mask: torch.Tensor,
                      logits_to_keep: int) -> torch.Tensor:
    """[B, logits_to_keep, V] float32 logits predicting the last `logits_to_keep` tokens of `input_ids`.

    Only the completion positions go through the LM head (HF ``logits_to_keep``), so prompt positions cost no
    vocabulary-wide softmax (TRL's fused path scores them too and is 1.35-1.75x slower on CPU, docs/grpo_cost.md).
    Works through DDP and PEFT wrappers (keyword arguments pass through).
    """
    out = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=logits_to_keep + 1,
                use_cache=False)
    return out.logits[:, :-1].float()


def model_constrained_logps(model, input_ids: torch.LongTensor, attention_mask: torch.Tensor, logits_to_keep: int,
                            trie: ItemTrie, k: int, eos_token_id: int, excluded: Sequence[set[int]],
                            temperature: float = 1.0, repetition_penalty: float = 1.0,
                            allowed: torch.BoolTensor | None = None) -> torch.Tensor:
    """Constrained log-probs [B, logits_to_keep] of the completions in `input_ids` under `model`.

    Args:
        model: a causal LM (call it under the autocast the sampler used; gradients flow unless under no_grad).
        input_ids: [B, P + T] left-padded prompt, then the completion (right-padded after EOS); T = logits_to_keep.
        attention_mask: [B, P + T] 0 on padding (prompt and completion); its completion part is the loss mask.
        trie, k, eos_token_id, excluded: the constraint the lists were generated under (`constraint_masks`).
        temperature, repetition_penalty: the sampler's settings.
        allowed: precomputed `constraint_masks` of these completions (e.g. once per generation batch).

    Returns:
        [B, T] log-probs; 0 on the padding after EOS.
    """
    P = input_ids.shape[1] - logits_to_keep
    comp = input_ids[:, P:]
    if allowed is None:
        allowed = constraint_masks(trie, k, eos_token_id, comp, excluded, device=input_ids.device)
    logits = completion_logits(model, input_ids, attention_mask, logits_to_keep)
    return constrained_token_logps(logits, comp, allowed, temperature, repetition_penalty, input_ids[:, :P],
                                   prompt_mask=attention_mask[:, :P], completion_mask=attention_mask[:, P:])


__all__ = ["disable_dropout", "constraint_masks", "constrained_logits", "constrained_token_logps",
           "completion_logits", "model_constrained_logps"]
