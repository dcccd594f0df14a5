"""A model's `humanlike` block from its recorded rollouts, and the two references that make a
block readable: the person's own play (the floor) and a uniform random policy (the ceiling),
both by the protocol of a model row (the same held-out target, as many episodes per held-out
episode as a model's `repeats`, paired the same way)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ._threads import _one_blas_thread
from .compare import HumanlikeTarget
from .metrics import knn_predictor, shift_pairs
from .rollouts import Policies, UniformPolicy, predict_actions, record_rollouts
from .trajectories import Trajectories
from .twosample import PERMUTATIONS

__all__ = [
    "REPEATS",
    "evaluate_humanlike",
    "evaluate_humanlike_many",
    "humanlike_references",
    "person_play",
    "person_reference",
    "play_and_score",
    "random_play",
    "random_reference",
    "target_of",
]

REPEATS = 5
"""Rollouts per held-out seed by default: the two-sample tests need several candidate episodes
per target episode to have power (one target episode per session is all a person leaves)."""


def target_of(data: Any, *, seed: int = 0, permutations: int = PERMUTATIONS) -> HumanlikeTarget:
    """The person's side of `hbm_data.HumanData`: the held-out episodes as the target, the
    reaction shift chosen on the training episodes."""
    train = Trajectories.from_human(data, "train") if data.metadata.n_train else None
    return HumanlikeTarget(
        Trajectories.from_human(data, "test"),
        data.metadata.env_name,
        train=train,
        seed=seed,
        permutations=permutations,
    )


def _cl_features(meta: Any, repeats: int) -> np.ndarray | None:
    if not meta.use_cl_info:
        return None
    cl = np.array([[i.session_cl, i.run_cl] for i in meta.test_episodes], dtype=np.float32)
    return np.tile(cl, (repeats, 1))


def play_and_score(
    policies: Policies,
    data: Any,
    *,
    generator: torch.Generator,
    repeats: int = REPEATS,
    target: HumanlikeTarget | None = None,
    seed: int = 0,
    discriminator: bool = True,
    device: torch.device | str = "cpu",
) -> tuple[list[Trajectories], list[dict[str, Any]]]:
    """Play every policy `repeats` times on each held-out seed of `data` (actions drawn with
    `generator`, each episode's CL features appended when the data uses them), then score
    those recorded rollouts: one play feeds the returns and every metric. Returns the rollouts
    (rollout r of held-out episode e at `r·E + e`) and the blocks, one per policy."""
    meta = data.metadata
    dev = torch.device(device)
    if target is None:
        target = target_of(data, seed=seed)
    t = target.trajectories
    predicted = predict_actions(policies, data.test_obs, meta.test_episode_lengths, device=dev)
    rollouts = record_rollouts(
        policies,
        meta.env_id,
        np.tile(t.seeds, repeats).tolist(),
        extra_features=_cl_features(meta, repeats),
        sessions=np.tile(t.sessions, repeats),
        generator=generator,
        device=dev,
    )
    blocks = [
        target.score(r, predicted[i], seed=seed, discriminator=discriminator) | {"repeats": repeats}
        for i, r in enumerate(rollouts)
    ]
    return rollouts, blocks


def evaluate_humanlike_many(
    policies: Policies,
    data: Any,
    *,
    seed: int = 0,
    repeats: int = REPEATS,
    target: HumanlikeTarget | None = None,
    discriminator: bool = True,
    device: torch.device | str = "cpu",
) -> list[dict[str, Any]]:
    """The `humanlike` block of each of P policies against `data`'s held-out episodes
    (`play_and_score` with a generator from `seed`). Deterministic given `seed`."""
    gen = torch.Generator(device=torch.device(device)).manual_seed(seed * 1_000_003 + 3)
    _, blocks = play_and_score(
        policies,
        data,
        generator=gen,
        repeats=repeats,
        target=target,
        seed=seed,
        discriminator=discriminator,
        device=device,
    )
    return blocks


def evaluate_humanlike(
    policy: nn.Module,
    data: Any,
    *,
    seed: int = 0,
    repeats: int = REPEATS,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """The `humanlike` block of one trained policy (feedforward, or recurrent iff it has
    `forward_step`) against `hbm_data.HumanData`'s held-out episodes."""
    policy = policy.to(torch.device(device)).eval()
    return evaluate_humanlike_many(policy, data, seed=seed, repeats=repeats, device=device)[0]


def _knn_predictions(data: Any, shift: int = 0) -> np.ndarray:
    """The person's own choices in the nearest training states (`knn_predictor`), fitted on
    the training steps (state at t, action at t + `shift`), predicting the held-out steps."""
    d = data.metadata.obs_size
    train = Trajectories.from_human(data, "train")
    src, dst = shift_pairs(train.lengths, shift)
    with _one_blas_thread():
        model = knn_predictor().fit(data.train_obs[src, :d], data.train_act[dst])
        return np.asarray(model.predict(data.test_obs[:, :d]), dtype=np.int64)


def person_play(
    data: Any,
    *,
    seed: int = 0,
    repeats: int = REPEATS,
    target: HumanlikeTarget | None = None,
) -> tuple[Trajectories, np.ndarray, np.ndarray | None]:
    """The floor's play (`person_reference` scores it): the person's training episodes paired
    with the held-out ones as a model's rollouts are (rollout r of held-out episode e at
    r·E + e), the person's own choices in the nearest training states as the action
    predictions `[N]`, and those δ frames later `[N]` (None without a shift). Cross-fitting
    pools it over folds (`crossfit.pooled_references`)."""
    if target is None:
        target = target_of(data, seed=seed)
    t = target.trajectories
    train = Trajectories.from_human(data, "train")
    rng = np.random.default_rng([seed, 19])
    picks: list[list[int]] = [[] for _ in range(repeats)]
    for e in range(len(t)):
        pool = np.flatnonzero(train.sessions == t.sessions[e])
        if len(pool) == 0:
            pool = np.arange(len(train))
        drawn = rng.choice(pool, size=repeats, replace=len(pool) < repeats)
        for r in range(repeats):
            picks[r].append(int(drawn[r]))
    order = [i for row in picks for i in row]  # rollout r of held-out episode e at r·E + e
    floor = train.subset(order)
    floor = Trajectories(
        floor.obs, floor.actions, floor.returns, np.tile(t.sessions, repeats),
        np.tile(t.seeds, repeats),
    )  # fmt: skip
    shifted = None if target.shift is None else _knn_predictions(data, target.shift)
    return floor, _knn_predictions(data), shifted


def person_reference(
    data: Any,
    *,
    seed: int = 0,
    repeats: int = REPEATS,
    target: HumanlikeTarget | None = None,
) -> dict[str, Any]:
    """The floor: the person's own training episodes scored as a model's rollouts are.

    Each held-out episode is paired with `repeats` training episodes of the same session (drawn
    with `seed`; with replacement where the session has fewer, from all sessions where it has
    none), so the floor has a model row's sample sizes and its pairing: a session stands in for
    a seed, and relabelling happens within it. Action matching uses the person's own choices in
    the nearest training states (for the shifted accuracy: the states δ frames before each
    action, the person's own reaction)."""
    if target is None:
        target = target_of(data, seed=seed)
    floor, predicted, shifted_predicted = person_play(
        data, seed=seed, repeats=repeats, target=target
    )
    block = target.score(floor, predicted, seed=seed) | {"repeats": repeats}
    if shifted_predicted is not None:  # the person's choices δ frames after each state
        _, shifted = target.accuracy(shifted_predicted)
        block["action_accuracy_shift"] = None if shifted is None else float(shifted)
    return block


def random_play(
    data: Any,
    *,
    seed: int = 0,
    repeats: int = REPEATS,
    target: HumanlikeTarget | None = None,
    device: torch.device | str = "cpu",
) -> tuple[Trajectories, np.ndarray]:
    """The ceiling's play (`random_reference` scores it): a uniform random policy `repeats`
    times on each held-out seed (rollout r of held-out episode e at r·E + e), and uniform
    action guesses `[N]` on the held-out steps (from `seed`)."""
    meta = data.metadata
    if target is None:
        target = target_of(data, seed=seed)
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
    return traj, guesses


def random_reference(
    data: Any,
    *,
    seed: int = 0,
    repeats: int = REPEATS,
    target: HumanlikeTarget | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """The ceiling: a uniform random policy, `repeats` times on each held-out seed; its action
    predictions are uniform draws (from `seed`)."""
    if target is None:
        target = target_of(data, seed=seed)
    traj, guesses = random_play(data, seed=seed, repeats=repeats, target=target, device=device)
    return target.score(traj, guesses, seed=seed) | {"repeats": repeats}


def humanlike_references(
    data: Any, *, seed: int = 0, repeats: int = REPEATS, device: torch.device | str = "cpu"
) -> dict[str, dict[str, Any]]:
    """`{"person": person_reference, "random": random_reference}` for one person's data."""
    target = target_of(data, seed=seed)
    return {
        "person": person_reference(data, seed=seed, repeats=repeats, target=target),
        "random": random_reference(data, seed=seed, repeats=repeats, target=target, device=device),
    }
