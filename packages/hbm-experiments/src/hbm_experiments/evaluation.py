"""How close a trained policy is to the person: test cross-entropy and macro F1 on held-out
actions, and one recorded set of matched-seed rollouts of the held-out episodes, which gives both
the return comparison and every human-likeness metric (`hbm_experiments.humanlike`).

The same functions score an hbm-ne exported member and an hbm-dl model: both are plain
`torch.nn.Module`s with the shared layout of `docs/interfaces.md`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hbm_ne.modules import is_recurrent  # the interface rule, defined once

from .results import PolicyEvaluation

__all__ = [
    "build_model",
    "classification_metrics",
    "compare_returns",
    "evaluate_behaviour",
    "evaluate_policy",
    "is_recurrent",
    "load_model",
    "model_spec",
]

F1_SAMPLES = 10


@torch.no_grad()
def classification_metrics(
    policy: torch.nn.Module,
    obs: np.ndarray,
    actions: np.ndarray,
    episode_lengths: Sequence[int] | None = None,
    *,
    seed: int = 0,
    step: int = 0,
    f1_samples: int = F1_SAMPLES,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Test CE, argmax accuracy and macro F1 of the *sampled* policy (the mean over
    `f1_samples` draws, as in the lab's evaluation: it scores the stochastic policy).

    The one evaluation of both training loops (`hbm_dl.evaluate`, docs/interfaces.md "Macro
    F1"): with the run's `seed` and the `step` of the last history row, the final metrics of a
    model are that row's. `obs [N, in]`, `actions [N]`; recurrent policies need
    `episode_lengths` (each episode runs from a zero state)."""
    from hbm_dl import EpisodeData, evaluate

    lengths = list(episode_lengths) if is_recurrent(policy) and episode_lengths else None
    if is_recurrent(policy) and lengths is None:
        raise ValueError("a recurrent policy needs episode_lengths to split the observations")
    data = EpisodeData.from_arrays(obs, actions, lengths, device=device)
    out = evaluate(policy, data, f1_samples=f1_samples, seed=seed, step=step)
    return {"test_ce": out["ce"], "test_accuracy": out["accuracy"], "test_f1": out["f1"]}


def _finite(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


BOOTSTRAP_RESAMPLES = 1999
"""Resamples of the bootstrap interval of the difference of mean returns."""


def _diff_of_means(
    m: np.ndarray, h: np.ndarray, *, seed: int = 0
) -> tuple[float, list[float | None], float | None]:
    """Model - person mean return, its bootstrap 95 % interval (scipy's BCa over both
    samples, resampled independently) and the p-value of relabelling within each held-out
    seed (`humanlike.seed_permutations`; model return r·E + e replays seed e)."""
    from scipy.stats import bootstrap

    from .humanlike import PERMUTATIONS, permutation_p, seed_permutations

    diff = float(m.mean() - h.mean())
    ci: list[float | None] = [diff, diff]
    if min(m.size, h.size) < 2 and (np.ptp(m) > 0 or np.ptp(h) > 0):
        ci = [None, None]  # one episode on a side: its spread, so the interval, is unknown
    elif np.ptp(m) > 0 or np.ptp(h) > 0:
        with np.errstate(all="ignore"):
            res = bootstrap(
                (m, h),
                lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis),
                n_resamples=BOOTSTRAP_RESAMPLES,
                vectorized=True,
                method="BCa",
                random_state=np.random.default_rng([seed, 23]),
            )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        ci = [_finite(lo), _finite(hi)]
    pooled = np.concatenate([h, m])
    labels = np.concatenate([np.ones(h.size, np.int8), np.zeros(m.size, np.int8)])
    groups = np.concatenate([np.arange(h.size), np.arange(m.size) % h.size])
    y = seed_permutations(labels, groups, PERMUTATIONS, np.random.default_rng([seed, 29]))
    with np.errstate(invalid="ignore", divide="ignore"):
        stat = np.abs((1 - y) @ pooled / (1 - y).sum(axis=1) - y @ pooled / y.sum(axis=1))
    return diff, ci, permutation_p(stat)


def compare_returns(
    model_returns: Sequence[float] | np.ndarray,
    human_returns: Sequence[float] | np.ndarray,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Model vs person. `model_returns [R*E]` are matched to `human_returns [E]` by position
    (repeat r of episode e is at `r*E + e`).

    `diff_of_means` (model - person), its bootstrap interval `diff_of_means_ci` and its
    permutation p-value `diff_of_means_p` are the comparison to report; the lab's per-episode
    % difference below is kept for continuity only.

    % difference per rollout: `(R_model - R_human)/|R_human|*100`, or `R_model*100` when the
    person scored 0 (the lab's definition; it explodes where a person's returns straddle 0, so
    `pct_diff_of_means` compares the mean returns instead).
    Mann-Whitney U is two-sided, model returns vs the person's returns.
    """
    from scipy.stats import mannwhitneyu

    m = np.asarray(model_returns, dtype=np.float64)
    h = np.asarray(human_returns, dtype=np.float64)
    if h.size == 0 or m.size == 0 or m.size % h.size:
        raise ValueError(f"{m.size} model returns cannot be matched to {h.size} human returns")
    matched = np.tile(h, m.size // h.size)
    pct = np.where(
        matched == 0, m * 100.0, (m - matched) / np.abs(np.where(matched == 0, 1, matched)) * 100.0
    )
    if np.ptp(np.concatenate([m, h])) == 0:
        u, p = float(m.size * h.size / 2), 1.0
    else:
        res = mannwhitneyu(m, h, alternative="two-sided")
        u, p = float(res.statistic), float(res.pvalue)
    pooled = math.sqrt(
        (m.var(ddof=1) if m.size > 1 else 0.0) / 2 + (h.var(ddof=1) if h.size > 1 else 0.0) / 2
    )
    diff, ci, diff_p = _diff_of_means(m, h, seed=seed)
    return {
        "model_returns": m.tolist(),
        "human_returns": h.tolist(),
        "model_mean_return": float(m.mean()),
        "human_mean_return": float(h.mean()),
        # model - person mean return, a bootstrap 95 % interval, and the permutation p-value of
        # relabelling each held-out seed's episodes (the comparison the report shows)
        "diff_of_means": diff,
        "diff_of_means_ci": ci,
        "diff_of_means_p": diff_p,
        # of the means: robust where single human returns are near 0 (e.g. LunarLander)
        "pct_diff_of_means": _finite(
            (m.mean() - h.mean()) / abs(h.mean()) * 100.0 if h.mean() != 0 else m.mean() * 100.0
        ),
        "pct_diff_mean": float(pct.mean()),
        "pct_diff_std": float(pct.std()),
        "pct_diff_median": float(np.median(pct)),
        "mannwhitney_u": u,
        "p_value": _finite(p),
        "cohen_d": _finite((m.mean() - h.mean()) / pooled) if pooled > 0 else None,
    }


def evaluate_behaviour(
    policy: torch.nn.Module,
    metadata: Any,
    *,
    repeats: int = 1,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, Any]:
    """Roll the policy out on the seeds of the held-out human episodes (`hbm_data`
    `DatasetMetadata.test_episodes`), with each episode's own CL values appended when the data
    uses them; actions are sampled with `generator`. Returns `compare_returns`' dict."""
    from hbm_ne.envs import evaluate_module

    episodes = list(metadata.test_episodes)
    if not episodes:
        raise ValueError(f"{metadata.source_file}: no held-out episodes to evaluate behaviour on")
    seeds = [int(e.seed) for e in episodes] * repeats
    extra = None
    if metadata.use_cl_info:
        cl = torch.tensor([[e.session_cl, e.run_cl] for e in episodes], dtype=torch.float32)
        extra = cl.repeat(repeats, 1).to(device)
    returns = evaluate_module(
        policy,
        metadata.env_id,
        seeds,
        extra_features=extra,
        deterministic=False,
        generator=generator,
        device=device,
    )
    model_returns = torch.as_tensor(returns).detach().cpu().double().numpy()
    out = compare_returns(model_returns, [float(e.score) for e in episodes])
    _replayable(out, metadata)
    return out


def _replayable(out: dict[str, Any], metadata: Any) -> None:
    """Expert sets record no seeds (hbm-data gives them placeholders): the rollouts then start
    elsewhere than the demonstrations, so only the return distributions compare."""
    out["seeds_replayable"] = bool(getattr(metadata, "seeds_replayable", True))
    if not out["seeds_replayable"]:
        out["pct_diff_mean"] = out["pct_diff_std"] = out["pct_diff_median"] = None


def unplayable_reason(env_name: str) -> str | None:
    """Why hbm cannot roll a policy out in this game, or None when it can: games that exist
    only as recordings (`hbm_data.EnvSpec.gymnasium` False, e.g. the Overcooked kitchens)."""
    from hbm_data import get_env_spec

    if get_env_spec(env_name).gymnasium:
        return None
    return f"{env_name}: recordings only, no game hbm can play; behaviour rollouts skipped"


def evaluate_policy(
    policy: torch.nn.Module,
    data: Any,
    *,
    seed: int = 0,
    step: int = 0,
    repeats: int = 1,
    humanlike: bool = True,
    partner: str = "recorded",
    device: torch.device | str = "cpu",
) -> PolicyEvaluation:
    """Test-set classification metrics plus the behaviour comparison, for `hbm_data.HumanData`:
    `{"metrics", "behaviour", "humanlike"}`.

    The policy plays each held-out seed `repeats` times, recorded once: those rollouts give the
    returns (`behaviour`, `compare_returns`) and the `humanlike` block alike
    (`humanlike.play_and_score`); `humanlike=False` plays unrecorded and returns no block.
    `step`: the training step the model is from (the F1 draws are seeded by seed and step, as
    in the training history). `partner`: who plays beside the model in a two-player kitchen
    (`overcooked_play.PARTNERS`). Deterministic for a given `seed` on CPU (own generators, no
    global RNG)."""
    device = torch.device(device)
    policy = policy.to(device).eval()
    meta = data.metadata
    metrics = classification_metrics(
        policy,
        data.test_obs,
        data.test_act,
        meta.test_episode_lengths,
        seed=seed,
        step=step,
        device=device,
    )
    skipped = unplayable_reason(meta.env_name)
    env_gen = torch.Generator(device=device).manual_seed(seed * 1_000_003 + 2)
    if skipped is not None:  # the offline metrics; the result says why
        from .offline_humanlike import offline_humanlike
        from .overcooked_play import play_recorded_segments

        block = offline_humanlike(policy, data, reason=skipped, device=device)
        out: PolicyEvaluation = {
            "metrics": metrics,
            "behaviour": {"skipped": skipped},
            "humanlike": block,
        }
        # the Overcooked kitchens are also played from each held-out segment's recorded
        # start beside the chosen partner: returns, and the humanlike block of that play
        played = play_recorded_segments(
            policy, data, generator=env_gen, repeats=repeats, seed=seed, humanlike=humanlike,
            partner=partner, device=device,
        )  # fmt: skip
        if played is not None:
            out["behaviour"] = played
        return out
    if not humanlike:
        behaviour = evaluate_behaviour(
            policy, meta, repeats=repeats, generator=env_gen, device=device
        )
        return {"metrics": metrics, "behaviour": behaviour}
    from .humanlike import play_and_score

    # one play: the same recorded rollouts give the returns and every humanlike metric
    (rollouts,), (block,) = play_and_score(
        policy, data, generator=env_gen, repeats=repeats, seed=seed, device=device
    )
    human = [float(e.score) for e in meta.test_episodes]
    behaviour = compare_returns(rollouts.returns, human, seed=seed)
    _replayable(behaviour, meta)
    return {"metrics": metrics, "behaviour": behaviour, "humanlike": block}


# ----------------------------------------------------------------------------------------------
# Saved models: one layout for hbm-ne exports and hbm-dl models, rebuilt as hbm-dl modules.


def model_spec(policy: torch.nn.Module, kind: str, rank: int | None = 1) -> dict[str, Any]:
    """Architecture read off the state_dict (layout of docs/interfaces.md)."""
    sd = policy.state_dict()
    if kind == "dynamic":  # hbm-ne's DynamicNet: the graph is in the state_dict
        nodes, wired = int(sd["center"].shape[0]), int(sd["weight"].shape[0])
        output_size = int(getattr(policy, "output_size"))  # noqa: B009 - not in the layout
        return {
            "kind": kind,
            "input_size": nodes - wired,
            "output_size": output_size,
            "num_hidden": wired - output_size,
        }
    out_w = sd["output.weight"]
    if kind == "feedforward":
        hidden = [int(sd[f"hidden.{i}.weight"].shape[0]) for i in range(_count_hidden(sd))]
        input_size = int(sd["hidden.0.weight"].shape[1]) if hidden else int(out_w.shape[1])
        return {
            "kind": kind,
            "input_size": input_size,
            "hidden_sizes": hidden,
            "output_size": int(out_w.shape[0]),
        }
    spec: dict[str, Any] = {
        "kind": kind,
        "input_size": int(sd["input.weight"].shape[1]),
        "hidden_size": int(sd["input.weight"].shape[0]),
        "output_size": int(out_w.shape[0]),
    }
    if kind == "trainable":
        spec["rank"] = int(sd["recurrent_u"].shape[1]) if "recurrent_u" in sd else None
    return spec


def _count_hidden(sd: Mapping[str, Any]) -> int:
    n = 0
    while f"hidden.{n}.weight" in sd:
        n += 1
    return n


def build_model(spec: Mapping[str, Any]) -> torch.nn.Module:
    """An (untrained) hbm-dl module of the architecture `spec` describes (for kind
    "dynamic", an hbm-ne `DynamicNet` of that size, whose graph `load_state_dict` sets)."""
    import hbm_dl

    kind = spec["kind"]
    if kind == "feedforward":
        return hbm_dl.FeedforwardMLP(
            spec["input_size"], tuple(spec["hidden_sizes"]), spec["output_size"]
        )
    if kind == "reservoir":
        return hbm_dl.RecurrentMLPReservoir(
            spec["input_size"], spec["hidden_size"], spec["output_size"]
        )
    if kind == "trainable":
        return hbm_dl.RecurrentMLPTrainable(
            spec["input_size"], spec["hidden_size"], spec["output_size"], rank=spec.get("rank")
        )
    if kind == "dynamic":  # an evolved graph; passes, min_std, nonlinearity: extra state
        import hbm_ne

        return hbm_ne.DynamicNet(spec["input_size"], spec["output_size"], spec["num_hidden"])
    raise ValueError(f"unknown model kind {kind!r} in spec {dict(spec)}")


def load_model(path: str | Path, *, device: torch.device | str = "cpu") -> torch.nn.Module:
    """Load a `model.pt` written by an experiment (any algorithm) as an hbm-dl module (an
    hbm-ne `DynamicNet` for `ga_dynamic`)."""
    path = Path(path)
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # empty (EOFError), truncated (RuntimeError), not torch (Unpickling)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "no data"
        raise ValueError(
            f"{path}: cannot load model file ({type(exc).__name__}: {first}); the file is "
            "damaged or not a model: `hbm run --force` on its experiment trains it again"
        ) from exc
    if not isinstance(blob, dict) or "spec" not in blob or "state_dict" not in blob:
        raise ValueError(f"{path}: expected a dict with 'spec' and 'state_dict'")
    try:
        model = build_model(blob["spec"]).to(device)
        model.load_state_dict(blob["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"{path}: the model file does not describe a model ({exc})") from exc
    return model.eval()
