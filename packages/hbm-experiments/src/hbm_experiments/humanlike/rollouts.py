"""Policies played and asked: one module, a list of modules, or an hbm-ne population, stepped
as P members; the recorded rollouts every metric of a model is computed from."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .trajectories import Ints, Trajectories

__all__ = ["Policies", "UniformPolicy", "predict_actions", "record_rollouts"]


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
