"""The `hbm` command: run, sweep, seeds, status, collect, report, demo."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .configs import ENVIRONMENTS, ConfigError, parse_value
from .demo import DEMO_ENVS, DEMO_SEEDS, DEMO_SUBJECTS

if TYPE_CHECKING:
    from rich.console import Console

PROG = "hbm"


def _infra(args: argparse.Namespace) -> dict[str, Any]:
    infra: dict[str, Any] = {}
    for item in getattr(args, "infra", None) or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--infra {item!r}: expected KEY=VALUE, e.g. slurm_partition=debug")
        infra[key.strip()] = parse_value(value)
    if getattr(args, "cluster", None):
        from .slurm import resolve_cluster

        # "auto": Slurm only when a controller answers (submitit's auto only looks for srun)
        infra["cluster"] = None if args.cluster == "none" else resolve_cluster(args.cluster)
    if getattr(args, "retry", False) and getattr(args, "force", False):
        raise ConfigError("--retry and --force: pick one (--force recomputes everything)")
    if getattr(args, "retry", False):
        infra["mode"] = "retry"
    if getattr(args, "force", False):
        infra["mode"] = "force"
    return infra


def _add_where(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only experiments whose config has this value, e.g. --where data.dataset=acrobot "
        "--where method=ga_feedforward (a sweep: its base config's values)",
    )


def _records(args: argparse.Namespace, *, load_results: bool) -> list[Any]:
    from .status import find_experiments, flat_config

    where = {}
    for item in args.where:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--where {item!r}: expected KEY=VALUE")
        where[key.strip()] = parse_value(value)
    records = find_experiments(load_results=load_results or bool(where))
    if where:
        records = [r for r in records if all(flat_config(r).get(k) == v for k, v in where.items())]
    return records


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cache", type=Path, help="cache root (default: $HBM_CACHE or ./results/exca_cache)"
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")


def _add_run_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", type=Path, help="experiment YAML file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set model.hidden_size=64 (repeatable)",
    )
    p.add_argument(
        "--cluster",
        choices=["none", "local", "slurm", "auto"],
        help="where to run (default: in this process)",
    )
    p.add_argument(
        "--infra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="exca infra field, e.g. --infra timeout_min=60 --infra slurm_partition=gpu",
    )
    p.add_argument("--retry", action="store_true", help="rerun experiments that failed")
    p.add_argument(
        "--force",
        action="store_true",
        help="recompute from scratch, even completed experiments (their checkpoints are dropped)",
    )
    _add_common(p)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description="Cached, reproducible hbm experiments.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run one experiment (or read it from the cache)")
    _add_run_opts(p)
    p = sub.add_parser("sweep", help="one experiment per value of a parameter (one job array)")
    _add_run_opts(p)
    p.add_argument("--param", required=True, help="dotted config key, e.g. model.hidden_size")
    p.add_argument("--values", required=True, nargs="+", help="values to try")
    p = sub.add_parser("seeds", help="the same experiment over several seeds (one job array)")
    _add_run_opts(p)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--seeds", nargs="+", type=int, help="explicit seeds")
    g.add_argument("--num-seeds", type=int, help="seeds 0..N-1")
    p = sub.add_parser("status", help="table of every experiment in the cache")
    _add_common(p)
    _add_where(p)
    p.add_argument(
        "--watch",
        nargs="?",
        type=float,
        const=5.0,
        metavar="SECONDS",
        help="refresh the table (every SECONDS, default 5) until every experiment finished",
    )
    p = sub.add_parser("collect", help="one CSV row per experiment (config + metrics)")
    _add_common(p)
    _add_where(p)
    p.add_argument("--out", type=Path, default=Path("results/experiments.csv"))
    p = sub.add_parser("report", help="plots (PNG) and a markdown comparison table")
    _add_common(p)
    _add_where(p)
    p.add_argument("--out", type=Path, default=Path("results/report"))
    p.add_argument(
        "--html", action="store_true", help="also one self-contained report.html (plots inside)"
    )
    p = sub.add_parser(
        "demo", help="GA vs gradient descent, with and without CL, on simulated players"
    )
    _add_common(p)
    p.add_argument("--out", type=Path, default=Path("results/demo"))
    p.add_argument(
        "--envs",
        nargs="+",
        default=list(DEMO_ENVS),
        choices=list(ENVIRONMENTS),
    )
    p.add_argument(
        "--subjects", nargs="+", default=list(DEMO_SUBJECTS), help="simulated players to imitate"
    )
    p.add_argument("--num-seeds", type=int, default=len(DEMO_SEEDS), help="seeds 0..N-1")
    p.add_argument("--budget", choices=["default", "tiny"], default="default")
    p.add_argument(
        "--parallel",
        type=int,
        default=2,
        help="runs at a time, on worker processes of one thread each (1: one by one here)",
    )
    p.add_argument("--real", action="store_true", help="two real Overcooked players instead")
    p.add_argument("--cluster", choices=["none", "local", "slurm", "auto"])
    p.add_argument("--retry", action="store_true")
    from . import compare, tune  # own modules; `add_parser` sets `args.handler`

    tune.add_parser(sub)
    compare.add_parser(sub)
    from . import compare_play, validate

    compare_play.add_parser(sub), validate.add_parser(sub)
    from . import identify_real

    identify_real.add_parser(sub)
    from . import kitchen_validity

    kitchen_validity.add_parser(sub)
    from . import crossfit

    crossfit.add_parser(sub)
    return parser


def _setup(args: argparse.Namespace) -> Console:
    """Logging to stderr (through rich on a terminal, so log lines print above the progress
    bars instead of breaking them); returns the console the progress display uses."""
    from rich.console import Console

    from .progress import console_log_handler

    if getattr(args, "cache", None):
        os.environ["HBM_CACHE"] = str(args.cache)
    level = logging.WARNING if getattr(args, "quiet", False) else logging.INFO
    console = Console(stderr=True)
    handler: logging.Handler
    if console.is_terminal:
        handler = console_log_handler(console)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    handler.set_name("hbm-cli")
    # hbm_experiments' progress lines already summarise the training loops' own logs.
    for name, lvl in (("hbm_experiments", level), ("hbm_data", level)):
        lg = logging.getLogger(name)
        lg.setLevel(lvl)
        for old in [h for h in lg.handlers if h.get_name() == "hbm-cli"]:
            lg.removeHandler(old)  # `main` called again in one process (tests, notebooks)
        lg.addHandler(handler)
        lg.propagate = False
    for name in ("hbm_ne", "hbm_dl"):
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger("exca").setLevel(logging.WARNING)
    return console


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _scores(m: dict[str, Any]) -> str:
    """Validation (what tuning chooses on; "-" without validation episodes) beside test."""

    def f(key: str) -> str:
        return "-" if m.get(key) is None else f"{m[key]:.3f}"

    return (
        f"val CE {f('val_loss')}  val F1 {f('val_f1')}  "
        f"test CE {f('test_ce')}  test F1 {f('test_f1')}"
    )


def _summary(result: dict[str, Any]) -> str:
    m, b = result["metrics"], result["behaviour"]
    if "skipped" in b:  # a game hbm cannot play: offline metrics only
        return f"{_scores(m)}  behaviour: {b['skipped']}"
    p = b.get("diff_of_means_p")
    ci = b.get("diff_of_means_ci") or (None, None)
    return (
        f"{_scores(m)}  "
        f"return {b['model_mean_return']:.1f} vs person {b['human_mean_return']:.1f}  "
        f"return Δ {_signed(b.get('diff_of_means'))} [{_signed(ci[0])}, {_signed(ci[1])}] "
        f"p={'-' if p is None else f'{p:.3g}'}"
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from .slurm import check_infra
    from .tasks import load_experiment_config

    exp = load_experiment_config(args.config, args.overrides, **_infra(args))
    # the merged infra (config file, --cluster/--infra, class defaults): a request no node can
    # satisfy fails now, naming the file, instead of pending or failing at sbatch
    check_infra(exp.infra, source=f"{args.config}: infra")
    cached = exp.infra.mode != "force" and exp.infra.status() == "completed"
    t0 = time.perf_counter()
    result = exp.run()
    print(
        f"{exp.method} on {result['dataset']}/{result['subject']} seed {exp.seed}"
        f"{' (from cache)' if cached else ''} in {time.perf_counter() - t0:.1f}s"
    )
    resumed = result.get("resumed") if not cached else None
    if resumed:
        print(
            f"  resumed from {resumed['unit']} {resumed['from']} "
            f"(checkpoint of {resumed['checkpoint_time']})"
        )
    print("  " + _summary(result))
    defaults = exp.method_defaults()
    if defaults:  # the fields the config left None: what they ran with
        print("  method defaults: " + ", ".join(f"{k}={v}" for k, v in defaults.items()))
    print(f"  folder: {exp.infra.uid_folder()}")
    return 0


def _cmd_many(args: argparse.Namespace, kind: str) -> int:
    from .sweeps import HyperparameterSweep, run_multiple_seeds
    from .tasks import load_experiment_config

    infra = _infra(args)
    mode = infra.pop("mode", None)
    retry, force = mode == "retry", mode == "force"
    base = load_experiment_config(args.config, args.overrides, **infra)
    if kind == "sweep":
        values = [parse_value(v) for v in args.values]
        sweep = HyperparameterSweep(base_config=base, param_name=args.param, param_values=values)
        results = sweep.run(retry=retry, force=force)
        labels = [f"{args.param}={v}" for v in values]
    else:
        seeds = args.seeds if args.seeds is not None else list(range(args.num_seeds))
        results = run_multiple_seeds(base, seeds, retry=retry, force=force)
        labels = [f"seed={s}" for s in seeds]
    for label, r in zip(labels, results, strict=True):
        print(f"{label}: {_summary(r)}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from .status import format_status_table
    from .tasks import cache_root

    if args.watch is not None:
        from rich.console import Console

        from .watch import watch_status

        watch_status(
            lambda: _records(args, load_results=False),
            lambda recs: f"cache: {cache_root()}\n{format_status_table(recs)}",
            console=Console(),
            interval=max(args.watch, 0.0),
        )
        return 0
    records = _records(args, load_results=False)
    print(f"cache: {cache_root()}")
    print(format_status_table(records))
    return 0


def _cmd_collect(args: argparse.Namespace) -> int:
    from .report import collect_rows, write_csv

    rows = collect_rows(_records(args, load_results=True))
    path = write_csv(rows, args.out)
    print(f"wrote {len(rows)} rows to {path}")
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from .report import make_report

    table, files = make_report(_records(args, load_results=True), args.out, html=args.html)
    print(table)
    print("\n" + "\n".join(f"wrote {f}" for f in files))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo_experiments, run_demo
    from .report import make_report
    from .status import find_experiments

    infra = _infra(args)
    if args.real:  # real people (hbm_experiments.demo_real)
        from . import demo_real

        code, text = demo_real.run(args, infra)
        print(text)
        return code
    retry = infra.pop("mode", None) == "retry"
    exps = demo_experiments(
        args.envs,
        budget=args.budget,
        subjects=args.subjects,
        seeds=range(args.num_seeds),
        **infra,
    )
    done = sum(e.infra.status() == "completed" for e in exps)
    print(f"demo: {len(exps)} experiments on simulated players ({done} already cached)")
    if args.parallel < 1:
        raise ConfigError(f"hbm demo: --parallel {args.parallel}: expected at least 1")
    t0 = time.perf_counter()
    run_demo(exps, parallel=args.parallel, retry=retry)
    folders = {e.infra.uid_folder() for e in exps}
    records = [r for r in find_experiments(load_results=True) if r.folder in folders]
    table, files = make_report(records, args.out, html=True)
    print(f"\nfinished in {time.perf_counter() - t0:.1f}s\n")
    print(table)
    print("\nNote: the subjects are simulated players, not people.")
    print("\n".join(f"wrote {f}" for f in files))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    console = _setup(args)
    from .progress import progress_session
    from .slurm import SlurmRequestError
    from .sweeps import ExperimentsFailed
    from .trust import DamagedCacheError, UntrustedFileError

    try:
        if args.command in ("run", "sweep", "seeds", "demo"):
            # a live bar per running experiment on a terminal, else a line every 30 s
            with progress_session(console, enabled=not args.quiet):
                if args.command == "run":
                    return _cmd_run(args)
                if args.command == "demo":
                    return _cmd_demo(args)
                return _cmd_many(args, args.command)
        if getattr(args, "handler", None) is not None:  # tune, compare: text to print
            with progress_session(console, enabled=not args.quiet):
                print(args.handler(args))
            return 0
        if args.command == "status":
            return _cmd_status(args)
        if args.command == "collect":
            return _cmd_collect(args)
        if args.command == "report":
            return _cmd_report(args)
    except ConfigError as exc:
        print(f"{PROG}: invalid config:\n{exc}", file=sys.stderr)
        return 2
    except ExperimentsFailed as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    except SlurmRequestError as exc:  # checked before submission: nothing ran
        print(f"{PROG}: the cluster cannot run this request:\n{exc}", file=sys.stderr)
        return 2
    except (UntrustedFileError, DamagedCacheError) as exc:  # the message says what to do
        print(f"{PROG} {args.command}: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        print(f"{PROG} {args.command}: {type(exc).__name__}: {exc}", file=sys.stderr)
        print("(see `hbm status` for the stored traceback; rerun with --retry)", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
