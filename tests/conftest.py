import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The datasets: $BENCHMARK_DATA_DIR, else the ones shipped in the project's data/."""
    return Path(os.environ.get("BENCHMARK_DATA_DIR") or ROOT / "data")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data_dir()
    if not (d / "steam" / "items.jsonl").exists():
        pytest.skip(f"datasets not found at {d} (the project ships them in data/; or set BENCHMARK_DATA_DIR)")
    return d


@pytest.fixture(scope="session")
def steam(data_dir):
    from benchmark.data import load_dataset

    return load_dataset("steam", data_dir)
