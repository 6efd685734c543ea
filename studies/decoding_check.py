"""The decoding family's validation check (docs/benchmarks.md): each method against BIGRec from the records.

Reads the records of one dataset in a results folder (runs made with ``--splits valid``), and prints per record:
validation NDCG/Recall, duplicate rate, coverage, ILD, MGU, how many of BIGRec's 10 items the list shares and how
often its first item is BIGRec's, the validation decoding time and tokens, the mean beam score of each beam rank
(``stats.beam_scores``), and a paired user bootstrap of NDCG@5 against BIGRec.

    python -m studies.decoding_check --results-dir results/studies/decoding_check --dataset steam
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np

from benchmark.metrics import paired_bootstrap, user_means
from benchmark.records import load_predictions, load_records

RESULTS = Path("results/studies/decoding_check")


def labelled_records(results: Path, dataset: str) -> list[tuple[str, dict, list[dict]]]:
    """(label, record, validation rows) of every record of `dataset` under `results`, labelled by method + the
    config fields that differ between records of the same method; BIGRec's first."""
    recs = [(r, load_predictions(r, "valid_predictions_file"))
            for r in load_records(results) if r["dataset"] == dataset]
    out = []
    for r, rows in recs:
        same = [o for o, _ in recs if o["method"] == r["method"]]
        cfg = r["config"]["method"]
        varied = sorted(k for k, v in cfg.items() if any(o["config"]["method"][k] != v for o in same))
        label = r["display_name"] + "".join(f" {k}={cfg[k]}" for k in varied)
        out.append((label, r, rows))
    return sorted(out, key=lambda x: (x[1]["method"] != "bigrec", x[0]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results-dir", default=str(RESULTS))
    ap.add_argument("--dataset", default="steam")
    a = ap.parse_args(argv)
    records = labelled_records(Path(a.results_dir), a.dataset)
    base = next((rows for _, r, rows in records if r["method"] == "bigrec"), None)
    if base is None:
        raise SystemExit(f"no bigrec record under {a.results_dir}/{a.dataset}: run bigrec with --splits valid first")
    key = lambda row: (row["user"], tuple(row["history"]))  # noqa: E731
    big = {key(row): row["items"] for row in base}
    weights = Counter(row["user"] for row in base)
    base_user = user_means([row["metrics"]["ndcg@5"] for row in base], [row["user"] for row in base])
    print("| method | NDCG@5 | NDCG@10 | R@5 | dup. rate | coverage | ILD | MGU | shared with BIGRec (of 10) | same "
          "first item | valid decode s | tokens | NDCG@5 − BIGRec [95 % CI] (p) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for label, r, rows in records:
        m = r["metrics_valid"]
        shared = np.mean([len(set(row["items"]) & set(big[key(row)])) for row in rows])
        first = np.mean([row["items"][0] == big[key(row)][0] for row in rows])
        diff = "—"
        if r["method"] != "bigrec":
            per_user = user_means([row["metrics"]["ndcg@5"] for row in rows], [row["user"] for row in rows])
            b = paired_bootstrap(per_user, base_user, weights=dict(weights))
            diff = f"{b['mean']:+.4f} [{b['ci_low']:+.4f}, {b['ci_high']:+.4f}] ({b['p_value']:.3f})"
        print(f"| {label} | {m['ndcg@5']:.4f} | {m['ndcg@10']:.4f} | {m['recall@5']:.4f} | "
              f"{m['duplicate_rate']:.3f} | {m['coverage']:.3f} | {m['ild']:.4f} | {m['mgu']:.4f} | {shared:.2f} | "
              f"{first:.3f} | {r['timings']['valid_s']:.1f} | {r['stats'].get('tokens_generated', '—')} | {diff} |")
    print(f"\n{len(base)} validation windows. Mean beam score by rank (validation):")
    for label, r, _ in records:
        for entry in r["stats"].get("beam_scores", [])[:1]:
            print(f"- {label} (length_penalty {entry['length_penalty']}): "
                  + " ".join(f"{x:.3f}" for x in entry["mean_score_by_rank"]))


if __name__ == "__main__":
    main()
