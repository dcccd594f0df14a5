"""One evaluation for both learner packages: the sampled macro F1 (`f1_seed`,
`sampled_macro_f1`), the argmax accuracy (`action_accuracy`), `evaluate` (test cross-entropy,
argmax accuracy, sampled macro F1) and the data signature that checkpoint fingerprints hold.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .nets import is_recurrent

_EVAL_ROWS = 1 << 16  # feedforward evaluation chunk (rows)
_EVAL_STEPS = 1 << 18  # recurrent evaluation chunk (sequences x padded steps)


def f1_seed(seed: int, step: int) -> int:
    """The seed of the F1 draws of an evaluation at `step` of a run seeded `seed`:
    `(seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9) mod 2**63`."""
    return (int(seed) * 0x9E3779B97F4A7C15 + int(step) * 0xBF58476D1CE4E5B9) % (1 << 63)


def macro_f1_from_confusion(confusion: Tensor) -> Tensor:
    """Macro F1 from `confusion [..., A, A]` (rows = truth); classes absent from both truth and
    prediction score 0, as sklearn's `f1_score(average="macro", labels=range(A),
    zero_division=0)`. Returns `[...]` float64."""
    c = confusion.double()
    tp = torch.diagonal(c, dim1=-2, dim2=-1)
    denom = c.sum(dim=-1) + c.sum(dim=-2)  # = 2TP + FP + FN
    f1 = torch.where(denom > 0, 2 * tp / denom.clamp(min=1.0), torch.zeros_like(tp))
    return f1.mean(dim=-1)


def action_accuracy(predicted: Tensor, actions: Tensor) -> Tensor:
    """Share of steps where the predicted action is the recorded one: a policy's argmax accuracy
    when `predicted` is its argmax (the move matching of McIlroy-Young et al. 2020, "Aligning
    superhuman AI with human behavior"). `predicted [..., N]`, `actions [N]` -> float64 `[...]`
    (nan for N = 0). The matches are counted exactly in float64 and divided once by N, so the
    value is the same bits as NumPy's mean of the same comparison."""
    return (predicted == actions).double().mean(dim=-1)


def sample_actions(logits: Tensor, f1_samples: int, seed: int) -> Tensor:
    """`f1_samples` actions per row by inverse CDF: `logits [M, A]` -> `[K, M]` int64.

    u[k, m] ~ U[0, 1) from a CPU `torch.Generator` seeded `seed`, drawn as one float64
    `[K, M]` tensor (so the draws do not depend on the device); the action is the number of
    classes j < A - 1 whose cumulative float64 softmax probability is below `u · Σp`.
    """
    if f1_samples < 1:
        raise ValueError(f"f1_samples must be >= 1, got {f1_samples}")
    m = logits.shape[0]
    gen = torch.Generator().manual_seed(int(seed))
    u = torch.rand(f1_samples, m, generator=gen, dtype=torch.float64).to(logits.device)
    cdf = torch.softmax(logits.double(), dim=-1).cumsum(-1)  # [M, A]
    u = u * cdf[:, -1]
    inner = cdf[:, :-1]
    return torch.stack([(inner < u[k, :, None]).sum(-1) for k in range(f1_samples)])


def sampled_macro_f1(
    logits: Tensor,
    actions: Tensor,
    mask: Tensor | None = None,
    *,
    f1_samples: int = 10,
    seed: int = 0,
) -> float:
    """Mean over `f1_samples` draws of the macro F1 (over classes `range(A)`) of one action
    sampled per valid step from `softmax(logits)` (`sample_actions`), against `actions`.

    `logits [..., A]`, `actions [...]`, `mask [...]`; rows are taken in their flattened order,
    which is the order of the data's steps. For a run's evaluation at `step` use
    `seed=f1_seed(run_seed, step)`. NaN when there is no valid step.
    """
    if logits.shape[:-1] != actions.shape:
        raise ValueError(
            f"logits [..., A] and actions [...] disagree: {tuple(logits.shape)} vs "
            f"{tuple(actions.shape)}"
        )
    lg = logits.reshape(-1, logits.shape[-1])
    ac = actions.reshape(-1)
    if mask is not None:
        if mask.shape != actions.shape:
            raise ValueError(f"mask must have shape {tuple(actions.shape)}, got {mask.shape}")
        keep = mask.reshape(-1).bool()
        lg, ac = lg[keep], ac[keep]
    if ac.numel() == 0:
        return float("nan")
    a = lg.shape[-1]
    samples = sample_actions(lg, f1_samples, seed)  # [K, M]
    offsets = torch.arange(f1_samples, device=lg.device)[:, None] * (a * a)
    counts = torch.bincount(
        (offsets + ac[None, :].long() * a + samples).reshape(-1), minlength=f1_samples * a * a
    ).reshape(f1_samples, a, a)
    return float(macro_f1_from_confusion(counts).mean())


class SupervisedData(Protocol):
    """What `evaluate` reads of an `EpisodeData` (either package's)."""

    @property
    def obs(self) -> Tensor: ...  # [N, in]

    @property
    def actions(self) -> Tensor: ...  # [N]

    @property
    def episode_lengths(self) -> tuple[int, ...] | None: ...


@dataclass(frozen=True)
class _Steps:
    """A plain `(obs, actions)` pair as `SupervisedData` (independent steps)."""

    obs: Tensor
    actions: Tensor
    episode_lengths: tuple[int, ...] | None = None


def as_supervised_data(data: SupervisedData | tuple[Any, Any]) -> SupervisedData:
    """`data`, or a plain `(obs [N, in], actions [N])` tuple as independent steps."""
    if isinstance(data, tuple):
        if len(data) != 2:
            raise TypeError(f"expected EpisodeData or an (obs, actions) tuple, got {len(data)}")
        obs = torch.as_tensor(data[0]).to(torch.float32)
        return _Steps(obs, torch.as_tensor(data[1]).to(device=obs.device, dtype=torch.long))
    return data


def sequence_rows(
    episode_lengths: Sequence[int], sessions: Sequence[int] | None, unit: str = "episode"
) -> list[Tensor]:
    """Row indices (into the data's flat arrays) of each sequence a recurrent model runs from
    a zero state: one per episode (`unit="episode"`), or the episodes of each session in
    order (`unit="session"`, sessions in order of first appearance; no `sessions` = one)."""
    if unit not in ("episode", "session"):
        raise ValueError(f"unit must be 'episode' or 'session', got {unit!r}")
    starts = list(itertools.accumulate(episode_lengths, initial=0))
    episodes = [torch.arange(starts[i], starts[i + 1]) for i in range(len(episode_lengths))]
    if unit == "episode":
        return episodes
    sess = list(sessions) if sessions is not None else [0] * len(episodes)
    groups: dict[int, list[Tensor]] = {}
    for i, s in enumerate(sess):
        groups.setdefault(int(s), []).append(episodes[i])
    return [torch.cat(g) for g in groups.values()]


@torch.no_grad()
def model_logits(
    model: nn.Module, data: SupervisedData | tuple[Any, Any], unit: str = "episode"
) -> Tensor:
    """Logits `[N, A]` of `model` for every step of `data`, in the data's row order.

    Recurrent models run each sequence (`sequence_rows`) from a zero state. Observations are
    cast to the model's parameter device and dtype.
    """
    data = as_supervised_data(data)
    first = next(iter(model.parameters()))
    dev = first.device
    obs = data.obs.to(device=dev, dtype=first.dtype)
    if not is_recurrent(model):
        return torch.cat([model(chunk) for chunk in obs.split(_EVAL_ROWS)])
    if data.episode_lengths is None:
        raise ValueError(
            "a recurrent model needs episode boundaries: "
            "EpisodeData.from_arrays(obs, actions, episode_lengths)"
        )
    seqs = sequence_rows(data.episode_lengths, getattr(data, "sessions", None), unit)
    out: Tensor | None = None
    per_chunk = max(1, _EVAL_STEPS // max(1, max(len(s) for s in seqs)))
    for c in range(0, len(seqs), per_chunk):
        chunk = seqs[c : c + per_chunk]
        t = max(len(s) for s in chunk)
        index = torch.full((len(chunk), t), -1, dtype=torch.long)
        for k, rows in enumerate(chunk):
            index[k, : len(rows)] = rows
        index = index.to(dev)
        mask = index >= 0
        logits, _ = model(obs[index.clamp(min=0)], mask)
        if out is None:
            out = logits.new_empty(obs.shape[0], logits.shape[-1])
        out[index[mask]] = logits[mask]
    assert out is not None
    return out


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: SupervisedData | tuple[Any, Any],
    *,
    f1_samples: int = 10,
    seed: int = 0,
    step: int = 0,
    unit: str = "episode",
) -> dict[str, float]:
    """`{"ce", "accuracy", "f1"}` of `model` on all of `data`: mean cross-entropy (nats),
    argmax accuracy and `sampled_macro_f1(..., f1_samples, seed=f1_seed(seed, step))`.

    The training loops evaluate with this function, the run's `seed` and the row's `step`, so
    calling it on a result's model with `step=result.history[-1]["step"]` reproduces the last
    history row (to float rounding). Recurrent models run each episode (`unit="episode"`) or
    session (`unit="session"`) from a zero state. `data`: an `EpisodeData` of either package
    or a plain `(obs, actions)` tuple.
    """
    data = as_supervised_data(data)
    logits = model_logits(model, data, unit)
    actions = data.actions.to(logits.device)
    if actions.numel() == 0:
        nan = float("nan")
        return {"ce": nan, "accuracy": nan, "f1": nan}
    return {
        "ce": float(F.cross_entropy(logits, actions)),
        "accuracy": float(action_accuracy(logits.argmax(-1), actions)),
        "f1": sampled_macro_f1(logits, actions, f1_samples=f1_samples, seed=f1_seed(seed, step)),
    }


def data_signature(data: SupervisedData) -> dict[str, Any]:
    """A cheap content signature of supervised data for checkpoint fingerprints: shape,
    float64 sums of observations and actions (computed on CPU: the same bits on any device),
    episode lengths and sessions."""
    sessions = getattr(data, "sessions", None)
    return {
        "shape": list(data.obs.shape),
        "obs_sum": float(data.obs.detach().cpu().double().sum()),
        "actions_sum": int(data.actions.detach().cpu().sum()),
        "episode_lengths": None if data.episode_lengths is None else list(data.episode_lengths),
        "sessions": None if sessions is None else list(sessions),
    }
