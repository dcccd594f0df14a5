"""Fitness of a whole population on recorded human actions, in bounded memory.

Convention used everywhere in hbm: **fitness is a loss, minimised** (lower is better).
Every function here chunks over members and samples so that no activation larger than
`max_bytes` is built; chunked results equal unchunked ones (sums accumulate in float64).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from hbm_ne._kernels import class_indicator, encode_targets, kernel
from hbm_ne._shared.data import ArrayLike, EpisodeData, as_episode_data  # noqa: F401 (re-export)
from hbm_ne.population import BatchedFeedforward, BatchedRecurrent, chunk_bytes


def check_fits(name: str, data: EpisodeData, input_size: int, num_outputs: int) -> None:
    """Refuse data a population cannot take: observation width or action range (`name` is the
    argument named in the message)."""
    if data.input_size != input_size:
        raise ValueError(
            f"{name}: obs has {data.input_size} features, population expects {input_size}"
        )
    if data.num_steps and int(data.actions.max()) >= num_outputs:
        raise ValueError(
            f"{name}: actions go up to {int(data.actions.max())}, population has "
            f"{num_outputs} outputs"
        )


def ce_sum(
    logits: Tensor, targets: Tensor, weight: Tensor | None = None, *, inplace: bool = False
) -> Tensor:
    """Summed cross-entropy per member: `logits [c, ..., A]`, `targets [...]` -> `[c]` float64.

    Exact, but cheaper than `log_softmax().gather()`: closed form `softplus(l_other - l_y)` for
    two classes; otherwise `log Σ exp(l) - l_y`, without the max-shift pass when every logit is
    small enough for `exp` (|l| < 80), else `logsumexp`. `inplace=True` lets it overwrite
    `logits` (a workspace). `weight [...]` (e.g. a mask) scales each step.
    """
    if _numpy_kernels(logits):
        return _ce_sum_numpy(logits, targets, weight, inplace=inplace)
    if logits.shape[-1] == 2:
        d = logits[..., 1] - logits[..., 0]
        d.mul_(encode_targets(targets, 2, True, d.dtype))
        return kernel("softplus_sum", d.device)(d, weight)  # type: ignore[return-value]
    # class-major `[c, A, ...]`: how the population kernels lay logits out (contiguous)
    y = targets.expand(logits.shape[1:-1])
    onehot = class_indicator(y, logits.shape[-1], weight, logits.dtype)
    ce = kernel("multiclass_ce_sum", logits.device)
    return ce(logits.movedim(-1, 1), onehot, weight, inplace)  # type: ignore[return-value]


def _numpy_kernels(t: Tensor) -> bool:
    """Whether to run the cross-entropy's elementwise passes in numpy rather than torch: on CPU
    when torch would spread them over OpenMP threads. On a shared CPU those wait on
    descheduled threads and run several times slower than numpy's single-threaded SIMD loops;
    on one thread (hbm-ne's worker threads) torch's fused kernels are the faster."""
    return (
        t.device.type == "cpu"
        and t.dtype in (torch.float32, torch.float64)
        and torch.get_num_threads() > 1
    )


def _ce_sum_numpy(
    logits: Tensor, targets: Tensor, weight: Tensor | None, *, inplace: bool
) -> Tensor:
    """CPU path of `ce_sum`: numpy's single-threaded SIMD kernels; on a shared CPU torch's
    threaded elementwise ops wait on descheduled threads and run several times slower."""
    lo = logits.detach().numpy()
    t = targets.detach().cpu().numpy()
    c = lo.shape[0]
    if lo.shape[-1] == 2:
        per = _softplus_margin_(np.subtract(lo[..., 1], lo[..., 0]), t)
    else:
        # class-major view `[A, c, ...]`: the population kernels' logits are laid out `[c, A, N]`
        # so that each class is a contiguous row; per-class passes then run at memory speed
        by_class = np.moveaxis(lo, -1, 0)
        small = lo.size == 0 or (float(lo.max()) < 80.0 and float(lo.min()) > -80.0)
        # l_y = Σ_k l_k [y = k]: exact (one non-zero term) and 5× faster than a masked copy
        picked = np.zeros(by_class.shape[1:], dtype=lo.dtype)
        term = np.empty_like(picked)
        for k in range(by_class.shape[0]):
            hit = t == k
            if small:
                np.multiply(by_class[k], hit.astype(lo.dtype), out=term)
                picked += term
            else:  # 0 · inf would be nan
                np.copyto(picked, by_class[k], where=hit)
        if small:
            e = np.exp(lo, out=lo) if inplace and lo.flags.writeable else np.exp(lo)
            per = np.log(np.moveaxis(e, -1, 0).sum(0))
        else:
            m = lo.max(-1)
            per = np.log(np.exp(lo - m[..., None]).sum(-1)) + m
        per -= picked
    if weight is not None:
        per *= weight.detach().cpu().numpy().astype(per.dtype)
    return torch.from_numpy(per.reshape(c, -1).sum(1, dtype=np.float64))


def _softplus_margin_(margin: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Two-class CE per step from the margin `l_1 - l_0`, in place: softplus(±margin)."""
    per = margin
    np.multiply(per, (1 - 2 * targets).astype(per.dtype), out=per)
    # softplus = max(x, 0) + log1p(exp(-|x|)), in place (np.logaddexp is ~20× slower)
    pos = np.maximum(per, 0)
    np.abs(per, out=per)
    np.negative(per, out=per)
    np.exp(per, out=per)
    np.log1p(per, out=per)
    per += pos
    return per


def margin_ce_sum(margin: Tensor, targets: Tensor) -> Tensor:
    """Summed two-class cross-entropy per member from margins `l_1 - l_0 [c, ...]` -> `[c]`
    float64 (what `BatchedFeedforward.iter_logits(..., margin=True)` yields)."""
    c = margin.shape[0]
    if _numpy_kernels(margin):
        per = _softplus_margin_(
            np.array(margin.detach().numpy(), copy=True), targets.detach().cpu().numpy()
        )
        return torch.from_numpy(per.reshape(c, -1).sum(1, dtype=np.float64))
    sign = encode_targets(targets, 2, True, margin.dtype)
    return kernel("softplus_sum", margin.device)(margin * sign, None)  # type: ignore[return-value]


def _step_chunk(population: BatchedFeedforward, max_bytes: int | None) -> int:
    widest = max((*population.hidden_sizes, population.output_size))
    budget = max_bytes or chunk_bytes(population.device)
    return max(1, budget // (widest * population.params.element_size()))


def _member_chunk(population: BatchedFeedforward, n: int, max_bytes: int | None) -> int | None:
    if max_bytes is None:
        return None
    widest = max((*population.hidden_sizes, population.output_size))
    return max(1, max_bytes // (n * widest * population.params.element_size()))


def _check(population: BatchedFeedforward, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor]:
    obs = obs.to(device=population.device, dtype=population.dtype)
    actions = actions.to(device=population.device, dtype=torch.long)
    if obs.dim() != 2 or obs.shape[1] != population.input_size:
        raise ValueError(f"obs must be [N, {population.input_size}], got {tuple(obs.shape)}")
    if actions.shape != obs.shape[:1]:
        raise ValueError(f"actions must be [{obs.shape[0]}], got {tuple(actions.shape)}")
    if actions.numel() and int(actions.max()) >= population.output_size:
        raise ValueError(
            f"actions must be < output_size = {population.output_size}, got {int(actions.max())}"
        )
    return obs, actions


def cross_entropy(
    population: BatchedFeedforward,
    obs: Tensor,
    actions: Tensor,
    *,
    max_bytes: int | None = None,
) -> Tensor:
    """Mean cross-entropy of every member: `obs [N, in]`, `actions [N]` -> `[P]` (float32).

    Chunks over samples and members so that no activation exceeds `max_bytes` (default: a
    cache-sized budget on CPU).
    """
    obs, actions = _check(population, obs, actions)
    n = obs.shape[0]
    if max_bytes is None:  # one pass over the samples: the common case, kept lean
        return (population.cross_entropy_sums(obs, actions) / max(n, 1)).to(population.dtype)
    total = torch.zeros(population.population_size, dtype=torch.float64, device=population.device)
    step = _step_chunk(population, max_bytes)
    for n0 in range(0, n, step):
        x, y = obs[n0 : n0 + step], actions[n0 : n0 + step]
        total += population.cross_entropy_sums(x, y, _member_chunk(population, len(x), max_bytes))
    return (total / max(n, 1)).to(population.dtype)


def accuracy(
    population: BatchedFeedforward, obs: Tensor, actions: Tensor, *, max_bytes: int | None = None
) -> Tensor:
    """Share of steps where each member's argmax matches the action: `[P]`."""
    obs, actions = _check(population, obs, actions)
    n = obs.shape[0]
    hits = torch.zeros(population.population_size, dtype=torch.float64, device=population.device)
    step = _step_chunk(population, max_bytes) if max_bytes is not None else n
    for n0 in range(0, n, step):
        x, y = obs[n0 : n0 + step], actions[n0 : n0 + step]

        def chunk_hits(p0: int, p1: int, logits: Tensor, y: Tensor = y) -> Tensor:
            return (logits.argmax(-1) == y).sum(1, dtype=torch.float64)

        chunk = _member_chunk(population, len(x), max_bytes)
        hits += torch.cat(population.map_logits(x, chunk_hits, chunk))
    return (hits / max(n, 1)).to(population.dtype)


def _sample_actions(logits: Tensor, num_samples: int, generator: torch.Generator) -> Tensor:
    """`logits [..., A]` -> `K` sampled actions `[..., K]` by inverse CDF (any device)."""
    probs = torch.softmax(logits.float(), dim=-1)
    cdf = probs.cumsum(-1)
    shape = (*logits.shape[:-1], num_samples)
    u = torch.rand(shape, generator=generator, device=generator.device).to(logits.device)
    u = u * cdf[..., -1:]
    sampled = (cdf[..., None, :-1] < u[..., None]).sum(-1)
    return sampled


def f1_from_predictions(pred: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """Macro F1 over classes `0..C-1` (zero_division = 0): `pred [c, K, N]`, `targets [N]`
    -> `[c, K]`.
    """
    f1 = torch.zeros(pred.shape[:-1], dtype=torch.float64, device=pred.device)
    for k in range(num_classes):
        pk = pred == k
        yk = targets == k
        tp = (pk & yk).sum(-1, dtype=torch.float64)
        denom = pk.sum(-1, dtype=torch.float64) + yk.sum(dtype=torch.float64)  # 2tp + fp + fn
        f1 += torch.where(denom > 0, 2 * tp / denom.clamp_min(1), torch.zeros_like(tp))
    return f1 / num_classes


def macro_f1(
    population: BatchedFeedforward,
    obs: Tensor,
    actions: Tensor,
    *,
    num_samples: int = 10,
    generator: torch.Generator,
    max_bytes: int | None = None,
) -> Tensor:
    """Macro F1 of actions sampled from each member's policy, averaged over `num_samples` draws.

    Like the lab's metric: it measures the stochastic policy, not the argmax. `[P]`.
    """
    obs, actions = _check(population, obs, actions)
    c_num = population.output_size
    chunk = _member_chunk(population, obs.shape[0], max_bytes)
    out = torch.empty(population.population_size, dtype=torch.float64, device=population.device)
    for p0, p1, logits in population.iter_logits(obs, chunk):
        sampled = _sample_actions(logits, num_samples, generator)  # [c, N, K]
        out[p0:p1] = f1_from_predictions(sampled.transpose(1, 2), actions, c_num).mean(1)
    return out.to(population.dtype)


def sequence_cross_entropy(
    population: BatchedRecurrent,
    x: Tensor,
    y: Tensor,
    mask: Tensor,
    *,
    h0: Tensor | None = None,
    max_bytes: int | None = None,
) -> tuple[Tensor, Tensor]:
    """Mean CE over the valid steps of whole sequences: `x [S, T, in]`, `y [S, T]`,
    `mask [S, T]` -> (`[P]`, final states `h_T [P, S, H]`).
    """
    s, t = y.shape
    y = y.to(population.device)
    w = mask.to(device=population.device, dtype=population.dtype)
    total = torch.zeros(population.population_size, dtype=torch.float64, device=population.device)
    h_t = torch.empty(
        population.population_size, s, population.hidden_size, device=population.device
    )
    chunk = None
    if max_bytes is not None:
        chunk = max(
            1, max_bytes // (s * t * population.hidden_size * population.params.element_size())
        )
    for p0, p1, logits, h in population.iter_sequence_logits(x, mask, h0, chunk):
        total[p0:p1] += ce_sum(logits, y, w, inplace=True)
        h_t[p0:p1] = h
    return (total / w.sum().clamp_min(1).double()).to(population.dtype), h_t


def sequence_macro_f1(
    population: BatchedRecurrent,
    x: Tensor,
    y: Tensor,
    mask: Tensor,
    *,
    num_samples: int = 10,
    generator: torch.Generator,
) -> Tensor:
    """Macro F1 of sampled actions over the valid steps of whole sequences: `[P]`."""
    m = mask.to(population.device)
    targets = y.to(population.device)[m]
    out = torch.empty(population.population_size, dtype=torch.float64, device=population.device)
    for p0, p1, logits, _ in population.iter_sequence_logits(x, mask):
        valid = logits[:, m]  # [c, Nvalid, A]
        sampled = _sample_actions(valid, num_samples, generator)
        out[p0:p1] = f1_from_predictions(
            sampled.transpose(1, 2), targets, population.output_size
        ).mean(1)
    return out.to(population.dtype)


def population_metrics(
    population: BatchedFeedforward | BatchedRecurrent,
    data: EpisodeData,
    *,
    num_samples: int = 10,
    generator: torch.Generator,
    unit: str = "episode",
) -> tuple[Tensor, Tensor]:
    """(cross-entropy `[P]`, macro F1 `[P]`) on a whole data set; recurrent runs whole sequences."""
    data = data.to(population.device)
    if isinstance(population, BatchedRecurrent):
        x, y, mask = data.padded(data.sequences(unit))
        ce, _ = sequence_cross_entropy(population, x, y, mask)
        f1 = sequence_macro_f1(population, x, y, mask, num_samples=num_samples, generator=generator)
        return ce, f1
    ce = cross_entropy(population, data.obs, data.actions)
    f1 = macro_f1(population, data.obs, data.actions, num_samples=num_samples, generator=generator)
    return ce, f1
