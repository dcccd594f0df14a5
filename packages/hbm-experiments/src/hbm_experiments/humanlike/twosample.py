"""Two-sample permutation tests of one player's episodes against another's.

Every distance (key holds, switching, states, returns) and the discriminator are statistics of
a labelled pool of episodes: the target's (label 1) and the candidate's (label 0). Under the
null (both play alike) the labels are exchangeable *within a start seed*, so the p-value of each
statistic comes from relabelling the episodes within each seed (the same seed's target and
candidate episodes swap sides, never episodes of different seeds: a seed's difficulty stays on
both sides). The discriminator is a classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017):
a classifier learns to tell target windows from candidate windows with whole seeds held out
(both sides of a seed in one fold, so neither side of a test seed is seen in training), one
ROC AUC from the pooled out-of-fold scores, and the same relabelling gives its null.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._threads import _one_blas_thread
from .metrics import STATE_GRIDS, StateGrid, hold_durations, jensen_shannon, state_histograms
from .trajectories import Trajectories, window_frames

__all__ = [
    "FOLDS",
    "MAX_WINDOWS",
    "PERMUTATIONS",
    "RBF_COMPONENTS",
    "EpisodeStats",
    "classifier_test",
    "distance_statistics",
    "permutation_p",
    "relabelings",
    "seed_permutations",
    "smallest_p",
    "trajectory_windows",
    "window_features",
]

PERMUTATIONS = 199
"""Relabellings per test: the smallest p-value is 1/200 = 0.005 (or 1 / the number of distinct
relabellings, when the data allows fewer)."""
FOLDS = 5
"""Folds of the classifier two-sample test, whole seeds per fold (fewer with fewer seeds)."""
MAX_WINDOWS = 3000
"""Windows of the pooled sample the classifier sees at most (a seeded subsample): its cost."""
RBF_COMPONENTS = 200
"""Random Fourier features per window (the discriminator's and the stylometry's input)."""
RIDGE_ALPHA = 1.0
"""Ridge penalty of the discriminator (scikit-learn's `Ridge` default)."""


# ---------------------------------------------------------------------------------------------
# Relabelling within seeds


def _dense(groups: np.ndarray) -> np.ndarray:
    return np.unique(np.asarray(groups), return_inverse=True)[1].reshape(-1)


def seed_permutations(
    labels: np.ndarray, groups: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """`[n + 1, E]` labels: row 0 the observed `labels [E]` (0/1), rows 1..n each a random
    relabelling within every group (`groups [E]`, e.g. start seeds): a group keeps its count of
    ones, and which of its episodes carry them is shuffled."""
    y = np.asarray(labels, dtype=np.int8)
    g = _dense(groups)
    order = np.argsort(g, kind="stable")
    keys = g[None, :] + rng.random((n, len(y)))  # sorted by group, random within it
    perm = np.argsort(keys, axis=1)
    out = np.empty((n + 1, len(y)), dtype=np.int8)
    out[0] = y
    np.put_along_axis(out[1:], perm, y[order][None, :], axis=1)
    return out


def relabelings(labels: np.ndarray, groups: np.ndarray) -> float:
    """Number of distinct within-group relabellings: the product over groups of C(n_g, k_g)."""
    y, g = np.asarray(labels), _dense(groups)
    logs = sum(
        math.lgamma(int(np.sum(g == i)) + 1)
        - math.lgamma(int(np.sum(y[g == i])) + 1)
        - math.lgamma(int(np.sum(1 - y[g == i])) + 1)
        for i in np.unique(g)
    )
    return math.exp(min(logs, 700.0))


def smallest_p(labels: np.ndarray, groups: np.ndarray, n: int = PERMUTATIONS) -> float:
    """The smallest p-value the test can give: 1/(n + 1), or the exact test's smallest when
    that is larger (few seeds): 1 / the number of distinct relabellings, or 2 / it when every
    seed has as many target as candidate episodes (the mirror relabelling, every seed swapped,
    then gives every symmetric statistic its observed value again)."""
    y, g = np.asarray(labels), _dense(groups)
    mirror = all(2 * int(np.sum(y[g == i])) == int(np.sum(g == i)) for i in np.unique(g))
    return max(1.0 / (n + 1), (2.0 if mirror else 1.0) / relabelings(labels, groups))


def permutation_p(stat: np.ndarray) -> float | None:
    """One-sided Monte Carlo p-value: `stat [n + 1]`, row 0 observed, larger = further apart;
    (1 + #{relabelled ≥ observed}) / (n + 1) (Phipson & Smyth 2010: never 0). None when the
    observed statistic is undefined; undefined relabellings count as not larger."""
    s = np.asarray(stat, dtype=np.float64)
    if math.isnan(s[0]):
        return None
    tol = 1e-12 * max(1.0, abs(s[0])) if math.isfinite(s[0]) else 0.0
    rest = s[1:]
    hits = int(np.sum(np.nan_to_num(rest, nan=-math.inf) >= s[0] - tol))
    return (1 + hits) / len(s)


# ---------------------------------------------------------------------------------------------
# Distances from per-episode counts


@dataclass(frozen=True)
class EpisodeStats:
    """What every distance needs of each episode, so that a relabelled pool costs a matrix
    product: `holds [E, L]` counts of key holds lasting 1..L frames, `switches [E]` action
    changes, `frames [E]`, `states [E, D, K]` state-visitation counts on the game's grid,
    `returns [E]`."""

    holds: np.ndarray
    switches: np.ndarray
    frames: np.ndarray
    states: np.ndarray
    returns: np.ndarray

    @classmethod
    def of(cls, traj: Trajectories, env: str | StateGrid) -> EpisodeStats:
        per = [hold_durations([a]) for a in traj.actions]
        width = max(int(h.max()) for h in per)
        holds = np.zeros((len(traj), width), dtype=np.float64)
        for e, h in enumerate(per):
            holds[e] = np.bincount(h - 1, minlength=width)
        return cls(
            holds,
            np.array([len(h) - 1 for h in per], dtype=np.float64),
            traj.lengths.astype(np.float64),
            np.stack([state_histograms(o, env) for o in traj.obs]).astype(np.float64),
            np.asarray(traj.returns, dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.frames)

    def pool(self, other: EpisodeStats) -> EpisodeStats:
        """These episodes, then `other`'s (hold counts padded to the longer hold)."""
        width = max(self.holds.shape[1], other.holds.shape[1])

        def pad(h: np.ndarray) -> np.ndarray:
            return np.pad(h, ((0, 0), (0, width - h.shape[1])))

        return EpisodeStats(
            np.concatenate([pad(self.holds), pad(other.holds)]),
            np.concatenate([self.switches, other.switches]),
            np.concatenate([self.frames, other.frames]),
            np.concatenate([self.states, other.states]),
            np.concatenate([self.returns, other.returns]),
        )


def distance_statistics(
    stats: EpisodeStats, labels: np.ndarray, fps: float
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each distance for every row of `labels [B, E]` (1 = target, 0 = candidate): `{key:
    (value [B], statistic [B])}`, the statistic larger the further apart (two-sided).

    - `hold_duration_w1`: Wasserstein-1 (frames) between the pooled hold durations, the sum
      over h of |F_cand(h) - F_target(h)| (integer support: scipy's `wasserstein_distance`).
    - `switch_rate_ratio`: changes per second candidate / target; statistic |log2 ratio|.
    - `state_jsd`: mean over dimensions of the base-2 JSD of the pooled visitation counts.
    - `return_diff`: mean return candidate - target; statistic |difference|.
    """
    y1 = np.asarray(labels, dtype=np.float64)
    y0 = 1.0 - y1
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    h1, h0 = y1 @ stats.holds, y0 @ stats.holds
    with np.errstate(invalid="ignore", divide="ignore"):
        cdf1 = np.cumsum(h1, axis=1) / h1.sum(axis=1, keepdims=True)
        cdf0 = np.cumsum(h0, axis=1) / h0.sum(axis=1, keepdims=True)
        w1 = np.abs(cdf1 - cdf0).sum(axis=1)
        out["hold_duration_w1"] = (w1, w1)
        r1 = (y1 @ stats.switches) / (y1 @ stats.frames)
        r0 = (y0 @ stats.switches) / (y0 @ stats.frames)
        ratio = np.where(r1 > 0, r0 / np.where(r1 > 0, r1, 1.0), np.where(r0 > 0, np.inf, 1.0))
        out["switch_rate_ratio"] = (ratio, np.abs(np.log2(ratio)))
        s1 = np.einsum("be,edk->bdk", y1, stats.states)
        s0 = np.einsum("be,edk->bdk", y0, stats.states)
        jsd = jensen_shannon(s0, s1).mean(axis=-1)
        out["state_jsd"] = (jsd, jsd)
        diff = (y0 @ stats.returns) / y0.sum(axis=1) - (y1 @ stats.returns) / y1.sum(axis=1)
        out["return_diff"] = (diff, np.abs(diff))
    return out


# ---------------------------------------------------------------------------------------------
# The classifier two-sample test (discriminator)


def trajectory_windows(
    traj: Trajectories,
    num_actions: int,
    window: int,
    *,
    grid: StateGrid | None = None,
    stride: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-length windows of (observation, one-hot action), flattened, and their episode.

    Each episode gives windows starting every `stride` (default ⌈W/2⌉) frames; an episode shorter
    than W is padded by repeating its last frame (one window). With `grid`, observations are
    rescaled to [-1, 1] over the grid's fixed ranges (the same scale for every model, fitted on
    no data). Returns `X [M, W·(D + A)]` float64 (frame-major) and `episode [M]` (index into
    `traj`).
    """
    stride = max(1, stride or (window + 1) // 2)
    d = traj.obs[0].shape[1]
    if grid is not None:
        lo, hi = np.asarray(grid.low), np.asarray(grid.high)
        mid, half = (lo + hi) / 2, (hi - lo) / 2
    feats, owners = [], []
    for e, (o, a) in enumerate(zip(traj.obs, traj.actions, strict=True)):
        t = len(a)
        frame = np.zeros((max(t, window), d + num_actions))
        frame[:t, :d] = o if grid is None else (o[:, : len(mid)] - mid) / half
        frame[np.arange(t), d + a] = 1.0
        if t < window:
            frame[t:] = frame[t - 1]
        starts = np.arange(0, len(frame) - window + 1, stride)
        view = np.lib.stride_tricks.sliding_window_view(frame, (window, frame.shape[1]))
        feats.append(view[starts, 0].reshape(len(starts), -1))
        owners.append(np.full(len(starts), e))
    return np.concatenate(feats), np.concatenate(owners)


def window_features(
    traj: Trajectories,
    env: str,
    *,
    num_actions: int | None = None,
    window: int | None = None,
    seed: int = 0,
    label: Literal["seed", "episode"] = "seed",
) -> tuple[np.ndarray, np.ndarray]:
    """The discriminator's input: each window mapped to `RBF_COMPONENTS` random Fourier features
    of an RBF kernel (scikit-learn's `RBFSampler`, bandwidth γ = 4 / window size).

    The map depends only on `seed` and the sizes, never on data, so the person's side is
    computed once for every model and nothing about a test fold leaks into it. Returns
    `Z [M, RBF_COMPONENTS]` and, per window `[M]`, the start seed of its episode (its CV group)
    or, with `label="episode"`, the episode's index in `traj`.
    """
    from hbm_data import get_env_spec
    from sklearn.kernel_approximation import RBFSampler

    spec = get_env_spec(env)
    a = int(num_actions or spec.num_actions)
    w = int(window or window_frames(spec.fps))
    x, owner = trajectory_windows(traj, a, w, grid=STATE_GRIDS[spec.name])
    rff = RBFSampler(gamma=4.0 / x.shape[1], n_components=RBF_COMPONENTS, random_state=seed)
    return rff.fit(x[:1]).transform(x), traj.seeds[owner] if label == "seed" else owner


def _subsample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most `cap` of `n` windows, drawn without replacement."""
    if n <= cap:
        return np.arange(n)
    return np.sort(rng.choice(n, size=cap, replace=False))


def _fold_of(groups: np.ndarray, folds: int, rng: np.random.Generator) -> np.ndarray:
    """Fold per episode: whole groups (seeds) to a fold, shuffled, dealt round-robin."""
    g = _dense(groups)
    order = rng.permutation(int(g.max()) + 1)
    return np.argsort(order)[g] % folds


def classifier_test(
    z: np.ndarray,
    owner: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    folds: int = FOLDS,
    seed: int = 0,
    alpha: float = RIDGE_ALPHA,
) -> np.ndarray:
    """ROC AUC of the pooled out-of-fold scores for every row of `labels [B, E]`.

    `z [M, F]` window features, `owner [M]` each window's episode (index into the pool of E
    episodes), `groups [E]` the episodes' seeds: all windows of a seed share a fold. The
    classifier is ridge regression of the ±1 label on `z` with an intercept (scikit-learn's
    `Ridge(alpha)`: approximately kernel ridge classification on the random RBF features),
    scored without the intercept (a per-fold constant); its solution is linear in the labels,
    so one factorisation per fold scores every relabelling at once. Returns `[B]` (NaN where
    a row lacks one class); the AUC is the Mann-Whitney U of the target's scores over the
    candidate's, ties counting one half.
    """
    from scipy.stats import rankdata

    y = np.asarray(labels, dtype=np.float64)[:, owner]  # [B, M]
    k = min(folds, len(np.unique(groups)))
    if k < 2:
        return np.full(len(y), np.nan)
    fold = _fold_of(np.asarray(groups), k, np.random.default_rng([seed, 17]))[owner]
    scores = np.empty_like(y)
    eye = alpha * np.eye(z.shape[1])
    with _one_blas_thread():
        for f in range(k):
            te = fold == f
            tr = ~te
            mu = z[tr].mean(axis=0)
            xc = z[tr] - mu
            t = 2.0 * y[:, tr] - 1.0
            # the intercept (the training labels' mean) is left out of the scores: it shifts a
            # whole fold, against the fold's own label balance (fewer target windows in
            # training, more in the test fold), which pulls a pooled AUC below 0.5
            w = np.linalg.solve(xc.T @ xc + eye, xc.T @ t.T)  # [F, B]; xc is centred
            scores[:, te] = ((z[te] - mu) @ w).T
    ranks = rankdata(scores, axis=1)
    n1 = y.sum(axis=1)
    n0 = y.shape[1] - n1
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((ranks * y).sum(axis=1) - n1 * (n1 + 1) / 2) / (n1 * n0)
