"""`load_human_data`: arrays, metadata, content hashes, subject ids, default simulated subjects."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from conftest import record_like_the_lab
from hbm_data import (
    EpisodeFormatError,
    check_subject,
    data_content_hash,
    load_episodes,
    load_human_data,
)

T0 = datetime(2025, 1, 6, 10)


def _sessions_file(path: Path, per_session: tuple[int, ...] = (6, 5, 7, 6)) -> Path:
    """A lab-like file of several sittings a day apart (numpy only, no gymnasium)."""
    starts = [
        T0 + timedelta(days=s, minutes=2 * r) for s, n in enumerate(per_session) for r in range(n)
    ]
    record_like_the_lab(path, starts=starts)
    return path


@pytest.fixture
def sub_dir(tmp_path: Path) -> Path:
    _sessions_file(tmp_path / "sub01_data_cartpole.json")
    return tmp_path


def test_default_subject_loads_on_a_fresh_machine(
    session_data_dir: Path, simulate_extra: None
) -> None:
    data = load_human_data("cartpole", "sim01")
    md = data.metadata
    assert (session_data_dir / "sim01_data_cartpole.json").exists()
    assert md.simulated and md.env_id == "CartPole-v1" and md.subject == "sim01"
    assert md.obs_size == md.input_size == 4 and md.num_actions == 2
    assert md.num_sessions == 6
    assert {e.session for e in md.test_episodes} == set(range(md.num_sessions))
    assert md.content_hash == data_content_hash(session_data_dir / "sim01_data_cartpole.json")


def test_arrays_and_metadata(sub_dir: Path) -> None:
    data = load_human_data("cartpole", "sub01", data_dir=sub_dir)
    md = data.metadata
    assert not md.simulated and md.subject == "sub01" and md.num_sessions == 4
    assert data.train_obs.dtype == np.float32 and data.train_act.dtype == np.int64
    assert data.train_obs.shape == (sum(md.train_episode_lengths), 4)
    assert data.test_obs.shape == (sum(md.test_episode_lengths), 4)
    assert data.train_act.shape == (data.train_obs.shape[0],)
    assert md.n_train + md.n_test == len(load_episodes(md.source_file)) == 24
    assert {e.session for e in md.test_episodes} == set(range(md.num_sessions))
    episodes = load_episodes(md.source_file)
    for obs, act, infos in (
        (data.train_obs, data.train_act, md.train_episodes),
        (data.test_obs, data.test_act, md.test_episodes),
    ):
        assert [i.index for i in infos] == sorted(i.index for i in infos)
        for info in infos:
            ep = episodes[info.index]
            sl = slice(info.start, info.start + info.length)
            np.testing.assert_array_equal(obs[sl], ep.observations.astype(np.float32))
            np.testing.assert_array_equal(act[sl], ep.actions)
            assert (info.seed, info.score, info.timestamp) == (ep.seed_used, ep.score, ep.timestamp)
    d = json.loads(json.dumps(md.to_dict()))
    assert d["content_hash"] == md.content_hash == data_content_hash(md.source_file)
    assert md.content_hash.startswith("sha256:") and len(md.content_hash) == 7 + 64


def test_cl_columns_and_determinism(sub_dir: Path) -> None:
    plain = load_human_data("cartpole", "sub01", seed=3, data_dir=sub_dir)
    cl = load_human_data("cartpole", "sub01", use_cl_info=True, seed=3, data_dir=sub_dir)
    assert cl.metadata.input_size == 6 and cl.train_obs.shape[1] == 6
    np.testing.assert_array_equal(cl.train_obs[:, :4], plain.train_obs)
    for info in cl.metadata.test_episodes:
        rows = cl.test_obs[info.start : info.start + info.length]
        assert np.all(rows[:, 4] == info.session_cl) and np.all(rows[:, 5] == info.run_cl)
    assert cl.test_obs[:, 4].min() == -1.0 and cl.test_obs[:, 4].max() == 1.0
    again = load_human_data("cartpole", "sub01", seed=3, data_dir=sub_dir)
    np.testing.assert_array_equal(again.test_obs, plain.test_obs)
    assert again.metadata == plain.metadata
    other = load_human_data("cartpole", "sub01", seed=4, data_dir=sub_dir)
    assert [e.index for e in other.metadata.test_episodes] != [
        e.index for e in plain.metadata.test_episodes
    ]


def test_editing_the_recording_changes_the_content_hash(sub_dir: Path) -> None:
    """Data is keyed by content: appending or cutting episodes is new data, same name."""
    path = sub_dir / "sub01_data_cartpole.json"
    before = load_human_data("cartpole", "sub01", data_dir=sub_dir).metadata
    episodes = json.loads(path.read_text())
    path.write_text(json.dumps(episodes[:-2], indent=2))  # cut short
    cut = load_human_data("cartpole", "sub01", data_dir=sub_dir).metadata
    assert cut.content_hash != before.content_hash and cut.n_train + cut.n_test == 22
    path.write_text(json.dumps(episodes, indent=2))  # back as it was (other mtime)
    assert load_human_data("cartpole", "sub01", data_dir=sub_dir).metadata == before


def test_recorded_subject_is_not_simulated(tmp_path: Path) -> None:
    starts = [T0 + timedelta(minutes=m) for m in (0, 1, 2, 60, 61, 62)]
    record_like_the_lab(tmp_path / "sub01_data_cartpole.json", starts=starts)
    data = load_human_data("CartPole-v1", "sub01", data_dir=tmp_path)
    md = data.metadata
    assert not md.simulated and md.num_sessions == 2 and md.n_test == 2 and md.n_train == 4
    assert md.test_episodes[0].session == 0 and md.test_episodes[1].session == 1


def test_gzip_file_is_found(tmp_path: Path, sub_dir: Path) -> None:
    src = sub_dir / "sub01_data_cartpole.json"
    (tmp_path / "sim07_data_cartpole.json.gz").write_bytes(gzip.compress(src.read_bytes()))
    a = load_human_data("cartpole", "sim07", data_dir=tmp_path)
    b = load_human_data("cartpole", "sub01", data_dir=sub_dir)
    np.testing.assert_array_equal(a.train_obs, b.train_obs)
    assert a.metadata.simulated  # no sidecar: recognised by its sim<N> name
    assert a.metadata.source_file.endswith(".json.gz")
    assert a.metadata.content_hash == data_content_hash(a.metadata.source_file)


@pytest.mark.parametrize("subject", ["007", "0123", "1e3", "true"])
def test_subject_ids_stay_strings(tmp_path: Path, subject: str) -> None:
    _sessions_file(tmp_path / f"{subject}_data_cartpole.json", (3, 3))
    md = load_human_data("cartpole", subject, data_dir=tmp_path).metadata
    assert md.subject == subject and Path(md.source_file).name == f"{subject}_data_cartpole.json"


def test_subject_that_is_not_a_string_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"subject must be a string.*got int 7.*quote it"):
        load_human_data("cartpole", 7, data_dir=tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="without slashes"):
        load_human_data("cartpole", "../sub01", data_dir=tmp_path)


def test_a_300_character_subject_is_refused_naming_it(tmp_path: Path) -> None:
    """Its file name would exceed what a filesystem allows: refused at the check, not by the OS."""
    long = "p" + "x" * 299
    with pytest.raises(ValueError, match=r"subject 'pxxx.*… \(300 characters\) is 300 bytes long"):
        check_subject(long)
    with pytest.raises(ValueError, match="at most 100 fit in its file name"):
        load_human_data("cartpole", long, data_dir=tmp_path)
    assert check_subject("p" * 100) == "p" * 100
    with pytest.raises(ValueError, match="path component of 319 bytes"):
        check_subject(f"{tmp_path}/{long}_data_cartpole.json", allow_path=True)
    with pytest.raises(ValueError, match="control characters"):
        check_subject("sub\n01")


def test_a_path_subject_climbing_out_with_dotdot_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file exists, outside the data folder: named in the error, never loaded."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    _sessions_file(outside / "sub01_data_cartpole.json", (3, 3))
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.chdir(data)
    evil = "../elsewhere/sub01_data_cartpole.json"
    message = r"subject '\.\./elsewhere/sub01_data_cartpole\.json' climbs out of its folder"
    with pytest.raises(ValueError, match=message) as info:
        load_human_data("cartpole", evil, data_dir=data)
    assert str(outside / "sub01_data_cartpole.json") in str(info.value)
    with pytest.raises(ValueError, match="climbs out"):
        check_subject(f"{data}/../elsewhere/sub01_data_cartpole.json", allow_path=True)
    direct = str(outside / "sub01_data_cartpole.json")  # the same file by its own path: fine
    assert load_human_data("cartpole", direct).metadata.source_file == direct


def test_missing_and_bad_files(tmp_path: Path, sub_dir: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"sub07.*default subjects: sim01, sim02, sim03"):
        load_human_data("cartpole", "sub07", data_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown environment 'pong'"):
        load_human_data("pong")
    shutil.copy(sub_dir / "sub01_data_cartpole.json", tmp_path / "x_data_acrobot.json")
    with pytest.raises(EpisodeFormatError, match=r"x_data_acrobot\.json, episode 0, step 0"):
        load_human_data("acrobot", "x", data_dir=tmp_path)
    (tmp_path / "e_data_acrobot.json").write_text("[]")
    with pytest.raises(EpisodeFormatError, match="no episodes"):
        load_human_data("acrobot", "e", data_dir=tmp_path)


def test_data_dir_honours_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import platformdirs
    from hbm_data import data_dir

    monkeypatch.setenv("HBM_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.delenv("HBM_DATA_DIR")
    assert data_dir() == Path(platformdirs.user_data_dir("hbm"))
