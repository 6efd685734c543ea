"""The house's layout: outputs in output rooms, code in code rooms, imports only downward (README "Layout")."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# floors, bottom to top; a module may import its own floor and those below
FLOORS = {"benchmark": 0, "methods": 1, "runners": 2, "studies": 3}
ENTRY = ROOT / "benchmark" / "__main__.py"  # the CLI entry: the one module allowed to import upward


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
    return out


def upward_imports(root: Path = ROOT) -> list[str]:
    """Every import of a module on a higher floor than the importer (and every study importing another study)."""
    bad = []
    for room, floor in FLOORS.items():
        for path in sorted((root / room).rglob("*.py")):
            if path == ENTRY:
                continue
            for name in _imports(path):
                top = name.split(".")[0]
                if top in FLOORS and FLOORS[top] > floor:
                    bad.append(f"{path.relative_to(root)} -> {name}")
                if room == "studies" and top == "studies" and name != "studies.common":
                    bad.append(f"{path.relative_to(root)} -> {name} (a study imports another study)")
    return bad


def test_no_module_imports_upward():
    assert upward_imports() == []


def test_the_checker_sees_an_upward_import(tmp_path):
    for room in FLOORS:
        (tmp_path / room).mkdir()
    (tmp_path / "benchmark" / "x.py").write_text("from runners.plan import plan\n")
    (tmp_path / "studies" / "a.py").write_text("from studies.b import f\nfrom studies.common import g\n")
    assert upward_imports(tmp_path) == ["benchmark/x.py -> runners.plan",
                                        "studies/a.py -> studies.b (a study imports another study)"]


def test_results_and_reports_hold_no_code():
    tracked = subprocess.run(["git", "ls-files", "results", "reports"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert [f for f in tracked if f.endswith(".py")] == []
    assert not list((ROOT / "results").rglob("*.py")) and not list((ROOT / "reports").rglob("*.py"))


def test_results_hold_the_reference_and_studies_only():
    tracked = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    assert {f.split("/")[1] for f in tracked} <= {"reference", "studies"}


def test_the_readme_layout_names_every_room():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme[readme.index("## Layout"):]
    block = block[block.index("```") + 3:]
    block = block[:block.index("```")]
    rooms = re.findall(r"^(\w+)/", block, re.M)
    on_disk = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in
               ("cache", "logs", "build") and not p.name.endswith(".egg-info") and p.name != "__pycache__"}
    assert set(rooms) == on_disk


# paths the docs name that are not files of this project: upstream repositories' files and outputs a user makes
EXTERNAL = re.compile(r"^(data/(valid|test|Goodreads|game|encoder)|reports/runs/)")
REFERENCE = re.compile(r"(?<![\w/.])((?:docs|data|reports|results|benchmark|methods|runners|studies|tests)/"
                       r"[\w/.-]*\w\.(?:md|py|jsonl|json|txt|png|tex))(?!\w)")


def test_every_reference_resolves():
    """Each path a doc or module names is a file of the project (design notes moved into docs/)."""
    files = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.toml"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    missing = []
    for f in files:
        if f.startswith("results/") or f == "tests/test_layout.py":  # results: data; this file: made-up examples
            continue
        text = (ROOT / f).read_text(encoding="utf-8")
        for n, line in enumerate(text.splitlines(), 1):
            if "git show" in line:  # a file of an earlier commit, named with the command that shows it
                continue
            for ref in REFERENCE.findall(line):
                if not EXTERNAL.match(ref) and not (ROOT / ref).exists():
                    missing.append(f"{f}:{n}: {ref}")
    assert missing == []
    assert not re.search(r"shared/|\.\./seed/", "".join((ROOT / f).read_text(encoding="utf-8") for f in files
                                                       if not f.startswith("results/") and f != "tests/test_layout.py"))
