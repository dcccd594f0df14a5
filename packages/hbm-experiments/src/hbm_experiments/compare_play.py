"""`hbm compare-play TARGET.json CANDIDATE.json`: any recording scored against another with the
experiments' own metrics (`hbm_experiments.humanlike.compare_play`), episodes paired by seed.

Reads the two episode files (recorder format, `hbm_data.load_episodes`) and nothing else; prints
each metric with its permutation p-value, or with `--json` the `humanlike` block itself."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `compare-play` on an argparse subparsers object."""
    p = sub.add_parser(
        "compare-play", help="score one recording against another (human-likeness metrics)"
    )
    p.add_argument("target", type=Path, help="the person's episode file (the target)")
    p.add_argument("candidate", type=Path, help="the episode file judged against it")
    p.add_argument("--env", help="the game (default: from the target file's name or sidecar)")
    p.add_argument("--seed", type=int, default=0, help="seeds the permutations and the folds")
    p.add_argument("--json", action="store_true", help="print the humanlike block as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=run)
    return p


def _env(args: argparse.Namespace) -> str:
    from hbm_data import get_env_spec
    from hbm_data.episodes import infer_env

    if args.env:
        return get_env_spec(args.env).name
    spec = infer_env(args.target)
    if spec is None:
        raise ValueError(
            f"{args.target}: cannot tell the game from the file name or its sidecar; "
            "pass --env (e.g. --env cartpole)"
        )
    return spec.name


def run(args: argparse.Namespace) -> str:
    """Load both files and compare them: the text to print (`hbm` prints it)."""
    from hbm_data import load_episodes

    from .humanlike import METRICS, compare_play

    env = _env(args)
    target, candidate = (load_episodes(p, env=env) for p in (args.target, args.candidate))
    for path, eps in ((args.target, target), (args.candidate, candidate)):
        if not eps:
            raise ValueError(f"{path}: the file holds no episodes")
    block = compare_play(target, candidate, env, seed=args.seed)
    if args.json:
        return json.dumps(block, indent=1)
    lines = [
        f"{args.candidate} against {args.target} ({env}): {block['episodes']} episodes against "
        f"{block['person_episodes']}, {block['paired_seeds']} seeds paired, "
        f"{block['permutations']} relabellings (smallest p {block['p_min']:.3g})"
    ]
    for key, info in METRICS.items():
        value = block.get(key)
        if value is None:
            continue
        p = f"  p = {block[info.p_key]:.3g}" if info.p_key and block[info.p_key] is not None else ""
        lines.append(f"  {info.label:36s} {value:10.4g}{p}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`python -m hbm_experiments.compare_play A.json B.json` = `hbm compare-play A.json B.json`."""
    from .cli import main as hbm

    return hbm(["compare-play", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
