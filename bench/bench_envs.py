"""Batched environments and env-return fitness (`hbm_ne.envs`) against Gymnasium.

Figures (same-process ratios):
- env steps/s at B = 1024 for each torch env. CartPole's peer is Gymnasium's numpy-vectorised
  CartPole (`make_vec(..., vectorization_mode="vector_entry_point")`); MountainCar and Acrobot
  have none, so their peer is one Gymnasium env stepped one at a time. Both sides include their
  resets at the end of episodes: the torch env replays the same 1024 seeds, whose starts are
  cached after the first reset; Gymnasium's `reset()` does not reseed.
- a whole-population rollout, P = 1024 feedforward policies (4→50→2) on CartPole, full
  500-step episodes, env-steps/s vs the naive loop (one Gymnasium env, one policy call per step).
- one env-return GA generation (fitness of P = 256 members × 4 episodes, then selection and
  mutation) vs the naive per-member loop. The naive time is measured on a few members and
  scaled to P: every member is the same competent controller (plus tiny mutations), so each
  member costs the same 4 × 500 steps.

Acrobot's row carries a breakdown: the env reproduces Gymnasium bit for bit on CPU, so each step
makes the libm calls Gymnasium makes (per environment 19 cos/sin and 12 `pow(x, 2)`, through
numpy); `libm_share` is the time of those calls alone (same array sizes and value ranges,
timed in the same loop) over the step's, and `libm_only_ratio` the ratio the env would reach if
nothing else cost anything.

The torch side runs with one intra-op thread (restored afterwards): at these sizes a step is a
few dozen tiny kernels, and on a shared 2-core machine a second OpenMP thread turns each
parallelised kernel (sin, cos, softmax) into a wait for a busy core. The Gymnasium peers are
single-threaded numpy.
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
import torch
from _harness import Result, interleaved, torch_threads
from hbm_ne import GA, BatchedFeedforward
from hbm_ne.envs import EnvReturnFitness, make_env, rollout
from torch import nn

SUITE = "envs"


def _gym_single_runner(env_id: str, steps: int):
    """`steps` steps of one Gymnasium env (random actions, reset on episode end)."""
    env = gym.make(env_id)
    env.reset(seed=0)
    n = env.action_space.n  # type: ignore[attr-defined]
    actions = np.random.default_rng(0).integers(n, size=steps).tolist()

    def run() -> None:
        for a in actions:
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                env.reset()

    return run


def _torch_env_runner(env_id: str, b: int, steps: int, device: str):
    env = make_env(env_id, b, device=device)
    seeds = list(range(b))
    actions = torch.randint(
        env.num_actions, (steps, b), generator=torch.Generator().manual_seed(0)
    ).to(device)
    rows = list(actions.unbind(0))
    env.reset(seeds)

    def run() -> None:
        for a in rows:
            if env.elapsed_steps >= env.max_episode_steps:
                env.reset(seeds)  # once per episode length: included in the rate
            env.step(a)
        if device != "cpu":
            torch.cuda.synchronize()

    return run


def _acrobot_libm_runner(b: int, steps: int):
    """The libm calls of `steps` exact Acrobot steps at B = b: per step three stages of
    cos (3 rows) + sin (1 row), the state's cos (5 rows) + sin (2 rows), and four stages of
    pow (2 rows + 1 row), on values in the ranges the env sees."""
    rng = np.random.default_rng(0)
    ang3, ang5 = rng.uniform(-4, 4, (3, b)), rng.uniform(-4, 4, (5, b))
    vel, twos2, twos1 = rng.uniform(-28, 28, (2, b)), np.full((2, b), 2.0), np.full(b, 2.0)
    out5 = np.empty((5, b))

    def run() -> None:
        for _ in range(steps):
            for _ in range(3):
                np.cos(ang3, out5[:3])
                np.sin(ang3[2], out5[3])
            np.cos(ang5, out5)
            np.sin(ang5[1:3], out5[:2])
            for _ in range(4):
                np.power(vel, twos2, out5[:2])
                np.power(vel[0], twos1, out5[2])

    return run


def bench_env_steps(args: argparse.Namespace) -> list[Result]:
    b = 1024
    steps = 100 if args.quick else 400
    repeat = 3 if args.quick else 7
    results = []
    cartpole = _torch_env_runner("CartPole-v1", b, steps, args.device)
    vec = gym.make_vec("CartPole-v1", num_envs=b, vectorization_mode="vector_entry_point")
    vec.reset(seed=0)
    vec_actions = list(np.random.default_rng(0).integers(2, size=(steps, b)))

    def run_vec() -> None:
        for a in vec_actions:
            vec.step(a)

    t = interleaved({"torch": cartpole, "gym": run_vec}, repeat=repeat)
    results.append(
        Result(
            SUITE,
            "CartPole-v1 steps/s, B=1024",
            "env-steps/s",
            b * steps / t["torch"],
            "gymnasium make_vec vector_entry_point B=1024",
            b * steps / t["gym"],
            target=1.0,
        )
    )
    for env_id in ("MountainCar-v0", "Acrobot-v1"):
        torch_steps, gym_steps = steps // 2, 200 if args.quick else 1000
        fns = {
            "torch": _torch_env_runner(env_id, b, torch_steps, args.device),
            "gym": _gym_single_runner(env_id, gym_steps),
        }
        acrobot_cpu = env_id == "Acrobot-v1" and args.device == "cpu"
        if acrobot_cpu:
            fns["libm"] = _acrobot_libm_runner(b, torch_steps)
        t = interleaved(fns, repeat=repeat)
        extra = {"exact": args.device == "cpu"}
        if acrobot_cpu:
            extra["libm_share"] = f"{100 * t['libm'] / t['torch']:.0f}%"
            extra["libm_only_ratio"] = round((b * torch_steps / t["libm"]) / (gym_steps / t["gym"]))
        results.append(
            Result(
                SUITE,
                f"{env_id} steps/s, B=1024",
                "env-steps/s",
                b * torch_steps / t["torch"],
                "one gymnasium env, stepped one at a time",
                gym_steps / t["gym"],
                target=200.0,
                extra=extra,
            )
        )
    return results


def competent_population(p: int, *, sigma: float, device: str) -> BatchedFeedforward:
    """P copies of a 4→50→2 controller that balances CartPole for 500 steps: hidden unit 0
    computes tanh(10 (θ + 0.5 θ' + 0.01 x + 0.1 x')) and the logits are ±that unit."""
    pop = BatchedFeedforward(
        4, 2, p, (50,), sigma_init=sigma, adaptive=False,
        generator=torch.Generator().manual_seed(0), device=device,
    )  # fmt: skip
    views = pop.views()
    for v in views.values():
        v.zero_()
    views["hidden.0.weight"][:, 0, :] = torch.tensor([0.1, 1.0, 10.0, 5.0], device=device)
    views["output.weight"][:, 0, 0] = -1.0
    views["output.weight"][:, 1, 0] = 1.0
    return pop


def naive_episode(policy: nn.Module, env: gym.Env, seed: int) -> tuple[float, int]:
    """The lab's way: one env step and one policy forward per step."""
    obs, _ = env.reset(seed=seed)
    total, steps = 0.0, 0
    while True:
        with torch.no_grad():
            action = policy(torch.as_tensor(obs).unsqueeze(0)).argmax().item()
        obs, r, term, trunc, _ = env.step(action)
        total += float(r)
        steps += 1
        if term or trunc:
            return total, steps


def bench_population_rollout(args: argparse.Namespace) -> list[Result]:
    p = 256 if args.quick else 1024
    pop = competent_population(p, sigma=1e-4, device=args.device)
    counted: dict[str, int] = {}

    def batched() -> None:
        _, lengths = rollout(pop, "CartPole-v1", [7], deterministic=True, device=args.device)
        counted["batched"] = int(lengths.sum())

    policy = pop.export(0)
    env = gym.make("CartPole-v1")
    naive_seeds = [7] if args.quick else [7, 8, 9, 10]

    def naive() -> None:
        counted["naive"] = sum(naive_episode(policy, env, s)[1] for s in naive_seeds)

    t = interleaved({"batched": batched, "naive": naive}, repeat=3 if args.quick else 5)
    assert counted["batched"] == p * 500, "competent policies play full episodes"
    return [
        Result(
            SUITE,
            f"population rollout CartPole P={p} (4-50-2), full episodes",
            "env-steps/s",
            counted["batched"] / t["batched"],
            "naive loop: one gym env, one policy forward per step",
            counted["naive"] / t["naive"],
            target=100.0,
            extra={"population": p, "episode_steps": 500},
        )
    ]


def bench_ga_generation(args: argparse.Namespace) -> list[Result]:
    p, e = 256, 4
    pop = competent_population(p, sigma=1e-4, device=args.device)
    start = pop.params.clone()
    ga = GA(pop, seed=0)
    fitness = EnvReturnFitness("CartPole-v1", episodes=e, seed=0)
    generator = torch.Generator(device=args.device).manual_seed(0)

    def batched() -> None:
        pop.params.copy_(start)
        ga.ask()
        f = fitness(pop, 0, generator)
        ga.tell(f)

    n_naive = 2 if args.quick else 8
    env = gym.make("CartPole-v1")
    seeds = fitness.seeds_for(0)

    def naive() -> None:
        pop.params.copy_(start)
        f = torch.zeros(p)
        for i in range(n_naive):  # the remaining members cost the same (identical controllers)
            policy = pop.export(i)
            f[i] = -np.mean([naive_episode(policy, env, s)[0] for s in seeds])
        ga.tell(f)

    t = interleaved({"batched": batched, "naive": naive}, repeat=3)
    assert fitness.last_returns is not None and bool((fitness.last_returns == 500).all())
    naive_per_gen = t["naive"] * p / n_naive
    return [
        Result(
            SUITE,
            f"env-return GA generation CartPole P={p} x {e} episodes",
            "s/generation",
            t["batched"],
            f"naive per-member gym loop ({n_naive} members timed, scaled to {p})",
            naive_per_gen,
            higher_is_better=False,
            target=50.0,
        )
    ]


def run(args: argparse.Namespace) -> list[Result]:
    with torch_threads(1):
        results = bench_env_steps(args)
        results += bench_population_rollout(args)
        results += bench_ga_generation(args)
    for r in results:
        r.extra.setdefault("torch_threads", 1)
        r.extra.setdefault("device", args.device)
    return results
