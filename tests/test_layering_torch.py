"""Layering: the commands that only plan or read records import no torch.

`run --dry-run`, `ls`, `profiles`, `report` and `--help` run in a fresh interpreter in which torch, transformers, trl,
peft, accelerate and datasets cannot be imported, and must succeed there. So `methods` (the registry, every method
module, its `Config`, `profile_overrides` and `sweep`) and the planner stay free of them: a method imports its
trainer inside `fit`/`recommend`, and configs live in methods/common/configs.py.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")
REFERENCE = ROOT / "results" / "reference"

# A meta-path finder ahead of every other refuses the heavy libraries (a nested import of one fails as well), then
# the CLI runs with the given arguments; the exit status is the command's (argparse's for --help).
BLOCKED_CLI = f"""
import sys

HEAVY = {HEAVY!r}


class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in HEAVY:
            raise ImportError(f"{{name}} is blocked: this command must not import it")


sys.meta_path.insert(0, Refuse())
from runners.cli import main

sys.exit(main(sys.argv[1:]))
"""


def blocked_cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "MASTER_ADDR", "ACCELERATE_USE_CPU")}
    return subprocess.run([sys.executable, "-c", BLOCKED_CLI, *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=300)


def assert_ok(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 0, f"exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"


def test_the_block_works():
    r = blocked_cli("report", "--reference", "--out", "elsewhere")  # a UserError: exit 2, one line
    assert r.returncode == 2 and r.stderr.startswith("error: --reference")
    r = subprocess.run([sys.executable, "-c", BLOCKED_CLI.replace("from runners.cli import main", "import torch")],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "torch is blocked" in r.stderr


@pytest.mark.parametrize("args", [
    ["--help"],
    ["run", "--help"],
    ["ls"],
    ["profiles"],
], ids=lambda a: " ".join(a))
def test_commands_without_data(args):
    r = blocked_cli(*args)
    assert_ok(r)
    assert r.stdout.strip()


@pytest.mark.parametrize("args", [
    ["--methods", "all", "--datasets", "steam"],
    ["--experiment", "paper", "--profile", "cpu"],
], ids=lambda a: " ".join(a))
def test_dry_run(args, data_dir, tmp_path):
    r = blocked_cli("run", *args, "--dry-run", "--data-dir", str(data_dir), "--results-dir", str(tmp_path / "res"),
                    "--cache-dir", str(tmp_path / "cache"))
    assert_ok(r)
    assert "runs planned; nothing was trained (--dry-run)" in r.stdout
    assert not (tmp_path / "res").exists() and not (tmp_path / "cache").exists()


def test_report(tmp_path):
    src = REFERENCE / "steam"
    if not src.is_dir():
        pytest.skip(f"no reference records at {src}")
    for method in ("pop", "bigrec", "blade_n"):
        shutil.copytree(src / method, tmp_path / "records" / "steam" / method)
    r = blocked_cli("report", "--results-dir", str(tmp_path / "records"), "--out", str(tmp_path / "out"))
    assert_ok(r)
    assert (tmp_path / "out" / "README.md").exists()


def test_lr_schedulers_are_transformers():
    """configs.LR_SCHEDULERS spells out transformers' SchedulerType (the valid lr_scheduler values, in its order)."""
    from transformers import SchedulerType

    from methods.common.configs import LR_SCHEDULERS

    assert LR_SCHEDULERS == tuple(s.value for s in SchedulerType)
