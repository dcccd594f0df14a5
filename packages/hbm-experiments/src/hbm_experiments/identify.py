"""Individual models and identification: whose play is this?

- `cross_subject_matrix`: the model trained on subject i scored against subject j's held-out
  episodes on every `humanlike` metric. A model of *this* person should be closest to this
  person: the diagonal the best of each column (Maia's individual models, McIlroy-Young et al.
  2022, are judged the same way: a player's own model predicts that player best).
- `stylometry`: from k held-out episodes, which subject produced them? A classifier on
  trajectory windows, trained on the subjects' training episodes; each query episode votes,
  accuracy as a function of k (behavioural stylometry, McIlroy-Young et al. 2021: a player is
  identified among thousands from 100 games with ~98 % accuracy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from hbm_experiments.humanlike import (
    METRICS,
    Trajectories,
    _one_blas_thread,
    _subsample,
    evaluate_humanlike_many,
    gap,
    humanlike_references,
    target_of,
    window_features,
)

__all__ = [
    "STYLOMETRY_WINDOWS",
    "CrossSubjectMatrix",
    "cross_subject_matrix",
    "stylometry",
]

STYLOMETRY_WINDOWS = 3000
"""Training windows per subject the stylometry classifier sees at most (a seeded subsample)."""


@dataclass(frozen=True)
class CrossSubjectMatrix:
    """`blocks[i][j]`: the `humanlike` block of model `models[i]` on subject `subjects[j]`'s
    held-out episodes; `references[subject]` the person / random rows of each column."""

    models: tuple[str, ...]
    subjects: tuple[str, ...]
    blocks: tuple[tuple[dict[str, Any], ...], ...]
    references: Mapping[str, Mapping[str, dict[str, Any]]] | None = None

    def metric(self, key: str) -> np.ndarray:
        """`[M, S]` values of one metric (NaN where undefined)."""
        return np.array(
            [[math.nan if b[key] is None else float(b[key]) for b in row] for row in self.blocks]
        )

    def gaps(self, key: str) -> np.ndarray:
        """`[M, S]` distances from the metric's ideal (`humanlike.gap`; NaN where undefined)."""
        return np.array(
            [
                [math.nan if (g := gap(key, b[key])) is None else g for b in row]
                for row in self.blocks
            ]
        )

    def diagonal_best(self, key: str) -> dict[str, bool | None]:
        """Per subject with a model of its own: is that model the closest to the subject (the
        smallest gap in its column, ties counting as best)? None where the gap is undefined."""
        g = self.gaps(key)
        out: dict[str, bool | None] = {}
        for j, subject in enumerate(self.subjects):
            if subject not in self.models:
                continue
            own = g[self.models.index(subject), j]
            column = g[:, j]
            out[subject] = None if math.isnan(own) else bool(own <= np.nanmin(column))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: labels, the blocks, one `[M, S]` table per metric, the diagonal checks."""
        return {
            "models": list(self.models),
            "subjects": list(self.subjects),
            "blocks": [list(row) for row in self.blocks],
            "tables": {k: [[b[k] for b in row] for row in self.blocks] for k in METRICS},
            "diagonal_best": {k: self.diagonal_best(k) for k in METRICS},
            "references": None if self.references is None else dict(self.references),
        }


def cross_subject_matrix(
    models: Mapping[str, nn.Module],
    data: Mapping[str, Any],
    *,
    seed: int = 0,
    repeats: int = 1,
    references: bool = True,
    device: torch.device | str = "cpu",
) -> CrossSubjectMatrix:
    """Every model against every subject's held-out episodes, on every metric.

    `models` maps a label (the subject it was trained on) to a policy; `data` maps a subject
    to its `hbm_data.HumanData` (one game; every model must take that data's inputs, CL
    features included when the data has them). Per subject, all models are rolled out at once
    on that subject's held-out seeds and the subject's side is computed once. With
    `references`, each column also gets its person / random reference rows.
    """
    if not models or not data:
        raise ValueError("need at least one model and one subject")
    envs = {d.metadata.env_name for d in data.values()}
    if len(envs) != 1:
        raise ValueError(f"all subjects must play one game, got {sorted(envs)}")
    names = tuple(models)
    policies = [models[n].to(torch.device(device)).eval() for n in names]
    columns: list[list[dict[str, Any]]] = []
    refs: dict[str, dict[str, dict[str, Any]]] = {}
    for subject, d in data.items():
        target = target_of(d, seed=seed)  # the subject's side, reaction shift included
        columns.append(
            evaluate_humanlike_many(
                policies, d, seed=seed, repeats=repeats, target=target, device=device
            )
        )
        if references:
            refs[subject] = humanlike_references(d, seed=seed, repeats=repeats, device=device)
    blocks = tuple(tuple(col[i] for col in columns) for i in range(len(names)))
    return CrossSubjectMatrix(names, tuple(data), blocks, refs if references else None)


def _stylometry_classifier(seed: int) -> Any:
    """Multinomial logistic regression on the windows' random RBF features: probabilities to
    average over an episode's windows (soft votes)."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=1.0, max_iter=500, class_weight="balanced", random_state=seed)


def stylometry(
    data: Mapping[str, Any],
    *,
    ks: Sequence[int] | None = None,
    draws: int = 200,
    seed: int = 0,
    max_windows: int = STYLOMETRY_WINDOWS,
) -> dict[str, Any]:
    """Identify the subject from k of its held-out episodes, for each k in `ks`.

    A classifier (`_stylometry_classifier`) is trained on windows (`humanlike.window_features`)
    of every subject's *training* episodes; a held-out episode votes for the subject of highest
    summed window log-probability; k episodes decide by majority, ties by the summed episode
    probabilities.
    For each subject and k, `draws` random k-subsets of its held-out episodes (seeded) are
    identified. Returns `{subjects, k, accuracy [len(ks)], per_subject {s: [len(ks)]},
    chance, episodes {s: n}, confusion [S, S] (k = 1, rows true), episode_accuracy}`;
    accuracy entries are None for a k larger than every subject's held-out count.
    """
    import sklearn

    subjects = tuple(data)
    if len(subjects) < 2:
        raise ValueError("stylometry needs at least two subjects")
    envs = {d.metadata.env_name for d in data.values()}
    if len(envs) != 1:
        raise ValueError(f"all subjects must play one game, got {sorted(envs)}")
    (env,) = envs
    rng = np.random.default_rng([seed, 13])
    xs, ys = [], []
    for label, subject in enumerate(subjects):
        z, _ = window_features(Trajectories.from_human(data[subject], "train"), env, seed=seed)
        keep = _subsample(len(z), max_windows, rng)
        xs.append(z[keep])
        ys.append(np.full(len(keep), label))
    with _one_blas_thread(), sklearn.config_context(assume_finite=True):
        clf = _stylometry_classifier(seed).fit(np.concatenate(xs), np.concatenate(ys))
        episode_probs: list[np.ndarray] = []  # per subject [E_s, S]
        for subject in subjects:
            test = Trajectories.from_human(data[subject], "test")
            z, owner = window_features(test, env, seed=seed, label="episode")
            logp = np.log(np.clip(clf.predict_proba(z), 1e-12, None))
            # an episode's evidence: the summed log-probabilities of its windows (windows
            # taken as independent), normalised back to probabilities over subjects
            ll = np.stack([logp[owner == e].sum(axis=0) for e in range(len(test))])
            ll -= ll.max(axis=1, keepdims=True)
            episode_probs.append(np.exp(ll) / np.exp(ll).sum(axis=1, keepdims=True))
    s = len(subjects)
    n_eps = [len(p) for p in episode_probs]
    ks = list(ks) if ks is not None else [k for k in (1, 2, 3, 5, 8, 13, 21) if k <= max(n_eps)]
    per_subject: dict[str, list[float | None]] = {subj: [] for subj in subjects}
    accuracy: list[float | None] = []
    for k in ks:
        scores = []
        for label, subject in enumerate(subjects):
            probs = episode_probs[label]
            if k > len(probs):
                per_subject[subject].append(None)
                continue
            hits = 0
            for _ in range(draws):
                chosen = probs[rng.choice(len(probs), size=k, replace=False)]
                hits += int(_vote(chosen) == label)
            per_subject[subject].append(hits / draws)
            scores.append(hits / draws)
        accuracy.append(float(np.mean(scores)) if scores else None)
    confusion = np.zeros((s, s), dtype=np.int64)
    for label, probs in enumerate(episode_probs):
        for row in probs:
            confusion[label, int(np.argmax(row))] += 1
    return {
        "subjects": list(subjects),
        "k": ks,
        "accuracy": accuracy,
        "per_subject": per_subject,
        "chance": 1.0 / s,
        "episodes": dict(zip(subjects, n_eps, strict=True)),
        "confusion": confusion.tolist(),
        "episode_accuracy": float(np.trace(confusion) / confusion.sum()),
    }


def _vote(probs: np.ndarray) -> int:
    """`probs [k, S]` episode probabilities -> the subject most episodes vote for (ties: the
    largest summed probability among the tied)."""
    votes = np.bincount(probs.argmax(axis=1), minlength=probs.shape[1])
    tied = np.flatnonzero(votes == votes.max())
    return int(tied[np.argmax(probs.sum(axis=0)[tied])])
