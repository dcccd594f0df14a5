"""Who is who: does a player index stay with one person across a worker's trials?

Every row's `is_leader` is True and nothing names which of the two players the logging worker
controlled. Two measurements on the actions alone decide what can be decided:

1. *An input signature per index.* For each (trial, player), six style features of the action
   sequence (`STYLE_FEATURES`). Where one index differs from the other in (nearly) every trial,
   the two indices were produced by two different input paths (the logging browser's own keys
   and the partner's keys relayed to it), always the same way round: the index→role mapping is
   fixed for the whole study. Which role is the logging worker's the data does not say.
2. *A person per index.* With the features centred within (layout, index) (so the role and the
   kitchen no longer count), two trials of one worker on different layouts are matched
   "straight" (player 0 with player 0, 1 with 1) or "crossed"; if each index is one person,
   straight matches are closer more often than the 50% of unrelated trials. The p-value
   permutes which worker logged each trial within each layout.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .trials import Trial

STYLE_FEATURES = (
    "stay",  # share of ticks with no key (STAY)
    "interact",  # share of INTERACT
    "move_repeat",  # P(same move | a move the tick before)
    "stay_repeat",  # P(STAY | STAY the tick before)
    "interact_repeat",  # P(INTERACT | INTERACT the tick before)
    "switch",  # share of ticks whose action differs from the tick before
)
_STAY, _INTERACT = 4, 5


def style_features(actions: np.ndarray) -> np.ndarray:
    """`[len(STYLE_FEATURES)]` of one player's action sequence `[T]` (T ≥ 2)."""
    a = np.asarray(actions)
    prev, nxt = a[:-1], a[1:]

    def repeat(mask: np.ndarray) -> float:
        return float((nxt[mask] == prev[mask]).mean()) if mask.any() else 0.0

    return np.array(
        [
            (a == _STAY).mean(),
            (a == _INTERACT).mean(),
            repeat(prev < _STAY),
            repeat(prev == _STAY),
            repeat(prev == _INTERACT),
            (nxt != prev).mean(),
        ]
    )


def sign_test_p(k: int, n: int) -> float:
    """Two-sided exact binomial p-value of k successes in n trials at 1/2."""
    tail = min(k, n - k)
    return min(1.0, 2.0 * sum(math.comb(n, i) for i in range(tail + 1)) / 2.0**n)


@dataclass(frozen=True)
class PlayerEvidence:
    """The two measurements of the module docstring, on one set of trials."""

    n_trials: int
    n_workers: int
    #: per feature: mean over trials of player 0, of player 1, trials where player 0 < player 1
    index_means: dict[str, tuple[float, float, int]]
    #: trial pairs (one worker, two layouts) and how many matched straight
    same_worker_pairs: int
    same_worker_straight: int
    #: the same over pairs of trials of two different workers (the 50% baseline)
    other_worker_pairs: int
    other_worker_straight: int
    permutation_p: float
    permutations: int

    @property
    def same_worker_rate(self) -> float:
        return self.same_worker_straight / max(1, self.same_worker_pairs)

    @property
    def other_worker_rate(self) -> float:
        return self.other_worker_straight / max(1, self.other_worker_pairs)

    def lines(self) -> list[str]:
        """The evidence as text (for the CLI and the README)."""
        n = self.n_trials
        out = [f"{n} trials of {self.n_workers} workers", "feature          player 0  player 1  "
               "trials with p0 < p1 (sign test)"]  # fmt: skip
        for name, (m0, m1, k) in self.index_means.items():
            out.append(f"{name:<16} {m0:8.3f}  {m1:8.3f}  {k:3d}/{n} (p = {sign_test_p(k, n):.1g})")
        out.append(
            f"straight matches, one worker's trials on two layouts: {self.same_worker_straight}/"
            f"{self.same_worker_pairs} = {self.same_worker_rate:.1%}; two workers' trials: "
            f"{self.other_worker_straight}/{self.other_worker_pairs} = "
            f"{self.other_worker_rate:.1%}; permutation p = {self.permutation_p:.2g} "
            f"({self.permutations} permutations of workers within layouts)"
        )
        return out


def player_evidence(
    trials: Sequence[Trial], *, permutations: int = 2000, seed: int = 0
) -> PlayerEvidence:
    """Both measurements over `trials` (at least two layouts of some worker)."""
    feats = np.array([[style_features(t.actions[:, p]) for p in (0, 1)] for t in trials])
    n = len(trials)  # feats: [n, 2, F]
    index_means = {
        name: (float(feats[:, 0, f].mean()), float(feats[:, 1, f].mean()),
               int((feats[:, 0, f] < feats[:, 1, f]).sum()))
        for f, name in enumerate(STYLE_FEATURES)
    }  # fmt: skip
    scale = feats.reshape(-1, feats.shape[-1]).std(axis=0)
    scale[scale == 0] = 1.0
    layouts = np.array([t.layout for t in trials])
    centred = feats.copy()
    for layout in set(layouts.tolist()):
        rows = layouts == layout
        centred[rows] -= feats[rows].mean(axis=0, keepdims=True)
    centred /= scale
    straight = np.zeros((n, n), dtype=bool)  # straight match closer than crossed
    for i, j in itertools.combinations(range(n), 2):
        d = np.linalg.norm(centred[i][:, None, :] - centred[j][None, :, :], axis=-1)  # [2, 2]
        straight[i, j] = straight[j, i] = d[0, 0] + d[1, 1] < d[0, 1] + d[1, 0]
    other_layout = layouts[:, None] != layouts[None, :]
    upper = np.triu(np.ones((n, n), dtype=bool), 1) & other_layout
    workers = np.array([t.worker for t in trials])

    def count(labels: np.ndarray) -> tuple[int, int]:
        same = upper & (labels[:, None] == labels[None, :])
        return int(same.sum()), int(straight[same].sum())

    pairs, hits = count(workers)
    other = upper & (workers[:, None] != workers[None, :])
    rng = np.random.default_rng(seed)
    rate = hits / max(1, pairs)
    at_least = 0
    for _ in range(permutations):
        shuffled = workers.copy()
        for layout in set(layouts.tolist()):
            rows = np.flatnonzero(layouts == layout)
            shuffled[rows] = rng.permutation(workers[rows])
        p_pairs, p_hits = count(shuffled)
        at_least += p_hits / max(1, p_pairs) >= rate
    return PlayerEvidence(
        n_trials=n,
        n_workers=len(set(workers.tolist())),
        index_means=index_means,
        same_worker_pairs=pairs,
        same_worker_straight=hits,
        other_worker_pairs=int(other.sum()),
        other_worker_straight=int(straight[other].sum()),
        permutation_p=(1 + at_least) / (1 + permutations),
        permutations=permutations,
    )
