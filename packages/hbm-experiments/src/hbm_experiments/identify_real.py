"""Which of N real players is this? Identification from k held-out segments of play, on the
Overcooked-AI human-human recordings (`hbm identify-real`).

Behavioural stylometry (McIlroy-Young et al. 2021, as `identify.stylometry` does for one
game) where no game can be played and the people never played the same kitchen twice: every
worker played each of the five layouts once, some in the study's training trials and some in
its test trials. So a player is learnt from their *training* trials and recognised in their
*test* trials, which are other kitchens: what identifies them has to survive a change of
kitchen. The features are the offline style of one segment's key presses
(`segment_features`): action frequencies, hold durations, switch rate and the action
transition matrix, each standardised within its layout (over every player's segments of that
layout, labels unused) so a kitchen's own demands do not count as style.

A shrunk linear discriminant (`_classifier`) fitted on the training segments gives each test
segment a probability per player; k segments of one player decide by their summed
log-probabilities.
Queries are disjoint k-subsets of a player's test segments. The table reports, per (N, k), the
accuracy with a Wilson 95 % interval over the queries (segments of one trial are not
independent, so the interval is narrower than it should be: the permutation p-value is the
check) and chance 1/N.

The two player indices of a trial reach the log by two input paths that leave an input
signature (`hbm_data.overcooked.players`): telling the index alone gets 2/N (the `index only`
column: the mean over the chosen players of 1 / the number of them with that index). So the
permutation p-value shuffles the training labels among the players *of one index*, refits
and recomputes: a classifier that knew only the index would be as good as the shuffles, and
p small says it identifies the person beyond the index.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "IdentificationRow",
    "Segment",
    "add_parser",
    "format_table",
    "identify_players",
    "read_segments",
    "run",
    "segment_features",
    "wilson_interval",
]

NUM_ACTIONS = 6
_SUBJECT_PREFIX = "oc-w"


@dataclass(frozen=True)
class Segment:
    """One episode of one player: `actions [T]` int, in `group` (the layout: features are
    standardised within it), from the study's `split` ("train" or "test")."""

    player: str
    group: str
    split: str
    actions: np.ndarray


def segment_features(actions: np.ndarray, num_actions: int = NUM_ACTIONS) -> np.ndarray:
    """`[A + 4 + A·A]` offline style of one action sequence `[T]` (T ≥ 2): action frequencies,
    mean and median hold duration (log frames), share of holds longer than 5 frames, switch
    rate, and the row-normalised transition matrix (a row without visits left 0)."""
    a = np.asarray(actions, dtype=np.int64)
    freq = np.bincount(a, minlength=num_actions) / len(a)
    change = np.flatnonzero(np.diff(a) != 0) + 1
    holds = np.diff(np.concatenate([[0], change, [len(a)]]))
    trans = np.zeros((num_actions, num_actions))
    np.add.at(trans, (a[:-1], a[1:]), 1.0)
    rows = trans.sum(axis=1, keepdims=True)
    trans = np.divide(trans, rows, out=np.zeros_like(trans), where=rows > 0)
    stats = [np.log(holds.mean()), np.log(np.median(holds)), (holds > 5).mean(),
             len(change) / (len(a) - 1)]  # fmt: skip
    return np.concatenate([freq, stats, trans.ravel()])


def wilson_interval(hits: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % by default)."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class IdentificationRow:
    """Accuracy of identifying one of `n_players` from `k` segments."""

    n_players: int
    k: int
    hits: int
    queries: int
    chance: float
    index_only: float  # expected accuracy of telling the player index alone (2/N for N/2 each)
    low: float
    high: float
    permutation_p: float | None
    subsets: int  # random player subsets averaged (1: all players)

    @property
    def accuracy(self) -> float:
        return self.hits / self.queries if self.queries else math.nan


def _standardise(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for g in np.unique(groups):
        rows = groups == g
        mu, sd = x[rows].mean(axis=0), x[rows].std(axis=0)
        out[rows] = (x[rows] - mu) / np.where(sd > 0, sd, 1.0)
    return out


def _classifier(seed: int) -> Any:
    """Linear discriminant analysis with Ledoit-Wolf shrinkage: few segments per player and
    correlated features (the transition rows) want a shrunk shared covariance; no iterations,
    so the permutation refits are cheap. `seed` unused (the fit is deterministic)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    return LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")


def _queries(
    logp: np.ndarray, labels: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[int, int]:
    """Disjoint k-subsets of each player's test segments (shuffled): (hits, queries)."""
    hits = total = 0
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        for q in range(len(rows) // k):
            chosen = rows[q * k : (q + 1) * k]
            hits += int(np.argmax(logp[chosen].sum(axis=0)) == label)
            total += 1
    return hits, total


def _accuracy(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
    ks: Sequence[int], seed: int,
) -> list[tuple[int, int]]:  # fmt: skip
    clf = _classifier(seed).fit(x_train, y_train)
    logp = np.full((len(x_test), int(y_train.max()) + 1), -np.inf)
    logp[:, clf.classes_] = np.log(np.clip(clf.predict_proba(x_test), 1e-12, None))
    rng = np.random.default_rng([seed, 29])
    return [_queries(logp, y_test, k, rng) for k in ks]


def identify_players(
    segments: Sequence[Segment],
    *,
    ks: Sequence[int] = (1, 2, 5, 10),
    sizes: Sequence[int | None] = (None,),
    subsets: int = 20,
    permutations: int = 100,
    seed: int = 0,
) -> list[IdentificationRow]:
    """The table of the module docstring: a row per N in `sizes` (None: every player with
    training and test segments) and k in `ks`. For N below all, `subsets` random sets of N
    players are pooled; permutation p-values only for all players. Deterministic given `seed`."""
    from .humanlike import _one_blas_thread

    by_split = {s: {seg.player for seg in segments if seg.split == s} for s in ("train", "test")}
    players = sorted(by_split["train"] & by_split["test"])
    if len(players) < 2:
        raise ValueError(
            f"need at least two players with both training and test segments, got {players}"
        )
    segs = [s for s in segments if s.player in players]
    x = _standardise(np.stack([segment_features(s.actions) for s in segs]),
                     np.array([s.group for s in segs]))  # fmt: skip
    who = np.array([players.index(s.player) for s in segs])
    train = np.array([s.split == "train" for s in segs])
    index = np.array([p.rsplit("-p", 1)[-1] if "-p" in p else "" for p in players])
    rng = np.random.default_rng([seed, 31])
    rows = []
    with _one_blas_thread():
        for size in sizes:
            n = len(players) if size is None or size >= len(players) else int(size)
            draws = 1 if n == len(players) else subsets
            counts = np.zeros((len(ks), 2), dtype=np.int64)
            index_only = []
            for _ in range(draws):
                chosen = np.sort(rng.choice(len(players), size=n, replace=False))
                same = index[chosen][:, None] == index[chosen][None, :]
                index_only.append(float(np.mean(1.0 / same.sum(axis=1))))
                relabel = np.full(len(players), -1)
                relabel[chosen] = np.arange(n)
                y = relabel[who]
                tr, te = train & (y >= 0), ~train & (y >= 0)
                counts += np.array(_accuracy(x[tr], y[tr], x[te], y[te], ks, seed))
            p_values: list[float | None] = [None] * len(ks)
            if draws == 1 and permutations:
                y = who
                observed = counts[:, 0] / np.maximum(counts[:, 1], 1)
                at_least = np.zeros(len(ks))
                perm_rng = np.random.default_rng([seed, 37])
                for _ in range(permutations):
                    relabel = np.arange(len(players))  # players shuffled within their index
                    for i in np.unique(index):
                        same_index = np.flatnonzero(index == i)
                        relabel[same_index] = perm_rng.permutation(same_index)
                    shuffled = relabel[y[train]]
                    got = _accuracy(x[train], shuffled, x[~train], y[~train], ks, seed)
                    acc = np.array([h / max(q, 1) for h, q in got])
                    at_least += acc >= observed
                p_values = [float((1 + a) / (1 + permutations)) for a in at_least]
            for (hits, queries), k, p in zip(counts, ks, p_values, strict=True):
                low, high = wilson_interval(int(hits), int(queries))
                rows.append(IdentificationRow(
                    n, int(k), int(hits), int(queries), 1.0 / n, float(np.mean(index_only)),
                    low, high, p, draws,
                ))  # fmt: skip
    return rows


def read_segments(data_dir: Path | str | None = None, layouts: Iterable[str] | None = None
                  ) -> list[Segment]:  # fmt: skip
    """Every per-player Overcooked file (`oc-wWW-pP`, written by `hbm-data import-overcooked`)
    in `data_dir` (default: hbm-data's data folder) as segments, one per episode, with the
    split its sidecar records. `layouts`: only these kitchens (default: all)."""
    from hbm_data.episodes import load_episodes, read_sidecar
    from hbm_data.paths import data_dir as default_dir
    from hbm_data.paths import parse_episode_file_name

    from .source_split import recorded_split

    folder = Path(data_dir) if data_dir is not None else default_dir()
    wanted = None if layouts is None else {f"overcooked-{x}" for x in layouts}
    out = []
    for path in sorted(folder.glob(f"{_SUBJECT_PREFIX}*_data_overcooked-*.json*")):
        parsed = parse_episode_file_name(path)
        if parsed is None:
            continue
        subject, env = parsed
        if wanted is not None and env not in wanted:
            continue
        episodes = load_episodes(path)
        side = read_sidecar(path)
        split = recorded_split(side, len(episodes), subject=subject, path=path, both=False)
        out += [Segment(subject, env, s, e.actions) for e, s in zip(episodes, split, strict=True)]
    if not out:
        raise FileNotFoundError(
            f"{folder}: no Overcooked player files ({_SUBJECT_PREFIX}WW-pP_data_overcooked-*); "
            "import them with `hbm-data import-overcooked`"
        )
    return out


def format_table(rows: Sequence[IdentificationRow]) -> str:
    """The table as markdown."""
    lines = ["| N players | k segments | accuracy [95 % Wilson] | queries | chance 1/N | "
             "index only | permutation p |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        n = f"{r.n_players}" + (f" ({r.subsets} random sets)" if r.subsets > 1 else "")
        idx = f"{r.index_only:.3f}"
        p = "-" if r.permutation_p is None else f"{r.permutation_p:.3g}"
        lines.append(
            f"| {n} | {r.k} | {r.accuracy:.3f} [{r.low:.3f}, {r.high:.3f}] | {r.queries} | "
            f"{r.chance:.3f} | {idx} | {p} |"
        )
    return "\n".join(lines)


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `identify-real` on an argparse subparsers object."""
    p = sub.add_parser(
        "identify-real",
        help="identify real Overcooked players from k held-out segments (the study's split)",
    )
    p.add_argument("--layout", nargs="+", default=["all"], help="kitchens to use (default: all)")
    p.add_argument("--k", nargs="+", type=int, default=[1, 2, 5, 10], help="segments per query")
    p.add_argument("--n", nargs="+", default=["all"], help="numbers of players (or 'all')")
    p.add_argument("--subsets", type=int, default=20, help="random player sets per N below all")
    p.add_argument("--permutations", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, help="default: $HBM_DATA_DIR or hbm-data's folder")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=run)
    return p


def run(args: argparse.Namespace) -> str:
    """`hbm identify-real`: the table, as markdown text."""
    layouts = None if args.layout == ["all"] else args.layout
    segments = read_segments(args.data_dir, layouts)
    sizes = [None if n == "all" else int(n) for n in args.n]
    rows = identify_players(segments, ks=args.k, sizes=sizes, subsets=args.subsets,
                            permutations=args.permutations, seed=args.seed)  # fmt: skip
    players = len({s.player for s in segments})
    return f"{len(segments)} segments of {players} players\n" + format_table(rows)
