"""`hbm-data import-overcooked`: the 2019 human-human recordings as subject files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..episodes import check_file
from ..paths import data_dir
from ..validation import errors, warnings_of
from .importer import DEFAULT_SEGMENTS, POOLED_SUBJECT, import_trials
from .trials import INSTALL, SPLITS, OvercookedDataError, read_all_trials


def add_parser(sub: Any) -> None:
    """Register `import-overcooked` on the `hbm-data` subparsers."""
    o = sub.add_parser(
        "import-overcooked",
        help="import the Overcooked-AI 2019 human-human recordings as subjects (needs "
        '"hbm-data[overcooked]" and overcooked-ai installed with --no-deps)',
        description="Read the human-human trials from the installed overcooked-ai package "
        f"(install: {INSTALL}) and write, per layout, one file per player of each worker "
        f"(subject oc-wWW-pP, env overcooked-<layout>) and one pooling every trial "
        f"({POOLED_SUBJECT}); every trial is cut into --segments episodes. Nothing is "
        "downloaded; every file written is checked as `hbm-data check` checks it.",
    )
    o.add_argument("--out", metavar="DIR", help=f"data folder (default: {data_dir()})")
    o.add_argument("--split", choices=[*SPLITS, "both"], default="both",
                   help="the study's trial split to import (default: both)")  # fmt: skip
    o.add_argument(
        "--segments", type=int, default=DEFAULT_SEGMENTS,
        help=f"episodes per trial, at least 2 (default: {DEFAULT_SEGMENTS})",
    )  # fmt: skip
    o.add_argument("--no-pooled", action="store_true", help=f"skip the {POOLED_SUBJECT} files")
    o.add_argument("--plain", action="store_true", help="write .json, not .json.gz (600 MB)")
    o.add_argument("--force", action="store_true", help="replace files this import did not write")
    o.add_argument("--evidence", action="store_true",
                   help="also print the evidence on who played which player")  # fmt: skip
    o.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.segments < 2:
        print(
            f"error: --segments must be ≥ 2, got {args.segments} (a player's file holds one "
            "trial, which must split into training and test episodes)",
            file=sys.stderr,
        )
        return 2
    splits = SPLITS if args.split == "both" else (args.split,)
    try:
        trials = read_all_trials(splits)
        written = import_trials(
            trials, args.out, segments=args.segments, pooled=not args.no_pooled,
            force=args.force, compress=not args.plain,
        )  # fmt: skip
    except (OvercookedDataError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    bad = warned = 0
    for f in written:
        problems = check_file(f.path)
        bad += bool(errors(problems))
        warned += len(warnings_of(problems))
        if errors(problems):
            print(f"{f.path}: {errors(problems)[0]}", file=sys.stderr)
    people = {f.subject for f in written} - {POOLED_SUBJECT}
    print(
        f"{len(trials)} trials ({', '.join(splits)}) -> {len(written)} files, "
        f"{sum(f.episodes for f in written)} episodes, {sum(f.steps for f in written)} steps "
        f"in {written[0].path.parent if written else args.out}; {len(people)} subjects"
        + f" + {POOLED_SUBJECT}"
        * (not args.no_pooled)
    )
    print(f"hbm-data check: {len(written) - bad} OK, {bad} with errors, {warned} warnings")
    if written:
        f = written[0]
        print(f"  load one as load_human_data({f.env_name!r}, {f.subject!r})")
    if args.evidence:
        from .players import player_evidence

        for line in player_evidence(trials).lines():
            print(line)
    return 1 if bad else 0
