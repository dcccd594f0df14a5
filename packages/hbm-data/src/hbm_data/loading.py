"""`load_human_data`: one subject's episodes for one game as train/test arrays plus metadata."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np

from .envs import get_env_spec
from .episodes import Episode, _load, _raise_or_warn, read_sidecar
from .paths import (
    EXPERT_FILE_PREFIX,
    EXPERT_PREFIX,
    check_subject,
    find_episode_file,
    is_path_subject,
    parse_episode_file_name,
    subject_file_stem,
)
from .paths import data_dir as default_data_dir
from .sessions import (
    DEFAULT_GAP_MINUTES,
    DEFAULT_HOLDOUT_PCT,
    compute_session_run_ids,
    no_training_reason,
    normalize_session_run_features,
)
from .simulate import DEFAULT_SUBJECTS, ensure_default_file
from .splits import split_by_session
from .validation import EpisodeFormatError, Problem

logger = logging.getLogger(__name__)

_SIMULATED_NAME = re.compile(r"^sim\d+$")

#: Who made a file: a person (recorded), hbm's simulator, or an expert agent (an imported
#: dataset of a trained policy's demonstrations). Sidecars say it in `source_kind`.
SOURCE_KINDS = ("person", "simulated", "expert")


@dataclass(frozen=True)
class EpisodeInfo:
    """One episode of a split, in the order of that split's flat arrays."""

    index: int  # index of the episode in the file
    seed: int  # seed_used: replays the same initial state
    score: float  # return the person obtained
    session: int
    run: int
    session_cl: float  # CL features in [-1, 1]
    run_cl: float
    start: int  # slice [start, start + length) of the split's flat arrays
    length: int
    timestamp: str
    #: False when `seed` is a placeholder (an imported expert set recorded none, see the
    #: sidecar's `placeholder_seeds`): a rollout on it does not start where this episode did.
    seed_replayable: bool = True


@dataclass(frozen=True)
class DatasetMetadata:
    """Everything about a loaded dataset besides the arrays; `to_dict` is JSON-safe."""

    env_name: str
    env_id: str
    subject: str
    simulated: bool
    source_file: str
    #: `data_content_hash` of the exact bytes loaded ("sha256:<hex>", the sidecar's included):
    #: key caches by it, so an edited recording (episodes appended or cut) or sidecar (source
    #: kind, replayable seeds) is new data under the same subject name.
    content_hash: str
    obs_size: int
    input_size: int  # obs_size + 2 when use_cl_info
    num_actions: int
    use_cl_info: bool
    holdout_pct: float
    seed: int
    num_sessions: int
    train_episodes: tuple[EpisodeInfo, ...]
    test_episodes: tuple[EpisodeInfo, ...]
    #: "person", "simulated" or "expert" (`SOURCE_KINDS`); `simulated` is True for the last
    #: two (not a person). Older callers that pass only `simulated=True` get "simulated".
    source_kind: str = "person"

    def __post_init__(self) -> None:
        if self.source_kind not in SOURCE_KINDS:
            raise ValueError(
                f"source_kind must be one of {', '.join(SOURCE_KINDS)}, got {self.source_kind!r}"
            )
        if self.simulated and self.source_kind == "person":
            object.__setattr__(self, "source_kind", "simulated")
        elif not self.simulated and self.source_kind != "person":
            raise ValueError(
                f"simulated=False contradicts source_kind={self.source_kind!r} (only a person's "
                "data is not simulated)"
            )

    @property
    def seeds_replayable(self) -> bool:
        """Every episode's seed replays its start (False for expert sets without seeds)."""
        return all(e.seed_replayable for e in (*self.train_episodes, *self.test_episodes))

    @property
    def train_episode_lengths(self) -> list[int]:
        return [e.length for e in self.train_episodes]

    @property
    def test_episode_lengths(self) -> list[int]:
        return [e.length for e in self.test_episodes]

    @property
    def n_train(self) -> int:
        """Number of train episodes."""
        return len(self.train_episodes)

    @property
    def n_test(self) -> int:
        """Number of test episodes."""
        return len(self.test_episodes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["train_episodes"] = [asdict(e) for e in self.train_episodes]
        d["test_episodes"] = [asdict(e) for e in self.test_episodes]
        return d


class HumanData(NamedTuple):
    train_obs: np.ndarray  # [N_train, input_size] float32, episodes concatenated in file order
    train_act: np.ndarray  # [N_train] int64
    test_obs: np.ndarray  # [N_test, input_size] float32
    test_act: np.ndarray  # [N_test] int64
    metadata: DatasetMetadata


def source_kind(
    path: Path | str,
    subject: str | None = None,
    *,
    sidecar: Mapping[str, Any] | Literal[False] | None = False,
) -> str:
    """Who made a file (`SOURCE_KINDS`): its sidecar's `source_kind`, else its `simulated`
    flag; without a sidecar, `sim<N>` subjects are simulated, `expert-<name>` ones expert.

    `subject` defaults to the one in the file name (`<subject>_data_<env>.json`). `sidecar`:
    the sidecar already read (None: there is none), so a loader decides from the very bytes it
    hashed; by default it is read from disk.
    """
    meta = read_sidecar(path) if sidecar is False else sidecar
    if meta is not None:
        if meta.get("source_kind") in SOURCE_KINDS:
            return str(meta["source_kind"])
        if isinstance(meta.get("simulated"), bool):
            return "simulated" if meta["simulated"] else "person"
    if subject is None or is_path_subject(subject):
        parsed = parse_episode_file_name(path)
        subject = parsed[0] if parsed else Path(path).name
    subject = subject_file_stem(subject)
    if _SIMULATED_NAME.match(subject):
        return "simulated"
    return "expert" if subject.startswith(EXPERT_FILE_PREFIX) else "person"


def is_simulated(path: Path | str, subject: str) -> bool:
    """Not a person's recording: a simulated player or an expert agent (`source_kind`)."""
    return source_kind(path, subject) != "person"


def seed_replayable(meta: Mapping[str, Any] | None, n_episodes: int) -> np.ndarray:
    """Per episode (file order), whether `seed_used` replays its start: False for those the
    sidecar lists in `placeholder_seeds` (a list of indices, or "all")."""
    out = np.ones(n_episodes, dtype=bool)
    placeholders = None if meta is None else meta.get("placeholder_seeds")
    if placeholders == "all":
        out[:] = False
    elif isinstance(placeholders, list):
        idx = [i for i in placeholders if isinstance(i, int) and 0 <= i < n_episodes]
        out[idx] = False
    return out


def _flatten(
    episodes: list[Episode],
    indices: np.ndarray,
    sessions: np.ndarray,
    runs: np.ndarray,
    session_cl: np.ndarray,
    run_cl: np.ndarray,
    use_cl_info: bool,
    obs_size: int,
    replayable: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, tuple[EpisodeInfo, ...]]:
    infos = []
    start = 0
    for i in indices.tolist():
        ep = episodes[i]
        infos.append(
            EpisodeInfo(
                index=i,
                seed=ep.seed_used,
                score=ep.score,
                session=int(sessions[i]),
                run=int(runs[i]),
                session_cl=float(session_cl[i]),
                run_cl=float(run_cl[i]),
                start=start,
                length=ep.length,
                timestamp=ep.timestamp,
                seed_replayable=bool(replayable[i]),
            )
        )
        start += ep.length
    width = obs_size + 2 if use_cl_info else obs_size
    obs = np.empty((start, width), dtype=np.float32)
    act = np.empty(start, dtype=np.int64)
    for info in infos:
        ep = episodes[info.index]
        sl = slice(info.start, info.start + info.length)
        obs[sl, :obs_size] = ep.observations
        act[sl] = ep.actions
        if use_cl_info:
            obs[sl, obs_size] = info.session_cl
            obs[sl, obs_size + 1] = info.run_cl
    return obs, act, tuple(infos)


def load_human_data(
    env_name: str,
    subject: str | os.PathLike[str] = "sim01",
    *,
    use_cl_info: bool = False,
    holdout_pct: float = DEFAULT_HOLDOUT_PCT,
    seed: int = 42,
    data_dir: Path | str | None = None,
    gap_minutes: float = DEFAULT_GAP_MINUTES,
) -> HumanData:
    """Train/test arrays of one subject playing one game, split by whole episodes per session.

    The file is `<data_dir>/<subject>_data_<env>.json[.gz]` (`data_dir` defaults to
    `$HBM_DATA_DIR` or the per-user data dir). The default simulated subjects (`sim01` to
    `sim04`) are generated there on first use (needs `hbm-data[simulate]`). With `use_cl_info`,
    each observation gets the episode's session and run CL features appended
    (`input_size = obs_size + 2`). `metadata.content_hash` identifies the file's content.

    `subject` is a string, kept exactly: "007" is the file `007_data_<env>.json`. An int (what
    YAML makes of an unquoted `subject: 007`, i.e. 7) is refused rather than guessed at.
    `expert:<name>` is an imported expert dataset (the file of `expert-<name>`, see
    `hbm_data.expert`); `dir/<file>.json[.gz]` (a slash and that suffix) is that episode file.
    What made the data is `metadata.source_kind` (person, simulated, expert).
    """
    subject = check_subject(subject, allow_path=True)
    spec = get_env_spec(env_name)
    directory = default_data_dir() if data_dir is None else Path(data_dir)
    path = find_episode_file(spec.name, subject, directory)
    if not path.exists():
        if subject in DEFAULT_SUBJECTS:
            path = ensure_default_file(spec.name, subject, directory)
        else:
            found = sorted(p.name for p in path.parent.glob(f"*_data_{spec.name}.json*"))
            hint = ""
            if subject.startswith((EXPERT_PREFIX, EXPERT_FILE_PREFIX)):
                hint = (
                    f"; import an expert dataset as it with `hbm-data import-hf PATH --env "
                    f"{spec.name} --subject {subject_file_stem(subject)}` (or import-minari)"
                )
            raise FileNotFoundError(
                f"{path}: no data for subject {subject!r} in {spec.name}; files for this game in "
                f"{path.parent}: {found or 'none'} (default subjects: "
                f"{', '.join(DEFAULT_SUBJECTS)}){hint}"
            )
    loaded = _load(path, spec)
    _raise_or_warn(loaded, path)
    episodes = loaded.episodes
    if not episodes:
        raise EpisodeFormatError([Problem(str(path), "the file holds no episodes")])
    sessions, runs = compute_session_run_ids([e.timestamp for e in episodes], gap_minutes)
    session_cl, run_cl = normalize_session_run_features(sessions, runs)
    train_idx, test_idx = split_by_session(sessions, holdout_pct, np.random.default_rng(seed))
    if not len(train_idx):
        reason = no_training_reason([e.timestamp for e in episodes], holdout_pct, gap_minutes)
        raise EpisodeFormatError([Problem(str(path), reason or "no episode left to train on")])
    replayable = seed_replayable(loaded.sidecar, len(episodes))
    cols = (sessions, runs, session_cl, run_cl, use_cl_info, spec.obs_size, replayable)
    train_obs, train_act, train_info = _flatten(episodes, train_idx, *cols)
    test_obs, test_act, test_info = _flatten(episodes, test_idx, *cols)
    kind = source_kind(path, subject, sidecar=loaded.sidecar)
    metadata = DatasetMetadata(
        env_name=spec.name,
        env_id=spec.env_id,
        subject=subject,
        simulated=kind != "person",
        source_file=str(path),
        content_hash=loaded.content_hash,
        obs_size=spec.obs_size,
        input_size=train_obs.shape[1],
        num_actions=spec.num_actions,
        use_cl_info=use_cl_info,
        holdout_pct=holdout_pct,
        seed=seed,
        num_sessions=int(sessions.max()) + 1,
        train_episodes=train_info,
        test_episodes=test_info,
        source_kind=kind,
    )
    logger.info(
        "%s/%s: %d train episodes (%d steps), %d test episodes (%d steps), %d sessions%s",
        spec.name, subject, len(train_info), len(train_act), len(test_info), len(test_act),
        metadata.num_sessions, f" [{kind} subject]" * metadata.simulated,
    )  # fmt: skip
    return HumanData(train_obs, train_act, test_obs, test_act, metadata)
