from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Simulated subjects are generated once per test session into this folder."""
    return Path(os.environ.get("HBM_DATA_DIR") or tmp_path_factory.mktemp("hbm-data"))


@pytest.fixture(autouse=True)
def hbm_env(tmp_path: Path, shared_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own cache and counter file; subprocess jobs can import hbm_fakes."""
    monkeypatch.setenv("HBM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HBM_TEST_COUNTER", str(tmp_path / "counter.txt"))
    monkeypatch.setenv("HBM_DATA_DIR", str(shared_data_dir))
    pp = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", str(HERE) + (os.pathsep + pp if pp else ""))
    return tmp_path


@pytest.fixture
def counter(hbm_env: Path) -> Path:
    return hbm_env / "counter.txt"


@pytest.fixture
def overcooked_recordings() -> None:
    """Skip, saying how to install them, unless the Overcooked-AI recordings can be read: the
    `overcooked-ai` package (installed --no-deps) and pandas (`hbm-data[overcooked]`)."""
    import importlib.metadata

    try:
        importlib.metadata.distribution("overcooked-ai")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip('the recordings need pip install --no-deps "overcooked-ai==1.1.0"')
    pytest.importorskip("pandas", reason='needs pip install "hbm-data[overcooked]"')
