"""`hbm-data`: check, inspect, record and simulate episode files; import and export expert sets.

`check` and `info` need numpy only; `record`, `simulate`, the plot of `info`, Parquet imports
and Minari imports/exports need an extra and say which `pip install "hbm-data[…]"` to run when
it is missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .envs import ENVIRONMENTS, GYMNASIUM_ENVIRONMENTS
from .episodes import (
    DEFAULT_MAX_JSON_BYTES,
    MAX_JSON_BYTES_ENV,
    Episode,
    check_file,
    infer_env,
    load_episodes,
    read_sidecar,
)
from .extras import MissingExtraError, require
from .files import LockHeldError, atomic_write_bytes
from .loading import SOURCE_KINDS, source_kind
from .paths import check_subject, data_dir, parse_episode_file_name
from .sessions import compute_session_run_ids
from .simulate import SIMULATED_PROFILES
from .validation import EpisodeFormatError, errors, warnings_of


def _subject(text: str) -> str:
    """argparse type of a subject: the string exactly as typed ("007" stays "007")."""
    try:
        return check_subject(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _subject_or_path(text: str) -> str:
    """argparse type of a subject that may also be the path of an episode file."""
    try:
        return check_subject(text, allow_path=True)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' * (n != 1)}"


def _cmd_check(args: argparse.Namespace) -> int:
    """Errors fail (exit 1); warnings are listed but a file with only warnings is OK."""
    failed = 0
    for file in args.files:
        problems = check_file(file, env=args.env, max_bytes=args.max_bytes)
        bad, warned = errors(problems), warnings_of(problems)
        if bad:
            failed += 1
            print(f"{file}: {_count(len(bad), 'problem')}" + f", {_count(len(warned), 'warning')}"
                  * bool(warned))  # fmt: skip
        elif warned:
            print(f"{file}: OK, {_count(len(warned), 'warning')}")
        else:
            print(f"{file}: OK")
        for p in [*bad, *warned]:
            print(f"  {p}")
    return 1 if failed else 0


def _label(path: Path) -> tuple[str, str]:
    parsed = parse_episode_file_name(path)
    subject = parsed[0] if parsed else path.name
    return subject, source_kind(path, subject)


_KIND_NOTES = {
    "simulated": "  (SIMULATED player, not a person)",
    "expert": "  (EXPERT agent's demonstrations, not a person)",
    "person": "",
}


def _cmd_info(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        episodes = load_episodes(path, env=args.env)
    except (EpisodeFormatError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not episodes:
        print(f"{path}: no episodes")
        return 1
    spec = ENVIRONMENTS[args.env] if args.env else infer_env(path)
    subject, kind = _label(path)
    simulated = kind != "person"
    sessions, runs = compute_session_run_ids([e.timestamp for e in episodes], args.gap_minutes)
    scores = np.array([e.score for e in episodes])
    print(f"file:      {path}")
    print(f"subject:   {subject}" + _KIND_NOTES[kind])
    print(f"game:      {spec.env_id if spec else 'unknown (file name does not say)'}")
    print(f"episodes:  {len(episodes)}  ({sum(e.length for e in episodes)} steps)")
    print(f"sessions:  {sessions.max() + 1}  (gap ≥ {args.gap_minutes:g} min)")
    for s in range(int(sessions.max()) + 1):
        idx = np.flatnonzero(sessions == s)
        first = episodes[idx[0]].timestamp
        print(
            f"  session {s}: {len(idx):3d} runs from {first}, mean score {scores[idx].mean():9.2f}"
            f"  (min {scores[idx].min():.1f}, max {scores[idx].max():.1f})"
        )
    print("score per episode (episode: session/run score):")
    for i, e in enumerate(episodes):
        print(f"  {i:4d}: {sessions[i]}/{runs[i]:<3d} {e.score:10.2f}  ({e.length} steps)")
    if args.no_plot:
        return 0
    png = Path(args.plot) if args.plot else Path(path.name.split(".json")[0] + "_scores.png")
    try:
        _plot(
            episodes, sessions, png, f"{subject} – {spec.env_id if spec else path.name}", simulated
        )
    except MissingExtraError as exc:
        if args.plot:  # asked for explicitly: a failure
            raise
        print(f"plot:      not written: {exc} (or --no-plot)", file=sys.stderr)
        return 0
    print(f"plot:      {png}")
    return 0


def _plot(
    episodes: Sequence[Episode], sessions: np.ndarray, png: Path, title: str, simulated: bool
) -> None:
    matplotlib = require("matplotlib", "plot", "the score plot of `hbm-data info`")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(episodes))
    scores = np.array([e.score for e in episodes])
    cmap = plt.get_cmap("viridis", int(sessions.max()) + 1)
    for s in range(int(sessions.max()) + 1):
        m = sessions == s
        ax.scatter(x[m], scores[m], color=cmap(s), label=f"session {s}", s=18)
        if s > 0:
            ax.axvline(x[m][0] - 0.5, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("episode")
    ax.set_ylabel("score")
    ax.set_title(title + (" (not a person)" if simulated else ""))
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(png, buf.getvalue())


def _cmd_record(args: argparse.Namespace) -> int:
    from .recorder import record

    saved: list[object] = []
    try:
        path = record(
            args.env,
            args.subject,
            data_dir=args.data_dir,
            max_episodes=args.max_episodes,
            fps=args.fps,
            zoom=args.zoom,
            on_episode=saved.append,
        )
    except EpisodeFormatError as exc:
        print(f"error: the existing file is damaged, not touching it: {exc}", file=sys.stderr)
        return 1
    except LockHeldError as exc:  # another recorder holds the file
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if saved:
        print(f"{_count(len(saved), 'episode')} saved in {path}")
    else:  # never claim a save that did not happen
        print(f"no episode recorded; {path} {'unchanged' if path.exists() else 'not created'}")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate import SubjectProfile, profile_for, write_simulated_subject

    envs = list(GYMNASIUM_ENVIRONMENTS) if args.env == "all" else [args.env]
    directory = Path(args.data_dir) if args.data_dir else data_dir()
    options = {
        k: v for k, v in (("n_sessions", args.sessions), ("seed", args.seed)) if v is not None
    }
    for env in envs:
        for subject in args.subject:
            who: str | SubjectProfile = subject
            if args.profile is not None:  # the style of a profile, played by another person
                seed = args.seed if args.seed is not None else zlib.crc32(subject.encode())
                who = SIMULATED_PROFILES[args.profile].with_seed(seed, name=subject)
            target = directory / f"{subject}_data_{env}.json"
            if target.exists() and not args.force:
                print(f"{target}: exists, kept (use --force to regenerate)")
                continue
            path = write_simulated_subject(env, who, path=target, **options)
            n = len(load_episodes(path))
            style = profile_for(who).style
            print(
                f"{path}: {n} episodes of simulated player {subject}" + f" ({style})" * bool(style)
            )
    return 0


def _imported(path: Path, what: str) -> int:
    """Say what was written and how to load it; the seeds' caveat for expert sets."""
    episodes = load_episodes(path)
    parsed = parse_episode_file_name(path)
    subject, kind = _label(path)
    env = parsed[1] if parsed else "?"
    steps = sum(e.length for e in episodes)
    print(f"{path}: {_count(len(episodes), 'episode')} ({steps} steps) of {kind} {subject}, {what}")
    name = f"expert:{subject.removeprefix('expert-')}" if subject.startswith("expert-") else subject
    print(f"  load it as load_human_data({env!r}, {name!r})")
    meta = read_sidecar(path) or {}
    if meta.get("placeholder_seeds"):
        print(
            "  no reset seeds in the dataset: seed_used is a placeholder (the episode's index), "
            "so behaviour replay cannot start where these episodes did"
        )
    return 0


def _cmd_import_hf(args: argparse.Namespace) -> int:
    from .expert import DatasetImportError, import_hf_dataset

    try:
        path = import_hf_dataset(
            args.path, args.env, subject=args.subject, data_dir=args.data_dir, split=args.split,
            max_episodes=args.max_episodes, compress=args.compress, force=args.force,
        )  # fmt: skip
    except (DatasetImportError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _imported(path, f"imported from {args.path}")


def _cmd_import_minari(args: argparse.Namespace) -> int:
    from .expert import DatasetImportError, import_minari_dataset

    try:
        path = import_minari_dataset(
            args.dir, env=args.env, subject=args.subject, kind=args.kind, data_dir=args.data_dir,
            max_episodes=args.max_episodes, compress=args.compress, force=args.force,
        )  # fmt: skip
    except (DatasetImportError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _imported(path, f"imported from Minari dataset {args.dir}")


def _cmd_export_minari(args: argparse.Namespace) -> int:
    from .expert import DatasetImportError, export_minari_dataset

    try:
        folder = export_minari_dataset(
            args.env, args.subject, args.out_dir, data_dir=args.data_dir,
            dataset_id=args.dataset_id, force=args.force,
        )  # fmt: skip
    except (DatasetImportError, EpisodeFormatError, FileExistsError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # a malformed dataset id
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = json.loads((folder / "data" / "metadata.json").read_text())
    root = Path(args.out_dir).resolve()
    print(
        f"{folder}: Minari dataset {meta['dataset_id']}, "
        f"{_count(meta['total_episodes'], 'episode')} ({meta['total_steps']} steps) of "
        f"{meta['hbm']['source_kind']} {meta['hbm']['subject']}"
    )
    print(
        f'  load it with: MINARI_DATASETS_PATH={root} python -c "import minari; '
        f"print(minari.load_dataset('{meta['dataset_id']}'))\""
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    envs = sorted(ENVIRONMENTS)
    p = argparse.ArgumentParser(prog="hbm-data", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="list every problem in episode files (exit 1 if any)")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--env", choices=envs, help="game (default: from the file name)")
    c.add_argument(
        "--max-bytes",
        type=_positive_int,
        metavar="N",
        help=f"most bytes of JSON a file may hold, after gzip (default: ${MAX_JSON_BYTES_ENV} "
        f"or {DEFAULT_MAX_JSON_BYTES})",
    )
    c.set_defaults(func=_cmd_check)

    i = sub.add_parser("info", help="episodes, sessions, runs and scores; writes a PNG")
    i.add_argument("file", metavar="FILE")
    i.add_argument("--env", choices=envs, help="game (default: from the file name)")
    i.add_argument("--plot", metavar="PNG", help="default: <name>_scores.png here")
    i.add_argument("--no-plot", action="store_true", help="print only (no matplotlib needed)")
    i.add_argument("--gap-minutes", type=float, default=30.0)
    i.set_defaults(func=_cmd_info)

    r = sub.add_parser(
        "record", help='let a person play and record the episodes (needs "hbm-data[record]")'
    )
    r.add_argument("env", choices=sorted(GYMNASIUM_ENVIRONMENTS))
    r.add_argument(
        "--subject", required=True, type=_subject, help="e.g. sub03 or 007 (kept as written)"
    )
    r.add_argument("--data-dir", help=f"default: {data_dir()}")
    r.add_argument("--max-episodes", type=int)
    r.add_argument("--fps", type=int, help="default: the game's recorder frame rate")
    r.add_argument("--zoom", type=float)
    r.set_defaults(func=_cmd_record)

    styles = "; ".join(f"{n}: {p.style}" for n, p in SIMULATED_PROFILES.items())
    s = sub.add_parser(
        "simulate",
        help='write episode files of simulated players (needs "hbm-data[simulate]")',
        description=f"Simulated players ({styles}). Any other subject name is a reproducible "
        "player drawn from the name, or, with --profile, another player with that style.",
    )
    s.add_argument("env", choices=[*sorted(GYMNASIUM_ENVIRONMENTS), "all"])
    s.add_argument("--subject", nargs="+", type=_subject, default=list(SIMULATED_PROFILES))
    s.add_argument(
        "--profile",
        choices=list(SIMULATED_PROFILES),
        help="play in this profile's style (seed: --seed, else drawn from the subject name)",
    )
    s.add_argument("--sessions", type=int)
    s.add_argument("--seed", type=int, help="another person with the same style")
    s.add_argument("--data-dir", help=f"default: {data_dir()}")
    s.add_argument("--force", action="store_true", help="overwrite existing files")
    s.set_defaults(func=_cmd_simulate)

    h = sub.add_parser(
        "import-hf",
        help="import a local Hugging Face expert set as a subject (Parquet needs "
        '"hbm-data[expert]")',
        description="Import a local copy of a Hugging Face expert dataset (the lab's "
        "NathanGavenski/CartPole-v1 layout: rows with obs, actions, rewards, episode_starts; "
        "LeRobot's episode_index, next.done also read) as an episode file with a sidecar "
        "marking it expert. Nothing is downloaded.",
    )
    h.add_argument("path", metavar="PATH", help="a .parquet/.jsonl/.json file or a folder of them")
    h.add_argument("--env", required=True, choices=envs)
    h.add_argument("--subject", type=_subject, help="default: expert-ENV (loaded as expert:ENV)")
    h.add_argument("--split", help="only the files of this split (e.g. train) of a folder")
    h.add_argument("--max-episodes", type=int, help="only the first N episodes")
    h.add_argument("--data-dir", help=f"default: {data_dir()}")
    h.add_argument("--compress", action="store_true", help="write .json.gz")
    h.add_argument("--force", action="store_true", help="overwrite the subject's file")
    h.set_defaults(func=_cmd_import_hf)

    m = sub.add_parser(
        "import-minari",
        help='import a local Minari dataset as a subject (needs "hbm-data[minari]")',
        description="Import a local Minari dataset folder (<root>/<dataset_id>, holding "
        "data/metadata.json) as an episode file; seeds come from the episodes' metadata.",
    )
    m.add_argument("dir", metavar="DIR", help="the dataset folder or its data/ folder")
    m.add_argument("--env", choices=envs, help="default: from the dataset's env_spec")
    m.add_argument(
        "--subject", type=_subject, help="default: the exported subject's, else expert-ENV"
    )
    m.add_argument(
        "--kind",
        choices=SOURCE_KINDS,
        help="who played (default: what hbm exported, else expert)",
    )
    m.add_argument("--max-episodes", type=int, help="only the first N episodes")
    m.add_argument("--data-dir", help=f"default: {data_dir()}")
    m.add_argument("--compress", action="store_true", help="write .json.gz")
    m.add_argument("--force", action="store_true", help="overwrite the subject's file")
    m.set_defaults(func=_cmd_import_minari)

    x = sub.add_parser(
        "export-minari",
        help='write a subject as a Minari dataset (needs "hbm-data[minari]")',
        description="Write one subject's episodes (a person, a simulated player or an expert) "
        "as a Minari HDF5 dataset under OUT_DIR/<dataset_id>, seeds in the episode metadata; "
        "with MINARI_DATASETS_PATH=OUT_DIR, minari.load_dataset(<dataset_id>) opens it.",
    )
    x.add_argument("env", choices=envs)
    x.add_argument(
        "subject", type=_subject_or_path, help="sub03, expert:cartpole, or an episode file path"
    )
    x.add_argument("out_dir", metavar="OUT_DIR", help="Minari datasets root")
    x.add_argument("--dataset-id", help="default: hbm/ENV/SUBJECT-v0")
    x.add_argument("--data-dir", help=f"default: {data_dir()}")
    x.add_argument("--force", action="store_true", help="overwrite an existing dataset")
    x.set_defaults(func=_cmd_export_minari)

    from .overcooked.cli import add_parser as add_import_overcooked

    add_import_overcooked(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        return int(args.func(args))
    except MissingExtraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `hbm-data info FILE | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
