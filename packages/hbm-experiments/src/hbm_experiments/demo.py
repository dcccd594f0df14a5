"""The demo comparison: GA against Adam on two simulated players, over enough training seeds
and rollouts that the report can decide between them (paired over the shared seeds) or say
that it cannot; cached, so a second run answers from the cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .tasks import Experiment, make_experiment

__all__ = [
    "DEMO_BUDGETS",
    "DEMO_ENVS",
    "DEMO_SAMPLES",
    "DEMO_SEEDS",
    "DEMO_SUBJECTS",
    "demo_experiments",
    "run_demo",
]

#: CartPole, two simulated players of different styles, five seeds: the comparison the report
#: exists for (one row per person and config, learners compared seed by seed) in under
#: 3 minutes on 2 quiet cores. Two seeds cannot decide anything (a 95 % t-interval over 2
#: seeds is 12.7 standard errors wide); five paired seeds decide the GA-Adam contrast.
DEMO_ENVS: tuple[str, ...] = ("cartpole",)
DEMO_SUBJECTS: tuple[str, ...] = ("sim01", "sim02")
DEMO_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)

# Budgets sized for under 3 minutes on 2 CPU cores ("default") and a few seconds ("tiny", a
# smoke test of every code path: both CL settings). "default" is a fair comparison: both
# learners at their defaults (`method_defaults`) and the same budget in samples seen, ten
# times the one the defaults were derived at (where they held too: README, "Defaults against
# tuning"): enough for the GA to leave its start. `repeats`: rollouts per held-out seed, paired
# with the person's episode of that seed (the human-likeness tests need several).
DEMO_SAMPLES = 480_000
DEMO_BUDGETS: dict[str, dict[str, Any]] = {
    "default": {
        # about ten evaluations each: 480 000 samples are ~890 GA generations of 11 members
        # on 49 samples, or 15 000 Adam steps on 32
        "ga": {"training": {"max_samples": DEMO_SAMPLES, "eval_every": 90}},
        "adam": {
            "training": {"max_samples": DEMO_SAMPLES, "eval_every": 1500},
            "num_threads": 1,  # a 4-50-2 network: one thread is faster than two
        },
        "model": {},
        "repeats": 5,
        "cl": (False,),
    },
    "tiny": {
        "ga": {
            "optimizer": {"population_size": 8},
            "training": {"max_generations": 3, "eval_every": 1},
        },
        "adam": {
            "optimizer": {"learning_rate": 0.01},
            "training": {"max_steps": 3, "eval_every": 1},
        },
        "model": {"hidden_size": 8},
        "repeats": 1,
        "cl": (False, True),
    },
}


def demo_experiments(
    envs: Sequence[str] = DEMO_ENVS,
    *,
    budget: str = "default",
    subjects: Sequence[str] = DEMO_SUBJECTS,
    seeds: Sequence[int] = DEMO_SEEDS,
    **infra: Any,
) -> list[Experiment]:
    """GA (feedforward) and Adam (feedforward) per game, simulated player and seed, each with
    the budget's CL settings and `repeats` rollouts per held-out seed."""
    if budget not in DEMO_BUDGETS:
        raise ValueError(f"budget {budget!r}: expected one of {sorted(DEMO_BUDGETS)}")
    b = DEMO_BUDGETS[budget]
    exps = []
    for env in envs:
        for subject in subjects:
            for algo in ("ga", "adam"):
                for cl in b["cl"]:
                    for seed in seeds:
                        training = {**b[algo]["training"], "behaviour_repeats": b["repeats"]}
                        cfg = {
                            "method": f"{algo}_feedforward",
                            "seed": seed,
                            "dataset": env,
                            "subject": subject,
                            "data": {"use_cl_info": cl},
                            "model": b["model"],
                            **b[algo],
                            "training": training,
                        }
                        exps.append(make_experiment(cfg, source="demo", **infra))
    return exps


def run_demo(experiments: Sequence[Experiment], *, parallel: int, retry: bool = False) -> None:
    """Run the demo's experiments, `parallel` at a time on local worker processes (one torch
    thread each; `compare.run_waves`) when they would run in this process, then read every
    result back as `sweeps.run_experiments` does: a failed run raises `ExperimentsFailed`
    naming it. On a cluster the experiments go out as it is configured."""
    from .compare import run_waves
    from .sweeps import run_experiments, with_threads

    exps = list(experiments)
    if parallel > 1 and len(exps) > 1 and all(e.infra.cluster is None for e in exps):
        local = [with_threads(e, 1, cluster="local") for e in exps]
        run_waves(local, parallel=parallel, retry=retry)
        retry = False  # what failed in the waves has been retried there
    run_experiments(exps, retry=retry)
