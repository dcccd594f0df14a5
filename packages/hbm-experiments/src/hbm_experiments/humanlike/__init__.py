"""Does a model play like *this* person? Metrics beyond mean returns, each a yardstick checked
on known answers (`validity`).

Every metric compares a *candidate* (a model's recorded rollouts, a reference, any recording)
with the person's held-out episodes, the *target*:

- `action_accuracy`: argmax of the policy, teacher-forced on the person's held-out observations
  (recurrent state carried within each episode), against the recorded action (Maia's
  move-matching accuracy, McIlroy-Young et al. 2020).
- `action_accuracy_shift`: the prediction at t against the person's action at t + δ, one δ in
  [0, k] per person (k = 300 ms of frames) chosen on the training episodes (`choose_shift`):
  people react 250–300 ms late (Atari-HEAD, Zhang et al. 2020; Kanervisto et al. 2020).
- `hold_duration_w1`: Wasserstein-1 distance, in frames, between the key-hold durations (the
  no-op included; the last hold of an episode cut by its end) of candidate and target (EMD over
  behaviour signatures, believability studies, 2010).
- `switch_rate_ratio`: action changes per second, candidate / target (1 = same).
- `state_jsd`: mean over observation dimensions of the base-2 Jensen–Shannon divergence between
  state-visitation histograms on the fixed grid `STATE_GRIDS` (a 2026 preprint).
- `discriminator_auc`, `discriminator_p`: a classifier two-sample test (Lopez-Paz & Oquab 2017;
  the automated Turing test of Devlin et al. 2021): windows of (observation, action) told apart
  with whole seeds held out, one AUC from the pooled out-of-fold scores.
- `return_diff`: mean return, candidate - target.
- `session_return_spearman`: Spearman's ρ between per-session mean returns, only where every
  session has `MIN_SESSION_EPISODES` held-out episodes.

Each distance and the discriminator come with a permutation p-value (`<metric>_p`) from
relabelling episodes within each start seed (`twosample`); `combined_z`, `combined_p` hold all
of them at once (`combined_statistic`: each standardised by its own relabellings, averaged, so
the combined p is exact under the null). `compare_play` scores any play
against any other; `evaluate_humanlike` / `play_and_score` score a model's rollouts;
`person_reference` (the floor) and `random_reference` (the ceiling) use a model row's protocol;
`metric_validity` says which metrics passed the validity suite on a game.
"""

from __future__ import annotations

from .compare import HumanlikeTarget, combined_statistic, compare_play
from .metrics import (
    KNN_NEIGHBOURS,
    METRICS,
    MIN_SESSION_EPISODES,
    STATE_GRIDS,
    TESTED_METRICS,
    MetricInfo,
    StateGrid,
    action_accuracy,
    choose_shift,
    gap,
    hold_duration_w1,
    hold_durations,
    humanlike_columns,
    jensen_shannon,
    session_return_spearman,
    shift_accuracy,
    state_histograms,
    state_jsd,
    switch_rate,
    switch_rate_ratio,
)
from .references import (
    REPEATS,
    evaluate_humanlike,
    evaluate_humanlike_many,
    humanlike_references,
    person_reference,
    play_and_score,
    random_reference,
    target_of,
)
from .rollouts import UniformPolicy, predict_actions, record_rollouts
from .trajectories import REACTION_TIME_S, WINDOW_S, Trajectories, lag_frames, window_frames
from .twosample import (
    PERMUTATIONS,
    EpisodeStats,
    _one_blas_thread,
    _subsample,
    classifier_test,
    permutation_p,
    seed_permutations,
    smallest_p,
    trajectory_windows,
    window_features,
)
from .validity import metric_validity

__all__ = [
    "KNN_NEIGHBOURS",
    "METRICS",
    "MIN_SESSION_EPISODES",
    "PERMUTATIONS",
    "REACTION_TIME_S",
    "REPEATS",
    "STATE_GRIDS",
    "TESTED_METRICS",
    "WINDOW_S",
    "EpisodeStats",
    "HumanlikeTarget",
    "MetricInfo",
    "StateGrid",
    "Trajectories",
    "UniformPolicy",
    "_one_blas_thread",
    "_subsample",
    "action_accuracy",
    "choose_shift",
    "classifier_test",
    "combined_statistic",
    "compare_play",
    "evaluate_humanlike",
    "evaluate_humanlike_many",
    "gap",
    "hold_duration_w1",
    "hold_durations",
    "humanlike_columns",
    "humanlike_references",
    "jensen_shannon",
    "lag_frames",
    "metric_validity",
    "permutation_p",
    "person_reference",
    "play_and_score",
    "predict_actions",
    "random_reference",
    "record_rollouts",
    "seed_permutations",
    "session_return_spearman",
    "shift_accuracy",
    "smallest_p",
    "state_histograms",
    "state_jsd",
    "switch_rate",
    "switch_rate_ratio",
    "target_of",
    "trajectory_windows",
    "window_features",
    "window_frames",
]
