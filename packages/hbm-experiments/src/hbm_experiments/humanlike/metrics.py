"""The human-likeness metrics on plain arrays: action matching (plain and shifted by the
person's reaction delay), key holds and switching, state visitation, learning across sessions,
and how to read each (`METRICS`, `gap`).

Sources (public): move matching, Maia (McIlroy-Young et al., KDD 2020); human reaction delays of
250–300 ms, Atari-HEAD (Zhang et al., AAAI 2020) and Kanervisto et al. 2020; Earth Mover's
Distance over behaviour signatures ("Automatable Evaluation Method Oriented toward Behaviour
Believability", 2010); Jensen–Shannon divergence on a discretised state grid (a 2026 preprint on
human-likeness); the automated Turing test (Devlin et al., ICML 2021) as a classifier two-sample
test (Lopez-Paz & Oquab, ICLR 2017).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ._threads import _one_blas_thread
from .trajectories import Ints, Trajectories

__all__ = [
    "KNN_NEIGHBOURS",
    "METRICS",
    "MIN_SESSION_EPISODES",
    "STATE_GRIDS",
    "TESTED_METRICS",
    "MetricInfo",
    "StateGrid",
    "action_accuracy",
    "choose_shift",
    "gap",
    "hold_duration_w1",
    "hold_durations",
    "humanlike_columns",
    "jensen_shannon",
    "knn_predictor",
    "session_return_spearman",
    "shift_accuracy",
    "shift_pairs",
    "state_histograms",
    "state_jsd",
    "switch_rate",
    "switch_rate_ratio",
]

KNN_NEIGHBOURS = 5
"""Neighbours of the person's own action predictor (the floor's prediction, the shift choice)."""
SHIFT_STEPS = 2000
"""Training steps (a seeded subsample) the reaction-shift choice cross-validates on."""
MIN_SESSION_EPISODES = 3
"""Held-out episodes every session needs before per-session returns are compared: with one
episode per session the session mean is one episode's luck, and ρ tracks seed difficulty."""


# ---------------------------------------------------------------------------------------------
# Action matching


def action_accuracy(predicted: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """Share of steps where the prediction is the recorded action (Maia's move matching): the
    learners' argmax accuracy (`hbm_ne.action_accuracy`, the `test_accuracy` of every result),
    on NumPy arrays.

    `predicted [..., N]` (any leading batch dims, e.g. `[P, N]`), `actions [N]` -> `[...]`
    float64 (a NumPy scalar for one prediction row).
    """
    import torch
    from hbm_ne import action_accuracy as argmax_accuracy

    def tensor(a: np.ndarray) -> torch.Tensor:  # shares memory; torch refuses read-only arrays
        a = np.asarray(a)
        return torch.from_numpy(a if a.flags.writeable else a.copy())

    return np.asarray(argmax_accuracy(tensor(predicted), tensor(actions)).numpy())[()]


def shift_pairs(lengths: Ints, delta: int) -> tuple[np.ndarray, np.ndarray]:
    """Flat step pairs `(t, t + delta)` inside one episode: `src [n]`, `dst [n]`."""
    lens = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lens)
    starts = ends - lens
    src = np.concatenate(
        [np.arange(s, e - delta) for s, e in zip(starts, ends, strict=True) if e - s > delta]
        or [np.zeros(0, np.int64)]
    )
    return src.astype(np.int64), src.astype(np.int64) + int(delta)


def shift_accuracy(
    predicted: np.ndarray, actions: np.ndarray, lengths: Ints, delta: int
) -> np.ndarray:
    """Share of steps t whose prediction is the action the person pressed at t + delta (same
    episode): a person who reacts `delta` frames late presses at t + delta what the state at t
    called for (Atari-HEAD; Kanervisto et al. 2020). One shift for all steps, never "any
    action in a window": with 2–4 actions a window holds almost every action, and random
    guesses then match nearly always.

    `predicted [..., N]`, `actions [N]`, `lengths [E]` (sum N) -> `[...]`; NaN when no
    episode is longer than `delta`.
    """
    predicted = np.asarray(predicted)
    if predicted.shape[-1] != len(actions):
        raise ValueError(f"predicted has {predicted.shape[-1]} steps, the actions {len(actions)}")
    src, dst = shift_pairs(lengths, delta)
    if len(src) == 0:
        return np.full(predicted.shape[:-1], np.nan)
    return np.mean(predicted[..., src] == np.asarray(actions)[dst], axis=-1)


def knn_predictor() -> Any:
    """The person's own choices in the nearest states: `KNN_NEIGHBOURS`-NN (scikit-learn) on
    standardised observations."""
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=KNN_NEIGHBOURS))


def choose_shift(
    train: Trajectories, max_shift: int, *, folds: int = 3, max_steps: int = SHIFT_STEPS
) -> tuple[int, list[float]]:
    """The person's reaction shift δ in [0, max_shift], chosen once on their *training* episodes:
    the δ at which the state at t best predicts the action at t + δ (k-NN, cross-validated with
    whole episodes held out; ties go to the smaller δ). Returns `(δ, accuracy per δ)`.

    Chosen without any model and without the held-out episodes, so every model and both
    references of a person are scored at the same δ."""
    from sklearn.model_selection import GroupKFold

    obs, act = train.flat_obs, train.flat_actions
    episode = np.repeat(np.arange(len(train)), train.lengths)
    k = min(folds, len(train))
    if k < 2:
        return 0, [math.nan] * (max_shift + 1)
    accs: list[float] = []
    for delta in range(max_shift + 1):
        src, dst = shift_pairs(train.lengths, delta)
        if len(src) > max_steps:  # every step's cost is a neighbour search: a fixed subsample
            keep = np.sort(np.random.default_rng([delta, 3]).choice(len(src), max_steps, False))
            src, dst = src[keep], dst[keep]
        if len(src) == 0:
            accs.append(math.nan)
            continue
        hits = 0
        for tr, te in GroupKFold(n_splits=k).split(src, groups=episode[src]):
            with _one_blas_thread():
                model = knn_predictor().fit(obs[src[tr]], act[dst[tr]])
                hits += int(np.sum(model.predict(obs[src[te]]) == act[dst[te]]))
        accs.append(hits / len(src))
    best = int(np.nanargmax(accs)) if not all(math.isnan(a) for a in accs) else 0
    return best, accs


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


def _kitchen_grid(layout: str) -> StateGrid:
    """An Overcooked kitchen: one bin per value each encoded slot can take (grid cells,
    partner offsets, 0/1 flags, pot onions in thirds, cooking progress in twentieths)."""
    from hbm_data.overcooked.layouts import COOK_TICKS, SOUP_ONIONS, layout_encoding

    enc = layout_encoding(layout)
    w, h = max(len(row) for row in enc.grid), len(enc.grid)
    lattice: list[tuple[float, float, int]] = []  # (low, high, bins): bin centres on the values
    for name in enc.slot_names:
        if name in ("x", "partner_dx"):
            n = w if name == "x" else 2 * w - 1
            first = 0 if name == "x" else 1 - w
        elif name in ("y", "partner_dy"):
            n = h if name == "y" else 2 * h - 1
            first = 0 if name == "y" else 1 - h
        else:
            first = 0
            n = 2
            if name.endswith("_onions"):
                n = SOUP_ONIONS + 1
            elif name.endswith("_cooking"):
                n = COOK_TICKS + 1
        step = 1.0 if name in ("x", "y", "partner_dx", "partner_dy") else 1.0 / (n - 1)
        lattice.append((first * step - step / 2, (first + n - 1) * step + step / 2, n))
    return StateGrid(
        tuple(enc.slot_names),
        tuple(lo for lo, _, _ in lattice),
        tuple(hi for _, hi, _ in lattice),
        tuple(n for _, _, n in lattice),
    )


def _kitchen_grids() -> dict[str, StateGrid]:
    from hbm_data.overcooked.layouts import LAYOUTS

    return {f"overcooked-{layout}": _kitchen_grid(layout) for layout in LAYOUTS}


STATE_GRIDS = {**STATE_GRIDS, **_kitchen_grids()}


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
    discriminator covers the joint structure)."""
    return float(
        jensen_shannon(state_histograms(candidate, env), state_histograms(target, env)).mean()
    )


# ---------------------------------------------------------------------------------------------
# Learning across sessions


def session_return_spearman(
    candidate_returns: Sequence[float] | np.ndarray,
    candidate_sessions: Sequence[int] | np.ndarray,
    target_returns: Sequence[float] | np.ndarray,
    target_sessions: Sequence[int] | np.ndarray,
    *,
    min_episodes: int = MIN_SESSION_EPISODES,
) -> float | None:
    """Spearman's ρ over sessions between the candidate's and the person's mean returns.

    Sessions are those of the target present in both; None with fewer than 3, when a target
    session has fewer than `min_episodes` held-out episodes (one episode's return is mostly
    its seed's difficulty, which a random policy on the same seeds tracks too), or when either
    side's per-session means are constant (ρ undefined)."""
    from scipy.stats import spearmanr

    cr, cs = np.asarray(candidate_returns, np.float64), np.asarray(candidate_sessions)
    tr, ts = np.asarray(target_returns, np.float64), np.asarray(target_sessions)
    common = np.intersect1d(np.unique(cs), np.unique(ts))
    if len(common) < 3:
        return None
    if min(int(np.sum(ts == s)) for s in np.unique(ts)) < min_episodes:
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
# How to read each metric


@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric: its ideal value, the gap from it (lower gap = more human) and
    the key of its permutation p-value in the block (None: a prediction score, not a test)."""

    key: str
    label: str
    ideal: float
    kind: Literal["higher", "lower", "ratio", "half", "zero"]
    source: str
    p_key: str | None = None


METRICS: Mapping[str, MetricInfo] = {
    m.key: m
    for m in (
        MetricInfo("action_accuracy", "action accuracy", 1.0, "higher",
                   "move matching, Maia (McIlroy-Young et al. 2020)"),
        MetricInfo("action_accuracy_shift", "action accuracy, reaction-shifted", 1.0, "higher",
                   "reaction delay 250–300 ms, Atari-HEAD (Zhang et al. 2020)"),
        MetricInfo("hold_duration_w1", "key-hold W1 (frames)", 0.0, "lower",
                   "EMD over behaviour signatures (believability, 2010)", "hold_duration_w1_p"),
        MetricInfo("switch_rate_ratio", "switch-rate ratio", 1.0, "ratio",
                   "action changes per second, model / person", "switch_rate_ratio_p"),
        MetricInfo("state_jsd", "state-visitation JSD", 0.0, "lower",
                   "JSD on a discretised state grid (2026 preprint)", "state_jsd_p"),
        MetricInfo("discriminator_auc", "discriminator AUC", 0.5, "half",
                   "classifier two-sample test (Lopez-Paz & Oquab 2017; Devlin et al. 2021)",
                   "discriminator_p"),
        MetricInfo("return_diff", "return difference of means", 0.0, "zero",
                   "mean return, model - person", "return_diff_p"),
        MetricInfo("session_return_spearman", "session-return Spearman ρ", 1.0, "higher",
                   "follows the person's learning across sessions"),
    )
}  # fmt: skip
"""The headline metrics of a `humanlike` block, in report order."""

TESTED_METRICS: tuple[str, ...] = tuple(k for k, m in METRICS.items() if m.p_key)
"""The metrics with a permutation p-value (each can be held to its null rate)."""


def gap(key: str, value: float | None) -> float | None:
    """Distance of `value` from the metric's ideal (0 = ideal, larger = less like the person):
    1 - x for accuracies and ρ, x for distances, |x| for a difference, |log2 x| for the switch
    ratio, x - 0.5 for the AUC (not truncated: with both sides of a seed in one fold an AUC
    below 0.5 is noise around 0.5, and cutting it off would bias every average upwards).
    None stays None."""
    if value is None or not math.isfinite(value):
        return None
    kind = METRICS[key].kind
    if kind == "higher":
        return METRICS[key].ideal - value
    if kind == "lower":
        return value
    if kind == "zero":
        return abs(value)
    if kind == "ratio":
        return abs(math.log2(value)) if value > 0 else math.inf
    return value - 0.5


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
