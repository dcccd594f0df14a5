"""`data.holdout: source`: the recording's own train/test split decides what is held out.

Some datasets come with the split their authors used (the Overcooked-AI human-human study
kept whole trials apart for testing). Scoring on that split compares hbm's numbers with the
study's. The episode file's sidecar records it, per episode: `source_split` (a list of "train"
/ "test", one per episode in file order) or `episodes[i].split`. The validation split is then
drawn from the training episodes as usual (`data.with_validation`); test is never touched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["HOLDOUTS", "RecordedSplitError", "recorded_split", "split_as_recorded"]

HOLDOUTS = ("session", "source")
"""`data.holdout`: per session (hbm-data's rule, `holdout_pct`) or as the recording says."""

_SPLITS = ("train", "test")


class RecordedSplitError(ValueError):
    """The data has no usable recorded split; the message names the subject and the file."""


def recorded_split(sidecar: Mapping[str, Any] | None, n_episodes: int | None, *, subject: str,
                   path: str | Path, both: bool = True) -> list[str]:  # fmt: skip
    """The per-episode split the sidecar records ("train"/"test", `[n_episodes]`), from its
    `source_split` or its `episodes[i].split` (both must agree where both are present).
    `n_episodes`: the file's episode count (None: not checked, e.g. before reading it).
    `both`: refuse a file whose episodes are all in one split (nothing to train or test on)."""
    from hbm_data.paths import sidecar_path

    where = f"subject {subject!r} ({sidecar_path(path)})"
    if not sidecar:
        raise RecordedSplitError(
            f"{where}: no sidecar, so no recorded train/test split; data.holdout: source needs "
            "one (`source_split`, one 'train'/'test' per episode); use data.holdout: session"
        )
    found: dict[str, list[Any]] = {}
    if isinstance(sidecar.get("source_split"), list):
        found["source_split"] = list(sidecar["source_split"])
    episodes = sidecar.get("episodes")
    if isinstance(episodes, list) and all(isinstance(e, Mapping) and "split" in e
                                          for e in episodes):  # fmt: skip
        found["episodes[i].split"] = [e["split"] for e in episodes]
    if not found:
        raise RecordedSplitError(
            f"{where}: records no train/test split (neither `source_split` nor "
            "`episodes[i].split`); data.holdout: source needs one; use data.holdout: session"
        )
    values = list(found.values())
    if len(values) == 2 and values[0] != values[1]:
        raise RecordedSplitError(f"{where}: `source_split` and `episodes[i].split` disagree")
    (field, split), *_ = found.items()
    if n_episodes is not None and len(split) != n_episodes:
        raise RecordedSplitError(
            f"{where}: `{field}` has {len(split)} entries, the file {n_episodes} episodes"
        )
    bad = sorted({repr(s) for s in split if s not in _SPLITS})
    if bad:
        raise RecordedSplitError(f"{where}: `{field}` holds {', '.join(bad)}; expected "
                                 "'train' or 'test'")  # fmt: skip
    for name in _SPLITS if both else ():
        if name not in split:
            raise RecordedSplitError(
                f"{where}: every one of its {len(split)} episodes is in the recorded "
                f"{'test' if name == 'train' else 'train'} split (`{field}`): nothing to "
                f"{'train on' if name == 'train' else 'test on'}; use data.holdout: session, "
                "or a subject whose file holds both (e.g. the pooled one)"
            )
    return [str(s) for s in split]


def _pick(obs: np.ndarray, act: np.ndarray, infos: Sequence[Any]) -> tuple[Any, ...]:
    from .data import _gather

    return tuple(_gather(obs, act, infos))


def split_as_recorded(data: Any, sidecar: Mapping[str, Any] | None) -> Any:
    """`hbm_data.HumanData` re-split by the recorded split: the same episodes (file order
    kept within each split), `metadata.train_episodes`/`test_episodes` rebuilt."""
    meta = data.metadata
    n_train = len(data.train_act)
    moved = [dataclasses.replace(e, start=e.start + n_train) for e in meta.test_episodes]
    infos = [*meta.train_episodes, *moved]
    infos.sort(key=lambda e: e.index)
    split = recorded_split(sidecar, len(infos), subject=meta.subject, path=meta.source_file)
    obs = np.concatenate([data.train_obs, data.test_obs])
    act = np.concatenate([data.train_act, data.test_act])
    train_obs, train_act, train_infos = _pick(
        obs, act, [e for e in infos if split[e.index] == "train"]
    )
    test_obs, test_act, test_infos = _pick(obs, act, [e for e in infos if split[e.index] == "test"])
    meta = dataclasses.replace(meta, train_episodes=train_infos, test_episodes=test_infos)
    return type(data)(train_obs, train_act, test_obs, test_act, meta)
