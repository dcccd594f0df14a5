"""One person's data as a cached task, keyed by what the episode file contains.

The subject's name does not identify the data: a recording grows by sessions, or gets cut. So
the task's uid (and the uid of every experiment built on it) holds the sha256 of the episode
file (`content_hash`), computed when the config is made; the job checks the file still has
that content before it trains, and refuses otherwise. Editing a recording changes what runs;
an unchanged file still hits the cache.

Three splits, by whole episodes and per session: test (`holdout_pct`, drawn by hbm-data),
then validation (`validation_pct`, drawn from the remaining training episodes by the same
rule), then training. Whatever chooses (tuning, model selection) reads validation; test is
only reported. With `crossfit_folds`, test is one fold of a per-session partition of all the
episodes instead (`hbm_experiments.crossfit`), validation still drawn from the rest.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import numpy as np
import pydantic

from .infra import TrustedInfra, with_default_folder

__all__ = [
    "DATA_VERSION",
    "DataChangedError",
    "DataPreprocessingTask",
    "HumanlikeReferences",
    "MetadataView",
    "MissingRecordingError",
    "PreprocessedData",
    "SplitData",
    "episode_file",
]

logger = logging.getLogger(__name__)

DATA_VERSION = "3"  # 3: validation episodes taken out of the training ones

#: Second entry of the validation draw's seed (`np.random.default_rng([split_seed, 1])`): its
#: own stream, so the test split (drawn with `default_rng(split_seed)`) stays what it was.
_VALIDATION_STREAM = 1


class MissingRecordingError(FileNotFoundError, ValueError):
    """No episode file for the subject: a missing file, and a bad config value (so pydantic
    reports it as the config's error, naming the subject)."""


class DataChangedError(RuntimeError):
    """The episode file no longer holds the content the experiment was configured with."""


def data_dir_setting() -> str | None:
    """`$HBM_DATA_DIR` when set (the data task's `data_dir`), else None (hbm-data's default)."""
    return os.environ.get("HBM_DATA_DIR") or None


def episode_file(dataset: str, subject: str, data_dir: str | Path | None = None) -> Path:
    """The subject's episode file; the simulated default subjects are generated on first use.

    A missing recording fails here, before anything is submitted, saying how to get one.
    """
    from hbm_data import DEFAULT_SUBJECTS
    from hbm_data.paths import data_dir as default_dir
    from hbm_data.paths import find_episode_file

    directory = Path(data_dir) if data_dir is not None else default_dir()
    path = find_episode_file(dataset, subject, directory)
    if path.exists():
        return path
    if subject in DEFAULT_SUBJECTS:
        from hbm_data.simulate import ensure_default_file

        return Path(ensure_default_file(dataset, subject, directory))
    found = sorted(p.name for p in directory.glob(f"*_data_{dataset}.json*"))
    raise MissingRecordingError(
        f"{path}: no recording of subject {subject!r} playing {dataset} "
        f"(files for this game in {directory}: {', '.join(found) or 'none'}). "
        f"Record one with `hbm-data record {dataset} --subject {subject}` "
        f"(or put the file there, or set HBM_DATA_DIR), or use a simulated subject: "
        f"{', '.join(DEFAULT_SUBJECTS)}."
    )


def check_recorded_split(dataset: str, subject: str, data_dir: str | Path | None = None) -> None:
    """Raise `source_split.RecordedSplitError` (a ValueError naming the subject) unless the
    subject's file records a usable train/test split per episode (the count against the
    file's episodes is checked when the data is loaded)."""
    from hbm_data.episodes import read_sidecar

    from .source_split import recorded_split

    path = episode_file(dataset, subject, data_dir)
    recorded_split(read_sidecar(path), None, subject=subject, path=path)


def content_hash(dataset: str, subject: str, data_dir: str | Path | None = None) -> str:
    """sha256 of the subject's episode file and its sidecar (`hbm_data.data_content_hash`,
    memoised per file version by hbm-data)."""
    from hbm_data import data_content_hash

    return str(data_content_hash(episode_file(dataset, subject, data_dir)))


class DataPreprocessingTask(pydantic.BaseModel):
    """One person's split data (`hbm_data.HumanData`), cached on disk and in RAM per instance.

    `data_dir` (where the raw files are) is excluded from the uid; `content_hash` (filled from
    the file when not given) is in it: the content identifies the data, not its path.
    """

    model_config = pydantic.ConfigDict(extra="forbid")
    _exclude_from_cls_uid: ClassVar[tuple[str, ...]] = ("data_dir",)

    dataset: str = "cartpole"
    subject: str = "sim01"
    use_cl_info: bool = False
    holdout_pct: float = 0.1
    split_seed: int = 42
    content_hash: str | None = None
    """sha256 of the episode file; None: read from the file when the task is made."""
    max_train_episodes: int | None = None
    """Keep the first N training episodes (a data-size study); the test split is unchanged."""
    validation_pct: float = 0.1
    """Validation episodes per session, drawn from the training episodes (`SplitData`)."""
    holdout: Literal["session", "source"] = "session"
    """"source": the recording's own train/test split (`hbm_experiments.source_split`)."""
    crossfit_folds: int | None = None
    crossfit_fold: int | None = None
    """Test fold `crossfit_fold` of `crossfit_folds` (`hbm_experiments.crossfit`)."""
    data_dir: str | None = None
    # loads only exca pickles that trusted users wrote; a damaged entry is recomputed by retry
    infra: TrustedInfra = TrustedInfra(version=DATA_VERSION, keep_in_ram=True)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _default_folder(cls, data: Any) -> Any:
        return with_default_folder(data)

    @pydantic.field_validator("subject", mode="before")
    @classmethod
    def _subject(cls, value: Any) -> Any:
        """The experiment config's subject check: a name, or a path without `..`."""
        from .configs import check_subject_value

        return check_subject_value(value)

    @pydantic.model_validator(mode="after")
    def _hash_of_file(self) -> DataPreprocessingTask:
        if self.content_hash is None:
            self.content_hash = content_hash(self.dataset, self.subject, self.data_dir)
        if self.holdout == "source":  # refused now, naming the subject, not in the job
            check_recorded_split(self.dataset, self.subject, self.data_dir)
        return self

    @infra.apply
    def load(self) -> Any:
        """-> `SplitData` (`hbm_data.HumanData`'s train/test arrays and metadata, plus the
        validation arrays; `metadata.train_episodes` are the training episodes left)."""
        from hbm_data import load_human_data

        logger.info(
            "loading %s data of %s (use_cl_info=%s)", self.dataset, self.subject, self.use_cl_info
        )
        data = load_human_data(
            self.dataset,
            self.subject,
            use_cl_info=self.use_cl_info,
            holdout_pct=self.holdout_pct,
            seed=self.split_seed,
            data_dir=self.data_dir,
        )
        found = data.metadata.content_hash
        if found != self.content_hash:
            raise DataChangedError(
                f"{data.metadata.source_file}: the file changed since this experiment was "
                f"configured (content {found}, expected {self.content_hash}); make the "
                f"experiment again from its config to run it on the current file"
            )
        if self.holdout == "source":
            from hbm_data.episodes import read_sidecar

            from .source_split import split_as_recorded

            data = split_as_recorded(data, read_sidecar(data.metadata.source_file))
        if self.crossfit_folds is not None:
            from .crossfit import split_crossfit

            data = split_crossfit(data, self.crossfit_folds, self.crossfit_fold, self.split_seed)
        split = with_validation(data, self.validation_pct, self.split_seed)
        return first_train_episodes(split, self.max_train_episodes)

    def load_preprocessed(self) -> PreprocessedData:
        """The guide's name for `load()` (exca-integration-guide §4.3): the same cached data,
        indexable as the guide does (`data["train_obs"]`, `data["metadata"]["input_size"]`)."""
        return PreprocessedData(self.load())


class SplitData(NamedTuple):
    """`hbm_data.HumanData` (its five fields, in its order) plus the validation split.

    `metadata.train_episodes` describe the training arrays (validation episodes taken out);
    `val_episodes` (hbm-data's `EpisodeInfo`, `start` into the validation arrays) the
    validation ones, empty when `validation_pct` is 0."""

    train_obs: np.ndarray  # [N_train, input_size] float32
    train_act: np.ndarray  # [N_train] int64
    test_obs: np.ndarray  # [N_test, input_size] float32
    test_act: np.ndarray  # [N_test] int64
    metadata: Any  # hbm_data.DatasetMetadata
    val_obs: np.ndarray  # [N_val, input_size] float32
    val_act: np.ndarray  # [N_val] int64
    val_episodes: tuple[Any, ...]

    @property
    def val_episode_lengths(self) -> list[int]:
        return [e.length for e in self.val_episodes]


def _gather(obs: np.ndarray, act: np.ndarray, infos: Sequence[Any]) -> tuple[Any, ...]:
    """The episodes `infos` (slices of `obs`/`act`) as new flat arrays, their `start`s
    renumbered: `(obs, act, infos)`."""
    starts = np.cumsum([0] + [e.length for e in infos])
    moved = tuple(dataclasses.replace(e, start=int(s)) for e, s in zip(infos, starts, strict=False))
    parts = [slice(e.start, e.start + e.length) for e in infos]
    width = obs.shape[1]
    new_obs = np.concatenate([obs[p] for p in parts]) if parts else np.zeros((0, width), obs.dtype)
    new_act = np.concatenate([act[p] for p in parts]) if parts else np.zeros(0, act.dtype)
    return new_obs, new_act, moved


def with_validation(data: Any, validation_pct: float, split_seed: int) -> SplitData:
    """`SplitData` of `hbm_data.HumanData`: `hbm_data.splits.validation_split` of its training
    episodes (per session, the holdout's rule; test is never touched), drawn from
    `default_rng([split_seed, 1])`. Raises ValueError when no training episode is left."""
    from hbm_data.splits import validation_split

    meta = data.metadata
    sessions = [e.session for e in meta.train_episodes]
    generator = np.random.default_rng([split_seed, _VALIDATION_STREAM])
    keep, held = validation_split(sessions, validation_pct, generator)
    if len(keep) == 0:
        raise ValueError(
            f"{meta.source_file}: data.holdout_pct={meta.holdout_pct} and "
            f"data.validation_pct={validation_pct} leave no training episodes "
            f"({meta.n_train + meta.n_test} episodes in {meta.num_sessions} session(s): "
            f"{meta.n_test} to test, {len(held)} to validation); lower data.validation_pct "
            "(0 turns the validation split off) or data.holdout_pct"
        )
    episodes = meta.train_episodes
    train_obs, train_act, train_infos = _gather(
        data.train_obs, data.train_act, [episodes[i] for i in keep]
    )
    val_obs, val_act, val_infos = _gather(
        data.train_obs, data.train_act, [episodes[i] for i in held]
    )
    return SplitData(
        train_obs,
        train_act,
        data.test_obs,
        data.test_act,
        dataclasses.replace(meta, train_episodes=train_infos),
        val_obs,
        val_act,
        val_infos,
    )


def first_train_episodes(data: Any, n: int | None) -> Any:
    """`HumanData` with only its first `n` training episodes (all of them when `n` is None or
    not smaller); the flat train arrays are the episodes concatenated in that order."""
    meta = data.metadata
    if n is None or n >= len(meta.train_episodes):
        return data
    kept = tuple(meta.train_episodes[:n])
    end = kept[-1].start + kept[-1].length
    meta = dataclasses.replace(meta, train_episodes=kept)
    return data._replace(
        train_obs=data.train_obs[:end], train_act=data.train_act[:end], metadata=meta
    )


class _ItemsAndAttributes(Mapping[str, Any]):
    """Read-only view of an object by item (`view["name"]`) and by attribute (`view.name`)."""

    def __init__(self, obj: Any, names: Sequence[str]) -> None:
        self._obj = obj
        self._names = tuple(names)

    def __getitem__(self, key: str) -> Any:
        if key not in self._names:
            raise KeyError(f"{key!r}; keys: {', '.join(self._names)}")
        return getattr(self._obj, key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._obj, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._obj!r})"


class MetadataView(_ItemsAndAttributes):
    """`hbm_data.DatasetMetadata` by item too: its fields and its derived sizes."""

    def __init__(self, metadata: Any) -> None:
        names = [f.name for f in dataclasses.fields(metadata)]
        names += ["train_episode_lengths", "test_episode_lengths", "n_train", "n_test"]
        super().__init__(metadata, names)


class PreprocessedData(_ItemsAndAttributes):
    """`hbm_data.HumanData` as the guide indexes it: `train_obs`, `train_act`, `test_obs`,
    `test_act` (numpy arrays) and `metadata` (a `MetadataView`), by item or attribute."""

    def __init__(self, data: Any) -> None:
        super().__init__(data, data._fields)
        self.human_data = data
        """The `HumanData` itself, for code that wants the tuple."""

    def __getitem__(self, key: str) -> Any:
        value = super().__getitem__(key)
        return MetadataView(value) if key == "metadata" else value

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._obj, name)
        return MetadataView(value) if name == "metadata" else value


class HumanlikeReferences(pydantic.BaseModel):
    """The person and random reference rows of one person's data (`humanlike_references`),
    cached: every experiment on that data reads them instead of rolling them out again."""

    model_config = pydantic.ConfigDict(extra="forbid")
    _exclude_from_cls_uid: ClassVar[tuple[str, ...]] = ("data_dir",)

    data: DataPreprocessingTask
    seed: int = 0
    repeats: int = pydantic.Field(default=1, ge=1)  # episodes per held-out one, as a model row
    data_dir: str | None = None
    infra: TrustedInfra = TrustedInfra(version="3")  # 3: offline references (no game)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _default_folder(cls, data: Any) -> Any:
        return with_default_folder(data)

    @infra.apply
    def compute(self) -> dict[str, dict[str, Any]]:
        """`{"person": ..., "random": ...}` humanlike blocks (hbm_experiments.humanlike)."""
        from .evaluation import unplayable_reason
        from .humanlike import humanlike_references

        skipped = unplayable_reason(self.data.dataset)
        if skipped is not None:  # a game hbm cannot play: teacher-forced references
            from .offline_humanlike import offline_references

            return offline_references(self.data.load(), seed=self.seed, reason=skipped)

        return humanlike_references(self.data.load(), seed=self.seed, repeats=self.repeats)
