"""The layout of an experiment's result: what `Experiment.run()` returns and `result.json` holds.

The design guide's keys (§4.1, §4.4) sit beside hbm's richer ones: a neuroevolution result has
`fitness_history`, `test_loss_history`, `final_generation`, `checkpoint_path`; a gradient
descent result `loss_history`, `test_loss_history`, `checkpoint_path`. Every value is plain
JSON (numbers, strings, lists, dicts), so results load anywhere without hbm.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

from .methods import NE_ALGORITHMS

if TYPE_CHECKING:
    from .configs import ExperimentConfig

__all__ = [
    "VALIDATION_KEYS",
    "Compute",
    "DataInfo",
    "ExperimentResult",
    "PolicyEvaluation",
    "ResumeInfo",
    "build_result",
    "compute_used",
    "guide_keys",
    "resume_info",
]

#: The validation metrics of `metrics` and of the history rows (the training loops' names):
#: what tuning and model selection read. The test ones (`test_ce`, ...) only report.
VALIDATION_KEYS = ("val_loss", "val_accuracy", "val_f1")


# Set when the run resumed a checkpoint (`hbm run` prints it): `unit` "generation" or "step",
# `from` the generation/step this process resumed at, `checkpoint_time` when the checkpoint
# was written (ISO 8601). Functional form: `from` is a Python keyword.
ResumeInfo = TypedDict("ResumeInfo", {"unit": str, "from": int, "checkpoint_time": str | None})


class DataInfo(TypedDict):
    """Which data the result was trained and evaluated on."""

    content_hash: str  # sha256 of the episode file ("sha256:<hex>")
    source_file: str
    n_train_episodes: int
    n_test_episodes: int
    n_train_steps: int
    n_test_steps: int
    n_validation_episodes: int  # drawn from the training episodes (`data.validation_pct`)
    n_validation_steps: int


class Compute(TypedDict):
    """What training evaluated, counted the same way for populations and gradient descent.

    `forward_passes`: samples run through one network (a GA generation over N samples × P
    members counts N·P, an SGD step over a batch counts the batch's samples), over every
    process of a resumed run. `flops`: the usual estimate of 2 FLOPs per parameter per forward
    pass, and twice that again for the backward pass of gradient descent (Kaplan et al. 2020:
    training ≈ 6·N per sample), so learners compare on one compute axis."""

    forward_passes: int
    backward_passes: int
    flops: float
    env_steps: int  # environment steps played in training (0 for the person's data alone)


def compute_used(
    algorithm: str, num_params: int, samples_seen: int, *, objective: str = "person"
) -> Compute:
    """`Compute` of a run (`Compute`'s docstring for the counting rule).

    What a sample is depends on the objective: a step of the person's data ("person"), an
    environment step a member played ("returns", "adversarial": hbm-ne's `samples_seen` counts
    environment steps, one forward pass of the member each, and `env_steps` says so). For
    "adversarial" the counts are the generators' only: the discriminators' own passes (a
    population's, or Adam's steps, over the windows of each generation) are not in them."""
    backward = 0 if algorithm in ("ga", "es", "cmaes") else samples_seen
    flops = 2.0 * num_params * samples_seen + 4.0 * num_params * backward
    env_steps = samples_seen if objective in ("returns", "adversarial") else 0
    return {
        "forward_passes": samples_seen,
        "backward_passes": backward,
        "flops": flops,
        "env_steps": env_steps,
    }


class PolicyEvaluation(TypedDict, total=False):
    """What `evaluation.evaluate_policy` gives `build_result`: the trained model judged once."""

    metrics: dict[str, Any]  # test_ce, test_accuracy, test_f1 on the held-out steps
    behaviour: dict[str, Any]  # its returns against the person's, or why none were played
    humanlike: dict[str, Any]  # the human-likeness block of the same play


class ExperimentResult(TypedDict, total=False):
    """One experiment's result. Keys marked NE / SGD exist for that family only."""

    method: str  # e.g. "ga_feedforward"
    algorithm: str  # ga | es | cmaes | sgd | adam
    model_kind: str  # feedforward | reservoir | trainable | dynamic
    objective: str  # what training optimised: person | returns | adversarial
    dataset: str
    subject: str
    simulated: bool  # the subject is a simulated player, not a person
    use_cl_info: bool
    seed: int
    num_params: int
    data_content_hash: str  # = data["content_hash"]
    data: DataInfo
    train_time: float  # seconds of training, summed over every process of a resumed run
    compute: Compute  # forward/backward passes and FLOPs of training
    elapsed: float  # seconds of the whole run (data, training, evaluation) in this process
    stop_reason: (
        str | None
    )  # max_generations | max_steps | max_epochs | max_samples | max_time | ...
    budget: dict[str, int | float]  # the budgets set, e.g. {"max_samples": 100000}
    method_defaults: dict[str, Any]  # what the fields left None ran with (`method_defaults`)
    samples_seen: int  # samples training saw (= compute.forward_passes)
    resumed: ResumeInfo | None
    history: list[dict[str, Any]]  # one row per evaluation: step, samples_seen, test_ce, val_loss…
    # the trained model's test_ce, test_f1, test_accuracy (reported) and val_loss, val_f1,
    # val_accuracy (what chooses; None without validation episodes)
    metrics: dict[str, Any]
    behaviour: dict[str, Any]  # matched-seed rollouts vs the person's held-out returns
    humanlike: dict[str, Any]  # human-likeness metrics (README: "Human-likeness")
    # the same metrics for the person's own play and for a random policy, on this data
    humanlike_references: dict[str, Any]
    model_file: str  # "model.pt" in the uid folder
    checkpoint_path: str  # the training checkpoint (absolute path)
    test_loss_history: list[float]  # test CE at each evaluation
    fitness_history: list[float]  # NE: best train fitness (CE) of every generation
    final_generation: int  # NE: generations done
    loss_history: list[float]  # SGD: mean training loss at each evaluation
    param_name: str  # HyperparameterSweep only: the swept key
    param_value: Any  # HyperparameterSweep only: its value for this result


def guide_keys(
    algorithm: str,
    history: Sequence[Mapping[str, Any]],
    trained: Mapping[str, Any],
    checkpoint_path: str,
) -> ExperimentResult:
    """The design guide's result keys, from the history rows and the training result."""
    test = [float(r["test_ce"]) for r in history if r.get("test_ce") is not None]
    out: ExperimentResult = {"test_loss_history": test, "checkpoint_path": checkpoint_path}
    if algorithm in ("ga", "es", "cmaes"):
        fitness = trained.get("fitness_history")
        if fitness is None:  # one value per evaluated generation
            fitness = [r.get("train_loss", r.get("best_fitness")) for r in history]
        out["fitness_history"] = [float(f) for f in fitness if f is not None]
        final = trained.get("final_generation")
        if final is None and history:
            final = history[-1].get("generation", history[-1].get("step"))
        out["final_generation"] = int(final or 0)
    else:
        out["loss_history"] = [
            float(r["train_loss"]) for r in history if r.get("train_loss") is not None
        ]
    return out


def resume_info(algorithm: str, info: Mapping[str, Any]) -> ResumeInfo | None:
    """The `resumed` block of a training run's `info` (None when it started afresh)."""
    if info.get("resumed_from") is None:
        return None
    return {
        "unit": "generation" if algorithm in NE_ALGORITHMS else "step",
        "from": int(info["resumed_from"]),
        "checkpoint_time": info.get("checkpoint_time"),
    }


def build_result(
    config: ExperimentConfig,
    data: Any,
    *,
    history: list[dict[str, Any]],
    info: Mapping[str, Any],
    num_params: int,
    evaluation: PolicyEvaluation,
    validation: Mapping[str, float | None],
    references: dict[str, Any],
    budget: dict[str, int | float],
    model_file: str,
    checkpoint_path: str,
    started: float,
) -> ExperimentResult:
    """The one place an experiment's result is put together, in `ExperimentResult`'s layout.

    From the config that ran, its data (`hbm_data.HumanData`), the training output (`history`
    rows as plain JSON, `info`: `stop_reason`, `samples_seen`, `elapsed`, `resumed_from`, ...),
    the evaluation of `evaluation.evaluate_policy` (test `metrics`, `behaviour`, the `humanlike`
    block of the same play), the `validation` metrics of the final model, the person's and
    random play's `references`, the run's `budget`; `started`: `time.perf_counter()` when the
    run began. Every key of the result is written here, so the layout has one definition."""
    meta = data.metadata
    samples_seen = int(info.get("samples_seen") or 0)
    result: ExperimentResult = {
        "method": config.method,
        "algorithm": config.algorithm,
        "model_kind": config.model_kind,
        # what training optimised; every method is evaluated against the person below
        "objective": config.objective,
        "dataset": meta.env_name,
        "subject": meta.subject,
        "simulated": bool(meta.simulated),
        "use_cl_info": bool(meta.use_cl_info),
        "seed": config.seed,
        "num_params": num_params,
        "data_content_hash": meta.content_hash,
        "data": {
            "content_hash": meta.content_hash,
            "source_file": meta.source_file,
            "n_train_episodes": meta.n_train,
            "n_test_episodes": meta.n_test,
            "n_train_steps": len(data.train_act),
            "n_test_steps": len(data.test_act),
            "n_validation_episodes": len(getattr(data, "val_episodes", ())),
            "n_validation_steps": len(getattr(data, "val_act", ())),
        },
        # every process of a resumed run: the training loops sum their time over resumes
        "train_time": float(info.get("elapsed", time.perf_counter() - started)),
        "compute": compute_used(
            config.algorithm, num_params, samples_seen, objective=config.objective
        ),
        "elapsed": time.perf_counter() - started,
        "stop_reason": info.get("stop_reason"),
        # which budget the run ran under (compare rows only under equal budgets)
        "budget": budget,
        # the config keeps None for a field left to its method's default: what that was
        "method_defaults": config.method_defaults(),
        "samples_seen": samples_seen,
        "resumed": resume_info(config.algorithm, info),
        "history": history,
        # chosen on validation, reported on test: both of the final model, side by side
        "metrics": {**evaluation["metrics"], **validation},
        "behaviour": evaluation["behaviour"],
        # one play: the same recorded rollouts gave the returns and the humanlike block
        "humanlike": evaluation["humanlike"],
        "humanlike_references": references,
        "model_file": model_file,
    }
    result.update(guide_keys(config.algorithm, history, info, checkpoint_path))
    return result
