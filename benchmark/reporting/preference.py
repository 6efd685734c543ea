"""Preference-training signals (S-DPO, List DPO, SPRec and any method whose record has DPO iterations): one row per
(dataset, method, self-play iteration) over seeds, from ``stats.iterations[].train_log`` (TRL's per-step logs).

Columns: the fraction of alignment prompts that gave a preference row (pairs kept), DPO steps, the loss at step 1
(log(1 + n_neg) when π_θ = π_ref) and averaged over the last ``EDGE`` steps, the reward margin β·(h(chosen) −
h(rejected)) likewise, the fraction of rows whose chosen list beats every rejected one over the last steps, the
implicit rewards β·h of chosen and rejected over the last steps, NDCG@5 on the alignment-validation prompts before
and after the iteration's DPO (``curve``), and wall times (DPO; the run's fit and test recommend; medians over seeds).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmark.reporting.common import (Inputs, Output, Table, dataset_name, mean_of, median_of, order_datasets,
                                        simple_table)
from benchmark.records import row_key

EDGE = 5  # steps averaged at the end of training


def is_preference(record: dict[str, Any]) -> bool:
    return any("train_log" in it for it in (record.get("stats") or {}).get("iterations") or [])


def _log(it: dict, key: str, last: bool) -> float | None:
    xs = [h[key] for h in it.get("train_log") or [] if key in h]
    if not xs:
        return None
    return float(np.mean(xs[-EDGE:])) if last else float(xs[0])


def _curve(rec: dict, iteration: int, stage: str) -> float | None:
    return next((p["ndcg@5"] for p in rec.get("curve") or []
                 if p.get("iteration") == iteration and p.get("stage") == stage), None)


def preference_table(records: list[dict], profile: str) -> tuple[str, str, list]:
    """(Markdown, LaTeX, rows) of the records with DPO iterations."""
    body = []
    for d in order_datasets({r["dataset"] for r in records}):
        groups: dict[str, list[dict]] = {}
        for r in sorted((r for r in records if r["dataset"] == d), key=lambda r: r["seed"]):
            groups.setdefault(row_key(r), []).append(r)
        for key in sorted(groups, key=lambda k: groups[k][0]["display_name"].lower()):
            g = groups[key]
            n_iter = max(len(r["stats"]["iterations"]) for r in g)
            for i in range(n_iter):
                its = [r["stats"]["iterations"][i] for r in g if i < len(r["stats"]["iterations"])]
                t = its[0].get("iteration", i + 1)
                body.append([
                    dataset_name(d), g[0]["display_name"], str(t) if n_iter > 1 else "",
                    ",".join(str(r["seed"]) for r in g),
                    mean_of([it.get("pairs_kept") for it in its]), mean_of([it.get("dpo_steps") for it in its], 0),
                    f"{mean_of([_log(it, 'loss', False) for it in its])} → "
                    f"{mean_of([_log(it, 'loss', True) for it in its])}",
                    f"{mean_of([_log(it, 'rewards/margins', False) for it in its])} → "
                    f"{mean_of([_log(it, 'rewards/margins', True) for it in its])}",
                    mean_of([_log(it, "rewards/accuracies", True) for it in its]),
                    f"{mean_of([_log(it, 'rewards/chosen', True) for it in its])} / "
                    f"{mean_of([_log(it, 'rewards/rejected', True) for it in its])}",
                    f"{mean_of([_curve(r, t, 'sft') for r in g])} → "
                    f"{mean_of([_curve(r, t, 'dpo') for r in g])}",
                    median_of([it.get("dpo_seconds") for it in its], 0),
                    median_of([r["timings"].get("fit_s") for r in g], 0) if i == 0 else "",
                    median_of([r["timings"]["recommend_s"] for r in g], 1) if i == 0 else "",
                ])
    head = ["Dataset", "Method", "Iter.", "Seeds", "Pairs kept", "DPO steps", f"Loss step 1 → last {EDGE}",
            f"Margin step 1 → last {EDGE}", f"Acc. last {EDGE}", f"β·h chosen / rejected, last {EDGE}",
            "Align-valid N@5 before → after DPO", "DPO s", "Fit s", "Recommend s"]
    md, tex = simple_table(f"# Preference-training signals ({profile} profile)", head, body, [
        "Means over seeds. Loss, margin, accuracy and implicit rewards β·h (h = log π_θ − log π_ref of a list under "
        "the trie constraints) from TRL's per-step logs; at step 1 π_θ = π_ref, so the loss is log(1 + n_neg) and "
        "the margin 0. Pairs kept: the fraction of alignment prompts that gave a row (ties, empty positives and "
        "negatives equal to the positive are dropped). Align-valid: NDCG@5 on the alignment-validation prompts "
        "before (after the warm-up SFT) and after the DPO stage. Fit s includes the warm-up SFT, sampling and DPO "
        "(the shared SFT is cached); Recommend s: decoding the test split. Times are medians over seeds (one run "
        "slowed by a shared machine does not set them), every other column a mean."])
    return md, tex, body


def render(inp: Inputs) -> list:
    recs = [r for r in inp.records if is_preference(r)]
    return [Table(*preference_table(recs, inp.profile)[:2], recs)] if recs else []


OUTPUT = Output("preference", "Preference-training signals", render)
