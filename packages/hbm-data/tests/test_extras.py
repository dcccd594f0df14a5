"""A light install: numpy only to read and check data; each extra named when it is missing."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

import pytest
from hbm_data import MissingExtraError, load_human_data
from hbm_data.cli import main
from packaging.requirements import Requirement

EXTRAS = ("gymnasium", "pygame", "matplotlib", "Box2D", "pyarrow", "h5py", "minari")

BLOCK = f"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRAS!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
sys.meta_path.insert(0, _Block())
"""


def _block(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make `import name` fail in this process, as if the extra were not installed."""
    for name in [m for m in sys.modules if m.split(".")[0] in names] + list(names):
        monkeypatch.setitem(sys.modules, name, None)


def _needs(extra: str | None) -> set[str]:
    """What installing hbm-data (or one extra) pulls, from the installed metadata."""
    reqs = [Requirement(r) for r in requires("hbm-data") or []]
    env = {"extra": extra or ""}
    return {
        r.name + "".join(f"[{e}]" for e in sorted(r.extras))
        for r in reqs
        if (r.marker is None) == (extra is None) and (r.marker is None or r.marker.evaluate(env))
    }


def test_core_requirements_are_numpy_platformdirs_orjson() -> None:
    assert _needs(None) == {"numpy", "platformdirs", "orjson"}
    assert _needs("simulate") == {"gymnasium[box2d]"}
    assert _needs("record") == {"gymnasium", "pygame"}
    assert _needs("plot") == {"matplotlib"}
    assert _needs("expert") == {"pyarrow"}
    assert _needs("minari") == {"h5py", "pyarrow", "minari[hdf5]"}
    test = " ".join(_needs("test"))
    assert "gymnasium" not in test and "minari[" not in test  # the test venv stays light
    assert "h5py" in test and "pyarrow" in test  # but reads Parquet and Minari files


def test_reading_and_checking_need_no_extra(lab_file: Path, tmp_path: Path) -> None:
    """In a fresh interpreter where gymnasium, pygame and matplotlib cannot be imported."""
    script = (
        BLOCK
        + f"""
import hbm_data
from hbm_data import check_file, load_episodes, load_human_data
from hbm_data.cli import main
assert check_file({str(lab_file)!r}) == []
assert len(load_episodes({str(lab_file)!r})) == 3
assert load_human_data("cartpole", "sub01", data_dir={str(lab_file.parent)!r}).metadata.n_test
assert main(["check", {str(lab_file)!r}]) == 0
assert main(["info", {str(lab_file)!r}, "--no-plot"]) == 0
loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({EXTRAS!r}))
assert not loaded, loaded
print("light ok")
"""
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "light ok" in proc.stdout


def test_simulate_without_gymnasium_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _block(monkeypatch, "gymnasium")
    assert main(["simulate", "cartpole", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert 'pip install "hbm-data[simulate]"' in err and "gymnasium" in err
    assert list(tmp_path.iterdir()) == []


def test_default_subject_without_gymnasium_names_the_extra_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _block(monkeypatch, "gymnasium")
    with pytest.raises(MissingExtraError) as info:
        load_human_data("cartpole", "sim03", data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "sim03_data_cartpole.json") in message
    assert 'pip install "hbm-data[simulate]"' in message
    assert isinstance(info.value, ImportError)  # callers catching ImportError still do


def test_record_without_pygame_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _block(monkeypatch, "pygame")  # gymnasium may be there (hbm-data[simulate]) or not
    assert main(["record", "cartpole", "--subject", "sub01", "--data-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "recording a person needs" in err and 'pip install "hbm-data[record]"' in err
    assert list(tmp_path.iterdir()) == []


def test_lunarlander_without_box2d_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gymnasium", reason='needs the extra: pip install "hbm-data[simulate]"')
    from hbm_data import simulate_subject

    _block(monkeypatch, "Box2D", "gymnasium.envs.box2d", "gymnasium.envs.box2d.lunar_lander")
    with pytest.raises(MissingExtraError, match=r'LunarLander needs Box2D.*"hbm-data\[simulate\]"'):
        simulate_subject("lunarlander", "sim01", n_sessions=1, episodes_per_session=(1, 1))


def test_info_without_matplotlib(
    lab_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _block(monkeypatch, "matplotlib")
    monkeypatch.chdir(tmp_path)
    assert main(["info", str(lab_file)]) == 0  # the default plot is skipped, with the fix
    out, err = capsys.readouterr()
    assert "episodes:  3" in out and 'pip install "hbm-data[plot]"' in err
    assert main(["info", str(lab_file), "--plot", str(tmp_path / "p.png")]) == 1  # asked for
    assert 'pip install "hbm-data[plot]"' in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


def test_missing_extra_error_pickles() -> None:
    import pickle

    err = MissingExtraError("recording a person", "record", "pygame", "No module named 'pygame'")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) and back.install == 'pip install "hbm-data[record]"'
