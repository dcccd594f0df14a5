"""The validity suite: every metric held to known answers on the simulated players.

The simulated players (`hbm_data.simulate`, styles sim01–sim04) are people whose behaviour is
known, so the right answer of every comparison is known. Per game and metric:

- (a) the null: a player's held-out episodes against the same style with other luck
  (`SubjectProfile.with_seed`), `repeats` players per held-out episode, each at the same stage
  of learning (`_on_stages`): a test at α = 0.05 must reject about 5 % of the time (the
  false-positive rate; target 0.03–0.07), and the gap's distribution under the null is what
  "as close as the person's own style" means;
- (b) a uniform random policy on the same seeds must be told apart (detection ≥ 0.99; for the
  accuracies: random scores below the same style's);
- (c) identification: against the four styles (one of them the player's own, with other luck),
  the smallest gap must be the player's own style (goal for the metrics combined: ≥ 0.9). The
  metrics combined is the tests' joint permutation statistic (`combined_statistic`: each test
  standardised by its own relabellings, then averaged); `mean_rank`, each metric's rank among
  the four styles averaged, is shown beside it.

Two target protocols (`PROTOCOLS`), each its own table: `holdout`, what one `hbm run` gives
(the target is the person's held-out episodes, one per session by the experiments' split, 4–6
episodes), and `crossfit`, what `hbm crossfit` gives (the target is every one of the person's
episodes, as cross-fitting pools them; the candidates play every seed, stage-matched, and the
reaction shift is chosen on the person's episodes, as each fold chooses it on the others'). Under
cross-fitting each session holds many target episodes, so session tracking
(`session_return_spearman`) is checked too, as a score that random play must fall below.

Players come from a pool of `pool` simulated people per style (each its own luck), drawn
without overlap within a draw. The pool is at least as large as the draws by default, so each
draw's null has its own target person: a target's p-values hardly change with the candidates
drawn against it (they are set by the target's own few held-out episodes), so a target reused
over several draws counts as one comparison, not several, and a null rate over reused targets
looks far more precise than it is. `run_suite` returns the table, `verdicts` the pass/fail of each
(game, metric), and `metric_validity` reads the verdicts shipped with the package
(`validity.json`, written by `hbm validate --write`).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from .compare import HumanlikeTarget
from .metrics import METRICS, TESTED_METRICS, gap, knn_predictor, shift_pairs
from .trajectories import Trajectories

__all__ = [
    "ALPHA",
    "DETECTION_MIN",
    "FPR_EXCESS_P",
    "FPR_RANGE",
    "IDENTIFICATION_GOAL",
    "PROTOCOLS",
    "PROTOCOL_TARGETS",
    "SUITE_ENVS",
    "SUITE_PLAYERS",
    "VALIDITY_FILE",
    "metric_validity",
    "null_rate_interval",
    "run_suite",
    "shipped_with",
    "verdicts",
]

logger = logging.getLogger(__name__)

SUITE_ENVS: tuple[str, ...] = ("cartpole", "lunarlander", "acrobot")
SUITE_PLAYERS: tuple[str, ...] = ("sim01", "sim02", "sim03", "sim04")
ALPHA = 0.05
FPR_RANGE = (0.03, 0.07)
"""The null false-positive rate a test should show at α = 0.05. With n null comparisons the
observed rate of a perfectly calibrated test is binomial (at n = 100 anything from 1 to 10
rejections happens 95 % of the time), so a verdict fails a test only when its rejections are
significantly more than α allows (`FPR_EXCESS_P`), and shows the rate's exact interval."""
FPR_EXCESS_P = 0.05
"""A null rate fails when a one-sided exact binomial test of its rejections against α gives a
p-value below this (e.g. 10 or more of 100)."""
DETECTION_MIN = 0.99
"""Share of draws in which a random policy must be told apart."""
IDENTIFICATION_GOAL = 0.9
"""Share of draws in which the metrics combined must pick the player's own style."""
POOL_SEED = 10_000
"""Luck seeds of the pool: style s's k-th person is `profile.with_seed(POOL_SEED + k)`."""
PROTOCOLS: tuple[str, ...] = ("holdout", "crossfit")
"""Target protocols: the held-out episodes of one split (`hbm run`), or every episode of the
person (`hbm crossfit`)."""
PROTOCOL_TARGETS: Mapping[str, str] = {
    "holdout": "target: the person's held-out episodes, one per session (hbm run)",
    "crossfit": "target: every episode of the person, as cross-fitting pools them (hbm crossfit)",
}
HOLDOUT_PCT = 0.1
"""Held-out share per session, as the experiments' default split."""
WHY_WEAK: Mapping[str, str] = {
    "state_jsd": "a person's early, clumsy episodes visit the states random play visits "
    "(a CartPole episode of 10-20 steps stays near the start state), and 4-6 held-out "
    "episodes are too few to outweigh them",
    "return_diff": "a person's early episodes score like random play (CartPole falls within "
    "10-20 steps, Acrobot runs out its 500 steps), and 4-6 held-out episodes are too few to "
    "outweigh them",
    "discriminator_auc": "4-6 held-out episodes leave the classifier little of the person to "
    "learn (an episode shorter than one window, as a clumsy CartPole one, gives one window)",
}
"""Why a metric misses random play where it does under the holdout protocol: the simulated
people's few held-out episodes, not the test (each of these tests is calibrated under the
null)."""
WHY_WEAK_CROSSFIT: Mapping[str, str] = {
    "return_diff": "a style that scores like random play is not told apart by its returns, "
    "however many episodes (sim04 on CartPole averages about 26 against random play's 22)",
    "session_return_spearman": "a rank correlation over a person's 4-6 sessions takes few "
    "values, and random play's per-session returns follow the seeds' difficulty too",
}
"""Why a metric misses random play where it does under cross-fitting (every episode a target):
the players' returns, not the number of episodes."""
VALIDITY_FILE = Path(__file__).with_name("validity.json")
"""The suite's verdicts shipped with the package (`hbm validate --write`)."""

COMBINED = "combined"
"""The row of the tests combined (`combined_z`, `combined_p` of the humanlike block)."""
MEAN_RANK = "mean_rank"
"""The row of every metric's rank among the styles, averaged: the style with the smallest."""


@dataclass
class _Person:
    """One simulated person: all episodes by seed, and the held-out / training split."""

    episodes: Trajectories  # every episode, episode i played from seed i
    test: Trajectories
    train: Trajectories
    target: HumanlikeTarget | None = None
    random_pool: Trajectories | None = None


def _person(env: str, style: str, k: int, protocol: str = "holdout") -> _Person:
    """Style `style`'s `k`-th simulated person; the target episodes (`test`) by `protocol`:
    the held-out ones of the experiments' split, or every episode (cross-fitting pools them all;
    the shift is then chosen on all of them too)."""
    from hbm_data import SIMULATED_PROFILES, simulate_subject
    from hbm_data.splits import split_by_session

    profile = SIMULATED_PROFILES[style].with_seed(POOL_SEED + k)
    eps = Trajectories.from_episodes(simulate_subject(env, profile))
    if protocol == "crossfit":
        return _Person(eps, eps, eps)
    train, test = split_by_session(eps.sessions, HOLDOUT_PCT, np.random.default_rng(42))
    return _Person(eps, eps.subset(test), eps.subset(train))


def _random_pool(env: str, person: _Person, size: int, seed: int) -> Trajectories:
    """`size` uniform random rollouts per held-out seed (rollout r of episode e at r·E + e)."""
    import torch
    from hbm_data import get_env_spec

    from .rollouts import UniformPolicy, record_rollouts

    spec = get_env_spec(env)
    t = person.test
    gen = torch.Generator().manual_seed(seed)
    (traj,) = record_rollouts(
        UniformPolicy(spec.obs_size, spec.num_actions),
        spec.env_id,
        np.tile(t.seeds, size).tolist(),
        sessions=np.tile(t.sessions, size),
        generator=gen,
    )
    return traj


def _stage(traj: Trajectories) -> tuple[np.ndarray, np.ndarray]:
    """`[E]` each episode's sitting (0, 1, … in order) and its place in the sitting (0 first,
    1 last)."""
    sitting = np.unique(traj.sessions, return_inverse=True)[1].reshape(-1)
    place = np.zeros(len(traj))
    for s in np.unique(sitting):
        members = np.flatnonzero(sitting == s)
        place[members] = np.arange(len(members)) / max(1, len(members) - 1)
    return sitting, place


def _on_stages(people: Sequence[_Person], target: _Person) -> Trajectories:
    """Each person's episode at the stage of each of the target's held-out episodes, relabelled
    with that episode's seed (its relabelling group).

    A simulated person's skill is set by the sitting and the place in it, and how many episodes a
    sitting holds is that person's luck: on one start seed, two people of one style are often
    at different sittings (different skill), and a held-out seed is chosen by the target's own
    sittings. Pairing by seed then makes the target's episodes differ from the others' on the
    same seed (all by one person, at that person's stages), so a relabelling within the seed is
    not exchangeable and every test rejects too often. Matched on the stage (same sitting,
    nearest place; the last sitting where a person had fewer), each person's episode is one draw
    of the style at that stage, as the target's is: exchangeable by construction. The start
    seeds then differ; they are luck of the same kind."""
    t_sitting, t_place = _stage(target.episodes)
    picks: list[tuple[int, int, int]] = []  # (person, episode, target's held-out seed)
    for p, person in enumerate(people):
        sitting, place = _stage(person.episodes)
        for e in np.flatnonzero(np.isin(target.episodes.seeds, target.test.seeds)):
            s = min(int(t_sitting[e]), int(sitting.max()))
            members = np.flatnonzero(sitting == s)
            m = members[int(np.argmin(np.abs(place[members] - t_place[e])))]
            picks.append((p, int(m), int(target.episodes.seeds[e])))
    eps = [people[p].episodes for p, _, _ in picks]
    return Trajectories(
        tuple(x.obs[m] for x, (_, m, _) in zip(eps, picks, strict=True)),
        tuple(x.actions[m] for x, (_, m, _) in zip(eps, picks, strict=True)),
        np.array([x.returns[m] for x, (_, m, _) in zip(eps, picks, strict=True)]),
        np.array([x.sessions[m] for x, (_, m, _) in zip(eps, picks, strict=True)]),
        np.array([s for _, _, s in picks]),
    )


def _knn_guess(people: Sequence[_Person], target: HumanlikeTarget) -> tuple[float, float | None]:
    """A style's action accuracies on the target: k-NN on those people's episodes (the
    state at t, their action at t + δ for the shifted accuracy), as a model of the style."""
    from ._threads import _one_blas_thread

    obs = np.concatenate([p.episodes.flat_obs for p in people])
    lengths = np.concatenate([p.episodes.lengths for p in people])
    act = np.concatenate([p.episodes.flat_actions for p in people])
    t_obs = target.trajectories.flat_obs
    out: list[float | None] = []
    for delta in (0, target.shift):
        if delta is None:
            out.append(None)
            continue
        src, dst = shift_pairs(lengths, delta)
        with _one_blas_thread():
            guess = knn_predictor().fit(obs[src], act[dst]).predict(t_obs)
        acc, shifted = target.accuracy(guess)
        out.append(float(acc) if delta == 0 else (None if shifted is None else float(shifted)))
    return float(out[0] or 0.0), out[1]


@dataclass
class _Tally:
    """Per (game, metric): the draws' outcomes."""

    null_rejects: int = 0
    null_n: int = 0
    null_gaps: list[float] = field(default_factory=list)
    random_hits: int = 0
    random_n: int = 0
    ident: np.ndarray = field(default_factory=lambda: np.zeros((4, 4), np.int64))


def _metrics(protocol: str) -> list[str]:
    """The metrics a protocol can check: session tracking needs several target episodes per
    session (cross-fitting), the holdout keeps one per session."""
    return [k for k in METRICS if protocol == "crossfit" or k != "session_return_spearman"]


def run_suite(
    envs: Sequence[str] = SUITE_ENVS,
    *,
    draws: int = 20,
    repeats: int = 5,
    pool: int | None = None,
    seed: int = 0,
    players: Sequence[str] = SUITE_PLAYERS,
    protocol: str = "holdout",
    progress: Callable[[str], None] | None = None,
    partial: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the suite: per game, `draws` draws per player style (so `draws · len(players)`
    null comparisons per metric). Returns `{"settings", "games": {env: {metric: row}},
    "seconds"}`; a row holds `null_fpr`, `null_n`, `null_gap_median`, `null_gap_q95`,
    `random_detection`, `random_n`, `identification` (share correct) and `confusion`
    (`[styles, styles]`, rows the true style). `pool` (default `draws + repeats`): simulated
    people per style; `settings["targets"]` counts the distinct target people per style.
    `protocol` (`PROTOCOLS`): the target is the held-out episodes or every episode; random play
    is drawn `3 · repeats` per seed under the holdout (a target may be reused), `repeats` under
    cross-fitting (an episode count ten times larger: the dearest part). `partial`, if given,
    receives the suite so far after every draw (the current game's rows over the draws done,
    `settings["draws"]` their number), so that a long run that is stopped keeps what it did."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    pool = draws + repeats if pool is None else pool
    if pool < repeats + 1:
        raise ValueError(f"pool ({pool}) must exceed repeats ({repeats}): a draw needs both")
    t_start = time.perf_counter()
    games: dict[str, Any] = {}

    def suite(done: int) -> dict[str, Any]:
        return {
            "settings": {
                "envs": list(games),
                "draws": done,
                "repeats": repeats,
                "pool": pool,
                "targets": min(done, pool),
                "seed": seed,
                "players": list(players),
                "alpha": ALPHA,
                "protocol": protocol,
            },
            "games": games,
            "seconds": time.perf_counter() - t_start,
        }

    for env in envs:
        t0 = time.perf_counter()
        people = {
            s: [_person(env, s, k, protocol) for k in range(pool)] for s in players
        }  # fmt: skip
        if progress:
            progress(
                f"{env}: simulated {pool} people per style in {time.perf_counter() - t0:.0f} s"
            )
        keys = _metrics(protocol)
        spare = 3 if protocol == "holdout" else 1  # random rollouts per seed, per repeat
        tallies = {k: _Tally(ident=np.zeros((len(players), len(players)), np.int64)) for k in keys}
        for row in (COMBINED, MEAN_RANK):
            tallies[row] = _Tally(ident=np.zeros((len(players), len(players)), np.int64))
        sessions_ok = 0
        rng = np.random.default_rng([seed, len(env)])
        for d in range(draws):
            for i, style in enumerate(players):
                k = (d + seed) % pool
                person = people[style][k]
                if person.target is None:
                    person.target = HumanlikeTarget(person.test, env, train=person.train, seed=seed)
                    person.random_pool = _random_pool(env, person, spare * repeats, seed * 97 + k)
                target = person.target
                s = 1_000 * d + i
                blocks: list[dict[str, Any]] = []
                for j, other in enumerate(players):
                    choices = [m for m in range(pool) if not (j == i and m == k)]
                    picked = rng.choice(len(choices), size=repeats, replace=False)
                    cands = [people[other][choices[m]] for m in picked]
                    block = target.score(_on_stages(cands, person), seed=s)
                    block["action_accuracy"], block["action_accuracy_shift"] = _knn_guess(
                        cands, target
                    )
                    blocks.append(block)
                assert person.random_pool is not None
                e = len(person.test)
                rows = rng.choice(spare * repeats, size=repeats, replace=False)
                rnd = person.random_pool.subset([r * e + x for r in rows for x in range(e)])
                guesses = rng.integers(0, target.num_actions, size=len(target.actions))
                random_block = target.score(rnd, guesses, seed=s)
                null = blocks[i]
                sessions_ok += null["session_return_spearman"] is not None
                _tally(tallies, keys, null, random_block, blocks, i)
            if progress:
                progress(f"{env}: draw {d + 1}/{draws} ({time.perf_counter() - t0:.0f} s)")
            games[env] = {k: _row(t) for k, t in tallies.items()}
            if protocol == "holdout":
                games[env]["session_return_spearman"] = {
                    "applicable": sessions_ok,
                    "null_n": (d + 1) * len(players),
                    "note": "needs sessions with several held-out episodes; the split holds "
                    "out one per session",
                }
            if partial and d + 1 < draws:
                partial(suite(d + 1))
    return suite(draws)


def _tally(
    tallies: dict[str, _Tally],
    keys: Sequence[str],
    null: Mapping[str, Any],
    random_block: Mapping[str, Any],
    blocks: Sequence[Mapping[str, Any]],
    own: int,
) -> None:
    ranks = []
    for key in keys:
        t = tallies[key]
        p_key = METRICS[key].p_key
        g_null = gap(key, null[key])
        if g_null is not None:
            t.null_gaps.append(g_null)
        if p_key:
            if null[p_key] is not None:
                t.null_n += 1
                t.null_rejects += int(null[p_key] <= ALPHA)
            if random_block[p_key] is not None:
                t.random_n += 1
                t.random_hits += int(random_block[p_key] <= ALPHA)
        else:  # a prediction score: random must score below the style's own
            g_rnd = gap(key, random_block[key])
            if g_null is not None and g_rnd is not None:
                t.random_n += 1
                t.random_hits += int(g_rnd > g_null)
        gaps = np.array([_nan(gap(key, b[key])) for b in blocks])
        if np.isfinite(gaps).all():
            t.ident[own, int(np.argmin(gaps))] += 1
            ranks.append(np.argsort(np.argsort(gaps)))
    if ranks:
        mean_rank = np.mean(ranks, axis=0)
        tallies[MEAN_RANK].ident[own, int(np.argmin(mean_rank))] += 1
    t = tallies[COMBINED]
    z = [b["combined_z"] for b in blocks]
    if null["combined_z"] is not None:
        t.null_gaps.append(null["combined_z"])
    if null["combined_p"] is not None:
        t.null_n += 1
        t.null_rejects += int(null["combined_p"] <= ALPHA)
    if random_block["combined_p"] is not None:
        t.random_n += 1
        t.random_hits += int(random_block["combined_p"] <= ALPHA)
    if all(x is not None for x in z):
        t.ident[own, int(np.argmin(z))] += 1


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _row(t: _Tally) -> dict[str, Any]:
    gaps = np.asarray(t.null_gaps)
    n_ident = int(t.ident.sum())
    return {
        "null_fpr": t.null_rejects / t.null_n if t.null_n else None,
        "null_n": t.null_n,
        "null_gap_median": float(np.median(gaps)) if len(gaps) else None,
        "null_gap_q95": float(np.quantile(gaps, 0.95)) if len(gaps) else None,
        "random_detection": t.random_hits / t.random_n if t.random_n else None,
        "random_n": t.random_n,
        "identification": float(np.trace(t.ident) / n_ident) if n_ident else None,
        "confusion": t.ident.tolist(),
    }


def null_rate_interval(rate: float, n: int) -> tuple[float, float, float]:
    """`(lo, hi, p)`: the exact (Clopper-Pearson) 95 % interval of a null rate observed over
    `n` comparisons, and the one-sided binomial p-value of that many rejections at α."""
    from scipy.stats import binomtest

    k = round(rate * n)
    ci = binomtest(k, n, ALPHA).proportion_ci(method="exact")
    return float(ci.low), float(ci.high), float(binomtest(k, n, ALPHA, "greater").pvalue)


def verdicts(suite: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """`{env: {metric: {"ok": bool, "reason": str | None}}}` from a suite's table: a tested
    metric passes with a null rate not significantly above α (`FPR_EXCESS_P`) and random
    detection of at least `DETECTION_MIN`; a prediction score with random below the style's
    own in at least `DETECTION_MIN` of the draws; session tracking only where it could be
    computed at all."""
    protocol = suite["settings"].get("protocol", "holdout")
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for env, rows in suite["games"].items():
        out[env] = {}
        for key in METRICS:
            row = rows.get(key)
            reasons: list[str] = []
            if row is None:
                reasons.append("not checked by the validity suite")
            elif "applicable" in row:  # session tracking under the holdout
                if not row.get("applicable"):
                    reasons.append(
                        "not computable: every session holds out one episode (needs several)"
                    )
            else:
                fpr, det = row["null_fpr"], row["random_detection"]
                if key in TESTED_METRICS and fpr is None:
                    reasons.append("no null false-positive rate")
                elif key in TESTED_METRICS:
                    lo, hi, p = null_rate_interval(fpr, row["null_n"])
                    if p < FPR_EXCESS_P:
                        reasons.append(
                            f"null false-positive rate {_pct(fpr)} (95 % interval "
                            f"{lo:.0%}-{hi:.0%}, n = {row['null_n']}) above α = {ALPHA:g}"
                        )
                if det is None or det < DETECTION_MIN:
                    weak = WHY_WEAK if protocol == "holdout" else WHY_WEAK_CROSSFIT
                    why = f" ({weak[key]})" if key in weak else ""
                    reasons.append(f"random told apart in {_pct(det)} < {DETECTION_MIN:.0%}{why}")
            out[env][key] = {"ok": not reasons, "reason": "; ".join(reasons) or None}
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


@cache
def _shipped() -> dict[str, Any]:
    """The shipped file: `{"protocols": {protocol: {"settings", "table", "verdicts"}}}`, each
    part keyed by game (each game's table may come from its own run)."""
    try:
        data = json.loads(VALIDITY_FILE.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{VALIDITY_FILE}: unreadable validity verdicts ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("protocols", {}), dict):
        raise ValueError(f"{VALIDITY_FILE}: expected an object with 'protocols' (by protocol)")
    return data


def shipped_with(suite: Mapping[str, Any]) -> dict[str, Any]:
    """The shipped file with `suite`'s games (their settings, table and verdicts) put in place
    under its protocol; the other games and protocols kept (`hbm validate --write`)."""
    protocol = suite["settings"].get("protocol", "holdout")
    data = {"protocols": json.loads(json.dumps(_shipped().get("protocols", {})))}  # a copy
    part = data["protocols"].setdefault(protocol, {"settings": {}, "table": {}, "verdicts": {}})
    judged = verdicts(suite)
    for env, rows in suite["games"].items():
        part["settings"][env] = dict(suite["settings"]) | {"envs": [env], "protocol": protocol}
        part["table"][env] = rows
        part["verdicts"][env] = judged[env]
    return data


def metric_validity(env: str, metric: str, protocol: str = "holdout") -> tuple[bool, str | None]:
    """Did `metric` pass the validity suite on `env` under `protocol` (`PROTOCOLS`: the row's
    target was one split's held-out episodes, or every episode by cross-fitting)? `(ok,
    reason)`, the reason saying what failed (or that the suite did not check that game, metric
    or protocol), for reports to grey out a metric that fails its known answers instead of
    showing it as if it worked."""
    from hbm_data import get_env_spec

    name = get_env_spec(env).name
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}: expected one of {', '.join(METRICS)}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    part = _shipped().get("protocols", {}).get(protocol, {})
    verdict = part.get("verdicts", {}).get(name, {}).get(metric)
    if verdict is None:
        return False, f"not checked by the validity suite on {name} ({protocol} protocol)"
    return bool(verdict["ok"]), verdict.get("reason")
