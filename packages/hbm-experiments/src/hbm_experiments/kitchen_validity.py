"""Known answers on real people: the humanlike metrics held to them on the Overcooked kitchens.

The validity suite (`humanlike.validity`) checks every metric on simulated players, whose
behaviour is known. The kitchens' recordings allow the same three checks on real people,
without any model. Each player's trial is cut into `SEGMENTS` consecutive segments; the odd
ones are the held-out target, the even ones stand in for a model's play, each paired with the
target segment after it (a model row's pairing: relabelling within each pair). Per metric:

- the null, `own`: the player's own even segments against their odd ones. Neighbouring
  segments of one game are the closest thing to "the same person with other luck" the data
  holds, so a test at α = 0.05 should reject about 5 % of the players;
- `random`: a uniform random policy playing every target segment from its recorded start beside
  the recorded partner (open loop, `overcooked_play.play_segments`), its action predictions
  uniform draws: it must be told apart (detection ≥ `DETECTION_MIN`; for the accuracy: below
  the person's own nearest-neighbour choices);
- `other`: another player of the kitchen (one of the same player index and one of the other,
  from another trial), their even segments against the target: how often a test tells them
  apart, and how often the player's own segments are closer than the other player's
  (identification).

The action sequences alone feed the hold and switch metrics, and the teacher-forced
predictions the accuracy, so these verdicts hold for the kitchens' teacher-forced blocks as for
their rollout blocks. `kitchen_verdicts` judges each (kitchen, metric) by the suite's rules
(`humanlike.validity`: a null rate not significantly above α, random detection of at least
`DETECTION_MIN`); the verdicts ship in `kitchen_validity.json` (`hbm validate-kitchens
--write`), which `comparisons.metric_validity` reads for the kitchens' report cells.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKED",
    "KITCHEN_VALIDITY_FILE",
    "SEGMENTS",
    "KitchenPlayer",
    "check_player",
    "format_table",
    "kitchen_players",
    "kitchen_validity",
    "kitchen_verdicts",
    "run_kitchens",
    "tally",
]

SEGMENTS = 20
"""Segments per trial (about 60 ticks, 9 s each): ten target/candidate pairs per player, enough
relabellings for a permutation p below 0.05 (five pairs allow no p below 1/16)."""
CHECKED: tuple[str, ...] = (
    "action_accuracy", "hold_duration_w1", "switch_rate_ratio", "state_jsd",
    "discriminator_auc", "return_diff", "combined",
)  # fmt: skip
"""The metrics the check holds to known answers (`combined`: every test at once)."""
KITCHEN_VALIDITY_FILE = Path(__file__).with_name("kitchen_validity.json")
"""The kitchens' verdicts shipped with the package (`hbm validate-kitchens --write`)."""
_PREFIX = "overcooked-"
NULL_CAVEAT = (
    "neighbouring segments of one game are not exchangeable: who holds what and where the "
    "partner stands move on, so the test may see the game change, not the person"
)
"""Why a null rate can exceed α on a kitchen (the reason of a failing verdict says it)."""
WHY_WEAK: Mapping[str, str] = {
    "return_diff": "a 9 s segment scores 0 to 3 soups (none in 29 %, one in 53 % of the "
    "recorded segments): too few values for ten pairs to tell apart",
}
"""Why random play is missed where that is known (the verdict's reason says it)."""


@dataclass(frozen=True)
class KitchenPlayer:
    """One player's side of one recorded trial, cut into segments."""

    layout: str
    trial: str
    player: int
    segments: tuple[Any, ...]  # overcooked_play.RecordedSegment, in game order

    @property
    def name(self) -> str:
        return f"{self.trial}-p{self.player}"


def kitchen_players(trials: Sequence[Any], segments: int = SEGMENTS) -> list[KitchenPlayer]:
    """Both players of every `hbm_data.overcooked.Trial`, each trial cut into `segments`."""
    from hbm_data.overcooked.trials import segment_bounds, trial_episodes

    from .overcooked_play import RecordedSegment

    out = []
    for trial in trials:
        bounds = segment_bounds(trial.length, segments)
        for player in (0, 1):
            eps = trial_episodes(trial, player, segments)
            segs = tuple(
                RecordedSegment(
                    k, player, trial.name, k, 0, np.asarray(ep.observations, np.float64),
                    np.asarray(ep.actions, np.int64),
                    np.asarray(trial.actions[a:b, 1 - player], np.int64), float(ep.score),
                )
                for k, (ep, (a, b)) in enumerate(zip(eps, bounds, strict=True))
            )  # fmt: skip
            out.append(KitchenPlayer(trial.layout, trial.name, player, segs))
    return out


def _pairs(p: KitchenPlayer, part: int) -> list[Any]:
    """The even (`part` 0) or odd (1) segments, re-indexed by pair (the humanlike seeds)."""
    from dataclasses import replace

    chosen = p.segments[part::2]
    n = min(len(p.segments[0::2]), len(p.segments[1::2]))
    return [replace(s, index=i) for i, s in enumerate(chosen[:n])]


def _trajectories(segments: Sequence[Any]) -> Any:
    from .humanlike.trajectories import Trajectories

    return Trajectories(
        tuple(s.obs for s in segments),
        tuple(s.actions for s in segments),
        np.array([s.score for s in segments], np.float64),
        np.zeros(len(segments), np.int64),
        np.array([s.index for s in segments], np.int64),
    )


def _knn(train: Any, target: Any) -> np.ndarray:
    """The candidate's own choices in the nearest of their states, on the target's steps."""
    from .humanlike._threads import _one_blas_thread
    from .humanlike.metrics import knn_predictor

    with _one_blas_thread():
        model = knn_predictor().fit(np.concatenate(train.obs), train.flat_actions)
        return np.asarray(model.predict(np.concatenate(target.obs)), np.int64)


def _values(block: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """`{metric: {"value", "p"}}` of one humanlike block (`combined`: z and its p)."""
    from .humanlike.metrics import METRICS

    out: dict[str, dict[str, float | None]] = {}
    for key in CHECKED:
        if key == "combined":
            out[key] = {"value": block.get("combined_z"), "p": block.get("combined_p")}
        else:
            p_key = METRICS[key].p_key
            out[key] = {"value": block.get(key), "p": block.get(p_key) if p_key else None}
    return out


def check_player(
    p: KitchenPlayer,
    others: Sequence[KitchenPlayer],
    *,
    seed: int = 0,
    permutations: int = 199,
    discriminator: bool = True,
) -> dict[str, Any]:
    """The target player's odd segments against their own even ones, random play and each of
    `others`' even segments: `{"player", "own", "random", "other": [...]}`, each
    `{metric: {"value", "p"}}`."""
    from .humanlike.compare import HumanlikeTarget
    from .humanlike.rollouts import UniformPolicy
    from .overcooked_play import play_segments

    env = f"{_PREFIX}{p.layout}"
    target_segs, own_segs = _pairs(p, 1), _pairs(p, 0)
    target_t, own = _trajectories(target_segs), _trajectories(own_segs)
    target = HumanlikeTarget(target_t, env, train=own, seed=seed, permutations=permutations)
    n = len(target_segs)

    def score(candidate: Any, predicted: np.ndarray) -> dict[str, dict[str, float | None]]:
        return _values(target.score(candidate, predicted, seed=seed, discriminator=discriminator))

    gen = torch.Generator().manual_seed(seed * 1_000_003 + 5)
    d = target_segs[0].obs.shape[1]
    (random_play,) = play_segments(UniformPolicy(d, 6), p.layout, target_segs, generator=gen)
    guesses = np.random.default_rng([seed, 11]).integers(0, 6, len(target.actions))
    other = []
    for q in others:
        cand = _trajectories(_pairs(q, 0)[:n])
        other.append({"player": q.name, **score(cand, _knn(cand, target_t))})
    return {
        "player": p.name,
        "layout": p.layout,
        "own": score(own, _knn(own, target_t)),
        "random": score(random_play, guesses),
        "other": other,
    }


def _others(players: Sequence[KitchenPlayer], i: int) -> list[KitchenPlayer]:
    """One player of each index from the next other trial of the kitchen (in trial order)."""
    p = players[i]
    trials = list(dict.fromkeys(q.trial for q in players))
    if len(trials) < 2:
        return []
    nxt = trials[(trials.index(p.trial) + 1) % len(trials)]
    return [q for q in players if q.trial == nxt]


def _rate(hits: Sequence[bool]) -> float | None:
    return float(np.mean(hits)) if hits else None


def tally(rows: Sequence[Mapping[str, Any]], alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """`{metric: {null_fpr, null_n, random_detection, random_n, other_detection, other_n,
    identification}}` over `check_player` rows of one kitchen: the tests' rejections at
    `alpha`; for the accuracy (no test) a candidate scoring below the player's own choices
    counts as told apart; identification: the own segments' gap (`humanlike.gap`) smaller
    than the other player's."""
    from .humanlike.metrics import gap

    out = {}
    for key in CHECKED:
        null, rand, other, ident = [], [], [], []
        for row in rows:
            own, rnd = row["own"][key], row["random"][key]
            if key == "action_accuracy":
                if own["value"] is not None and rnd["value"] is not None:
                    rand.append(rnd["value"] < own["value"])
            else:
                if own["p"] is not None:
                    null.append(own["p"] < alpha)
                if rnd["p"] is not None:
                    rand.append(rnd["p"] < alpha)
            for o in row["other"]:
                cand = o[key]
                if key == "action_accuracy":
                    if cand["value"] is not None and own["value"] is not None:
                        other.append(cand["value"] < own["value"])
                elif cand["p"] is not None:
                    other.append(cand["p"] < alpha)
                g_own = own["value"] if key == "combined" else gap(key, own["value"])
                g_other = cand["value"] if key == "combined" else gap(key, cand["value"])
                if g_own is not None and g_other is not None:
                    ident.append(g_own < g_other)
        out[key] = {
            "null_fpr": _rate(null), "null_n": len(null),
            "random_detection": _rate(rand), "random_n": len(rand),
            "other_detection": _rate(other), "other_n": len(other),
            "identification": _rate(ident), "identification_n": len(ident),
        }  # fmt: skip
    return out


def kitchen_verdicts(table: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """`{env: {metric: {"ok", "reason"}}}` by the validity suite's rules: a tested metric
    passes with a null rate not significantly above α and random detection of at least
    `DETECTION_MIN`; the accuracy with random below the person's own in as many players."""
    from .humanlike.validity import ALPHA, DETECTION_MIN, FPR_EXCESS_P, null_rate_interval

    out: dict[str, dict[str, Any]] = {}
    for layout, rows in table.items():
        verdict = {}
        for key, row in rows.items():
            reasons = []
            fpr, det = row["null_fpr"], row["random_detection"]
            if key != "action_accuracy":
                if fpr is None:
                    reasons.append("no null false-positive rate")
                else:
                    lo, hi, p = null_rate_interval(fpr, row["null_n"])
                    if p < FPR_EXCESS_P:
                        reasons.append(
                            f"a player's own segments told apart from their others in "
                            f"{fpr:.0%} (95 % interval {lo:.0%}-{hi:.0%}, n = {row['null_n']}) "
                            f"of the players, above α = {ALPHA:g} ({NULL_CAVEAT})"
                        )
            if det is None or det < DETECTION_MIN:
                shown = "n/a" if det is None else f"{det:.0%}"
                why = f" ({WHY_WEAK[key]})" if key in WHY_WEAK else ""
                reasons.append(f"random play told apart in {shown} < {DETECTION_MIN:.0%}{why}")
            verdict[key] = {"ok": not reasons, "reason": "; ".join(reasons) or None}
        out[f"{_PREFIX}{layout}"] = verdict
    return out


def run_kitchens(
    trials: Sequence[Any],
    *,
    segments: int = SEGMENTS,
    seed: int = 0,
    permutations: int = 199,
    discriminator: bool = True,
    max_players: int | None = None,
) -> dict[str, Any]:
    """The check on every kitchen of `trials`: `{"settings", "table", "verdicts", "rows"}`.
    `max_players`: at most this many target players per kitchen (in trial order)."""
    from hbm_data.overcooked.trials import by_layout

    t0 = time.perf_counter()
    table, rows_out = {}, {}
    for layout, kitchen in sorted(by_layout(trials).items()):
        players = kitchen_players(kitchen, segments)
        chosen = range(len(players) if max_players is None else min(max_players, len(players)))
        rows = []
        for i in chosen:
            row = check_player(
                players[i], _others(players, i), seed=seed, permutations=permutations,
                discriminator=discriminator,
            )  # fmt: skip
            rows.append(row)
            logger.info(
                "%s: %s checked (%.0f s)", layout, players[i].name, time.perf_counter() - t0
            )
        table[layout], rows_out[layout] = tally(rows), rows
    settings = {"segments": segments, "seed": seed, "permutations": permutations,
                "discriminator": discriminator, "max_players": max_players,
                "trials": len(trials), "seconds": round(time.perf_counter() - t0, 1)}  # fmt: skip
    return {"settings": settings, "table": table, "verdicts": kitchen_verdicts(table),
            "rows": rows_out}  # fmt: skip


@cache
def _shipped() -> dict[str, Any]:
    try:
        return dict(json.loads(KITCHEN_VALIDITY_FILE.read_text()))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{KITCHEN_VALIDITY_FILE}: unreadable kitchen verdicts ({exc})") from exc


def kitchen_validity(env: str, metric: str) -> tuple[bool, str | None] | None:
    """The shipped verdict of `metric` on the kitchen `env` (`(ok, reason)`), a failing one for
    a metric the check does not hold to known answers, None for a game that is no kitchen
    (the validity suite's verdicts apply there)."""
    if not env.startswith(_PREFIX):
        return None
    verdict = _shipped().get("verdicts", {}).get(env, {}).get(metric)
    if verdict is None:
        return False, f"not checked by the kitchens' known-answer check on {env}"
    return bool(verdict["ok"]), verdict.get("reason")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def format_table(result: Mapping[str, Any]) -> str:
    """The table as markdown: per kitchen and metric the null rate, random and other-player
    detection, identification (with their counts) and the verdict."""
    lines = [
        "| kitchen | metric | null rate (own) | random told apart | other told apart | "
        "own closer | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for layout, rows in result["table"].items():
        verdicts = result["verdicts"][f"{_PREFIX}{layout}"]
        for key, r in rows.items():
            ok = "pass" if verdicts[key]["ok"] else "✗"
            lines.append(
                f"| {layout} | {key} | {_pct(r['null_fpr'])} (n={r['null_n']}) | "
                f"{_pct(r['random_detection'])} (n={r['random_n']}) | "
                f"{_pct(r['other_detection'])} (n={r['other_n']}) | "
                f"{_pct(r['identification'])} (n={r['identification_n']}) | {ok} |"
            )
    return "\n".join(lines)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `validate-kitchens` on an argparse subparsers object."""
    p = sub.add_parser(
        "validate-kitchens",
        help="hold the humanlike metrics to known answers on the real Overcooked players",
    )
    p.add_argument("--layout", nargs="+", default=["all"], help="kitchens (default: all)")
    p.add_argument("--segments", type=int, default=SEGMENTS)
    p.add_argument("--permutations", type=int, default=199)
    p.add_argument("--max-players", type=int, help="target players per kitchen (default: all)")
    p.add_argument("--no-discriminator", action="store_true", help="skip the dearest test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the whole result here")
    p.add_argument("--write", action="store_true", help="store the verdicts in the package")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> str:
    """`hbm validate-kitchens`: the table, as markdown text."""
    from hbm_data.overcooked import read_all_trials

    from .files import atomic_write_text

    trials = read_all_trials()
    if args.layout != ["all"]:
        trials = [t for t in trials if t.layout in args.layout]
        if not trials:
            raise ValueError(f"no recorded trial of the kitchens {args.layout}")
    result = run_kitchens(trials, segments=args.segments, seed=args.seed,
                          permutations=args.permutations,
                          discriminator=not args.no_discriminator,
                          max_players=args.max_players)  # fmt: skip
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1, sort_keys=True))
    if args.write:
        shipped = {k: result[k] for k in ("settings", "table", "verdicts")}
        atomic_write_text(KITCHEN_VALIDITY_FILE, json.dumps(shipped, indent=1, sort_keys=True))
        _shipped.cache_clear()
    s = result["settings"]
    head = (f"{s['trials']} trials, {s['segments']} segments each, {s['permutations']} "
            f"permutations, {s['seconds']} s")  # fmt: skip
    return head + "\n" + format_table(result)
