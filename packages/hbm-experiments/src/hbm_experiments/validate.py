"""`hbm validate` (also `python -m hbm_experiments.validate`): the human-likeness metrics held
to known answers on the simulated players (`hbm_experiments.humanlike.validity`), printed as a
table, under one target protocol per run (`--protocol`: the held-out episodes of one split, as
`hbm run`, or every episode of the person, as `hbm crossfit`); `--write` stores each (game,
metric) verdict in the package under that protocol, where reports read it."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["add_parser", "format_table", "main", "run"]


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `validate` on an argparse subparsers object."""
    p = sub.add_parser(
        "validate", help="check every human-likeness metric on simulated players (slow)"
    )
    _options(p)
    p.set_defaults(handler=run)
    return p


def _options(p: argparse.ArgumentParser) -> None:
    from .humanlike.validity import PROTOCOLS, SUITE_ENVS

    p.add_argument("--envs", nargs="+", default=list(SUITE_ENVS), help="games to check")
    p.add_argument("--draws", type=int, default=25, help="draws per player style and game")
    p.add_argument("--repeats", type=int, default=5, help="candidate episodes per held-out seed")
    p.add_argument(
        "--pool",
        type=int,
        help="simulated people per style (default draws + repeats: every draw its own target)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--protocol",
        choices=list(PROTOCOLS),
        default="holdout",
        help="the target: the held-out episodes of one split (hbm run) or every episode of "
        "the person (hbm crossfit)",
    )
    p.add_argument(
        "--json",
        type=Path,
        help="also write the full table as JSON here (rewritten after every draw, so a stopped "
        "run keeps the draws it did)",
    )
    p.add_argument(
        "--load",
        type=Path,
        nargs="+",
        help="read suites written by --json (one per game, say) instead of running one",
    )
    p.add_argument(
        "--write",
        action="store_true",
        help="store the verdicts in the package (reports grey out the metrics that fail)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def format_table(suite: Mapping[str, Any], verdicts: Mapping[str, Any]) -> str:
    """The suite as one markdown table per game."""
    from .humanlike.metrics import METRICS
    from .humanlike.validity import (
        FPR_RANGE,
        IDENTIFICATION_GOAL,
        PROTOCOL_TARGETS,
        null_rate_interval,
    )

    s = suite["settings"]
    protocol = s.get("protocol", "holdout")
    lines = [
        f"validity suite, {protocol} protocol ({PROTOCOL_TARGETS[protocol]}): "
        f"{s['draws']} draws x {len(s['players'])} players per game, "
        f"{s['repeats']} candidate episodes per held-out seed, pool of {s['pool']} people per "
        f"style ({s.get('targets', '?')} distinct targets), seed {s['seed']}, alpha {s['alpha']} "
        f"({suite['seconds']:.0f} s); "
        f"targets: null rate {FPR_RANGE[0]:.2f}-{FPR_RANGE[1]:.2f} (fails when significantly "
        f"above alpha; [exact 95 % interval]), random detection >= 0.99, identification "
        f"(combined) >= {IDENTIFICATION_GOAL}; combined: every test's statistic standardised by "
        f"its relabellings and averaged, mean_rank: each metric's rank among the styles averaged",
    ]
    for env, rows in suite["games"].items():
        lines += [
            "",
            f"{env}:",
            "",
            "| metric | null rate (n) | null gap median / 95 % | random detected (n) "
            "| identified | verdict |",
            "|---|---|---|---|---|---|",
        ]
        order = {k: i for i, k in enumerate(METRICS)}  # the metrics' order, then the rest
        for key, row in sorted(rows.items(), key=lambda kv: order.get(kv[0], len(order))):
            v = verdicts.get(env, {}).get(key)
            verdict = "-" if v is None else ("ok" if v["ok"] else f"FAILS: {v['reason']}")
            if "applicable" in row:
                lines.append(
                    f"| {key} | - | - | - | - | {verdict} (computable in "
                    f"{row['applicable']}/{row['null_n']} draws) |"
                )
                continue
            null = "-"
            if row["null_fpr"] is not None:
                lo, hi, _ = null_rate_interval(row["null_fpr"], row["null_n"])
                null = f"{row['null_fpr']:.3f} [{lo:.2f}, {hi:.2f}] ({row['null_n']})"
            rnd = (
                "-"
                if row["random_detection"] is None
                else f"{row['random_detection']:.3f} ({row['random_n']})"
            )
            lines.append(
                f"| {key} | {null} | {_fmt(row['null_gap_median'], '.3g')} / "
                f"{_fmt(row['null_gap_q95'], '.3g')} | {rnd} | "
                f"{_fmt(row['identification'])} | {verdict} |"
            )
    return "\n".join(lines)


def _write_json(path: Path, obj: Any) -> None:
    from .files import atomic_write_text  # temp file + rename

    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def _load(paths: Sequence[Path]) -> dict[str, Any]:
    """Suites saved by `--json`, their games merged; their settings must agree but for the
    games (one table from one protocol)."""
    suite: dict[str, Any] = {}
    for path in paths:
        try:
            part = json.loads(path.read_text())
            settings, games, seconds = part["settings"], part["games"], part["seconds"]
            settings = {"protocol": "holdout"} | dict(settings)  # tables written before protocols
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"{path}: not a suite written by --json ({exc!r})") from exc
        if not suite:
            suite = {"settings": dict(settings), "games": {}, "seconds": 0.0}
        same = {k: v for k, v in settings.items() if k != "envs"}
        if same != {k: v for k, v in suite["settings"].items() if k != "envs"}:
            raise SystemExit(f"{path}: settings {same} differ from the other suites'")
        suite["games"] |= games
        suite["seconds"] += float(seconds)
    suite["settings"]["envs"] = list(suite["games"])
    return suite


def run(args: argparse.Namespace) -> str:
    """Run the suite with `args` and write what was asked: the table to print."""
    from .humanlike import validity

    def progress(line: str) -> None:
        if not args.quiet:
            logger.info(line)

    if args.load:
        suite = _load(args.load)
    else:
        suite = validity.run_suite(
            args.envs,
            draws=args.draws,
            repeats=args.repeats,
            pool=args.pool,
            seed=args.seed,
            protocol=args.protocol,
            progress=progress,
            partial=(lambda part: _write_json(args.json, part)) if args.json else None,
        )
    verdicts = validity.verdicts(suite)
    out = format_table(suite, verdicts)
    if args.json:
        _write_json(args.json, suite)
    if args.write:  # this protocol's games replaced, the rest of the file kept
        _write_json(validity.VALIDITY_FILE, validity.shipped_with(suite))
        validity._shipped.cache_clear()
        out += f"\nwrote {validity.VALIDITY_FILE}"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m hbm_experiments.validate ...` = `hbm validate ...` (the CLI prints)."""
    from .cli import main as hbm

    return hbm(["validate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
