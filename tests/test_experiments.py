"""Named experiments expand to ordinary runs: the configs each point needs, shared runs planned once, the user's --set
applied (and refused where the experiment sets the key itself), and a plan that report reads."""

from __future__ import annotations

import json

import pytest

from runners.cli import main
from benchmark.config import PROFILES
from benchmark.errors import UserError
from benchmark.experiments import EXPERIMENTS, GROUP_SIZES, LAMBDAS, TAUS, components, get_experiment
from methods.registry import all_methods
from benchmark.records import plan_path, write_plan
from runners.experiments import expand

CPU = PROFILES["cpu"]


@pytest.fixture(scope="module")
def cds(data_dir):
    from benchmark.data import load_dataset

    return load_dataset("cds", data_dir)


def _runs(plan, dataset="cds"):
    return plan["datasets"][dataset]["runs"]


def _by_id(specs):
    return {s.run_id: s for s in specs}


def test_fig5_varies_g_at_a_fixed_tau(cds):
    specs, (plan,) = expand("fig5", [cds], CPU, None, {})
    assert len(specs) == len(GROUP_SIZES) * 3  # the experiment's seeds 0 1 2
    cfgs = [s.config for s in specs]
    assert sorted({c.G for c in cfgs}) == sorted(GROUP_SIZES)
    assert {(c.tau, c.tau_grid, c.reward, c.M) for c in cfgs} == {(0.3, (), "ndcg", 64)}
    assert {s.method for s in specs} == {"blade_n"} and {s.seed for s in specs} == {0, 1, 2}
    rows = _runs(plan)
    assert [(r["series"], r["x"]) for r in rows[::3]] == [("BLADE-N", g) for g in GROUP_SIZES]
    assert {r["run_id"] for r in rows} == set(_by_id(specs))
    assert plan["datasets"]["cds"]["command"] == ("python -m benchmark run --experiment fig5 --profile cpu "
                                                  "--datasets cds --seeds 0 1 2")


def test_experiments_share_runs_that_have_one_config(cds):
    specs, plans = expand("paper", [cds], CPU, [0], {})
    assert len(specs) == len(_by_id(specs))  # every run once
    runs = {p["experiment"]: _runs(p) for p in plans}
    assert sorted(runs) == ["fig4", "fig5", "fig6", "fig7", "fig8", "table1", "table3"]

    def ids(name, **match):
        return {r["run_id"] for r in runs[name] if all(r.get(k) == v for k, v in match.items())}

    # BLADE-N at tau 0.3 and the profile's G: Fig. 4b's tau = 0.3, Fig. 5/6's G = 16, Fig. 8's lambda = 0 and the
    # Table 3 row are one run
    blade = ids("fig5", x=16)
    assert blade == ids("fig4", panel="b", x=0.3) == ids("fig6", series="BLADE", x=16) == ids("fig8", panel="a", x=0)
    assert blade == ids("fig8", panel="b", x=0) and blade <= ids("table3")
    assert ids("fig8", series="SFT", panel="a") == ids("fig8", series="SFT", panel="b")
    # Fig. 4a trains longer
    (a0,) = ids("fig4", panel="a", series="τ = 0 (static)")
    assert _by_id(specs)[a0].config.epochs == 4.0 and _by_id(specs)[a0].config.tau == 0.0


def test_fig6_no_prior_is_m_zero_and_fig7_fig8_rewards(cds):
    specs, plans = expand("fig6", [cds], CPU, [0], {})
    by = _by_id(specs)
    no_prior = [by[r["run_id"]].config for r in _runs(plans[0]) if r["series"] == "No Prior"]
    assert [(c.M, c.G) for c in no_prior] == [(0, g) for g in GROUP_SIZES]
    (spec,), _ = expand("fig7", [cds], CPU, [0], {})
    assert spec.config.reward == "neg_mgu"
    specs, (plan,) = expand("fig8", [cds], CPU, [0], {})
    by = _by_id(specs)
    got = {(r["panel"], r["x"]): by[r["run_id"]].config for r in _runs(plan) if r["series"] != "SFT"}
    assert {(p, x): (c.reward, c.lam) for (p, x), c in got.items() if x} == {
        **{("a", lam): ("fair", lam) for lam in LAMBDAS[1:]}, **{("b", lam): ("div", lam) for lam in LAMBDAS[1:]}}
    assert got[("a", 0.0)].reward == "ndcg"  # lambda = 0 is R = NDCG


def test_fig4_tau_grid_off_and_table3_every_method(cds):
    specs, _ = expand("fig4", [cds], PROFILES["paper"], [0], {})
    assert {s.config.tau_grid for s in specs} == {()}  # the paper profile's tau search is off in figures
    assert sorted({s.config.tau for s in specs}) == sorted(TAUS)
    specs, _ = expand("table3", [cds], CPU, [0], {})
    assert {s.method for s in specs} == set(all_methods())  # "all" and the tau-searched row it leaves out
    from runners.plan import parse_methods

    assert set(parse_methods("all")) == set(all_methods()) - {"blade_n_tau"}  # 4 trainings: named, not in "all"


def test_user_sets_apply_to_every_point_unless_the_experiment_sets_them(cds):
    specs, _ = expand("fig5", [cds], CPU, [1], {"blade_n.lr": "0.001", "k": "5"})
    assert {s.config.lr for s in specs} == {0.001} and {s.profile.k for s in specs} == {5}
    assert {s.seed for s in specs} == {1}
    with pytest.raises(UserError, match="--set blade_n.G=4: experiment fig5 sets G itself"):
        expand("fig5", [cds], CPU, None, {"blade_n.G": "4"})
    with pytest.raises(UserError, match=r"--set lr: a config field of several selected methods \(bon_static, blade_n"):
        expand("paper", [cds], CPU, None, {"lr": "0.001"})


def test_specs_are_named_and_valid():
    assert list(EXPERIMENTS) == ["fig4", "fig5", "fig6", "fig7", "fig8", "table1", "table3", "paper"]
    assert [e.name for e in components("paper")] == ["table1", "table3", "fig4", "fig5", "fig6", "fig7", "fig8"]
    with pytest.raises(UserError, match="unknown experiment 'fig9'. Did you mean"):
        get_experiment("fig9")
    methods = set(all_methods()) | {"all"}
    for e in EXPERIMENTS.values():
        assert all(p.method in methods for p in e.points)


def test_write_plan_keeps_other_datasets(tmp_path):
    def runs(run_id):
        return {"runs": [{"run_id": run_id, "seed": 0}]}

    plan = {"experiment": "fig5", "profile": "cpu", "datasets": {"cds": runs("a")}}
    write_plan(tmp_path, plan)
    write_plan(tmp_path, {**plan, "datasets": {"steam": runs("b")}})
    write_plan(tmp_path, {**plan, "datasets": {"cds": runs("c")}})
    saved = json.loads(plan_path(tmp_path, "fig5", "cpu").read_text())
    assert saved["datasets"] == {"cds": runs("c"), "steam": runs("b")}


def test_write_plan_warns_when_a_dataset_loses_seeds(tmp_path, caplog):
    """Planning seeds 3 4 after 0 1 2 replaces the dataset's plan: the log says which seeds `report` no longer draws
    and the command that keeps them all; planning a superset of the seeds says nothing."""
    import logging

    def plan(*seeds):
        return {"experiment": "fig5", "profile": "cpu", "datasets": {"cds": {"runs": [{"seed": s} for s in seeds]}}}

    with caplog.at_level(logging.WARNING, logger="benchmark"):
        write_plan(tmp_path, plan(0, 1, 2))
        write_plan(tmp_path, plan(0, 1, 2, 3))
        assert caplog.text == ""
        write_plan(tmp_path, plan(3, 4))
    assert "the fig5 plan for cds now has seeds 3 4; it had 0 1 2 too" in caplog.text
    assert "(--seeds 0 1 2 3 4)" in caplog.text


def test_cli_dry_run_plans_without_writing(data_dir, tmp_path, capsys):
    res = tmp_path / "res"
    assert main(["run", "--experiment", "fig6", "--profile", "smoke", "--data-dir", str(data_dir),
                 "--results-dir", str(res), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "dataset cds" in out and "24 runs planned" in out and not res.exists()
    assert main(["run", "--experiment", "fig6", "--methods", "pop", "--data-dir", str(data_dir), "--dry-run"]) == 2
    assert "--methods and --experiment exclude each other" in capsys.readouterr().err
    assert main(["run", "--experiment", "fig6", "--splits", "valid", "--data-dir", str(data_dir), "--dry-run"]) == 2


def test_paper_runs_each_part_on_its_own_datasets(cds, steam):
    # no --datasets: the tables run on every loaded dataset, the figures on CDs only (their default), not on the union
    specs, plans = expand("paper", [cds, steam], CPU, [0], {}, own_datasets=True)
    assert {p["experiment"]: sorted(p["datasets"]) for p in plans} == {
        "table1": ["cds", "steam"], "table3": ["cds", "steam"], **{f"fig{i}": ["cds"] for i in range(4, 9)}}
    alone = {s.run_id for name in ("table1", "table3") for s in expand(name, [cds, steam], CPU, [0], {})[0]}
    alone |= {s.run_id for i in range(4, 9) for s in expand(f"fig{i}", [cds], CPU, [0], {})[0]}
    assert {s.run_id for s in specs} == alone
    assert {s.dataset for s in specs if s.run_id not in {r["run_id"] for p in plans if p["experiment"] in
                                                         ("table1", "table3") for r in p["datasets"]["steam"]["runs"]}
            } == {"cds"}
    # --datasets given: every part on the user's datasets
    _, plans = expand("paper", [cds, steam], CPU, [0], {})
    assert {tuple(sorted(p["datasets"])) for p in plans} == {("cds", "steam")}
