"""The batched Overcooked (`hbm_ne.envs.overcooked`) against Overcooked-AI's own game.

Figure (same-process ratio): game ticks/s of `step_games` on B = 1024 `cramped_room` games
(both players acting at random, uniformly over the six actions) against `overcooked-ai`
1.1.0's `OvercookedGridworld.get_state_transition` stepping one game at a time under the same
random play. Overcooked-AI's game is its current one (recipes and an explicit cook-start
action), not the 2019 rules hbm replays exactly, but a tick does the same work: interactions,
moves with collisions, pots. Its package `__init__` registers a `gym` environment, so the
`mdp` modules are imported by file path under an unexecuted package module (nothing is
stubbed; `gym` is never imported). Skipped without `overcooked-ai` installed
(`pip install --no-deps overcooked-ai==1.1.0`).

A second row times the `overcooked-cramped_room` env (one player by a policy's actions, the
partner by `partner_actions`, the player-centred observation written every tick) at the same B.
The torch side runs with one intra-op thread (restored afterwards), as in `bench_envs`.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import random
import sys
from pathlib import Path
from typing import Any

import torch
from _harness import Result, interleaved, torch_threads
from hbm_ne.envs import make_env
from hbm_ne.envs.overcooked import start_state, step_games

SUITE = "overcooked"
LAYOUT = "cramped_room"


def _overcooked_ai_mdp() -> Any | None:
    """Overcooked-AI's `overcooked_mdp` and `actions` modules, or None when not installed."""
    try:
        dist = importlib.metadata.distribution("overcooked-ai")
    except importlib.metadata.PackageNotFoundError:
        return None
    root = Path(str(dist.locate_file("overcooked_ai_py")))
    if "overcooked_ai_py" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "overcooked_ai_py", root / "__init__.py", submodule_search_locations=[str(root)]
        )
        assert spec is not None
        sys.modules["overcooked_ai_py"] = importlib.util.module_from_spec(spec)  # not executed
    mdp = importlib.import_module("overcooked_ai_py.mdp.overcooked_mdp")
    actions = importlib.import_module("overcooked_ai_py.mdp.actions")
    return mdp, actions


def _reference_runner(modules: Any, steps: int):
    """`steps` ticks of one Overcooked-AI game, random joint actions, restart every 1204."""
    mdp_mod, actions_mod = modules
    mdp = mdp_mod.OvercookedGridworld.from_layout_name(LAYOUT)
    acts = actions_mod.Action.ALL_ACTIONS
    rng = random.Random(0)
    joint = [(rng.choice(acts), rng.choice(acts)) for _ in range(steps)]
    start = mdp.get_standard_start_state()

    def run() -> None:
        state = start
        for t, a in enumerate(joint):
            if t % 1204 == 0:
                state = start
            state, _ = mdp.get_state_transition(state, a)

    return run


def _batched_runner(b: int, steps: int, device: str):
    gen = torch.Generator().manual_seed(0)
    actions = torch.randint(6, (steps, b, 2), generator=gen).to(device)
    rows = list(actions.unbind(0))

    def run() -> None:
        state = start_state(LAYOUT, b, device=device)
        for a in rows:
            step_games(state, a)
        if device != "cpu":
            torch.cuda.synchronize()

    return run


def _env_runner(b: int, steps: int, device: str):
    env = make_env(f"overcooked-{LAYOUT}", b, device=device)
    gen = torch.Generator().manual_seed(1)
    actions = torch.randint(6, (steps, 2, b), generator=gen).to(device)
    seeds = list(range(b))

    def run() -> None:
        env.reset(seeds)
        for mine, partner in actions.unbind(0):
            env.partner_actions.copy_(partner)
            env.step(mine)
        if device != "cpu":
            torch.cuda.synchronize()

    return run


def run(args: argparse.Namespace) -> list[Result]:
    modules = _overcooked_ai_mdp()
    if modules is None:
        print("   skipped: overcooked-ai is not installed", flush=True)
        return []
    b = 1024
    steps = 50 if args.quick else 200
    ref_steps = 500 if args.quick else 2000
    repeat = 3 if args.quick else 5
    with torch_threads(1 if args.device == "cpu" else 0):
        times = interleaved(
            {
                "reference": _reference_runner(modules, ref_steps),
                "batched": _batched_runner(b, steps, args.device),
                "env": _env_runner(b, steps, args.device),
            },
            repeat=repeat,
        )
    ref_rate = ref_steps / times["reference"]
    return [
        Result(
            SUITE, f"batched Overcooked ticks/s, B={b} ({args.device})", "game ticks/s",
            b * steps / times["batched"], "overcooked-ai get_state_transition, one game",
            ref_rate, target=100.0, extra={"layout": LAYOUT},
        ),
        Result(
            SUITE, f"overcooked-{LAYOUT} env steps/s with observations, B={b} ({args.device})",
            "env steps/s", b * steps / times["env"],
            "overcooked-ai get_state_transition, one game", ref_rate,
            extra={"layout": LAYOUT},
        ),
    ]  # fmt: skip
