"""`hbm-data`: check, inspect, record and simulate episode files."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .envs import ENVIRONMENTS
from .episodes import Episode, check_file, infer_env, load_episodes
from .loading import is_simulated
from .paths import data_dir, parse_episode_file_name
from .sessions import compute_session_run_ids
from .simulate import DEFAULT_SUBJECTS
from .validation import EpisodeFormatError


def _cmd_check(args: argparse.Namespace) -> int:
    failed = 0
    for file in args.files:
        problems = check_file(file, env=args.env)
        if problems:
            failed += 1
            print(f"{file}: {len(problems)} problem{'s' * (len(problems) > 1)}")
            for p in problems:
                print(f"  {p}")
        else:
            print(f"{file}: OK")
    return 1 if failed else 0


def _label(path: Path) -> tuple[str, bool]:
    parsed = parse_episode_file_name(path)
    subject = parsed[0] if parsed else path.name
    return subject, is_simulated(path, subject)


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
    subject, simulated = _label(path)
    sessions, runs = compute_session_run_ids([e.timestamp for e in episodes], args.gap_minutes)
    scores = np.array([e.score for e in episodes])
    print(f"file:      {path}")
    print(f"subject:   {subject}" + ("  (SIMULATED player, not a person)" if simulated else ""))
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
    png = Path(args.plot) if args.plot else Path(path.name.split(".json")[0] + "_scores.png")
    _plot(episodes, sessions, png, f"{subject} – {spec.env_id if spec else path.name}", simulated)
    print(f"plot:      {png}")
    return 0


def _plot(
    episodes: Sequence[Episode], sessions: np.ndarray, png: Path, title: str, simulated: bool
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .episodes import atomic_write_bytes

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
    ax.set_title(title + (" (simulated player)" if simulated else ""))
    ax.legend(fontsize="small", loc="best")
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(png, buf.getvalue())


def _cmd_record(args: argparse.Namespace) -> int:
    from .recorder import record

    try:
        path = record(
            args.env,
            args.subject,
            data_dir=args.data_dir,
            max_episodes=args.max_episodes,
            fps=args.fps,
            zoom=args.zoom,
        )
    except EpisodeFormatError as exc:
        print(f"error: the existing file is damaged, not touching it: {exc}", file=sys.stderr)
        return 1
    print(f"episodes saved in {path}")
    return 0


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .simulate import write_simulated_subject

    envs = list(ENVIRONMENTS) if args.env == "all" else [args.env]
    directory = Path(args.data_dir) if args.data_dir else data_dir()
    for env in envs:
        for subject in args.subject:
            target = directory / f"{subject}_data_{env}.json"
            if target.exists() and not args.force:
                print(f"{target}: exists, kept (use --force to regenerate)")
                continue
            path = write_simulated_subject(
                env,
                subject,
                path=target,
                **{
                    k: v
                    for k, v in (("n_sessions", args.sessions), ("seed", args.seed))
                    if v is not None
                },
            )
            n = len(load_episodes(path))
            print(f"{path}: {n} episodes of simulated player {subject}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    envs = sorted(ENVIRONMENTS)
    p = argparse.ArgumentParser(prog="hbm-data", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log progress")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="list every problem in episode files (exit 1 if any)")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--env", choices=envs, help="game (default: from the file name)")
    c.set_defaults(func=_cmd_check)

    i = sub.add_parser("info", help="episodes, sessions, runs and scores; writes a PNG")
    i.add_argument("file", metavar="FILE")
    i.add_argument("--env", choices=envs, help="game (default: from the file name)")
    i.add_argument("--plot", metavar="PNG", help="default: <name>_scores.png here")
    i.add_argument("--gap-minutes", type=float, default=30.0)
    i.set_defaults(func=_cmd_info)

    r = sub.add_parser("record", help="let a person play and record the episodes")
    r.add_argument("env", choices=envs)
    r.add_argument("--subject", required=True, help="e.g. sub03")
    r.add_argument("--data-dir", help=f"default: {data_dir()}")
    r.add_argument("--max-episodes", type=int)
    r.add_argument("--fps", type=int, help="default: the game's recorder frame rate")
    r.add_argument("--zoom", type=float)
    r.set_defaults(func=_cmd_record)

    s = sub.add_parser("simulate", help="write episode files of simulated players")
    s.add_argument("env", choices=[*envs, "all"])
    s.add_argument("--subject", nargs="+", default=list(DEFAULT_SUBJECTS))
    s.add_argument("--sessions", type=int)
    s.add_argument("--seed", type=int)
    s.add_argument("--data-dir", help=f"default: {data_dir()}")
    s.add_argument("--force", action="store_true", help="overwrite existing files")
    s.set_defaults(func=_cmd_simulate)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    try:
        return int(args.func(args))
    except BrokenPipeError:  # `hbm-data info FILE | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
