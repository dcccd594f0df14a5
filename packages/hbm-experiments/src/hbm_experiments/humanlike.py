"""Does a model play like *this* person? The metrics of issue 15, beyond mean returns.

Every metric compares a *candidate* (model rollouts, or a reference) with the person's held-out
episodes, the *target*; sources are in /work/shared/reference/humanlike-evaluation.md:

- `action_accuracy`: argmax of the policy, teacher-forced on the person's held-out observations
  (recurrent state carried within each episode), against the recorded action (Maia's
  move-matching accuracy, McIlroy-Young et al. 2020).
- `action_accuracy_lag`: the same, a prediction matching when the person pressed that action
  within ±k frames, `k = lag_frames(fps)` = ⌊0.3 s · fps + ½⌋ (5 frames at 15 fps, 6 at 20 fps):
  people react 250–300 ms late (Atari-HEAD, Zhang et al. 2020; Kanervisto et al. 2020).
- `hold_duration_w1`: Wasserstein-1 distance, in frames, between the key-hold durations (frames
  an action is kept before it changes, the no-op included; the last hold of an episode counts
  as cut by the episode's end) of candidate and target (EMD over behaviour signatures, "Automatable
  Evaluation Method Oriented toward Behaviour Believability", 2010).
- `switch_rate_ratio`: action changes per second, candidate / target (1 = same).
- `state_jsd`: mean over observation dimensions of the base-2 Jensen–Shannon divergence (in
  [0, 1]) between state-visitation histograms on the fixed grid `STATE_GRIDS` (the JSD over a
  discretised state grid of the 2026 preprint in the reference).
- `discriminator_auc`, `discriminator_auc_ci`: an automated Turing test (Navigation Turing Test,
  Devlin et al. 2021): a classifier tells `window_frames(fps)`-frame windows of (observation,
  one-hot action) of the target from the candidate's (scikit-learn's `Ridge` of the ±1 label on
  `RBFSampler` random RBF features: approximately kernel ridge classification); mean ROC AUC
  over 5 `StratifiedGroupKFold` folds grouped by start seed, 95 % interval by the corrected
  resampled t (Nadeau & Bengio 2003). 0.5 = indistinguishable; below 0.5 reads as chance.
- `session_return_spearman`: Spearman's ρ between the candidate's and the person's mean return per
  session of the held-out episodes (does the model follow the person's learning?); None with
  fewer than 3 sessions or a constant side.

The plain-array functions are testable without training; `HumanlikeTarget` holds the person's
side once so that many candidates (a population, a cross-subject matrix) are scored cheaply;
`evaluate_humanlike` / `evaluate_humanlike_many` roll policies out and return the blocks;
`person_reference` (held-out vs the person's own training episodes: the floor) and
`random_reference` (a uniform random policy on the same seeds: the ceiling) make them readable.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "METRICS",
    "REACTION_TIME_S",
    "STATE_GRIDS",
    "WINDOW_S",
    "HumanlikeTarget",
    "MetricInfo",
    "StateGrid",
    "Trajectories",
    "UniformPolicy",
    "action_accuracy",
    "discriminator_auc",
    "evaluate_humanlike",
    "evaluate_humanlike_many",
    "gap",
    "hold_duration_w1",
    "hold_durations",
    "humanlike_columns",
    "humanlike_references",
    "jensen_shannon",
    "lag_accuracy",
    "lag_frames",
    "person_reference",
    "predict_actions",
    "random_reference",
    "record_rollouts",
    "session_return_spearman",
    "state_histograms",
    "state_jsd",
    "switch_rate",
    "switch_rate_ratio",
    "trajectory_windows",
    "window_features",
    "window_frames",
]

Ints = Sequence[int] | np.ndarray
"""Per-episode integers (lengths, sessions, seeds): a sequence or a 1-D array."""

REACTION_TIME_S = 0.3
"""Human reaction window for `action_accuracy_lag` (Atari-HEAD: 250–300 ms)."""
WINDOW_S = 0.5
"""Length of the discriminator's and the stylometry's trajectory windows, in seconds."""
FOLDS = 5
"""Grouped cross-validation folds of the discriminator (fewer when there are fewer seeds)."""
MAX_WINDOWS = 600
"""Windows per class the discriminator trains on at most (a seeded subsample): bounds its cost."""
RBF_COMPONENTS = 200
"""Random Fourier features per window (the discriminator's and the stylometry's input)."""
KNN_NEIGHBOURS = 5
"""Neighbours of the person reference's action predictor (the person's own nearest choices)."""


def _half_up(x: float) -> int:
    return math.floor(x + 0.5)


def lag_frames(fps: float) -> int:
    """k of `action_accuracy_lag`: ⌊0.3 s · fps + ½⌋ frames (5 at 15 fps, 6 at 20 fps)."""
    return _half_up(REACTION_TIME_S * fps)


def window_frames(fps: float) -> int:
    """Window length W in frames: ⌊0.5 s · fps + ½⌋ (8 at 15 fps, 10 at 20 fps)."""
    return max(2, _half_up(WINDOW_S * fps))


# ---------------------------------------------------------------------------------------------
# Trajectories


@dataclass(frozen=True)
class Trajectories:
    """E episodes of one player (a person or a model), the unit every metric compares.

    `obs[e]` `[T_e, obs_size]` float (the environment's observation only, no CL features),
    `actions[e]` `[T_e]` int64, `returns` `[E]`, `sessions` `[E]` (the session of the person's
    episode it belongs to or replays), `seeds` `[E]` (start seed: the discriminator's CV group).
    """

    obs: tuple[np.ndarray, ...]
    actions: tuple[np.ndarray, ...]
    returns: np.ndarray
    sessions: np.ndarray
    seeds: np.ndarray

    def __post_init__(self) -> None:
        e = len(self.obs)
        sizes = {len(self.actions), len(self.returns), len(self.sessions), len(self.seeds)}
        if sizes != {e} or e == 0:
            raise ValueError(f"Trajectories: need E >= 1 equal lengths, got {e} and {sizes}")
        for i, (o, a) in enumerate(zip(self.obs, self.actions, strict=True)):
            if o.ndim != 2 or a.shape != (o.shape[0],) or o.shape[0] == 0:
                raise ValueError(f"episode {i}: obs {o.shape} and actions {a.shape} disagree")

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def lengths(self) -> np.ndarray:
        """`[E]` steps per episode."""
        return np.array([len(a) for a in self.actions], dtype=np.int64)

    @property
    def flat_actions(self) -> np.ndarray:
        """`[N]` all actions, episodes concatenated."""
        return np.concatenate(self.actions)

    @property
    def flat_obs(self) -> np.ndarray:
        """`[N, obs_size]` all observations, episodes concatenated."""
        return np.concatenate(self.obs)

    @classmethod
    def from_arrays(
        cls,
        obs: np.ndarray,
        actions: np.ndarray,
        lengths: Ints,
        *,
        returns: Sequence[float] | None = None,
        sessions: Sequence[int] | None = None,
        seeds: Sequence[int] | None = None,
    ) -> Trajectories:
        """From flat `obs [N, D]`, `actions [N]` split by `lengths [E]` (defaults: 0, 0, 0..E-1)."""
        ends = np.cumsum(lengths)
        if ends[-1] != len(actions) or len(obs) != len(actions):
            raise ValueError(f"lengths sum to {ends[-1]}, arrays hold {len(obs)}, {len(actions)}")
        starts = ends - np.asarray(lengths)
        e = len(lengths)
        return cls(
            tuple(np.asarray(obs[s:t]) for s, t in zip(starts, ends, strict=True)),
            tuple(
                np.asarray(actions[s:t], dtype=np.int64) for s, t in zip(starts, ends, strict=True)
            ),
            np.zeros(e) if returns is None else np.asarray(returns, dtype=np.float64),
            np.zeros(e, np.int64) if sessions is None else np.asarray(sessions, dtype=np.int64),
            np.arange(e) if seeds is None else np.asarray(seeds, dtype=np.int64),
        )

    @classmethod
    def from_human(cls, data: Any, split: Literal["test", "train"] = "test") -> Trajectories:
        """One split of an `hbm_data.HumanData` (CL columns dropped)."""
        meta = data.metadata
        infos = meta.test_episodes if split == "test" else meta.train_episodes
        obs = data.test_obs if split == "test" else data.train_obs
        act = data.test_act if split == "test" else data.train_act
        if not infos:
            raise ValueError(f"{meta.source_file}: no {split} episodes")
        return cls(
            tuple(obs[i.start : i.start + i.length, : meta.obs_size] for i in infos),
            tuple(act[i.start : i.start + i.length] for i in infos),
            np.array([i.score for i in infos], dtype=np.float64),
            np.array([i.session for i in infos], dtype=np.int64),
            np.array([i.seed for i in infos], dtype=np.int64),
        )

    @classmethod
    def from_episodes(cls, episodes: Sequence[Any], *, gap_minutes: float = 30) -> Trajectories:
        """From `hbm_data.Episode`s (e.g. `simulate_subject`), sessions by the 30-minute rule."""
        from hbm_data.sessions import compute_session_run_ids

        sessions, _ = compute_session_run_ids([e.timestamp for e in episodes], gap_minutes)
        return cls(
            tuple(np.asarray(e.observations) for e in episodes),
            tuple(np.asarray(e.actions, dtype=np.int64) for e in episodes),
            np.array([e.score for e in episodes], dtype=np.float64),
            np.asarray(sessions, dtype=np.int64),
            np.array([e.seed_used for e in episodes], dtype=np.int64),
        )

    def subset(self, indices: Sequence[int] | np.ndarray) -> Trajectories:
        """The episodes `indices`, in that order."""
        idx = [int(i) for i in indices]
        return Trajectories(
            tuple(self.obs[i] for i in idx),
            tuple(self.actions[i] for i in idx),
            self.returns[idx],
            self.sessions[idx],
            self.seeds[idx],
        )


# ---------------------------------------------------------------------------------------------
# Action matching


def action_accuracy(predicted: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Share of steps where the prediction is the recorded action (Maia's move matching).

    `predicted [..., N]` (any leading batch dims, e.g. `[P, N]`), `actions [N]` -> `[...]`.
    """
    return np.mean(np.asarray(predicted) == np.asarray(actions), axis=-1)


def _window_counts(actions: np.ndarray, lengths: Ints, k: int, num_actions: int) -> np.ndarray:
    """`[N, A]`: how often each action occurs within ±k frames of step t, inside t's episode."""
    actions = np.asarray(actions, dtype=np.int64)
    n = len(actions)
    one_hot = np.zeros((n + 1, num_actions), dtype=np.int64)
    one_hot[np.arange(1, n + 1), actions] = 1
    cum = np.cumsum(one_hot, axis=0)  # cum[i] = counts over actions[:i]
    lens = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lens)
    starts = np.repeat(ends - lens, lens)
    stops = np.repeat(ends, lens)
    t = np.arange(n)
    lo = np.maximum(t - k, starts)
    hi = np.minimum(t + k + 1, stops)
    return cum[hi] - cum[lo]


def lag_accuracy(
    predicted: np.ndarray,
    actions: np.ndarray,
    lengths: Ints,
    k: int,
    num_actions: int | None = None,
) -> np.ndarray:
    """Share of steps whose prediction the person pressed within ±k frames (same episode).

    Reaction-time-aware matching (Atari-HEAD; Kanervisto et al. 2020): a model that acts on the
    state the person saw is not penalised for the person's 250–300 ms delay.
    `predicted [..., N]`, `actions [N]`, `lengths [E]` (sum N) -> `[...]`.
    """
    predicted = np.asarray(predicted, dtype=np.int64)
    a = int(num_actions or max(int(np.max(actions)), int(np.max(predicted))) + 1)
    counts = _window_counts(actions, lengths, k, a)  # [N, A]
    return _lag_hits(counts, predicted)


def _lag_hits(counts: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """`counts [N, A]` (from `_window_counts`), `predicted [..., N]` -> lag accuracy `[...]`."""
    n = counts.shape[0]
    if predicted.shape[-1] != n:
        raise ValueError(f"predicted has {predicted.shape[-1]} steps, the actions {n}")
    hit = counts[np.arange(n), predicted]  # broadcasts over the leading dims
    return np.mean(hit > 0, axis=-1)


# ---------------------------------------------------------------------------------------------
# Key holds and switching


def hold_durations(actions: Sequence[np.ndarray]) -> np.ndarray:
    """Frames each action is kept before it changes, per episode, concatenated: `[runs]`.

    The recorder's no-op counts as an action (holding no key is a hold too); the last run of an
    episode ends with the episode.
    """
    lengths = np.array([len(a) for a in actions], dtype=np.int64)
    flat = np.concatenate(actions)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    change = np.flatnonzero(np.diff(flat) != 0) + 1
    cuts = np.union1d(np.union1d(starts, change), [len(flat)])
    return np.diff(cuts)


def hold_duration_w1(candidate: Sequence[np.ndarray], target: Sequence[np.ndarray]) -> float:
    """Wasserstein-1 distance (frames) between the hold durations of two players' actions."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(hold_durations(candidate), hold_durations(target)))


def switch_rate(actions: Sequence[np.ndarray], fps: float) -> float:
    """Action changes per second of play (changes inside episodes / total frames · fps)."""
    runs = len(hold_durations(actions))
    frames = sum(len(a) for a in actions)
    return (runs - len(actions)) / frames * fps


def switch_rate_ratio(
    candidate: Sequence[np.ndarray], target: Sequence[np.ndarray], fps: float = 1.0
) -> float | None:
    """Switch rate candidate / target; 1.0 when neither switches, None when only the candidate
    does (the ratio is infinite)."""
    c, t = switch_rate(candidate, fps), switch_rate(target, fps)
    if t == 0:
        return 1.0 if c == 0 else None
    return c / t


# ---------------------------------------------------------------------------------------------
# State visitation


@dataclass(frozen=True)
class StateGrid:
    """A fixed histogram grid: per observation dimension, `bins` equal bins over [low, high]
    (values outside fall in the edge bins)."""

    names: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    bins: tuple[int, ...]

    def __post_init__(self) -> None:
        if not len(self.names) == len(self.low) == len(self.high) == len(self.bins):
            raise ValueError("StateGrid: names, low, high and bins must have one entry per dim")


_PI = math.pi
STATE_GRIDS: Mapping[str, StateGrid] = {
    # x to the ±2.4 termination bound, the pole angle to ±12° (0.2095 rad, termination)
    "cartpole": StateGrid(
        ("x", "x_dot", "theta", "theta_dot"),
        (-2.4, -3.0, -0.2095, -3.5), (2.4, 3.0, 0.2095, 3.5), (20, 20, 20, 20),
    ),
    # the environment's own bounds
    "mountaincar": StateGrid(
        ("position", "velocity"), (-1.2, -0.07), (0.6, 0.07), (20, 20)
    ),
    # cos/sin of both joints, and the angular velocities to their bounds ±4π, ±9π
    "acrobot": StateGrid(
        ("cos1", "sin1", "cos2", "sin2", "omega1", "omega2"),
        (-1.0, -1.0, -1.0, -1.0, -4 * _PI, -9 * _PI), (1.0, 1.0, 1.0, 1.0, 4 * _PI, 9 * _PI),
        (20, 20, 20, 20, 20, 20),
    ),
    # where landings and crashes happen; leg contacts are 0/1 (two bins)
    "lunarlander": StateGrid(
        ("x", "y", "vx", "vy", "angle", "angular_velocity", "left_leg", "right_leg"),
        (-1.0, -0.2, -2.0, -2.0, -2.0, -3.0, -0.5, -0.5),
        (1.0, 1.6, 2.0, 1.0, 2.0, 3.0, 1.5, 1.5),
        (20, 20, 20, 20, 20, 20, 2, 2),
    ),
}  # fmt: skip
"""The state-visitation grid per environment, the same for every model so that JSDs compare."""


def _grid(env: str | StateGrid) -> StateGrid:
    if isinstance(env, StateGrid):
        return env
    from hbm_data import get_env_spec

    return STATE_GRIDS[get_env_spec(env).name]


def state_histograms(obs: Sequence[np.ndarray] | np.ndarray, env: str | StateGrid) -> np.ndarray:
    """Per-dimension visit counts on the env's fixed grid: `obs [N, D]` (or per-episode list)
    -> `[D, max bins]` (bins past a dimension's own count stay 0)."""
    grid = _grid(env)
    x = np.concatenate(obs) if not isinstance(obs, np.ndarray) else obs
    d = len(grid.bins)
    if x.ndim != 2 or x.shape[1] < d:
        raise ValueError(f"obs has shape {x.shape}: expected [N, >= {d}] for grid {grid.names}")
    low, high = np.asarray(grid.low), np.asarray(grid.high)
    bins = np.asarray(grid.bins)
    idx = np.floor((x[:, :d] - low) / (high - low) * bins).astype(np.int64)
    np.clip(idx, 0, bins - 1, out=idx)
    width = int(bins.max())
    flat = (idx + np.arange(d) * width).ravel()
    return np.bincount(flat, minlength=d * width).reshape(d, width)


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Base-2 Jensen–Shannon *divergence* in [0, 1] of histograms along the last axis.

    scipy's `jensenshannon` returns the distance (the square root), hence the square.
    `p [..., B]`, `q [..., B]` (broadcast; unnormalised counts are fine) -> `[...]`.
    """
    from scipy.spatial.distance import jensenshannon

    p, q = np.broadcast_arrays(np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.asarray(jensenshannon(p, q, base=2, axis=-1)) ** 2
    return np.clip(out, 0.0, 1.0)


def state_jsd(
    candidate: Sequence[np.ndarray] | np.ndarray,
    target: Sequence[np.ndarray] | np.ndarray,
    env: str | StateGrid,
) -> float:
    """Mean over observation dimensions of the JSD between the two state-visitation histograms.

    Per-dimension marginals on a fixed grid, not a joint grid: with ~20 episodes a joint grid
    over 4–8 dimensions is mostly empty cells, and its JSD measures sampling noise (the
    discriminator AUC covers the joint structure)."""
    return float(
        jensen_shannon(state_histograms(candidate, env), state_histograms(target, env)).mean()
    )


# ---------------------------------------------------------------------------------------------
# Discriminator (automated Turing test)


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


def _classifier() -> Any:
    """Ridge regression of the ±1 label on the random RBF features: approximately kernel ridge
    regression (a least-squares SVM), solved in closed form, so a fold costs one small linear
    solve. Windows differ by interactions (which key in which state, whether the key changed,
    how far the pole swings either way) that a linear model on raw one-hot windows cannot
    see; the RBF features see them. (sklearn's `RidgeClassifier` is this same regression
    behind a label encoder that cost a third of the fit.)"""
    from sklearn.linear_model import Ridge

    return Ridge(alpha=1.0)


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney U statistic of the positives' scores over the negatives'
    (U / (n1 n0), ties counting one half): the same number as `roc_auc_score`, without its
    per-call input checks (5 ms a fold, more than the fit)."""
    from scipy.stats import mannwhitneyu

    pos, neg = scores[y == 1], scores[y == 0]
    return float(mannwhitneyu(pos, neg, method="asymptotic").statistic) / (len(pos) * len(neg))


_THREADPOOLS: Any = None


def _one_blas_thread() -> Any:
    """One BLAS/OpenMP thread: the matrices are small, and threads fighting over shared cores
    cost far more than they give (measured: 10x slower on 2 busy cores). The controller is made
    once: each `threadpool_limits()` call rescans the loaded libraries (~10 ms)."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        from threadpoolctl import ThreadpoolController

        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1)


def _subsample(n: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of at most `cap` of `n` windows, drawn without replacement."""
    if n <= cap:
        return np.arange(n)
    return np.sort(rng.choice(n, size=cap, replace=False))


def discriminator_auc(
    target: tuple[np.ndarray, np.ndarray],
    candidate: tuple[np.ndarray, np.ndarray],
    *,
    seed: int = 0,
    folds: int = FOLDS,
    max_windows: int = MAX_WINDOWS,
) -> dict[str, Any]:
    """Automated Turing test (Devlin et al. 2021): can a classifier tell target windows from
    candidate windows? Mean ROC AUC over grouped CV folds and its 95 % interval.

    `target`, `candidate`: `(Z [M, F], seeds [M])` from `window_features`. Windows of episodes
    from the same start seed stay in one fold (the classifier is never tested on a start it
    trained on); each class is subsampled to the same number of windows (at most
    `max_windows`). Interval: t over folds with the Nadeau–Bengio correction of the variance for
    the folds' overlapping training sets. Deterministic given `seed`. Returns
    `{auc, ci: [lo, hi], fold_aucs}`; `auc` None when either side has fewer than 2 seeds.
    """
    import sklearn
    from scipy.stats import t as student_t
    from sklearn.model_selection import StratifiedGroupKFold

    (x1, g1), (x0, g0) = target, candidate
    empty: dict[str, Any] = {"auc": None, "ci": [None, None], "fold_aucs": []}
    rng = np.random.default_rng([seed, 7])
    cap = min(len(x1), len(x0), max_windows)
    i1, i0 = _subsample(len(x1), cap, rng), _subsample(len(x0), cap, rng)
    x = np.concatenate([x1[i1], x0[i0]])
    y = np.concatenate([np.ones(len(i1), np.int64), np.zeros(len(i0), np.int64)])
    groups = np.concatenate([g1[i1], g0[i0]])
    k = min(folds, len(np.unique(g1[i1])), len(np.unique(g0[i0])))
    if k < 2:
        return empty
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    aucs: list[float] = []
    # the inputs are ours and finite: skip sklearn's per-call checks (a third of the cost)
    with (
        _one_blas_thread(),
        sklearn.config_context(assume_finite=True, skip_parameter_validation=True),
    ):
        for train, test in cv.split(x, y, groups):
            if len(np.unique(y[test])) < 2 or len(np.unique(y[train])) < 2:
                continue  # a fold with one class cannot score an AUC
            clf = _classifier().fit(x[train], 2.0 * y[train] - 1.0)
            aucs.append(_auc(y[test], clf.predict(x[test])))
    if not aucs:
        return empty
    mean = float(np.mean(aucs))
    if len(aucs) < 2:
        return {"auc": mean, "ci": [None, None], "fold_aucs": aucs}
    n = len(aucs)
    # corrected resampled t (Nadeau & Bengio 2003): var·(1/n + n_test/n_train), and
    # n_test/n_train = 1/(n-1) for n folds
    se = float(np.std(aucs, ddof=1)) * math.sqrt(1 / n + 1 / (n - 1))
    half = float(student_t.ppf(0.975, n - 1)) * se
    return {
        "auc": mean,
        "ci": [max(0.0, mean - half), min(1.0, mean + half)],
        "fold_aucs": aucs,
    }


# ---------------------------------------------------------------------------------------------
# Learning across sessions


def session_return_spearman(
    candidate_returns: Sequence[float] | np.ndarray,
    candidate_sessions: Sequence[int] | np.ndarray,
    target_returns: Sequence[float] | np.ndarray,
    target_sessions: Sequence[int] | np.ndarray,
) -> float | None:
    """Spearman's ρ over sessions between the candidate's and the person's mean returns.

    Sessions are those of the target present in both; None with fewer than 3, or when either
    side's per-session means are constant (ρ undefined)."""
    from scipy.stats import spearmanr

    cr, cs = np.asarray(candidate_returns, np.float64), np.asarray(candidate_sessions)
    tr, ts = np.asarray(target_returns, np.float64), np.asarray(target_sessions)
    common = np.intersect1d(np.unique(cs), np.unique(ts))
    if len(common) < 3:
        return None
    c = np.array([cr[cs == s].mean() for s in common])
    t = np.array([tr[ts == s].mean() for s in common])
    if np.ptp(c) == 0 or np.ptp(t) == 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = float(spearmanr(c, t).statistic)
    return rho if math.isfinite(rho) else None


# ---------------------------------------------------------------------------------------------
# The block, metric descriptions, flattening


@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric: its ideal value and the gap from it (lower gap = more human)."""

    key: str
    label: str
    ideal: float
    kind: Literal["higher", "lower", "ratio", "half"]
    source: str


METRICS: Mapping[str, MetricInfo] = {
    m.key: m
    for m in (
        MetricInfo("action_accuracy", "action accuracy", 1.0, "higher",
                   "move matching, Maia (McIlroy-Young et al. 2020)"),
        MetricInfo("action_accuracy_lag", "action accuracy ±300 ms", 1.0, "higher",
                   "reaction time 250–300 ms, Atari-HEAD (Zhang et al. 2020)"),
        MetricInfo("hold_duration_w1", "key-hold W1 (frames)", 0.0, "lower",
                   "EMD over behaviour signatures (believability, 2010)"),
        MetricInfo("switch_rate_ratio", "switch-rate ratio", 1.0, "ratio",
                   "action changes per second, model / person"),
        MetricInfo("state_jsd", "state-visitation JSD", 0.0, "lower",
                   "JSD on a discretised state grid (2026 preprint)"),
        MetricInfo("discriminator_auc", "discriminator AUC", 0.5, "half",
                   "automated Turing test (Devlin et al. 2021)"),
        MetricInfo("session_return_spearman", "session-return Spearman ρ", 1.0, "higher",
                   "follows the person's learning across sessions"),
    )
}  # fmt: skip
"""The headline metrics of a `humanlike` block, in report order."""


def gap(key: str, value: float | None) -> float | None:
    """Distance of `value` from the metric's ideal (0 = ideal, larger = less like the person):
    1 - x for accuracies and ρ, x for distances, |log2 x| for the switch ratio, max(x - 0.5, 0)
    for the AUC (a cross-validated AUC below 0.5 means the classifier found nothing that
    generalises; held-out-group CV pulls it below 0.5 under the null). None stays None."""
    if value is None or not math.isfinite(value):
        return None
    kind = METRICS[key].kind
    if kind == "higher":
        return METRICS[key].ideal - value
    if kind == "lower":
        return value
    if kind == "ratio":
        return abs(math.log2(value)) if value > 0 else math.inf
    return max(value - 0.5, 0.0)


def humanlike_columns(block: Mapping[str, Any], prefix: str = "humanlike.") -> dict[str, Any]:
    """One flat row for `hbm collect`: scalars as they are, `[lo, hi]` as `_lo`/`_hi`."""
    out: dict[str, Any] = {}
    for k, v in block.items():
        if isinstance(v, list | tuple):
            if len(v) == 2 and k.endswith("_ci"):
                out[f"{prefix}{k}_lo"], out[f"{prefix}{k}_hi"] = v
            continue  # per-fold lists stay in the JSON
        if isinstance(v, Mapping):
            continue
        out[f"{prefix}{k}"] = v
    return out


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


class HumanlikeTarget:
    """The person's held-out episodes, with everything the metrics need precomputed once.

    `score` then costs only the candidate's side: a population of 64 models or a cross-subject
    matrix re-uses the target's histograms, hold durations, lag windows and windows.
    """

    def __init__(
        self,
        target: Trajectories,
        env: str,
        *,
        num_actions: int | None = None,
        fps: float | None = None,
        seed: int = 0,
    ) -> None:
        from hbm_data import get_env_spec

        spec = get_env_spec(env)
        self.env = spec.name
        self.trajectories = target
        self.num_actions = int(num_actions or spec.num_actions)
        self.fps = float(fps or spec.fps)
        self.lag = lag_frames(self.fps)
        self.window = window_frames(self.fps)
        self.actions = target.flat_actions
        self.lengths = target.lengths
        self._counts = _window_counts(self.actions, self.lengths, self.lag, self.num_actions)
        self._hist = state_histograms(target.obs, self.env)
        self._holds = hold_durations(target.actions)
        self._switch = switch_rate(target.actions, self.fps)
        self.seed = int(seed)
        self._windows = window_features(
            target, self.env, num_actions=self.num_actions, window=self.window, seed=self.seed
        )

    def accuracy(self, predicted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`predicted [..., N]` argmax actions on the target's steps -> (accuracy, lag accuracy)
        `[...]`."""
        predicted = np.asarray(predicted, dtype=np.int64)
        if predicted.shape[-1] != len(self.actions):
            raise ValueError(
                f"predicted has {predicted.shape[-1]} steps, the target {len(self.actions)}"
            )
        return action_accuracy(predicted, self.actions), _lag_hits(self._counts, predicted)

    def score(
        self,
        candidate: Trajectories,
        predicted: np.ndarray | None = None,
        *,
        seed: int | None = None,
        discriminator: bool = True,
    ) -> dict[str, Any]:
        """The `humanlike` block of `candidate` against the target (keys in `METRICS`, plus the
        parts: `switch_rate`, `switch_rate_person`, `lag_frames`, `window_frames`, ...).

        `predicted [N]`: the candidate's teacher-forced actions on the target's steps (None:
        accuracies None). `discriminator=False` skips the Turing test (its AUC keys None), by
        far the dearest metric (5 classifier fits), e.g. for every member of a population.
        """
        from scipy.stats import wasserstein_distance

        acc = lag = None
        if predicted is not None:
            a, b = self.accuracy(predicted)
            acc, lag = float(a), float(b)
        holds = hold_durations(candidate.actions)
        switch = switch_rate(candidate.actions, self.fps)
        if self._switch == 0:
            ratio: float | None = 1.0 if switch == 0 else None
        else:
            ratio = switch / self._switch
        jsd = float(jensen_shannon(state_histograms(candidate.obs, self.env), self._hist).mean())
        disc: dict[str, Any] = {"auc": None, "ci": [None, None], "fold_aucs": []}
        if discriminator:
            z = window_features(
                candidate, self.env, num_actions=self.num_actions, window=self.window,
                seed=self.seed,
            )  # fmt: skip
            disc = discriminator_auc(self._windows, z, seed=self.seed if seed is None else seed)
        t = self.trajectories
        rho = session_return_spearman(candidate.returns, candidate.sessions, t.returns, t.sessions)
        return {
            "action_accuracy": acc,
            "action_accuracy_lag": lag,
            "hold_duration_w1": float(wasserstein_distance(holds, self._holds)),
            "switch_rate_ratio": _finite(ratio),
            "state_jsd": jsd,
            "discriminator_auc": disc["auc"],
            "discriminator_auc_ci": disc["ci"],
            "session_return_spearman": rho,
            # the parts, for reports
            "switch_rate": switch,
            "switch_rate_person": self._switch,
            "mean_hold": float(holds.mean()),
            "mean_hold_person": float(self._holds.mean()),
            "mean_return": float(candidate.returns.mean()),
            "mean_return_person": float(t.returns.mean()),
            "discriminator_fold_aucs": disc["fold_aucs"],
            "lag_frames": self.lag,
            "window_frames": self.window,
            "episodes": len(candidate),
            "person_episodes": len(t),
            "sessions": len(np.unique(t.sessions)),
        }


# ---------------------------------------------------------------------------------------------
# Policies: one module, a list of modules, or an hbm-ne population, stepped as P members


class UniformPolicy(nn.Module):
    """The random reference: equal logits, so sampled actions are uniform over `num_actions`."""

    def __init__(self, input_size: int, num_actions: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.output_size = num_actions

    def forward(self, x: Tensor) -> Tensor:
        """`x [..., in]` -> zeros `[..., num_actions]`."""
        return x.new_zeros(*x.shape[:-1], self.output_size)


Policies = nn.Module | Sequence[nn.Module] | Any
"""One `nn.Module` (feedforward, or recurrent iff it has `forward_step`), a sequence of them, or
an hbm-ne population (`population_size`, `forward(x [P, B, in])` or `initial_state(B)` /
`forward_step(x [P, B, in], h)`)."""


class _Members:
    """P policies behind one call: `step(x [P, B, in]) -> logits [P, B, out]`, state inside."""

    def __init__(self, policies: Policies, device: torch.device) -> None:
        self.device = device
        self.population: Any = None
        self.modules: list[Any] = []
        if hasattr(policies, "population_size") and not isinstance(policies, nn.Module):
            self.population = policies
            self.size = int(policies.population_size)
        elif isinstance(policies, nn.Module):
            self.modules = [policies]
            self.size = 1
        else:
            self.modules = list(policies)
            self.size = len(self.modules)
            if not self.modules:
                raise ValueError("no policies given")
        self.state: Any = None

    def start(self, batch: int) -> None:
        """Zero recurrent state for `batch` episodes per member."""
        if self.population is not None:
            pop = self.population
            self.state = pop.initial_state(batch) if hasattr(pop, "forward_step") else None
        else:
            self.state = [
                m.initial_state(batch, device=self.device) if hasattr(m, "forward_step") else None
                for m in self.modules
            ]

    def step(self, x: Tensor) -> Tensor:
        if self.population is not None:
            pop = self.population
            if hasattr(pop, "forward_step"):
                logits, self.state = pop.forward_step(x, self.state)
                return logits
            return pop.forward(x)
        outs = []
        for i, m in enumerate(self.modules):
            if self.state[i] is not None:
                logits, self.state[i] = m.forward_step(x[i], self.state[i])
            else:
                logits = m(x[i])
            outs.append(logits)
        return outs[0].unsqueeze(0) if len(outs) == 1 else torch.stack(outs)

    @property
    def recurrent(self) -> bool:
        if self.population is not None:
            return hasattr(self.population, "forward_step")
        return any(hasattr(m, "forward_step") for m in self.modules)

    def forward_all(self, x: Tensor) -> Tensor:
        """Feedforward only: `x [N, in]` -> `[P, N, out]` in one call per member."""
        if self.population is not None:
            return self.population.forward(x)
        outs = [m(x) for m in self.modules]
        return torch.stack(outs)


@torch.no_grad()
def predict_actions(
    policies: Policies,
    obs: np.ndarray,
    lengths: Ints,
    *,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Teacher-forced argmax actions on the person's steps: `obs [N, in]` (with CL columns when
    the policies use them), episodes `lengths [E]` -> `[P, N]`.

    Recurrent policies run every episode from a zero state, carrying it within the episode."""
    dev = torch.device(device)
    members = _Members(policies, dev)
    x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=dev)
    if not members.recurrent:
        return members.forward_all(x).argmax(-1).cpu().numpy()
    lens = np.asarray(lengths, dtype=np.int64)
    e, t_max = len(lens), int(lens.max())
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    pad = torch.zeros(t_max, e, x.shape[1], device=dev)
    valid = np.arange(t_max)[:, None] < lens[None]  # [T, E]
    tt, ee = np.nonzero(valid)
    rows = torch.as_tensor(starts[ee] + tt, device=dev)
    pad[torch.as_tensor(tt, device=dev), torch.as_tensor(ee, device=dev)] = x[rows]
    members.start(e)
    out = torch.empty(members.size, t_max, e, dtype=torch.int64, device=dev)
    xp = torch.empty(members.size, e, x.shape[1], device=dev)
    for step in range(t_max):
        xp.copy_(pad[step].expand_as(xp))
        out[:, step] = members.step(xp).argmax(-1)
    flat = out.cpu().numpy()[:, tt, ee]  # [P, N] in (t, e) order
    result = np.empty_like(flat)
    result[:, starts[ee] + tt] = flat
    return result


@torch.no_grad()
def record_rollouts(
    policies: Policies,
    env_id: str,
    seeds: Sequence[int],
    *,
    extra_features: np.ndarray | Tensor | None = None,
    sessions: Ints | None = None,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> list[Trajectories]:
    """Every policy plays episode e from `seeds[e]` on hbm-ne's batched env, recording each
    step's observation and action; returns one `Trajectories` per member.

    hbm-ne's game loop (`hbm_ne.envs.rollout.play`, recording), so actions are drawn from the
    softmax with `generator` in the same order and returns equal `evaluate_module`'s for the
    same generator. `extra_features [E, k]` (the episode's CL features) are appended to the
    observations; `sessions [E]` label the episodes.
    """
    from hbm_ne.envs import make_env
    from hbm_ne.envs.rollout import play

    dev = torch.device(device)
    members = _Members(policies, dev)
    p, e = members.size, len(seeds)
    env = make_env(env_id, p * e, device=dev)
    try:
        d = env.obs_size
        k = 0 if extra_features is None else int(np.shape(extra_features)[-1])
        feats = None
        if extra_features is not None:
            feats = torch.as_tensor(extra_features, dtype=torch.float32, device=dev)
        if not deterministic and generator is None:
            generator = torch.Generator(device=dev).manual_seed(0)
        t_max = env.max_episode_steps
        obs_buf = torch.empty(t_max, p * e, d, device=dev)
        act_buf = torch.empty(t_max, p * e, dtype=torch.int64, device=dev)
        members.start(e)
        returns_t, lengths_t = play(
            env,
            lambda x, state: (members.step(x), state),  # the members keep their own state
            None,
            [int(s) for s in seeds] * p,
            p,
            input_size=d + k,
            extra_features=feats,
            deterministic=deterministic,
            generator=generator,
            record=(obs_buf.view(t_max, p, e, d), act_buf.view(t_max, p, e)),
        )
        steps = int(env.elapsed_steps)
        lengths = lengths_t.reshape(-1).cpu().numpy()
        returns = returns_t.double().cpu().numpy()
    finally:
        env.close()
    o = obs_buf[:steps].cpu().numpy()
    a = act_buf[:steps].cpu().numpy()
    sess = np.zeros(e, np.int64) if sessions is None else np.asarray(sessions, np.int64)
    seed_arr = np.asarray(seeds, dtype=np.int64)
    out = []
    for i in range(p):
        cols = range(i * e, (i + 1) * e)
        out.append(
            Trajectories(
                tuple(np.ascontiguousarray(o[: lengths[b], b]) for b in cols),
                tuple(np.ascontiguousarray(a[: lengths[b], b]) for b in cols),
                returns[i].copy(),
                sess.copy(),
                seed_arr.copy(),
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# Entry points


def _cl_features(meta: Any, repeats: int) -> np.ndarray | None:
    if not meta.use_cl_info:
        return None
    cl = np.array([[i.session_cl, i.run_cl] for i in meta.test_episodes], dtype=np.float32)
    return np.tile(cl, (repeats, 1))


def evaluate_humanlike_many(
    policies: Policies,
    data: Any,
    *,
    seed: int = 0,
    repeats: int = 1,
    target: HumanlikeTarget | None = None,
    discriminator: bool = True,
    device: torch.device | str = "cpu",
) -> list[dict[str, Any]]:
    """The `humanlike` block of each of P policies against `data`'s held-out episodes.

    `data` is an `hbm_data.HumanData`; all P policies are rolled out at once on the person's
    held-out seeds (`repeats` times each, actions sampled), with each episode's CL features
    appended when `data` uses them, and teacher-forced on the held-out steps. `target` (from
    `HumanlikeTarget`) may be passed to re-use the person's side; `discriminator=False` skips
    the Turing test (see `HumanlikeTarget.score`). Deterministic given `seed`.
    """
    meta = data.metadata
    dev = torch.device(device)
    if target is None:
        target = HumanlikeTarget(Trajectories.from_human(data, "test"), meta.env_name, seed=seed)
    t = target.trajectories
    predicted = predict_actions(policies, data.test_obs, meta.test_episode_lengths, device=dev)
    gen = torch.Generator(device=dev).manual_seed(seed * 1_000_003 + 3)
    rollouts = record_rollouts(
        policies,
        meta.env_id,
        np.tile(t.seeds, repeats).tolist(),
        extra_features=_cl_features(meta, repeats),
        sessions=np.tile(t.sessions, repeats),
        generator=gen,
        device=dev,
    )
    return [
        target.score(r, predicted[i], seed=seed, discriminator=discriminator)
        for i, r in enumerate(rollouts)
    ]


def evaluate_humanlike(
    policy: nn.Module,
    data: Any,
    *,
    seed: int = 0,
    repeats: int = 1,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """The `humanlike` block of one trained policy (feedforward, or recurrent iff it has
    `forward_step`) against `hbm_data.HumanData`'s held-out episodes."""
    policy = policy.to(torch.device(device)).eval()
    return evaluate_humanlike_many(policy, data, seed=seed, repeats=repeats, device=device)[0]


def _knn_predictions(data: Any) -> np.ndarray:
    """The person's own choices in the nearest training states: k-NN (scikit-learn) on
    standardised observations, fitted on the training steps, predicting the held-out steps."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    d = data.metadata.obs_size
    model = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=KNN_NEIGHBOURS))
    model.fit(data.train_obs[:, :d], data.train_act)
    return np.asarray(model.predict(data.test_obs[:, :d]), dtype=np.int64)


def person_reference(
    data: Any, *, seed: int = 0, target: HumanlikeTarget | None = None
) -> dict[str, Any]:
    """The floor: the person's own training episodes scored as if they were a model.

    Distributions (holds, switching, states, windows, per-session returns) compare the training
    episodes with the held-out ones; action matching uses the person's own choices in the
    nearest training states (`KNN_NEIGHBOURS`-NN) as the prediction."""
    meta = data.metadata
    if target is None:
        target = HumanlikeTarget(Trajectories.from_human(data, "test"), meta.env_name, seed=seed)
    return target.score(Trajectories.from_human(data, "train"), _knn_predictions(data), seed=seed)


def random_reference(
    data: Any,
    *,
    seed: int = 0,
    repeats: int = 1,
    target: HumanlikeTarget | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """The ceiling: a uniform random policy on the person's held-out seeds; its action
    predictions are uniform draws (from `seed`)."""
    meta = data.metadata
    if target is None:
        target = HumanlikeTarget(Trajectories.from_human(data, "test"), meta.env_name, seed=seed)
    t = target.trajectories
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(seed * 1_000_003 + 5)
    (traj,) = record_rollouts(
        UniformPolicy(meta.obs_size, meta.num_actions),
        meta.env_id,
        np.tile(t.seeds, repeats).tolist(),
        sessions=np.tile(t.sessions, repeats),
        generator=gen,
        device=dev,
    )
    rng = np.random.default_rng([seed, 11])
    guesses = rng.integers(0, meta.num_actions, size=len(target.actions))
    return target.score(traj, guesses, seed=seed)


def humanlike_references(
    data: Any, *, seed: int = 0, device: torch.device | str = "cpu"
) -> dict[str, dict[str, Any]]:
    """`{"person": person_reference, "random": random_reference}` for one person's data."""
    target = HumanlikeTarget(
        Trajectories.from_human(data, "test"), data.metadata.env_name, seed=seed
    )
    return {
        "person": person_reference(data, seed=seed, target=target),
        "random": random_reference(data, seed=seed, target=target, device=device),
    }
