"""Cross-fitted evaluation: every episode of the person is a target once.

One holdout tests a model on one episode or two per session, 4–6 episodes of a person: too
few for the yardsticks to decide. Cross-fitting deals the person's episodes into K folds per
session (`hbm_data.splits.crossfit_folds`, the holdout's rule) and trains K models, each on all
folds but one (`data.crossfit_folds: K`, `data.crossfit_fold: k`; the validation split is
drawn from the training folds as usual). Each fold is an ordinary cached experiment, so the K
run as one job array and resume one by one. `run_crossfit` then scores every episode with the
model that did not train on it and pools: the humanlike block over all the person's episodes
against all the models' rollouts (paired by seed, through `HumanlikeTarget.score`, the
experiments' own code), the return comparison, and test CE/accuracy/F1. `episodes_used` says
how many of the person's episodes each metric used.

The rollouts are not stored by an experiment: each fold's model plays its held-out seeds again
with the experiment's own generator, and the replay must give back the block the experiment
recorded (else the pooling refuses, rather than pool other plays).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CROSSFIT_FORMAT",
    "FoldPlay",
    "add_parser",
    "crossfit_folder",
    "fold_experiments",
    "load_pooled",
    "pool_folds",
    "pool_plays",
    "pooled_references",
    "pooled_trajectories",
    "replay_fold",
    "result_digest",
    "run",
    "run_crossfit",
    "save_pooled",
    "split_crossfit",
]

logger = logging.getLogger(__name__)

CROSSFIT_DIR = "crossfit"
CROSSFIT_FILE = "result.json"
CROSSFIT_FORMAT = "1"
"""The pooled result's layout (`pool_folds`); `load_pooled` reads only this one."""

_FOLD_STREAM = 2
"""Second entry of the fold draw's seed (`default_rng([split_seed, 2])`): its own stream, apart
from the holdout's (`default_rng(split_seed)`) and the validation split's (`[split_seed, 1]`)."""

_ROLLOUT_STREAM = 2
"""An experiment plays its held-out seeds with `seed * 1_000_003 + 2` (`evaluate_policy`)."""

_REPLAY_KEYS = ("mean_return", "switch_rate", "mean_hold", "action_accuracy")
_REPLAY_TOL = 1e-9
"""The replay and the experiment's recorded block agree on these within this tolerance (one
code path, the same generator: equal up to summation order)."""


def split_crossfit(data: Any, folds: int, fold: int | None, split_seed: int) -> Any:
    """`hbm_data.HumanData` re-split for cross-fitting: fold `fold` of `folds` (drawn from
    `default_rng([split_seed, 2])`, per session) is test, every other episode is training,
    file order kept within each; `metadata.train_episodes`/`test_episodes` rebuilt."""
    from hbm_data.splits import crossfit_split

    from .data import _gather

    meta = data.metadata
    n_train = len(data.train_act)
    moved = [dataclasses.replace(e, start=e.start + n_train) for e in meta.test_episodes]
    infos = sorted([*meta.train_episodes, *moved], key=lambda e: e.index)
    obs = np.concatenate([data.train_obs, data.test_obs])
    act = np.concatenate([data.train_act, data.test_act])
    generator = np.random.default_rng([split_seed, _FOLD_STREAM])
    try:
        train_idx, test_idx = crossfit_split(
            [e.session for e in infos], folds, -1 if fold is None else fold, generator
        )
    except ValueError as exc:
        raise ValueError(
            f"{meta.source_file}: data.crossfit_folds={folds}, data.crossfit_fold={fold}: {exc}"
        ) from None
    train_obs, train_act, train_infos = _gather(obs, act, [infos[i] for i in train_idx])
    test_obs, test_act, test_infos = _gather(obs, act, [infos[i] for i in test_idx])
    meta = dataclasses.replace(meta, train_episodes=train_infos, test_episodes=test_infos)
    return type(data)(train_obs, train_act, test_obs, test_act, meta)


def fold_experiments(base: Any, folds: int | None = None) -> list[Any]:
    """The K experiments of `base` (an `Experiment`), fold k tested by the k-th; `folds`
    defaults to the config's `data.crossfit_folds`."""
    from .configs import ConfigError
    from .tasks import experiment_to_dict, infra_set, make_experiment

    k = folds if folds is not None else base.data.crossfit_folds
    if k is None:
        raise ConfigError("cross-fitting needs a fold count: --folds K or data.crossfit_folds")
    data = experiment_to_dict(base)
    infra = infra_set(base)
    out = []
    for i in range(k):
        fold = {**data["data"], "crossfit_folds": k, "crossfit_fold": i}
        out.append(
            make_experiment(
                {**data, "data": fold, "infra": infra},
                source=f"crossfit fold {i} of {k}",
                cls=type(base),
            )
        )
    return out


@dataclasses.dataclass(frozen=True)
class FoldPlay:
    """One fold's part of the pooling: its target (the person's held-out episodes of that
    fold, `HumanlikeTarget`), the model's rollouts of them (rollout r of episode e at r·E + e),
    the fold's own humanlike block and its rollouts per held-out episode."""

    target: Any
    rollouts: Any
    block: dict[str, Any]
    repeats: int
    data: Any = None
    """The fold's `hbm_data.HumanData` (for its floor and random plays); None in pure
    arithmetic."""


def replay_fold(exp: Any, result: dict[str, Any], *, device: str = "cpu") -> FoldPlay:
    """Play fold `exp`'s saved model again on its held-out seeds, as its run did, and check the
    replay gives the humanlike block the run recorded."""
    import torch

    from .evaluation import load_model
    from .humanlike import play_and_score, target_of

    data = exp.data_task().load()
    folder = exp.infra.uid_folder()
    policy = load_model(Path(folder) / result["model_file"], device=device).eval()
    target = target_of(data, seed=exp.seed)
    dev = torch.device(device)
    gen = torch.Generator(device=dev).manual_seed(exp.seed * 1_000_003 + _ROLLOUT_STREAM)
    repeats = exp.training.behaviour_repeats
    (rollouts,), (block,) = play_and_score(
        policy, data, generator=gen, repeats=repeats, target=target, seed=exp.seed,
        discriminator=False, device=dev,
    )  # fmt: skip
    recorded = result.get("humanlike") or {}
    for key in _REPLAY_KEYS:
        a, b = block.get(key), recorded.get(key)
        same = a is None and b is None
        if a is not None and b is not None:
            same = math.isclose(a, b, rel_tol=0.0, abs_tol=_REPLAY_TOL)
        if not same:
            raise RuntimeError(
                f"{folder}: replaying fold {exp.data.crossfit_fold}'s model gave {key}={a}, "
                f"its run recorded {b}: the rollouts cannot be reproduced here (another device "
                "or library version?); rerun the folds with --force on this machine"
            )
    return FoldPlay(target, rollouts, block, repeats, data)


def _concat(parts: Sequence[Any]) -> Any:
    from .humanlike import Trajectories

    return Trajectories(
        tuple(o for p in parts for o in p.obs),
        tuple(a for p in parts for a in p.actions),
        np.concatenate([p.returns for p in parts]),
        np.concatenate([p.sessions for p in parts]),
        np.concatenate([p.seeds for p in parts]),
    )


def pooled_trajectories(plays: Sequence[FoldPlay]) -> tuple[Any, Any]:
    """`(target, candidate)` `Trajectories` of all folds: the target episodes fold after fold,
    and the rollouts in a single model's order (rollout r of pooled episode e at r·E + e)."""
    sizes = [len(p.target.trajectories) for p in plays]
    target = _concat([p.target.trajectories for p in plays])
    cand = _concat(
        [p.rollouts.subset(np.arange(i * n, (i + 1) * n)) for i in range(plays[0].repeats)
         for p, n in zip(plays, sizes, strict=True)]
    )  # fmt: skip
    return target, cand


def _weighted(values: Sequence[float | None], weights: Sequence[float]) -> float | None:
    """Σ w·x / Σ w, None if any value is None (a metric some fold could not compute)."""
    known = [float(v) for v in values if v is not None]
    if len(known) != len(values) or sum(weights) == 0:
        return None
    return float(np.dot(known, weights) / sum(weights))


def pool_plays(
    plays: Sequence[FoldPlay], *, seed: int = 0, discriminator: bool = True
) -> dict[str, Any]:
    """The humanlike block over every fold's target episodes at once, each scored against the
    rollouts of the model that did not train on it (`HumanlikeTarget.score`, paired by seed).

    The action accuracies are per step of each fold's own model: pooled over all steps (the
    shifted one over all shifted pairs, each fold with the shift δ chosen on its own training
    episodes; `shift_frames` lists them). `target_episodes`: the person's episodes each metric
    used (0 where it is undefined). `discriminator=False` skips the classifier test (its keys
    None), the dearest part."""
    from .humanlike import METRICS, HumanlikeTarget
    from .humanlike.metrics import shift_pairs

    repeats = {p.repeats for p in plays}
    if len(repeats) != 1:
        raise ValueError(f"the folds played different repeats {sorted(repeats)}")
    (r,) = repeats
    first = plays[0].target
    target, cand = pooled_trajectories(plays)
    pooled = HumanlikeTarget(
        target, first.env, num_actions=first.num_actions, fps=first.fps, seed=seed,
        permutations=first.permutations,
    )  # fmt: skip
    block = pooled.score(cand, None, seed=seed, discriminator=discriminator)
    steps = [float(p.target.lengths.sum()) for p in plays]
    block["action_accuracy"] = _weighted([p.block.get("action_accuracy") for p in plays], steps)
    shifts = [p.target.shift for p in plays]
    if all(s is not None for s in shifts):
        pairs = [float(len(shift_pairs(p.target.lengths, p.target.shift)[0])) for p in plays]
        shifted = [p.block.get("action_accuracy_shift") for p in plays]
        block["action_accuracy_shift"] = _weighted(shifted, pairs)
    block["shift_frames"] = shifts
    block["repeats"] = r
    block["target_episodes"] = {
        key: len(target) if block.get(key) is not None else 0 for key in METRICS
    }
    return block


def pooled_references(
    plays: Sequence[FoldPlay],
    *,
    seed: int = 0,
    discriminator: bool = True,
    device: str = "cpu",
) -> dict[str, dict[str, Any]]:
    """The person and random rows of a cross-fitted result, by its protocol and sample sizes:
    each fold's floor (`humanlike.person_play`: the person's training episodes of that fold
    paired with its held-out ones) and random play (`humanlike.random_play` on its held-out
    seeds), pooled exactly as the models' rollouts are (`pool_plays`), so a model row and its
    references rest on the same target episodes and the same number of candidates.

    Pooled, every episode of the person is a target, so the floor's candidates (each fold's
    training episodes) are targets of the other folds: its two sides share episodes, where a
    model's rollouts are new plays. The floor is then the distance of the person's episodes to
    a resample of themselves at the model row's sizes (its discriminator AUC can fall below
    0.5, the classifier meeting copies across its folds); the ordinary rows' floor (disjoint
    sides, fewer targets) is the other reading."""
    from .humanlike.references import person_play, random_play

    if any(p.data is None for p in plays):
        raise ValueError("the references need each fold's data (FoldPlay.data)")
    floors, randoms = [], []
    for p in plays:
        target = p.target
        floor, predicted, shifted_predicted = person_play(
            p.data, seed=seed, repeats=p.repeats, target=target
        )
        acc, _ = target.accuracy(predicted)
        shifted = None
        if shifted_predicted is not None:
            shifted = target.accuracy(shifted_predicted)[1]
        accuracies = {
            "action_accuracy": float(acc),
            "action_accuracy_shift": None if shifted is None else float(shifted),
        }
        floors.append(dataclasses.replace(p, rollouts=floor, block=accuracies))
        traj, guesses = random_play(
            p.data, seed=seed, repeats=p.repeats, target=target, device=device
        )
        acc, shifted = target.accuracy(guesses)
        accuracies = {
            "action_accuracy": float(acc),
            "action_accuracy_shift": None if shifted is None else float(shifted),
        }
        randoms.append(dataclasses.replace(p, rollouts=traj, block=accuracies))
    return {
        name: pool_plays(group, seed=seed, discriminator=discriminator)
        for name, group in (("person", floors), ("random", randoms))
    }


def pool_folds(
    experiments: Sequence[Any],
    results: Sequence[dict[str, Any]],
    *,
    device: str = "cpu",
    discriminator: bool = True,
) -> dict[str, Any]:
    """The pooled result of K finished fold experiments (`run_crossfit` without running),
    with the person and random rows at its sample sizes (`humanlike_references`:
    `pooled_references`). `discriminator=False` skips the classifier tests (keys None)."""
    from .evaluation import compare_returns, unplayable_reason
    from .tasks import experiment_to_dict

    base = experiments[0]
    k = len(experiments)
    folds = sorted(e.data.crossfit_fold for e in experiments)
    if folds != list(range(k)) or {e.data.crossfit_folds for e in experiments} != {k}:
        raise ValueError(f"expected folds 0..{k - 1} of {k}, got {folds}")
    n_test = [int(r["data"]["n_test_episodes"]) for r in results]
    total = sum(n_test)
    d0 = results[0]["data"]
    held = d0["n_train_episodes"] + d0["n_test_episodes"] + d0["n_validation_episodes"]
    if base.data.max_train_episodes is None and held != total:  # each a target exactly once
        raise RuntimeError(f"the folds test {total} episodes, the person has {held}")
    steps = [float(r["data"]["n_test_steps"]) for r in results]
    ms = [r["metrics"] for r in results]
    metrics = {
        # CE and accuracy are means over steps: the step-weighted mean is their pooled value
        "test_ce": _weighted([m.get("test_ce") for m in ms], steps),
        "test_accuracy": _weighted([m.get("test_accuracy") for m in ms], steps),
        # macro F1 does not pool over steps: the episode-weighted mean of the folds'
        "test_f1": _weighted([m.get("test_f1") for m in ms], n_test),
    }
    out: dict[str, Any] = {
        "method": base.method,
        "dataset": results[0]["dataset"],
        "subject": results[0]["subject"],
        "seed": base.seed,
        "use_cl_info": bool(base.data.use_cl_info),
        "folds": k,
        "format": CROSSFIT_FORMAT,
        # the base config without its fold (the report groups by it, seeds aside)
        "config": _base_config(experiment_to_dict(base), type(base)),
        "uids": [e.infra.uid() for e in experiments],
        # what was pooled: a fold rerun since (another result file) makes this result stale
        "fold_results": [result_digest(Path(e.infra.uid_folder())) for e in experiments],
        "episodes": total,
        "fold_episodes": n_test,
        "metrics": metrics,
    }
    used = dict.fromkeys(metrics, total)
    skipped = unplayable_reason(base.dataset)
    if skipped is not None:
        out |= {"behaviour": {"skipped": skipped}, "humanlike": {"skipped": skipped}}
        return out | {"episodes_used": used}
    plays = [replay_fold(e, r, device=device) for e, r in zip(experiments, results, strict=True)]
    block = pool_plays(plays, seed=base.seed, discriminator=discriminator)
    refs = pooled_references(plays, seed=base.seed, discriminator=discriminator, device=device)
    target, cand = pooled_trajectories(plays)
    behaviour = compare_returns(cand.returns, target.returns, seed=base.seed)
    used |= {"returns": total} | block["target_episodes"]
    return out | {
        "behaviour": behaviour,
        "humanlike": block,
        "humanlike_references": refs,
        "episodes_used": used,
    }


def _base_config(config: dict[str, Any], cls: type) -> dict[str, Any]:
    """`config` (an experiment's dict) without the fold index, the seed, `infra` and the fields
    that cannot change a result (out of the uid: `device`, the training cadences, ...)."""
    from .configs import TrainingConfig

    drop = {"seed", "infra", *getattr(cls, "_exclude_from_cls_uid", ())}
    out = {k: v for k, v in config.items() if k not in drop}
    out["data"] = {k: v for k, v in (config.get("data") or {}).items() if k != "crossfit_fold"}
    if isinstance(out.get("training"), dict):
        cadences = set(TrainingConfig._exclude_from_cls_uid)
        out["training"] = {k: v for k, v in out["training"].items() if k not in cadences}
    return out


def result_digest(folder: Path) -> str | None:
    """sha256 of an experiment folder's result file (None without one)."""
    from .files import RESULT_FILE

    path = folder / RESULT_FILE
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def crossfit_folder(root: str | Path | None = None) -> Path:
    """Where pooled results are kept: `<cache root>/crossfit/` (beside the experiments)."""
    from .infra import cache_root

    return Path(root if root is not None else cache_root()) / CROSSFIT_DIR


def save_pooled(out: dict[str, Any], root: str | Path | None = None) -> Path:
    """Write a pooled result (`pool_folds`) atomically to `crossfit_folder(root)/<name>/
    result.json`, named by its person, method, seed, K and a hash of its folds' uids: the same
    folds always write the same file, so `hbm report` finds the latest pooling of each."""
    from .files import atomic_write_text
    from .report import safe_slug

    digest = hashlib.sha256(json.dumps(sorted(out["uids"])).encode()).hexdigest()[:12]
    name = safe_slug(
        f"{out['dataset']}-{out['subject']}-{out['method']}-seed{out['seed']}-k{out['folds']}",
        limit=80,
    )
    path = crossfit_folder(root) / f"{name}-{digest}" / CROSSFIT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(path, json.dumps(out, indent=1, allow_nan=False) + "\n")


_REQUIRED = {"format": str, "dataset": str, "subject": str, "method": str, "seed": int,
             "folds": int, "uids": list, "fold_results": list, "episodes": int, "metrics": dict,
             "config": dict, "episodes_used": dict, "humanlike": dict}  # fmt: skip


def load_pooled(root: str | Path | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """Every pooled result under `crossfit_folder(root)` (JSON only: nothing read is run),
    and one line per file that could not be read (naming the file, the field and what was
    expected), so a report says what it left out."""
    folder = crossfit_folder(root)
    found: list[dict[str, Any]] = []
    problems: list[str] = []
    if not folder.is_dir():
        return found, problems
    for path in sorted(folder.glob(f"*/{CROSSFIT_FILE}")):
        try:
            out = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            problems.append(f"{path}: not readable JSON ({exc})")
            continue
        if not isinstance(out, dict):
            problems.append(f"{path}: expected a JSON object, got {type(out).__name__}")
            continue
        bad = [
            f"{key} (expected {kind.__name__})"
            for key, kind in _REQUIRED.items()
            if not isinstance(out.get(key), kind)
        ]
        if bad:
            problems.append(f"{path}: missing or wrong fields {', '.join(bad)}")
            continue
        if out["format"] != CROSSFIT_FORMAT:
            problems.append(
                f"{path}: format {out['format']!r}, this hbm reads {CROSSFIT_FORMAT!r}; "
                "rerun hbm crossfit"
            )
            continue
        found.append(out | {"file": str(path)})
    return found, problems


def run_crossfit(
    config: Any,
    folds: int | None = None,
    *,
    retry: bool = False,
    force: bool = False,
    device: str = "cpu",
    save: bool = True,
) -> dict[str, Any]:
    """Run the K fold experiments of `config` (one job array, each cached) and pool them
    (`pool_folds`): every metric over all the person's episodes. `save` keeps the pooled
    result beside the cache (`save_pooled`, its path as `file`), where `hbm report` reads it."""
    from .sweeps import run_experiments

    exps = fold_experiments(config, folds)
    results = run_experiments(exps, retry=retry, force=force)
    out = pool_folds(exps, results, device=device)
    if save:
        root = Path(str(exps[0].infra.folder))
        out["file"] = str(save_pooled(out, root))
    return out


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `crossfit` on an argparse subparsers object."""
    from .cli import _add_run_opts

    p = sub.add_parser(
        "crossfit", help="K models, each tested on the fold it did not train on; pooled metrics"
    )
    _add_run_opts(p)
    p.add_argument("--folds", type=int, help="K (default: the config's data.crossfit_folds)")
    p.add_argument("--json", action="store_true", help="print the pooled result as JSON")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> str:
    """Run and pool the folds: the text to print (`hbm` prints it)."""
    from .cli import _infra
    from .comparisons import metric_validity
    from .humanlike import METRICS
    from .tasks import load_experiment_config

    infra = _infra(args)
    mode = infra.pop("mode", None)
    base = load_experiment_config(args.config, args.overrides, **infra)
    out = run_crossfit(base, args.folds, retry=mode == "retry", force=mode == "force")
    if args.json:
        return json.dumps(out, indent=2, allow_nan=False)
    used = out["episodes_used"]
    lines = [
        f"{out['method']} on {out['dataset']}/{out['subject']} seed {out['seed']}: "
        f"{out['folds']} folds, {out['episodes']} target episodes "
        f"({' + '.join(map(str, out['fold_episodes']))})",
    ]
    for key, value in out["metrics"].items():
        lines.append(f"  {key:<26} {_fmt(value)}  ({used[key]} episodes)")
    block = out["humanlike"]
    if "skipped" in block:
        return "\n".join([*lines, f"  humanlike: {block['skipped']}"])
    refs = out.get("humanlike_references") or {}
    lines.append(f"  {'':<26} {'model':>10} {'person':>10} {'random':>10}")
    invalid = []
    for key, info in METRICS.items():
        p = block.get(info.p_key) if info.p_key else None
        tail = "" if p is None else f"  p={p:.3g}"
        if not metric_validity(out["dataset"], key, "crossfit")[0]:
            tail += "  ✗"
            invalid.append(key)
        cells = [block.get(key), *((refs.get(n) or {}).get(key) for n in ("person", "random"))]
        lines.append(
            f"  {key:<26} {' '.join(f'{_fmt(v):>10}' for v in cells)}  ({used[key]} episodes){tail}"
        )
    if invalid:
        lines.append(
            f"✗ not (yet) valid by the validity suite's crossfit protocol on {out['dataset']}: "
            f"{', '.join(invalid)} (hbm validate; hbm report gives each reason)"
        )
    if "file" in out:
        lines.append(f"saved to {out['file']} (hbm report shows it)")
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
