"""The registry matches the method files; the README's add-a-method example works end to end."""

import re
from pathlib import Path

import pytest

from benchmark.errors import UserError
from methods.registry import METHODS, all_methods, get_method

ROOT = Path(__file__).resolve().parents[1]


def test_registry_matches_method_files():
    files = {p.stem for p in (ROOT / "methods").glob("*.py")} - {"__init__", "base", "registry"}
    assert set(all_methods()) == files
    for name, cls in METHODS.items():
        assert cls.name == name and cls.display_name and cls.paper
        assert cls.category in {"llm", "inference", "listwise", "ours", "reference"}


def test_legacy_flags_match_the_classes():
    """reports/ fills the flags of records written before records carried them from one table; it must say what the
    classes say (the table covers exactly the methods that existed then; newer records carry their flags)."""
    from benchmark.records import LEGACY_FLAGS

    for name, flags in LEGACY_FLAGS.items():
        cls = get_method(name)
        assert flags == {"oracle": cls.oracle, "role": cls.role}, name
    assert [m for m in all_methods() if METHODS[m].oracle] == ["bon_inference"]


def test_recategorised_methods_match_the_classes():
    from benchmark.records import RECATEGORISED

    for name, category in RECATEGORISED.items():
        assert get_method(name).category == category, name
    # the paper's Table 3 groups: LLM-based, inference strategies, list-wise, ours
    assert {m: METHODS[m].category for m in all_methods() if METHODS[m].category != "reference"} == {
        "bigrec": "llm", "sdpo": "llm", "rere": "llm", "sprec": "llm", "beam": "inference", "d3": "inference",
        "bon_inference": "inference", "list_dpo": "listwise", "bon_static": "listwise", "blade_n": "ours",
        "blade_n_tau": "ours", "blade_r": "ours", "sft_align": "llm"}
    assert {m: METHODS[m].role for m in all_methods() if METHODS[m].role} == {
        "bigrec": "sft", "pop": "popularity", "sft_align": "control"}


def test_unknown_method_lists_valid_names():
    with pytest.raises(UserError, match=r"Did you mean 'bigrec'.*Valid methods: .*pop"):
        get_method("bigrc")


def test_readme_example_adds_a_working_method(steam, tmp_path):
    from benchmark.config import get_profile
    from methods.base import RunContext

    code = re.search(r"<!-- example:add-method -->\s*```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert code, "README must hold the add-a-method example"
    try:
        exec(compile(code.group(1), "README.md", "exec"), {})
        cls = get_method("my_pop")
        ctx = RunContext(data=steam, profile=get_profile("smoke"), seed=0, run_dir=tmp_path, cache_dir=tmp_path)
        m = cls()
        m.fit(ctx)
        wins = steam.splits["test"][:20]
        lists = m.recommend(ctx, wins)
        assert all(len(lst) == 10 and not set(lst) & set(w.history) for lst, w in zip(lists, wins))
    finally:
        METHODS.pop("my_pop", None)
