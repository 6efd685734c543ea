"""Reliability on the `smoke` profile (issue 10; docs/reliability.md): a run killed anywhere, also inside a checkpoint
save, resumes to the records of an uninterrupted run; two identical runs started together leave one set of records
equal to a single run's; every bad --set, seed, path and data file is refused with exit 2 and one line, before any
write; metrics and prediction files do not depend on PYTHONHASHSEED.

Kills are injected (BENCHMARK_FAULT, benchmark/faults.py), never timed. The uninterrupted run uses PYTHONHASHSEED=1,
the killed and concurrent runs PYTHONHASHSEED=2, so "equal records" also checks hash-seed independence end to end.
"""

import gzip
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runners.cli import main

ROOT = Path(__file__).resolve().parents[1]
METHODS = "bigrec,blade_n"
SAME = ("run_id", "method", "dataset", "seed", "config", "metrics", "metrics_valid", "n_test", "n_valid", "data_hash",
        "curve")  # the validation curve too: a resumed run keeps the points made before its checkpoint


def _start(tmp: Path, data_dir, fault=None, hashseed="2"):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": hashseed}
    env.pop("BENCHMARK_FAULT", None)
    if fault:
        env["BENCHMARK_FAULT"] = fault
    cmd = [sys.executable, "-m", "benchmark", "run", "--methods", METHODS, "--datasets", "steam", "--profile", "smoke",
           "--data-dir", str(data_dir), "--results-dir", str(tmp / "res"), "--cache-dir", str(tmp / "cache")]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(tmp: Path, data_dir, fault=None, hashseed="2"):
    p = _start(tmp, data_dir, fault, hashseed)
    out, err = p.communicate(timeout=600)
    return p.returncode, err


def _records(res: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(res.glob("steam/*/*.json"))}


def _assert_same_records(res: Path, ref: Path):
    got, want = _records(res), _records(ref)
    assert sorted(got) == sorted(want) == ["bigrec", "blade_n"]
    for m in want:
        assert {k: got[m][k] for k in SAME} == {k: want[m][k] for k in SAME}, m
        for f in ("predictions_file", "valid_predictions_file"):  # byte-identical per-window lists and metrics
            assert (res / "steam" / m / got[m][f]).read_bytes() == (ref / "steam" / m / want[m][f]).read_bytes()


def _leftovers(tmp: Path) -> list[str]:
    """Temporary files of killed writes, and checkpoints a kill left incomplete."""
    from benchmark.io import CHECKPOINT, is_complete_checkpoint

    bad = [str(p) for p in tmp.rglob("*") if ".tmp" in p.name]
    bad += [str(p) for p in tmp.rglob("checkpoint-*") if CHECKPOINT.match(p.name) and not is_complete_checkpoint(p)]
    return bad


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    """The uninterrupted run (PYTHONHASHSEED=1)."""
    tmp = tmp_path_factory.mktemp("uninterrupted")
    rc, err = _run(tmp, data_dir, hashseed="1")
    assert rc == 0, err[-3000:]
    return tmp / "res"


def test_kill_anywhere_then_rerun_gives_the_uninterrupted_records(reference, data_dir, tmp_path):
    # 1. killed inside the SFT's 2nd checkpoint save: checkpoint-20 has weights but no trainer_state.json
    rc, err = _run(tmp_path, data_dir, fault="sft_save@2")
    assert rc == -9, err[-2000:]
    (work,) = tmp_path.glob("cache/sft/*/work")
    assert (work / "checkpoint-20" / "model.safetensors").exists()
    assert not (work / "checkpoint-20" / "trainer_state.json").exists()
    assert not list(tmp_path.glob("res/steam/*/*.json"))

    # 2. rerun: SFT resumes from checkpoint-10 (the incomplete one is removed), BIGRec is recorded; killed inside
    #    GRPO's 2nd checkpoint save (step 4 of 4)
    rc, err = _run(tmp_path, data_dir, fault="grpo_save@2")
    assert rc == -9, err[-2000:]
    assert "resume=True" in err and list(tmp_path.glob("res/steam/bigrec/*.json"))
    (gwork,) = tmp_path.glob("cache/runs/*/work")
    assert (gwork / "checkpoint-2" / "trainer_state.json").exists()
    assert not (gwork / "checkpoint-4" / "trainer_state.json").exists()

    # 3. rerun: GRPO resumes from checkpoint-2; killed while writing BLADE-N's record (3rd file of the run: test
    #    predictions, valid predictions, record), which leaves a temporary file
    rc, err = _run(tmp_path, data_dir, fault="atomic_write@3")
    assert rc == -9, err[-2000:]
    assert "GRPO steam" in err and "resume=True" in err
    assert list(tmp_path.glob("res/steam/blade_n/.*.json.tmp*"))
    assert not list(tmp_path.glob("res/steam/blade_n/*.json"))

    # 4. rerun to the end: the records equal the uninterrupted run's, and nothing half-written is left
    rc, err = _run(tmp_path, data_dir)
    assert rc == 0, err[-3000:]
    _assert_same_records(tmp_path / "res", reference)
    assert _leftovers(tmp_path) == []


def test_two_identical_runs_started_together(reference, data_dir, tmp_path):
    for shared in ("sft", "tokenizers"):  # the uninterrupted run's SFT: identical runs contend on the run locks
        shutil.copytree(reference.parent / "cache" / shared, tmp_path / "cache" / shared)
    procs = [_start(tmp_path, data_dir) for _ in range(2)]
    errs = []
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
        errs.append(err)
    # each run was done once: the other process waited on its lock, then found the record ("finished by another
    # process"), or, started late under a busy parallel test runner, found it before taking the lock (": finished")
    skipped = sum(e.count("finished by another process") + e.count("): finished\n") for e in errs)
    assert skipped == 2, [e[-1500:] for e in errs]
    assert sum(e.count("wrote ") for e in errs) == 2
    _assert_same_records(tmp_path / "res", reference)
    assert _leftovers(tmp_path) == []


# --- bad input: exit 2, one line naming the field or file, nothing written -------------------------------------

def _dataset(d: Path, users=40, per=15, items=30, dup=False) -> Path:
    d.mkdir(parents=True)
    lines = [json.dumps({"item_id": str(i), "title": f"Item {i}", "genres": ["A" if i % 2 else "B"]}) for i in
             range(items)]
    if dup:
        lines.append(json.dumps({"item_id": "7", "title": "Item 7 again", "genres": []}))
    (d / "items.jsonl").write_text("\n".join(lines) + "\n")
    rng = random.Random(0)
    rows = ["user_id,item_id,timestamp"]
    rows += [f"u{u},{rng.randrange(items)},{t}" for u in range(users) for t in range(per)]
    with gzip.open(d / "interactions.csv.gz", "wt") as f:
        f.write("\n".join(rows) + "\n")
    return d


def _samples_dataset(d: Path, dup: bool = False) -> Path:
    """A samples (format B) dataset; `dup`: one sample repeated."""
    d.mkdir(parents=True)
    (d / "items.jsonl").write_text("".join(json.dumps({"item_id": str(i), "title": f"Item {i}", "genres": ["A"]}) + "\n"
                                           for i in range(40)))
    rng = random.Random(0)
    rows = [{"history": [str(rng.randrange(40)) for _ in range(10)], "target": [str(rng.randrange(40))],
             "split": "train" if n < 160 else "test"} for n in range(200)]
    if dup:
        rows.insert(50, rows[7])
    with gzip.open(d / "samples.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    return d


def _bad_data(tmp: Path, kind: str) -> tuple[Path, str]:
    """A dataset folder damaged as `kind`, and the file its error must name."""
    if kind == "duplicated_samples":
        d = _samples_dataset(tmp / kind, dup=True)
        return d, str(d / "samples.jsonl.gz")
    if kind == "few_users":
        d = _dataset(tmp / kind, users=3)
    elif kind == "short_users":
        d = _dataset(tmp / kind, per=5)
    elif kind == "duplicate_item":
        d = _dataset(tmp / kind, dup=True)
        return d, f"{d / 'items.jsonl'}, line 31: item_id '7' repeats line 8"
    elif kind == "dataset_json_latin1":
        d = _dataset(tmp / kind)
        (d / "dataset.json").write_bytes('{"genres": ["Café"]}'.encode("latin-1"))
        return d, str(d / "dataset.json")
    elif kind == "items_folder":
        d = _dataset(tmp / kind)
        (d / "items.jsonl").unlink()
        (d / "items.jsonl").mkdir()
        return d, str(d / "items.jsonl")
    else:
        d = _dataset(tmp / kind)
        f = d / "interactions.csv.gz"
        data = f.read_bytes()
        if kind == "truncated_gzip":
            f.write_bytes(data[:300])
        elif kind == "bad_checksum":  # the CRC-32 in the trailer no longer matches
            f.write_bytes(data[:-8] + bytes([data[-8] ^ 1]) + data[-7:])
        elif kind == "trailing_garbage":
            f.write_bytes(data + b"garbage!")
        elif kind == "damaged_mid_stream":  # a flipped byte inside the deflate data: it still inflates, to junk
            f.write_bytes(data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0x55]) + data[len(data) // 2 + 1:])
        elif kind == "duplicated_rows":  # every row twice
            text = gzip.decompress(data).decode()
            head, *rows = text.splitlines(keepends=True)
            f.write_bytes(gzip.compress((head + "".join(r + r for r in rows)).encode()))
        else:  # plain CSV named .gz
            f.write_bytes(gzip.decompress(data))
    return d, str(d / "interactions.csv.gz")


BAD = [
    # (what, extra args, expected in the one error line)
    ("k=-3", ["--set", "k=-3"], "profile field k = -3 is invalid: expected an integer >= 1"),
    ("k=0", ["--set", "k=0"], "profile field k = 0 is invalid"),
    ("tau=nan", ["--methods", "blade_n", "--set", "tau=nan"], "blade_n config field tau = nan is invalid"),
    ("tau=-1", ["--methods", "blade_n", "--set", "tau=-1"], "blade_n config field tau = -1.0 is invalid"),
    ("item_repr=foo", ["--set", "item_repr=foo"], "profile field item_repr = 'foo' is invalid: expected one of"),
    ("reward=foo", ["--methods", "bon_static", "--set", "reward=foo"], "bon_static config field reward = 'foo'"),
    ("max_eval_windows=0", ["--set", "max_eval_windows=0"], "profile field max_eval_windows = 0 is invalid"),
    ("seed -1", ["--seeds", "-1"], "--seeds -1 is invalid"),
    ("no datasets", ["--datasets", ""], "--datasets '' is empty"),
    ("no methods", ["--methods", " , "], "--methods is empty"),
    ("results-dir is a file", ["--results-dir", "FILE"], "--results-dir FILE is a file, not a folder"),
    ("cache-dir is a file", ["--cache-dir", "FILE"], "--cache-dir FILE is a file, not a folder"),
    ("results-dir below a file", ["--results-dir", "FILE/res"], "--results-dir FILE/res: FILE is a file"),
    ("cache-dir not writable", ["--cache-dir", "RO"], "--cache-dir RO: RO is not writable"),
    ("truncated gzip", ["--datasets", "DATA:truncated_gzip"], "FILE is damaged (truncated"),
    ("plain CSV named .gz", ["--datasets", "DATA:plain_gzip"], "FILE is not gzip-compressed"),
    ("no user with >= 10", ["--datasets", "DATA:short_users"], "FILE: no user has >= 10 interactions"),
    ("too few users", ["--datasets", "DATA:few_users"], "FILE: too few users for the splits: no window in"),
    ("duplicate item_id", ["--datasets", "DATA:duplicate_item"], "FILE"),
    # issue 25: nothing silently wrong, second round
    ("empty experiment name", ["--methods", None, "--experiment", ""], "unknown experiment ''"),
    ("k above the catalogue", ["--set", "k=1000"], "profile field k = 1000 is invalid for dataset steam: a list "
                                                   "holds at most 529 distinct items there (539 catalogue items"),
    ("k absurd", ["--set", "k=100000000"], "profile field k = 100000000 is invalid for dataset steam"),
    ("huge reference set", ["--methods", "blade_n", "--set", "blade_n.M=1000000000000"],
     "blade_n config field M = 1000000000000 is invalid: expected an integer in [0, 1024]"),
    ("unknown scheduler", ["--set", "sft_scheduler=foo"], "profile field sft_scheduler = 'foo' is invalid: "
                                                          "expected one of cosine_with_min_lr, linear"),
    ("dataset.json not UTF-8", ["--datasets", "DATA:dataset_json_latin1"], "FILE is not UTF-8 text (line 1"),
    ("gzip with a bad checksum", ["--datasets", "DATA:bad_checksum"],
     "FILE is damaged (corrupt: its CRC-32 checksum does not match the data)"),
    ("gzip with trailing garbage", ["--datasets", "DATA:trailing_garbage"],
     "FILE is damaged (8 bytes of trailing garbage after the gzip data"),
    ("gzip damaged mid-stream", ["--datasets", "DATA:damaged_mid_stream"], "FILE is damaged (corrupt"),
    ("duplicated interaction rows", ["--datasets", "DATA:duplicated_rows"],
     "FILE: 600 duplicated rows (e.g. line 3 repeats line 2: "),
    ("duplicated samples", ["--datasets", "DATA:duplicated_samples"],
     "FILE: 1 duplicated samples (e.g. line 51 repeats the history and target of line 8)"),
    ("items.jsonl is a folder", ["--datasets", "DATA:items_folder"], "FILE is a folder, not a file"),
    ("results-dir is the reference", ["--results-dir", "results/reference"],
     "--results-dir results/reference is the committed reference reproduction: add --into-reference"),
    ("smoke run into the reference", ["--results-dir", None, "--into-reference", True],
     "--into-reference: the committed reproduction is made with the profiles cpu, smollm2, paper, not smoke"),
    ("read-only results subfolder", ["--results-dir", "RES"], "--results-dir RES/steam/pop: RES/steam/pop is not "
                                                              "writable"),
    ("read-only experiments subfolder", ["--methods", None, "--experiment", "fig5", "--datasets", "steam",
                                         "--seeds", ["0"], "--results-dir", "RES"],
     "--results-dir RES/experiments: RES/experiments is not writable"),
    ("read-only cache subfolder", ["--cache-dir", "CACHE"], "--cache-dir CACHE/sft: CACHE/sft is not writable"),
    ("bad flag", ["--bogus", True], "error: python -m benchmark: unrecognized arguments: --bogus"),
    ("bad flag value", ["--seeds", ["x"]], "error: python -m benchmark run: argument --seeds: invalid int value: 'x'"),
    ("repeated seeds", ["--seeds", ["0", "0"]], "--seeds 0 0 repeats 0: each seed is one run"),
    ("repeated methods", ["--methods", "pop,pop"], "--methods pop,pop names pop twice"),
    ("repeated datasets", ["--datasets", "steam,steam"], "--datasets steam,steam names steam twice"),
]


@pytest.mark.parametrize("what,extra,expect", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_refused_before_any_write(what, extra, expect, data_dir, tmp_path, capsys, monkeypatch):
    file = tmp_path / "a_file"
    file.write_text("not a folder")
    ro = tmp_path / "ro"
    ro.mkdir()
    res, cache = tmp_path / "res", tmp_path / "cache"
    subs = {"FILE": str(file), "RO": str(ro), "RES": str(res), "CACHE": str(cache)}
    args = {"--methods": "pop", "--datasets": "steam", "--profile": "smoke", "--data-dir": str(data_dir),
            "--results-dir": str(res), "--cache-dir": str(cache)}

    def sub(v: str) -> str:
        for key in ("FILE", "RO", "RES", "CACHE"):
            v = v.replace(key, subs[key])
        return v

    for k, v in zip(extra[::2], extra[1::2]):
        if v is None:  # drop a default argument
            args.pop(k)
            continue
        if isinstance(v, str) and v.startswith("DATA:"):
            d, subs["FILE"] = _bad_data(tmp_path / "data", v[5:])
            v = str(d)
        args[k] = v if v is True or isinstance(v, list) else sub(v)
    if "reference" in what:  # results/reference of the working folder, which this test makes its temporary one
        monkeypatch.chdir(tmp_path)
    readonly = {"cache-dir not writable": ro, "read-only results subfolder": res / "steam" / "pop",
                "read-only experiments subfolder": res / "experiments", "read-only cache subfolder": cache / "sft"}
    if what in readonly:  # the tests may run as root, who can write anywhere: os.access says no for this folder
        readonly[what].mkdir(parents=True, exist_ok=True)
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == readonly[what] else real(p, mode))
    argv = ["run"]
    for k, v in args.items():
        argv += [k] if v is True else [k, *v] if isinstance(v, list) else [k, v]
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert sub(expect) in err, err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # nothing written: no results, cache or lock


def test_bad_input_through_the_real_command_line(tmp_path):
    """The same refusals as a user sees them: exit status 2, one stderr line, no traceback, no log lines."""
    d, f = _bad_data(tmp_path, "truncated_gzip")
    r = subprocess.run([sys.executable, "-m", "benchmark", "run", "--methods", "pop", "--profile", "smoke",
                        "--datasets", str(d), "--results-dir", str(tmp_path / "res"), "--cache-dir",
                        str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and f"error: {f} is damaged (truncated" in r.stderr, \
        r.stderr
    assert not (tmp_path / "res").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("args,expect", [
    (["run", "--bogus"], "error: python -m benchmark: unrecognized arguments: --bogus. See `python -m benchmark --help`"),
    (["run", "--splits", "test"], "error: python -m benchmark run: argument --splits: invalid choice: 'test'"),
    (["nope"], "error: python -m benchmark: argument cmd: invalid choice: 'nope'"),
])
def test_argparse_errors_are_one_line(args, expect):
    """A bad flag: one `error:` line and exit 2, not argparse's usage block (8 lines before issue 25)."""
    r = subprocess.run([sys.executable, "-m", "benchmark", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stderr.startswith(expect), r.stderr
    assert r.stdout == ""


REFUSAL_IMPORTS = """
import sys
from runners.cli import main
rc = main(sys.argv[1:])
print(rc, sorted(m for m in ("torch", "transformers", "trl", "accelerate") if m in sys.modules))
"""


def test_a_refusal_after_the_plan_imports_no_torch(data_dir, tmp_path):
    """k above the catalogue is refused once the data is loaded and the runs planned, before torch is imported:
    refusals answer in well under 2 s (docs/reliability.md)."""
    r = subprocess.run([sys.executable, "-c", REFUSAL_IMPORTS, "run", "--methods", "bigrec,blade_n", "--set", "k=1000",
                        "--data-dir", str(data_dir), "--results-dir", str(tmp_path / "r"), "--cache-dir",
                        str(tmp_path / "c")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "2 []" and "k = 1000 is invalid for dataset steam" in r.stderr, (r.stdout, r.stderr)


# --- PYTHONHASHSEED ------------------------------------------------------------------------------------------

MGU_PROBE = """
from benchmark.metrics import mgu
G = ["Action", "Adventure", "Casual", "Strategy", "RPG", "Simulation", "Massively Multiplayer", "Sports", "Racing"]
genres = [G[:3], G[2:7], G[1:2], G[4:9], G[::2], G[1::3], G[0:9:4]]
print(repr(mgu([0, 1, 3, 4, 5], [2, 6, 1, 0], genres, G)), repr(mgu([3, 4, 5, 6], [0, 1, 2], genres, G)))
"""


def test_mgu_is_bit_identical_across_hash_seeds():
    # with genres summed in set order these lists gave 0.06074074074074075 or ...0734, 0.1271604938271605 or ...046
    outs = {subprocess.run([sys.executable, "-c", MGU_PROBE], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout for h in range(8)}
    assert len(outs) == 1, outs


# --- issue 25, phase 2: diverged training, the constraint under NaN logits, unreachable hub models ----------------

def test_diverged_training_fails_the_run_with_one_line_and_no_record(data_dir, tmp_path):
    """`sft_lr=1e308`: SFT logged "best inf", exit 0, and a record of eleven -1 items per list (k = 10, valid rate
    0). Now the first non-finite loss fails the run: exit 2, one error line, no record, no traceback."""
    r = subprocess.run([sys.executable, "-m", "benchmark", "run", "--methods", "bigrec", "--profile", "smoke",
                        "--set", "sft_lr=1e308", "--data-dir", str(data_dir), "--results-dir", str(tmp_path / "res"),
                        "--cache-dir", str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True,
                       timeout=600)
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert len(errors) == 1 and errors[0].startswith("error: SFT steam/smoke diverged: ") and "--set sft_lr" in \
        errors[0], r.stderr[-3000:]
    assert r.stderr.rstrip().endswith(errors[0]) and not list(tmp_path.glob("res/**/*.json"))
    assert "FutureWarning" not in r.stderr and "missing keys" not in r.stderr  # the trainer's noise is gone too


def test_the_constraint_holds_under_non_finite_logits():
    """The trie mask was added (`scores + mask`), so NaN logits stayed NaN on disallowed ids and were decoded."""
    import torch

    from methods.common.tokenizers import build_item_token_tokenizer, item_token
    from methods.common.trie import ItemTrie, ListConstraintProcessor

    n = 20
    tok = build_item_token_tokenizer(n)
    trie = ItemTrie(tok, [item_token(i) for i in range(n)], " ")
    proc = ListConstraintProcessor(trie, 3, tok.eos_token_id, 0, [{0, 1}])
    allowed = proc(torch.zeros(1, 0, dtype=torch.long), torch.zeros(1, len(tok)))[0] == 0
    for fill in (float("nan"), float("inf"), float("-inf")):
        scores = torch.full((1, len(tok)), fill)
        out = proc(torch.zeros(1, 0, dtype=torch.long), scores)[0]
        assert torch.isneginf(out[~allowed]).all() and not out[allowed].isnan().any(), fill
        assert allowed[out.argmax()], fill  # greedy picks an allowed id
        assert allowed[torch.multinomial(out.softmax(-1), 50, replacement=True)].all(), fill  # and so does sampling
    scores = torch.randn(1, len(tok))
    assert torch.equal(proc(torch.zeros(1, 0, dtype=torch.long), scores)[0],
                       torch.where(allowed, scores[0], float("-inf")))  # finite scores: unchanged where allowed


@pytest.mark.parametrize("bad", ["length", "invalid", "repeat", "history"])
def test_a_list_that_breaks_the_constraint_fails_the_run_before_its_record(steam, bad):
    from benchmark.config import PROFILES
    from benchmark.errors import BrokenList
    from runners.execute import check_lists
    from runners.plan import RunSpec

    spec = RunSpec("pop", "steam", PROFILES["smoke"], 0, None, steam)
    windows = steam.splits["test"][:2]
    free = [i for i in range(steam.n_items) if i not in windows[1].history]
    good = [free[:10], [i for i in range(steam.n_items) if i not in windows[0].history][:10]][::-1]
    check_lists(spec, good, windows, "test")
    broken = {"length": free[:11], "invalid": [-1] + free[:9], "repeat": [free[0]] + free[:9],
              "history": [windows[1].history[0]] + free[:9]}[bad]
    with pytest.raises(BrokenList, match=r"pop on steam \(seed 0\): the test list for user .* has .*No record was "
                                         "written"):
        check_lists(spec, [good[0], broken], windows, "test")


def test_an_unreachable_hub_model_is_one_line(data_dir, tmp_path):
    r = subprocess.run([sys.executable, "-m", "benchmark", "run", "--methods", "bigrec", "--profile", "smoke",
                        "--set", "model=hf:nobody/no-such-model", "--data-dir", str(data_dir), "--results-dir",
                        str(tmp_path / "res"), "--cache-dir", str(tmp_path / "cache")], cwd=ROOT,
                       capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert len(errors) == 1 and "could not load 'nobody/no-such-model' from the Hugging Face hub" in errors[0]
