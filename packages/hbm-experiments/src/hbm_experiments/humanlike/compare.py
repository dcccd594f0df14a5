"""One person's held-out play against any other play: the `humanlike` block.

`HumanlikeTarget` holds the person's side once (their episodes' counts, windows and reaction
shift), so that many candidates (a population, a cross-subject matrix, the references) are
scored cheaply; `compare_play` scores any recording against any other with the same code.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .metrics import action_accuracy, choose_shift, session_return_spearman, shift_accuracy
from .trajectories import Trajectories, lag_frames, window_frames
from .twosample import (
    MAX_WINDOWS,
    PERMUTATIONS,
    EpisodeStats,
    classifier_test,
    distance_statistics,
    permutation_p,
    seed_permutations,
    smallest_p,
    window_features,
)

__all__ = ["HumanlikeTarget", "combined_statistic", "compare_play"]

logger = logging.getLogger(__name__)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class HumanlikeTarget:
    """The person's held-out episodes, with everything the metrics need precomputed once.

    `train` (the person's training episodes) fixes the reaction shift δ of
    `action_accuracy_shift` (`choose_shift`); `shift` sets it directly; with neither it is
    None. `permutations` relabellings give every test's p-value; all draws derive from `seed`.
    """

    def __init__(
        self,
        target: Trajectories,
        env: str,
        *,
        train: Trajectories | None = None,
        shift: int | None = None,
        num_actions: int | None = None,
        fps: float | None = None,
        seed: int = 0,
        permutations: int = PERMUTATIONS,
    ) -> None:
        from hbm_data import get_env_spec

        spec = get_env_spec(env)
        self.env = spec.name
        self.trajectories = target
        self.num_actions = int(num_actions or spec.num_actions)
        self.fps = float(fps or spec.fps)
        self.max_shift = lag_frames(self.fps)
        self.window = window_frames(self.fps)
        self.shift_scores: list[float] | None = None
        if shift is None and train is not None:
            shift, self.shift_scores = choose_shift(train, self.max_shift)
        self.shift = shift
        self.actions = target.flat_actions
        self.lengths = target.lengths
        self.seed = int(seed)
        self.permutations = int(permutations)
        self._stats = EpisodeStats.of(target, self.env)
        self._windows = window_features(
            target, self.env, num_actions=self.num_actions, window=self.window, seed=self.seed,
            label="episode",
        )  # fmt: skip

    def accuracy(self, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """`predicted [..., N]` argmax actions on the target's steps -> (accuracy, accuracy
        against the action δ frames later, None without a shift) `[...]`."""
        predicted = np.asarray(predicted, dtype=np.int64)
        if predicted.shape[-1] != len(self.actions):
            raise ValueError(
                f"predicted has {predicted.shape[-1]} steps, the target {len(self.actions)}"
            )
        acc = action_accuracy(predicted, self.actions)
        if self.shift is None:
            return acc, None
        return acc, shift_accuracy(predicted, self.actions, self.lengths, self.shift)

    def score(
        self,
        candidate: Trajectories,
        predicted: np.ndarray | None = None,
        *,
        seed: int | None = None,
        discriminator: bool = True,
    ) -> dict[str, Any]:
        """The `humanlike` block of `candidate` against the target: each metric of `METRICS`,
        each test's permutation p-value (`<metric>_p`, `discriminator_p`), every test at once
        (`combined_z`, `combined_p`: `combined_statistic`), and the parts
        (`switch_rate`, `switch_rate_person`, `shift_frames`, `p_min`, ...).

        The candidate's episodes are paired with the target's by start seed (a model's
        `repeats` rollouts of each held-out seed); relabelling happens within each seed. A
        candidate that shares no seed with the target is compared unpaired (relabelling over
        all episodes, `paired_seeds` 0). `predicted [N]`: the candidate's teacher-forced
        actions on the target's steps (None: accuracies None). `discriminator=False` skips
        the classifier test, the dearest part (its keys None).
        """
        seed = self.seed if seed is None else int(seed)
        t = self.trajectories
        acc = shift_acc = None
        if predicted is not None:
            a, b = self.accuracy(predicted)
            acc, shift_acc = _finite(float(a)), None if b is None else _finite(float(b))
        e_t, e_c = len(t), len(candidate)
        labels = np.concatenate([np.ones(e_t, np.int8), np.zeros(e_c, np.int8)])
        groups = np.concatenate([t.seeds, candidate.seeds])
        paired = len(np.intersect1d(t.seeds, candidate.seeds))
        if paired == 0:
            logger.warning(
                "the candidate's %d episodes share no start seed with the target's %d: "
                "compared unpaired",
                e_c,
                e_t,
            )
            groups = np.zeros(len(labels), np.int64)
        rng = np.random.default_rng([seed, 13])
        y = seed_permutations(labels, groups, self.permutations, rng)  # [B + 1, E]
        cand = EpisodeStats.of(candidate, self.env)
        dist = distance_statistics(self._stats.pool(cand), y, self.fps)
        block: dict[str, Any] = {
            "action_accuracy": acc,
            "action_accuracy_shift": shift_acc,
        }
        stats: dict[str, np.ndarray] = {}
        for key, (value, stat) in dist.items():
            block[key] = _finite(float(value[0]))
            block[f"{key}_p"] = permutation_p(stat) if block[key] is not None else None
            stats[key] = stat
        block["discriminator_auc"] = block["discriminator_p"] = None
        if discriminator:
            auc = self._classifier_auc(candidate, y, groups, seed)
            block["discriminator_auc"] = _finite(float(auc[0]))
            if block["discriminator_auc"] is not None:
                block["discriminator_p"] = permutation_p(auc)
            stats["discriminator_auc"] = auc
        block["combined_z"], block["combined_p"] = combined_statistic(stats)
        block["session_return_spearman"] = session_return_spearman(
            candidate.returns, candidate.sessions, t.returns, t.sessions
        )
        switches = np.array([np.count_nonzero(np.diff(a)) for a in candidate.actions])
        person_switches = np.array([np.count_nonzero(np.diff(a)) for a in t.actions])
        block |= {
            # the parts, for reports
            "shift_frames": self.shift,
            "max_shift_frames": self.max_shift,
            "switch_rate": float(switches.sum() / candidate.lengths.sum() * self.fps),
            "switch_rate_person": float(person_switches.sum() / t.lengths.sum() * self.fps),
            "mean_hold": float(_mean_hold(cand)),
            "mean_hold_person": float(_mean_hold(self._stats)),
            "mean_return": float(candidate.returns.mean()),
            "mean_return_person": float(t.returns.mean()),
            "window_frames": self.window,
            "episodes": e_c,
            "person_episodes": e_t,
            "paired_seeds": paired,
            "sessions": len(np.unique(t.sessions)),
            "permutations": self.permutations,
            "p_min": smallest_p(labels, groups, self.permutations),
        }
        return block

    def _classifier_auc(
        self, candidate: Trajectories, y: np.ndarray, groups: np.ndarray, seed: int
    ) -> np.ndarray:
        """`[B + 1]` pooled out-of-fold AUCs of the target (1) against the candidate (0)."""
        z_t, own_t = self._windows
        z_c, own_c = window_features(
            candidate, self.env, num_actions=self.num_actions, window=self.window,
            seed=self.seed, label="episode",
        )  # fmt: skip
        z = np.concatenate([z_t, z_c])
        owner = np.concatenate([own_t, own_c + len(self.trajectories)])
        if len(z) > MAX_WINDOWS:  # a seeded subsample bounds the cost
            keep = np.sort(
                np.random.default_rng([seed, 7]).choice(len(z), MAX_WINDOWS, replace=False)
            )
            z, owner = z[keep], owner[keep]
        return classifier_test(z, owner, y, groups, seed=seed)


def combined_statistic(stats: dict[str, np.ndarray]) -> tuple[float | None, float | None]:
    """Every test's statistic at once: `(z, p)` of the mean standardised statistic.

    `stats`: per test, `[B + 1]` statistics (row 0 observed, rows 1..B the same relabellings
    for every test, larger = further apart). Each test's rows are standardised by its own
    relabelled rows (mean, standard deviation), so a test counts by how far the observed play
    lies outside its own null, not by its units; the mean over tests is a direct combining
    function of a non-parametric combination (Pesarin & Salmaso, *Permutation Tests for
    Complex Data*, 2010), and ranking it among the relabelled rows' means gives a p-value that
    is exact under the null because every test sees the same relabellings. `z` is the observed
    mean (about 0 when alike, large when told apart). A test undefined on the observed play, or
    constant over the relabellings, is left out; None without any test.
    """
    parts = []
    for s in stats.values():
        s = np.asarray(s, dtype=np.float64)
        rest = s[1:][np.isfinite(s[1:])]
        if not math.isfinite(s[0]) or len(rest) < 2 or not np.std(rest) > 0:
            continue
        parts.append((np.where(np.isfinite(s), s, np.nan) - rest.mean()) / np.std(rest))
    if not parts:
        return None, None
    z = np.nanmean(np.stack(parts), axis=0)
    return float(z[0]), permutation_p(z)


def _mean_hold(stats: EpisodeStats) -> float:
    counts = stats.holds.sum(axis=0)
    return float(counts @ np.arange(1, len(counts) + 1) / counts.sum())


def _as_trajectories(play: Trajectories | Sequence[Any]) -> Trajectories:
    if isinstance(play, Trajectories):
        return play
    return Trajectories.from_episodes(list(play))


def compare_play(
    target_episodes: Trajectories | Sequence[Any],
    candidate_episodes: Trajectories | Sequence[Any],
    env: str,
    *,
    seed: int = 0,
    permutations: int = PERMUTATIONS,
    discriminator: bool = True,
) -> dict[str, Any]:
    """The `humanlike` block of any play against any other: `hbm_data.Episode` lists (e.g.
    `hbm_data.load_episodes` of two recordings) or `Trajectories`, paired by start seed.

    The same code path as the experiments' block (`HumanlikeTarget.score`); action accuracies
    are None (a recording has no policy to ask). Two recordings of one simulated style with
    different luck (`SubjectProfile.with_seed`) on the same seeds are the null pair: each p-value
    is then uniform, below 0.05 one time in twenty."""
    target = HumanlikeTarget(
        _as_trajectories(target_episodes), env, seed=seed, permutations=permutations
    )
    return target.score(_as_trajectories(candidate_episodes), discriminator=discriminator)
