"""Expert datasets: Hugging Face / Minari imports, Minari export, expert subjects.

Every dataset here is a small file the test writes. Parquet needs pyarrow and Minari files
h5py, both in hbm-data's `test` extra; the checks against the `minari` package and Gymnasium
(which it pulls) run where `hbm-data[minari]` / `[simulate]` are installed (the workspace venv).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import record_like_the_lab
from hbm_data import (
    DatasetImportError,
    DatasetMetadata,
    Episode,
    MissingExtraError,
    check_subject,
    data_content_hash,
    export_minari_dataset,
    file_content_hash,
    import_hf_dataset,
    import_minari_dataset,
    load_episodes,
    load_human_data,
    read_hf_dataset,
    read_minari_dataset,
    source_kind,
    write_episodes,
)
from hbm_data.cli import main
from hbm_data.episodes import read_sidecar, write_sidecar
from hbm_data.expert import MINARI_FORMAT_VERSION, default_dataset_id
from hbm_data.paths import find_episode_file, subject_file_stem

LENGTHS = (5, 7, 6)


def _rows(lengths: tuple[int, ...] = LENGTHS, seed: int = 0) -> list[dict[str, Any]]:
    """Steps as IL-Datasets writes them: float32 obs, the action, its reward, and the episode
    start as 0.0 / 1.0 (it builds them with np.zeros)."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in lengths:
        for t in range(n):
            rows.append(
                {
                    "obs": rng.uniform(-0.05, 0.05, 4).astype(np.float32).tolist(),
                    "actions": int(rng.integers(2)),
                    "rewards": 1.0,
                    "episode_starts": 1.0 if t == 0 else 0.0,
                }
            )
    return rows


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    pa = pytest.importorskip("pyarrow", reason='needs pyarrow: pip install "hbm-data[expert]"')
    import pyarrow.parquet as pq

    columns = {k: [r[k] for r in rows] for k in rows[0]}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def _same(a: list[Episode], b: list[Episode]) -> None:
    """Identical episodes, in the same order: every array and every field."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for field in ("observations", "actions", "rewards", "next_observations", "dones"):
            ax, ay = getattr(x, field), getattr(y, field)
            assert ax.dtype == ay.dtype and np.array_equal(ax, ay), field
        assert (x.episode_id, x.timestamp, x.seed_used, x.score) == (
            y.episode_id,
            y.timestamp,
            y.seed_used,
            y.score,
        )


# ----------------------------------------------------------------------------- Hugging Face


def test_hf_jsonl_import_keeps_episodes_and_marks_the_subject_expert(tmp_path: Path) -> None:
    rows = _rows()
    src = _jsonl(tmp_path / "teacher.jsonl", rows)
    data_dir = tmp_path / "data"
    path = import_hf_dataset(src, "cartpole", data_dir=data_dir)
    assert path == data_dir / "expert-cartpole_data_cartpole.json"
    side = read_sidecar(path)
    assert side is not None
    assert side["source_kind"] == "expert" and side["simulated"] is True
    assert side["placeholder_seeds"] == "all" and side["placeholder_timestamps"] is True
    assert side["source"]["columns"]["marker"] == "episode_starts"

    episodes = load_episodes(path)
    assert [e.length for e in episodes] == list(LENGTHS)
    assert [e.seed_used for e in episodes] == [0, 1, 2]  # placeholders, valid Gymnasium seeds
    starts = np.cumsum([0, *LENGTHS])
    for e, a, b in zip(episodes, starts, starts[1:], strict=False):
        assert e.observations.tolist() == [r["obs"] for r in rows[a:b]]
        assert e.actions.tolist() == [r["actions"] for r in rows[a:b]]
        assert np.array_equal(e.next_observations[:-1], e.observations[1:])
        assert np.array_equal(e.next_observations[-1], e.observations[-1])  # no final obs
        assert e.dones.tolist() == [False] * (e.length - 1) + [True]
        assert e.score == e.length

    data = load_human_data("cartpole", "expert:cartpole", data_dir=data_dir)
    md = data.metadata
    assert md.source_kind == "expert" and md.simulated and md.subject == "expert:cartpole"
    assert md.num_sessions == 1 and md.n_train + md.n_test == 3
    assert not md.seeds_replayable
    assert not any(e.seed_replayable for e in (*md.train_episodes, *md.test_episodes))
    assert md.to_dict()["source_kind"] == "expert"
    assert len(data.train_obs) + len(data.test_obs) == sum(LENGTHS)


def test_hf_parquet_file_and_sharded_folder_read_like_jsonl(tmp_path: Path) -> None:
    rows = _rows()
    from_jsonl = read_hf_dataset(_jsonl(tmp_path / "teacher.jsonl", rows), "cartpole")
    from_parquet = read_hf_dataset(_parquet(tmp_path / "one.parquet", rows), "cartpole")
    _same(from_jsonl.episodes, from_parquet.episodes)
    # the Hub's conversion: shards of one split, an episode across the cut; another split too
    root = tmp_path / "snapshot"
    _parquet(root / "default" / "train" / "0000.parquet", rows[:8])
    _parquet(root / "default" / "train" / "0001.parquet", rows[8:])
    _parquet(root / "default" / "test" / "0000.parquet", _rows((4,), seed=1))
    train = read_hf_dataset(root, "cartpole", split="train")
    _same(from_jsonl.episodes, train.episodes)
    assert train.source["files"] == ["default/train/0000.parquet", "default/train/0001.parquet"]
    everything = read_hf_dataset(root, "cartpole").episodes  # all files, in sorted order
    assert [e.length for e in everything] == [4, *LENGTHS]
    first_two = read_hf_dataset(root, "cartpole", split="train", max_episodes=2).episodes
    assert [e.length for e in first_two] == [5, 7]


def test_hf_lerobot_columns_episode_index_and_done_markers(tmp_path: Path) -> None:
    rows = _rows()
    index = np.repeat([7, 3, 9], LENGTHS)  # episode numbers need not be ordered, only blocks
    lerobot = [
        {
            "observation.state": r["obs"],
            "action": [r["actions"]],  # a 1-vector, as Stable-Baselines3 stores it
            "next.reward": 0.5,
            "episode_index": int(i),
            "next.done": False,
        }
        for r, i in zip(rows, index, strict=True)
    ]
    lerobot[-1]["next.done"] = True
    lerobot[3]["next.done"] = True  # a done inside an episode is kept as it is
    got = read_hf_dataset(_jsonl(tmp_path / "lerobot.jsonl", lerobot), "cartpole")
    assert [e.length for e in got.episodes] == list(LENGTHS)
    assert got.episodes[0].dones.tolist() == [False, False, False, True, False]
    assert got.episodes[2].dones[-1] and got.episodes[2].score == 3.0
    assert got.episodes[1].actions.tolist() == [r["actions"] for r in rows[5:12]]
    # done markers alone: an episode ends on each done row
    dones = [{**r, "dones": False} for r in rows]
    for row in np.cumsum(LENGTHS) - 1:
        dones[row]["dones"] = True
    for r in dones:
        del r["episode_starts"]
    by_done = read_hf_dataset(_jsonl(tmp_path / "dones.jsonl", dones), "cartpole")
    assert [e.length for e in by_done.episodes] == list(LENGTHS)


def _bad(rows: list[dict[str, Any]], change: str) -> list[dict[str, Any]]:
    rows = [dict(r) for r in rows]
    if change == "width":
        rows[2]["obs"] = rows[2]["obs"][:3]
        for r in rows:
            r["obs"] = r["obs"][:3]
    elif change == "ragged":
        rows[4]["obs"] = rows[4]["obs"][:3]
    elif change == "range":
        rows[6]["actions"] = 2
    elif change == "fraction":
        rows[6]["actions"] = 0.5
    elif change == "nan":
        rows[1]["obs"] = [float("nan")] * 4
    elif change == "marker":
        for r in rows:
            del r["episode_starts"]
    elif change == "interleaved":
        for k, r in enumerate(rows):
            del r["episode_starts"]
            r["episode_index"] = [0, 1, 0][min(k // 6, 2)]
    return rows


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("width", "column 'obs' has 3 values per row, expected 4 for CartPole-v1"),
        ("ragged", "column 'obs', row 4: 3 values, but row 0 has 4"),
        ("range", "column 'actions', row 6: action 2 out of range [0, 2) for CartPole-v1"),
        ("fraction", "column 'actions', row 6: expected an integer action, found 0.5"),
        ("nan", "column 'obs', row 1: expected finite numbers"),
        ("marker", "no episode marker column (accepted: episode_index, episode_id, episode_starts"),
        ("interleaved", "column 'episode_index': episode 0 is not one contiguous block"),
    ],
)
def test_hf_import_errors_name_the_file_column_and_row(
    tmp_path: Path, change: str, message: str
) -> None:
    src = _jsonl(tmp_path / "teacher.jsonl", _bad(_rows(), change))
    with pytest.raises(DatasetImportError) as info:
        import_hf_dataset(src, "cartpole", data_dir=tmp_path / "data")
    assert str(src) in str(info.value) and message in str(info.value)
    assert not (tmp_path / "data").exists()  # nothing written


def test_import_refuses_to_replace_a_subject_without_force(tmp_path: Path) -> None:
    src = _jsonl(tmp_path / "teacher.jsonl", _rows())
    path = import_hf_dataset(src, "cartpole", data_dir=tmp_path, subject="expert:cp")
    assert path.name == "expert-cp_data_cartpole.json"  # expert:<name> is the file expert-<name>
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="force=True"):
        import_hf_dataset(_jsonl(tmp_path / "b.jsonl", _rows(seed=3)), "cartpole",
                          data_dir=tmp_path, subject="expert-cp")  # fmt: skip
    assert path.read_bytes() == before
    again = import_hf_dataset(tmp_path / "b.jsonl", "cartpole", data_dir=tmp_path,
                              subject="expert-cp", force=True)  # fmt: skip
    assert again == path and path.read_bytes() != before


# ----------------------------------------------------------------------------- Minari export/import


def test_minari_round_trip_of_a_person_is_identical(lab_file: Path, tmp_path: Path) -> None:
    original = load_episodes(lab_file)
    folder = export_minari_dataset(
        "cartpole", "sub01", tmp_path / "minari", data_dir=lab_file.parent
    )
    assert folder == tmp_path / "minari" / "hbm" / "cartpole" / "sub01-v0"
    meta = json.loads((folder / "data" / "metadata.json").read_text())
    assert meta["dataset_id"] == "hbm/cartpole/sub01-v0" == default_dataset_id("cartpole", "sub01")
    assert meta["minari_version"] == MINARI_FORMAT_VERSION and meta["data_format"] == "hdf5"
    assert json.loads(meta["env_spec"])["id"] == "CartPole-v1"
    assert meta["total_episodes"] == 3 and meta["total_steps"] == sum(e.length for e in original)
    assert meta["hbm"]["source_kind"] == "person" and meta["algorithm_name"] == "human"
    assert meta["hbm"]["content_hash"] == file_content_hash(lab_file)
    assert json.loads(meta["observation_space"])["dtype"] == "float32"  # the lab's obs are f32

    import h5py

    with h5py.File(folder / "data" / "main_data.hdf5") as f:
        g = f["episode_1"]
        assert g["observations"].shape == (original[1].length + 1, 4)  # the final one too
        assert int(g.attrs["seed"]) == original[1].seed_used == 1
        assert g["terminations"][-1] and not g["truncations"][-1]  # the pole fell
        assert "infos" not in g  # next observations are the following ones

    path = import_minari_dataset(folder, data_dir=tmp_path / "back")
    assert path == tmp_path / "back" / "sub01_data_cartpole.json"  # the exported subject
    _same(original, load_episodes(path))
    assert path.read_bytes() == lab_file.read_bytes()  # even the file's bytes
    md = load_human_data("cartpole", "sub01", data_dir=tmp_path / "back").metadata
    assert md.source_kind == "person" and not md.simulated and md.seeds_replayable
    assert md.content_hash == data_content_hash(path)  # the file and its sidecar


def test_minari_round_trip_keeps_expert_and_simulated_labels(tmp_path: Path) -> None:
    data = tmp_path / "data"
    hf = import_hf_dataset(_jsonl(tmp_path / "t.jsonl", _rows()), "cartpole", data_dir=data)
    folder = export_minari_dataset(
        "cartpole", "expert:cartpole", tmp_path / "minari", data_dir=data
    )
    meta = json.loads((folder / "data" / "metadata.json").read_text())
    assert meta["hbm"]["source_kind"] == "expert" and meta["hbm"]["simulated"] is True
    import h5py

    with h5py.File(folder / "data" / "main_data.hdf5") as f:
        assert "seed" not in f["episode_0"].attrs  # a placeholder is no Minari seed
        assert int(f["episode_2"].attrs["hbm_seed_used"]) == 2
    back = import_minari_dataset(folder, data_dir=tmp_path / "back")
    _same(load_episodes(hf), load_episodes(back))
    side = read_sidecar(back)
    assert side is not None and side["source_kind"] == "expert"
    assert side["placeholder_seeds"] == "all" and side["placeholder_timestamps"] is True
    assert side["exported_sidecar"]["source"]["format"] == "huggingface"

    sim = data / "twin01_data_cartpole.json"
    record_like_the_lab(sim)
    write_sidecar(sim, {"subject": "twin01", "simulated": True})  # an older sidecar: no kind
    out = export_minari_dataset("cartpole", "twin01", tmp_path / "minari", data_dir=data)
    assert json.loads((out / "data" / "metadata.json").read_text())["hbm"]["source_kind"] == (
        "simulated"
    )
    copy = import_minari_dataset(out, data_dir=tmp_path / "back", subject="twin01-copy")
    assert source_kind(copy) == "simulated"
    _same(load_episodes(sim), load_episodes(copy))
    # a Minari dataset hbm did not make is an expert's unless told otherwise
    assert source_kind(import_minari_dataset(out, data_dir=tmp_path / "k", kind="person")) == (
        "person"
    )


def _episode(
    i: int, n: int, *, done: bool = True, jump: bool = False, f64: bool = False
) -> Episode:
    rng = np.random.default_rng(i)
    obs = rng.uniform(-0.05, 0.05, (n + 1, 4))
    if not f64:
        obs = obs.astype(np.float32).astype(np.float64)
    nxt = obs[1:].copy()
    if jump:
        nxt[1] += 0.5  # a next observation that is not the following observation
    dones = np.zeros(n, dtype=bool)
    dones[-1] = done
    return Episode(i, f"2025-02-01T10:0{i}:00", 100 + i, float(n), obs[:-1],
                   rng.integers(0, 2, n), np.ones(n), nxt, dones)  # fmt: skip


def test_minari_export_is_lossless_for_unusual_episodes(tmp_path: Path) -> None:
    """Truncated at the time limit, cut off without a done, next observations that jump,
    observations float32 cannot hold: all come back as they were."""
    episodes = [
        _episode(0, 500),  # CartPole's 500-step limit: a truncation
        _episode(1, 6, done=False),
        _episode(2, 5, jump=True),
        _episode(3, 4, f64=True),
    ]
    path = tmp_path / "sub09_data_cartpole.json"
    write_episodes(path, episodes)
    folder = export_minari_dataset("cartpole", str(path), tmp_path / "m", dataset_id="lab/x-v3")
    assert folder == tmp_path / "m" / "lab" / "x-v3"
    import h5py

    with h5py.File(folder / "data" / "main_data.hdf5") as f:
        assert f["episode_0"]["truncations"][-1] and not f["episode_0"]["terminations"][-1]
        assert f["episode_1"]["truncations"][-1] and f["episode_1"].attrs["hbm_ended_without_done"]
        assert "hbm_next_observation" in f["episode_2"]["infos"]
        assert f["episode_3"]["observations"].dtype == np.float64
    meta = json.loads((folder / "data" / "metadata.json").read_text())
    assert json.loads(meta["observation_space"])["dtype"] == "float64"
    back = read_minari_dataset(folder)
    _same(episodes, back.episodes)
    assert back.seed_known.all() and back.times_known


def test_minari_import_errors_name_the_file_and_field(lab_file: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a Minari dataset"):
        read_minari_dataset(tmp_path)
    folder = export_minari_dataset("cartpole", "sub01", tmp_path / "m", data_dir=lab_file.parent)
    meta_file = folder / "data" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    with pytest.raises(DatasetImportError, match=r"expected Box of shape \[8\] for LunarLander"):
        read_minari_dataset(folder, env="lunarlander")
    del meta["hbm"]
    meta["env_spec"] = json.dumps({"id": "Pendulum-v1"})
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(DatasetImportError) as info:
        read_minari_dataset(folder)
    assert str(meta_file) in str(info.value) and "'Pendulum-v1' is none of hbm's games" in str(
        info.value
    )
    assert len(read_minari_dataset(folder, env="cartpole").episodes) == 3  # told which game
    meta["env_spec"] = json.dumps({"id": "CartPole-v0"})  # another version of a known game
    meta["total_episodes"] = 4
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(DatasetImportError, match="episode_3: missing"):
        read_minari_dataset(folder)
    got = read_minari_dataset(folder, max_episodes=3)
    assert got.spec.name == "cartpole" and got.source["env_id"] == "CartPole-v0"
    assert source_kind(import_minari_dataset(folder, data_dir=tmp_path / "d", max_episodes=3)) == (
        "expert"
    )
    with pytest.raises(FileExistsError, match="force=True"):
        export_minari_dataset("cartpole", "sub01", tmp_path / "m", data_dir=lab_file.parent)
    with pytest.raises(ValueError, match="is not a Minari id"):
        export_minari_dataset("cartpole", "sub01", tmp_path / "n", data_dir=lab_file.parent,
                              dataset_id="no version")  # fmt: skip


# ----------------------------------------------------------------------------- the real minari


def _minari() -> Any:
    return pytest.importorskip(
        "minari", reason='the real Minari loader: pip install "hbm-data[minari]"'
    )


def test_minari_loads_an_hbm_export(
    lab_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    minari = _minari()
    root = tmp_path / "minari"
    export_minari_dataset("cartpole", "sub01", root, data_dir=lab_file.parent)
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    ds = minari.load_dataset("hbm/cartpole/sub01-v0")
    original = load_episodes(lab_file)
    assert ds.total_episodes == 3 and ds.total_steps == sum(e.length for e in original)
    for e, ep, meta in zip(
        original, ds.iterate_episodes(), ds.storage.get_episode_metadata(range(3)), strict=True
    ):
        assert np.array_equal(ep.observations[:-1], e.observations)
        assert np.array_equal(ep.observations[1:], e.next_observations)
        assert np.array_equal(ep.actions, e.actions) and np.array_equal(ep.rewards, e.rewards)
        assert np.array_equal(ep.terminations | ep.truncations, e.dones)
        assert meta["seed"] == e.seed_used and meta["hbm_timestamp"] == e.timestamp
    assert ds.spec.env_spec.id == "CartPole-v1"
    assert "hbm/cartpole/sub01-v0" in minari.list_local_datasets()


@pytest.mark.parametrize("data_format", ["hdf5", "arrow"])
def test_minari_datasets_made_by_minari_import_with_their_seeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data_format: str
) -> None:
    minari = _minari()
    import gymnasium as gym
    from minari.data_collector import EpisodeBuffer

    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    env = gym.make("CartPole-v1")
    buffers = []
    for seed in (11, 12, None):
        o, _ = env.reset(seed=seed)
        obs, acts, rews, terms, truncs = [o], [], [], [], []
        done = False
        while not done:
            a = int(env.action_space.sample())
            o, r, term, trunc, _ = env.step(a)
            obs.append(o), acts.append(a), rews.append(r), terms.append(term), truncs.append(trunc)
            done = term or trunc
        buffers.append(EpisodeBuffer(seed=seed, observations=np.array(obs), actions=np.array(acts),
                                     rewards=np.array(rews), terminations=np.array(terms),
                                     truncations=np.array(truncs)))  # fmt: skip
    with warnings.catch_warnings():  # Minari asks for an author, a permalink...
        warnings.simplefilter("ignore")
        ds = minari.create_dataset_from_buffers(
            f"test/cartpole-{data_format}-v0", buffers, env="CartPole-v1", data_format=data_format
        )
    got = read_minari_dataset(tmp_path / "test" / f"cartpole-{data_format}-v0")
    assert [e.seed_used for e in got.episodes] == [11, 12, 2]  # the last one: a placeholder
    assert got.seed_known.tolist() == [True, True, False] and not got.times_known
    for e, ep in zip(got.episodes, ds.iterate_episodes(), strict=True):
        assert np.array_equal(e.observations, ep.observations[:-1])
        assert np.array_equal(e.next_observations, ep.observations[1:])
        assert np.array_equal(e.actions, ep.actions) and np.array_equal(e.rewards, ep.rewards)
        assert e.dones[-1] and not e.dones[:-1].any()
    path = import_minari_dataset(tmp_path / "test" / f"cartpole-{data_format}-v0",
                                 data_dir=tmp_path / "data")  # fmt: skip
    side = read_sidecar(path)
    assert side is not None and side["placeholder_seeds"] == [2]
    md = load_human_data("cartpole", "expert:cartpole", data_dir=tmp_path / "data").metadata
    assert md.source_kind == "expert" and not md.seeds_replayable
    by_index = {e.index: e.seed_replayable for e in (*md.train_episodes, *md.test_episodes)}
    assert by_index == {0: True, 1: True, 2: False}


def test_exported_game_and_spaces_are_gymnasiums() -> None:
    """The env_spec and spaces written without gymnasium are the ones it declares."""
    gym = pytest.importorskip("gymnasium", reason='needs pip install "hbm-data[simulate]"')
    pytest.importorskip("Box2D", reason='LunarLander needs pip install "hbm-data[simulate]"')
    from hbm_data.envs import GYMNASIUM_ENVIRONMENTS
    from hbm_data.expert import _env_spec_json, _spaces_json

    for spec in GYMNASIUM_ENVIRONMENTS.values():
        assert json.loads(_env_spec_json(spec)) == json.loads(gym.spec(spec.env_id).to_json())
        env = gym.make(spec.env_id)
        obs, act = (json.loads(s) for s in _spaces_json(spec, "float32"))
        space = env.observation_space
        assert obs["shape"] == list(space.shape) and obs["dtype"] == str(space.dtype)
        assert obs["low"] == space.low.tolist() and obs["high"] == space.high.tolist()
        assert act["n"] == env.action_space.n and act["start"] == int(env.action_space.start)
        env.close()


# ----------------------------------------------------------------------------- subjects


def test_subject_names_paths_and_kinds(lab_file: Path, tmp_path: Path) -> None:
    assert subject_file_stem("expert:lunar") == "expert-lunar" and subject_file_stem("s1") == "s1"
    for bad in ("expert:", "a/b"):
        with pytest.raises(ValueError, match="non-empty name without slashes"):
            check_subject(bad)
    assert check_subject("data/x_data_cartpole.json", allow_path=True)
    with pytest.raises(ValueError, match=r"ending in \.json or \.json\.gz"):
        check_subject("../sub01", allow_path=True)  # a name with a slash is still no name
    assert find_episode_file("cartpole", "expert:x", tmp_path) == (
        tmp_path / "expert-x_data_cartpole.json"
    )
    # a path is a subject too, from anywhere (str or Path)
    by_path = load_human_data("cartpole", str(lab_file)).metadata
    assert by_path.source_file == str(lab_file) and by_path.source_kind == "person"
    assert load_human_data("cartpole", lab_file).metadata.content_hash == by_path.content_hash
    # without a sidecar, the name says it: sim<N> simulated, expert-<name> expert
    plain = tmp_path / "expert-old_data_cartpole.json"
    plain.write_bytes(lab_file.read_bytes())
    assert source_kind(plain) == "expert"
    assert load_human_data("cartpole", "expert:old", data_dir=tmp_path).metadata.simulated
    with pytest.raises(FileNotFoundError, match="hbm-data import-hf PATH --env cartpole"):
        load_human_data("cartpole", "expert:missing", data_dir=tmp_path)


def test_dataset_metadata_stays_backwards_compatible(lab_file: Path) -> None:
    md = load_human_data("cartpole", "sub01", data_dir=lab_file.parent).metadata
    fields = {f.name: getattr(md, f.name) for f in dataclasses.fields(md)}
    del fields["source_kind"]  # a caller that does not know the new field
    assert DatasetMetadata(**fields).source_kind == "person"
    assert DatasetMetadata(**{**fields, "simulated": True}).source_kind == "simulated"
    with pytest.raises(ValueError, match="contradicts source_kind='expert'"):
        DatasetMetadata(**fields, source_kind="expert")
    with pytest.raises(ValueError, match="source_kind must be one of person, simulated, expert"):
        DatasetMetadata(**{**fields, "simulated": True}, source_kind="robot")


# ----------------------------------------------------------------------------- CLI, extras


def test_cli_import_export_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _jsonl(tmp_path / "teacher.jsonl", _rows())
    data = str(tmp_path / "data")
    assert main(["import-hf", str(src), "--env", "cartpole", "--data-dir", data]) == 0
    out = capsys.readouterr().out
    assert "3 episodes (18 steps) of expert expert-cartpole" in out
    assert "load_human_data('cartpole', 'expert:cartpole')" in out and "placeholder" in out
    assert main(["import-hf", str(src), "--env", "cartpole", "--data-dir", data]) == 1
    assert "--force" in capsys.readouterr().err
    file = tmp_path / "data" / "expert-cartpole_data_cartpole.json"
    assert main(["info", str(file), "--no-plot"]) == 0
    assert "EXPERT agent's demonstrations, not a person" in capsys.readouterr().out

    root = tmp_path / "minari"
    args = ["export-minari", "cartpole", "expert:cartpole", str(root), "--data-dir", data]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Minari dataset hbm/cartpole/expert-cartpole-v0, 3 episodes (18 steps) of expert" in out
    assert f"MINARI_DATASETS_PATH={root.resolve()}" in out
    dataset = root / "hbm" / "cartpole" / "expert-cartpole-v0"
    back = ["import-minari", str(dataset / "data"), "--subject", "copy", "--data-dir", data]
    assert main(back) == 0
    assert "of expert copy" in capsys.readouterr().out
    _same(load_episodes(file), load_episodes(tmp_path / "data" / "copy_data_cartpole.json"))
    assert main(["import-hf", str(tmp_path / "nope.jsonl"), "--env", "cartpole"]) == 1
    assert "no such dataset file or folder" in capsys.readouterr().err


def _block(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make `import name` (and its submodules) fail, as if the extra were not installed."""
    for mod in [m for m in sys.modules if m.split(".")[0] in names]:
        monkeypatch.setitem(sys.modules, mod, None)
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)
    for sub in ("parquet", "compute", "dataset"):
        monkeypatch.setitem(sys.modules, f"pyarrow.{sub}", None)


def test_missing_extras_are_named(
    lab_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parquet = _parquet(tmp_path / "t.parquet", _rows())
    jsonl = _jsonl(tmp_path / "t.jsonl", _rows())
    _block(monkeypatch, "pyarrow", "h5py")
    with pytest.raises(MissingExtraError, match=r'Parquet.*pip install "hbm-data\[expert\]"'):
        read_hf_dataset(parquet, "cartpole")
    assert len(read_hf_dataset(jsonl, "cartpole").episodes) == 3  # JSON needs no extra
    with pytest.raises(MissingExtraError, match=r'Minari.*pip install "hbm-data\[minari\]"'):
        export_minari_dataset("cartpole", "sub01", tmp_path / "m", data_dir=lab_file.parent)
    assert not (tmp_path / "m").exists()
    args = ["export-minari", "cartpole", "sub01", str(tmp_path / "m"), "--data-dir"]
    assert main([*args, str(lab_file.parent)]) == 1
    assert 'pip install "hbm-data[minari]"' in capsys.readouterr().err
