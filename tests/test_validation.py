"""Every config is validated once, when it is built (dataclass __post_init__), whatever the path: CLI --set, Python
API, tests. Errors are one-line UserErrors naming the field, the value and the valid range."""

import dataclasses
import math

import pytest

from benchmark.config import DATASETS, PROFILES, DataConfig, apply_overrides, check_seeds, data_dir
from benchmark.data import dataset_config
from benchmark.errors import UserError
from methods.registry import all_methods, get_method
from runners.plan import resolve, resolve_configs

SMOKE = PROFILES["smoke"]


def test_shipped_profiles_datasets_and_method_defaults_are_valid():
    for p in PROFILES.values():
        dataclasses.replace(p)
    for name in DATASETS:  # the shipped datasets' settings (data/<name>/dataset.json) build valid configs
        dataset_config(data_dir() / name)
    for m in all_methods():
        for profile in PROFILES.values():
            assert resolve_configs(m, profile, {})  # defaults + per-profile overrides


@pytest.mark.parametrize("field,value,expect", [
    ("k", 0, "profile field k = 0 is invalid: expected an integer >= 1"),
    ("k", -3, "profile field k = -3 is invalid: expected an integer >= 1"),
    ("k", 2.0, "profile field k = 2.0 is invalid: expected int"),
    ("max_eval_windows", 0, "max_eval_windows = 0 is invalid: expected None or an integer >= 1"),
    ("item_repr", "foo", "item_repr = 'foo' is invalid: expected one of title, item_token"),
    ("model", "gpt", "model = 'gpt' is invalid: expected scratch, smollm2 or hf:<repo id>"),
    ("sft_lr", math.nan, "sft_lr = nan is invalid: expected float (not NaN)"),
    ("sft_lr", 0.0, "sft_lr = 0.0 is invalid: expected a number > 0.0, finite"),
    ("sft_lr", math.inf, "sft_lr = inf is invalid"),
    ("attention_dropout", 1.0, "attention_dropout = 1.0 is invalid: expected a number in [0.0, 1.0)"),
    ("heads", 3, "heads = 3 is invalid: hidden = 64 must be a multiple of it"),
    ("bf16", "yes", "bf16 = 'yes' is invalid: expected bool"),
])
def test_bad_profile_values(field, value, expect):
    with pytest.raises(UserError) as e:
        dataclasses.replace(SMOKE, **{field: value})
    assert expect in str(e.value) and f"--set {field}=" in str(e.value) and "\n" not in str(e.value)


def test_inf_only_where_it_means_no_limit():
    assert dataclasses.replace(SMOKE, sft_max_time_s=math.inf).sft_max_time_s == math.inf
    assert dataclasses.replace(SMOKE, max_eval_windows=None).max_eval_windows is None


@pytest.mark.parametrize("method,sets,expect", [
    ("blade_n", {"tau": "nan"}, "blade_n config field tau = nan is invalid: expected float (not NaN)"),
    ("blade_n", {"tau": "-0.1"}, "blade_n config field tau = -0.1 is invalid: expected a finite number >= 0.0"),
    ("blade_n", {"tau": "inf"}, "blade_n config field tau = inf is invalid"),
    ("blade_n", {"reward": "foo"}, "reward = 'foo' is invalid: expected one of ndcg, recall, fair, div"),
    ("blade_n", {"smoothing": "laplace"}, "smoothing = 'laplace' is invalid: expected one of add_one, none"),
    ("blade_n", {"G": "1"}, "G = 1 is invalid: expected an integer >= 2"),
    ("blade_n", {"M": "-1"}, "M = -1 is invalid: expected an integer in [0, 1024]"),
    ("blade_n", {"M": "1000000000000"}, "M = 1000000000000 is invalid: expected an integer in [0, 1024]"),
    ("blade_n", {"max_steps": "0"}, "max_steps = 0 is invalid: expected -1 (epochs decide) or an integer >= 1"),
    ("blade_n", {"lr_scheduler": "wobbly"}, "lr_scheduler = 'wobbly' is invalid: expected one of linear"),
    ("bon_static", {"M": "0", "smoothing": "none"}, "M = 0 with tau = 0 gives the estimator no evidence"),
    ("bon_static", {"M": "0"}, "M = 0 with tau = 0 gives the estimator no evidence"),
    ("bon_inference", {"n": "0"}, "bon_inference config field n = 0 is invalid: expected an integer >= 1"),
    ("bon_inference", {"reward": "foo"}, "reward = 'foo' is invalid: expected one of ndcg"),
    ("bigrec", {"decoding": "nucleus"}, "decoding = 'nucleus' is invalid: expected one of greedy, sample, beam"),
    ("sasrec", {"dropout": "1.5"}, "dropout = 1.5 is invalid: expected a number in [0.0, 1.0)"),
])
def test_bad_method_values(method, sets, expect):
    with pytest.raises(UserError) as e:
        resolve_configs(method, SMOKE, sets)
    assert expect in str(e.value) and "\n" not in str(e.value)


def test_python_api_is_validated_too():
    cls = get_method("blade_n")
    with pytest.raises(UserError, match="tau = -1"):
        cls.Config(tau=-1.0)
    with pytest.raises(UserError, match="k = 0"):
        apply_overrides(SMOKE, {"k": 0}, "profile")
    with pytest.raises(UserError, match="split_fracs"):
        DataConfig(split_fracs=(0.5, 0.5, 0.1, 0.1))
    with pytest.raises(UserError, match="top_item_frac = 0.0"):
        DataConfig(top_item_frac=0.0)
    with pytest.raises(UserError, match="split = 'random'"):
        DataConfig(split="random")


@pytest.mark.parametrize("seeds,expect", [([], "--seeds is empty"), ([-1], "--seeds -1 is invalid"),
                                          ([0, 2**32], "--seeds 4294967296 is invalid"), ([True], "--seeds True"),
                                          ([0, 1, 0], "--seeds 0 1 0 repeats 0: each seed is one run. Give each "
                                                      "seed once, e.g. --seeds 0 1")])
def test_bad_seeds(seeds, expect):
    with pytest.raises(UserError, match=expect):
        check_seeds(seeds)


def test_resolve_checks_everything_before_the_data():
    with pytest.raises(UserError, match="--methods is empty"):
        resolve([], SMOKE, [0], {})
    with pytest.raises(UserError, match="--seeds -1"):
        resolve(["pop"], SMOKE, [-1], {})
    with pytest.raises(UserError, match="profile field k = 0"):
        resolve(["pop"], SMOKE, [0], {"k": "0"})
    profile, configs = resolve(["bon_inference"], SMOKE, [0, 1], {"k": "5"})
    assert profile.k == 5 and [c.n for c in configs["bon_inference"]] == [2, 4]


def test_plan_refuses_no_datasets():
    from runners.plan import plan

    with pytest.raises(UserError, match="--datasets is empty"):
        plan(["pop"], [], SMOKE, [0], {})


def test_set_names_its_method_when_several_share_a_key():
    # lr is SASRec's and BLADE's: a bare lr is ambiguous, a qualified one sets that method only
    with pytest.raises(UserError, match=r"--set lr: a config field of several selected methods \(sasrec, blade_n\)\. "
                                        r"Name one: --set sasrec.lr=0.01, --set blade_n.lr=0.01"):
        resolve(["sasrec", "blade_n"], SMOKE, [0], {"lr": "0.01"})
    _, configs = resolve(["sasrec", "blade_n"], SMOKE, [0], {"blade_n.lr": "0.01", "blade_n.tau": "0.5"})
    assert configs["blade_n"][0].lr == 0.01 and configs["blade_n"][0].tau == 0.5
    assert configs["sasrec"][0].lr == resolve_configs("sasrec", SMOKE, {})[0].lr
    # n is BLADE's N and inference BoN's N: the same rule
    with pytest.raises(UserError, match=r"--set n: a config field of several selected methods \(blade_n, "
                                        r"bon_inference\)"):
        resolve(["blade_n", "bon_inference"], SMOKE, [0], {"n": "2"})
    # a bare key one selected method has still works; a profile field goes to the profile
    profile, configs = resolve(["sasrec", "pop"], SMOKE, [0], {"lr": "0.01", "k": "5"})
    assert configs["sasrec"][0].lr == 0.01 and profile.k == 5


def test_set_never_shadows_a_method_field_with_the_profile():
    # sft_lr is the profile's (the shared SFT) and S-DPO's (its warm-up SFT); hidden the LLM's and SASRec's: a bare
    # key was routed to the profile without a word (S-DPO's sft_lr unchanged, the shared SFT retrained)
    with pytest.raises(UserError, match=r"--set sft_lr: a profile field and a config field of sdpo\. Name one: "
                                        r"--set profile\.sft_lr=1e-05, --set sdpo\.sft_lr=1e-05"):
        resolve(["sdpo"], SMOKE, [0], {"sft_lr": "1e-05"})
    with pytest.raises(UserError, match=r"--set hidden: a profile field and a config field of sasrec"):
        resolve(["sasrec", "pop"], SMOKE, [0], {"hidden": "128"})
    profile, configs = resolve(["sdpo"], SMOKE, [0], {"profile.sft_lr": "1e-05"})
    assert profile.sft_lr == 1e-05 and configs["sdpo"][0].sft_lr == resolve_configs("sdpo", SMOKE, {})[0].sft_lr
    profile, configs = resolve(["sasrec"], SMOKE, [0], {"sasrec.hidden": "128"})
    assert configs["sasrec"][0].hidden == 128 and profile.hidden == SMOKE.hidden
    with pytest.raises(UserError, match=r"--set profile\.lr: not a profile field"):
        resolve(["sasrec"], SMOKE, [0], {"profile.lr": "0.1"})
    # a profile field no selected method has stays bare
    assert resolve(["pop"], SMOKE, [0], {"hidden": "128"})[0].hidden == 128


@pytest.mark.parametrize("sets,expect", [
    ({"sasrec.lr": "1"}, "--set sasrec.lr: 'sasrec' is not a selected method (blade_n)"),
    ({"blade_n.nope": "1"}, "--set blade_n.nope: not a config field of blade_n. Its fields: G, M, beta"),
    ({"blade_n.tau": "-1"}, "blade_n config field tau = -1.0 is invalid"),
])
def test_qualified_set_errors(sets, expect):
    with pytest.raises(UserError) as e:
        resolve(["blade_n"], SMOKE, [0], sets)
    assert expect in str(e.value)


def test_dataset_overrides_name_real_profiles_datasets_and_fields_and_resolve():
    from benchmark.config import DATASET_OVERRIDES, profile_for

    fields = {f.name for f in dataclasses.fields(PROFILES["cpu"])}
    for prof, by_ds in DATASET_OVERRIDES.items():
        assert prof in PROFILES
        for ds, sets in by_ds.items():
            assert ds in DATASETS and set(sets) <= fields
            profile_for(PROFILES[prof], ds)  # valid values (Profile.__post_init__ checks them)


def test_per_dataset_values_apply_to_their_dataset_only_and_yield_to_set(monkeypatch):
    from types import SimpleNamespace

    from benchmark import config
    from runners.plan import plan

    monkeypatch.setitem(config.DATASET_OVERRIDES, "cpu", {"goodreads": {"sft_patience": "40"}})
    cpu = PROFILES["cpu"]
    steam, good = (SimpleNamespace(name=n, data_hash="h") for n in ("steam", "goodreads"))
    specs = plan(["pop"], [steam, good], cpu, [0], {})
    assert specs[0].profile == cpu  # steam: the profile as registered, so its run ids do not change
    assert specs[1].profile.sft_patience == 40 and cpu.sft_patience == 6
    assert specs[1].run_id != plan(["pop"], [good], apply_overrides(cpu, {"sft_patience": "6"}, "p"), [0],
                                   {"sft_patience": "6"})[0].run_id
    user = plan(["pop"], [steam, good], cpu, [0], {"sft_patience": "7"})
    assert [s.profile.sft_patience for s in user] == [7, 7]  # the user's --set wins everywhere


def test_blade_and_static_bon_get_the_same_selection_budget():
    """The main comparison: BLADE-N and static BoN train once each, with no validation-selected trial, in every profile
    (the paper profile searched 4 taus for BLADE-N only); the tau search is its own row, blade_n_tau."""
    for name, prof in PROFILES.items():
        blade, static = resolve_configs("blade_n", prof, {})[0], resolve_configs("bon_static", prof, {})[0]
        assert blade.tau_grid == () and static.tau_grid == (), name
        assert dataclasses.asdict(dataclasses.replace(blade, tau=0.0)) == dataclasses.asdict(static), name
        tuned = resolve_configs("blade_n_tau", prof, {})[0]
        assert tuned.tau_grid == ((0.3, 1.0) if name == "smoke" else (0.1, 0.3, 0.5, 1.0)), name
        assert dataclasses.asdict(dataclasses.replace(tuned, tau_grid=())) == dataclasses.asdict(blade), name


def test_every_profile_field_has_a_rule():
    """Issue 25: sft_scheduler had none, so a typo failed inside the Trainer after the run started."""
    from benchmark.config import PROFILE_RULES

    assert {f.name for f in dataclasses.fields(SMOKE)} - set(PROFILE_RULES) == set()


def test_sft_schedulers_are_transformers_names():
    from benchmark.config import SFT_SCHEDULERS
    from methods.common.configs import LR_SCHEDULERS

    assert set(SFT_SCHEDULERS) <= set(LR_SCHEDULERS)
    with pytest.raises(UserError, match=r"sft_scheduler = 'warmup_stable_decay' is invalid: expected one of"):
        dataclasses.replace(SMOKE, sft_scheduler="warmup_stable_decay")  # needs num_decay_steps, which SFT never passes


def test_repeated_methods_are_refused():
    from runners.plan import parse_methods

    with pytest.raises(UserError, match="--methods pop,sasrec,pop names pop twice: each method is planned once. "
                                        "Give it once: --methods pop,sasrec"):
        parse_methods("pop,sasrec,pop")


def test_k_must_fit_the_catalogue(steam):
    from benchmark.data import check_list_length, list_capacity

    assert list_capacity(steam) == steam.n_items - 10 and list_capacity(steam, False) == steam.n_items
    check_list_length(steam.n_items - 10, True, steam)
    check_list_length(steam.n_items, False, steam)
    with pytest.raises(UserError, match=f"k = {steam.n_items} is invalid for dataset steam: a list holds at most "
                                        f"{steam.n_items - 10} distinct items"):
        check_list_length(steam.n_items, True, steam)
