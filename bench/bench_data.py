"""Data loading: load + validate + split of a 200-episode LunarLander file vs `json.load` of it.

The reference is the bare standard-library parse (what the lab's loader did before any checks),
timed in alternation in the same process. hbm-data parses with orjson and validates with a
vectorised fast path, so the full load + validate + session/run + split + float32 arrays should
beat the bare `json.load` (target ratio ≥ 1).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from _harness import Result, interleaved
from hbm_data import load_episodes, load_human_data, write_simulated_subject

SUITE = "data"


def run(args: argparse.Namespace) -> list[Result]:
    repeat = 3 if args.quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        path = write_simulated_subject(
            "lunarlander",
            "sim09",
            data_dir=Path(tmp),
            n_sessions=5,
            episodes_per_session=(40, 40),
        )
        episodes = load_episodes(path)
        n_steps = sum(e.length for e in episodes)
        size_mb = path.stat().st_size / 1e6

        def parse() -> object:
            with open(path) as f:
                return json.load(f)

        times = interleaved(
            {
                "json.load": parse,
                "load_episodes": lambda: load_episodes(path),
                "load_human_data": lambda: load_human_data("lunarlander", "sim09", data_dir=tmp),
            },
            repeat=repeat,
        )
    extra = {"episodes": len(episodes), "steps": n_steps, "file_mb": round(size_mb, 2)}
    return [
        Result(
            SUITE,
            "load+validate+split (load_human_data), 200-episode LunarLander",
            "s",
            times["load_human_data"],
            "json.load",
            times["json.load"],
            higher_is_better=False,
            target=1.0,
            extra=extra,
        ),
        Result(
            SUITE,
            "load+validate (load_episodes), 200-episode LunarLander",
            "s",
            times["load_episodes"],
            "json.load",
            times["json.load"],
            higher_is_better=False,
            target=1.0,
            extra=extra,
        ),
    ]
