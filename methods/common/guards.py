"""Guards every trainer shares (SFT, GRPO, DPO; SASRec checks its own loop):

* `FiniteLoss`: a training or validation loss that is NaN or infinite fails the run at once with one line
  (`benchmark.errors.TrainingDiverged`: the CLI exits 2, no record is written), instead of training on and recording
  lists decoded from NaN logits. The Trainer's ``logging_nan_inf_filter`` would hide a NaN loss from the logs, so
  `trainer_args` turns it off.
* `EvalProgress`: one log line per evaluation with the early-stopping state (patience used, best step, the step and
  time budgets), so a log shows how far an early-stopped run is from stopping; the Trainer's bar counts to the epoch
  cap instead.
* `interactive`: progress bars only on a terminal; a log file (stderr not a TTY) gets log lines, not bar redraws.
* `TiedWeightsLoad`: a Trainer mixin that, when a checkpoint is loaded back (best model at the end, resume), ties
  the output layer to the embeddings it shares weights with instead of warning that ``lm_head.weight`` is missing:
  safetensors checkpoints store a tied weight once, so that key is expected to be absent. Other missing keys still warn.

TRL's trainers ask the model `is_gradient_checkpointing`, which transformers 5 deprecates with a FutureWarning on every
trainer (the project never checkpoints activations, `trainer_args`); that one warning is silenced here, no other.
"""

from __future__ import annotations

import logging
import math
import sys
import time
import warnings

from transformers import PrinterCallback, ProgressCallback, TrainerCallback

from benchmark.errors import TrainingDiverged

warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)

log = logging.getLogger("benchmark")
WATCHED = ("loss", "eval_loss")


def interactive() -> bool:
    """Progress bars only when stderr is a terminal."""
    return sys.stderr.isatty()


def trainer_args() -> dict:
    """Keyword arguments every TrainingArguments of the project gets: no NaN filtering of the logged loss (so
    `FiniteLoss` sees it), no bars in a log file, and ``activation_checkpointing`` (``gradient_checkpointing`` is its
    deprecated alias in transformers 5: passing it warns)."""
    return {"logging_nan_inf_filter": False, "disable_tqdm": not interactive(), "activation_checkpointing": False}


def check_finite(value: float, what: str, step: int, fix: str, name: str = "loss") -> None:
    """Raise `TrainingDiverged` if `value` (the `name` of stage `what` at `step`) is NaN or infinite."""
    if not math.isfinite(value):
        raise TrainingDiverged(f"{what} diverged: {name} = {value} at step {step}. No record was written; {fix}")


class FiniteLoss(TrainerCallback):
    """Fail the run on the first logged training or validation loss that is not finite.

    Args:
        what: the stage in words ("SFT steam/cpu").
        fix: what to change ("lower the learning rate: --set sft_lr=VALUE").
    """

    def __init__(self, what: str, fix: str):
        self.what, self.fix = what, fix

    def on_log(self, args, state, control, logs=None, **kw):
        for key in WATCHED:
            if logs and isinstance(logs.get(key), (int, float)):
                check_finite(float(logs[key]), self.what, state.global_step, self.fix, key.replace("_", " "))


class EvalProgress(TrainerCallback):
    """One line per evaluation: step of the step cap, epoch, the watched metric, best so far and patience used."""

    def __init__(self, what: str, patience: int | None, watch: str, max_time_s: float):
        self.what, self.patience, self.watch, self.max_time_s = what, patience, watch, max_time_s
        self.t0 = time.time()

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        hist = [(h["step"], h[self.watch]) for h in state.log_history if self.watch in h]  # `evaluate` logged first
        if not hist:
            return
        greater = self.watch != "eval_loss"
        best_i = max(range(len(hist)), key=lambda i: (hist[i][1] if greater else -hist[i][1], -i))
        name = self.watch.removeprefix("eval_")
        budget = (f", {(time.time() - self.t0) / 60:.1f} of at most {self.max_time_s / 60:g} min"
                  if math.isfinite(self.max_time_s) else "")
        stop = (f"; {len(hist) - 1 - best_i} of {self.patience} evaluations without a better {name}"
                if self.patience else "")
        log.info("%s: step %s of at most %s (epoch %.2f)%s, %s %.4f (best %.4f at step %s)%s", self.what,
                 f"{state.global_step:,}", f"{state.max_steps:,}", state.epoch or 0.0, budget, name, hist[-1][1],
                 hist[best_i][1], f"{hist[best_i][0]:,}", stop)


def quiet_progress(trainer) -> None:
    """Without a terminal, drop the Trainer's bar and its printed log dicts (the `EvalProgress` lines replace them)."""
    if not interactive():
        for cb in (PrinterCallback, ProgressCallback):
            trainer.remove_callback(cb)


def _tied_keys(model) -> set[str]:
    """The parameter names of `model` that share their tensor with another parameter (tied weights)."""
    seen, tied = {}, set()
    for name, p in model.named_parameters(remove_duplicate=False):
        if id(p) in seen:
            tied |= {name, seen[id(p)]}
        else:
            seen[id(p)] = name
    return tied


class TiedWeightsLoad:
    """Trainer mixin: loading a checkpoint that omits tied weights (``lm_head.weight`` tied to the embeddings) ties
    them again instead of warning; any other missing or unexpected key still warns (the Trainer's own message)."""

    def _issue_warnings_after_load(self, load_result):
        tied = _tied_keys(self.model) if load_result.missing_keys else set()
        missing = [k for k in load_result.missing_keys if k not in tied]
        if len(missing) != len(load_result.missing_keys):
            self.model.tie_weights()
        try:
            load_result = load_result._replace(missing_keys=missing)
        except AttributeError:  # not a NamedTuple: the Trainer's message for whatever is left
            load_result.missing_keys[:] = missing
        return super()._issue_warnings_after_load(load_result)
