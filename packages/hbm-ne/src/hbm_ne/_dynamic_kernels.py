"""The time loop of a chunk of evolving-topology networks (`hbm_ne.dynamic`), for TorchScript.

One call runs a whole packed batch of episodes through `c` networks: every time step is one
fixed sequence of batched operations over all the chunk's nodes and episodes (a weighted
gather of each node's three inputs by `embedding_bag`, the nonlinearity, the Welford update,
the standardisation), whatever the networks' sizes. Scripted on CPU, so that chunks run side
by side on worker threads without waiting for the interpreter lock between operations (the
same reason as `_kernels`); plain Python elsewhere.

Layouts (node-major, so that a node block of all nets is contiguous and the gather table is one
`[Nmax * c, E]` matrix): values `[Nmax, c, E]` (node j of net q is row `j * c + q`), Welford
statistics `[Nmax, c]` (float64). Episodes are packed time-major and sorted by decreasing
length (as `torch.nn.utils.rnn.PackedSequence`): step t holds the first `batch_sizes[t]`
episodes, so an episode that has ended simply leaves the batch and no step is padded.
"""

# ruff: noqa: UP006, UP035, UP045 - TorchScript reads `typing.List` / `Optional`
import functools
import logging
import warnings
from collections.abc import Callable
from typing import List, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

logger = logging.getLogger(__name__)


def standardise(
    a: Tensor,
    count: Tensor,
    mean: Tensor,
    m2: Tensor,
    rows: Optional[Tensor],
    min_std: float,
) -> Tensor:
    """Merge the values `a [N', c | 1, b]` of N' nodes in c nets into their running statistics
    and return their z-scores `[N', c, b]`.

    `count`, `mean`, `m2 [N', c]` (float64) are updated in place where `rows [N', c]` (float64
    0/1; None = all) is 1: Chan et al.'s batch form of Welford's update, the b values merged
    at once, with the batch centred on the running mean (so float32 sums lose nothing to
    cancellation; the running mean's own float32 rounding, below half a float32 ulp of the
    mean, is not carried into the batch mean). Then z = (a - mean) / max(std, min_std) with
    std = sqrt(m2 / count), or 0 while count < 2.
    """
    d = a - mean.to(a.dtype).unsqueeze(2)  # [N', c, b]
    b = float(d.shape[2])
    s1 = d.sum(2, dtype=torch.float64)
    s2 = (d * d).sum(2, dtype=torch.float64)
    delta = s1 / b  # batch mean - running mean
    if rows is not None:
        delta = delta * rows
        inc = rows * b
    else:
        inc = torch.full_like(count, b)
    n_new = count + inc
    shift = delta * (inc / n_new.clamp_min(1.0))  # = new mean - old mean
    # m2 += Σ(a - batch mean)² + δ² n b / n'  (the second term is δ · shift · n)
    m2_b = s2 - s1 * delta
    if rows is not None:
        m2_b = m2_b * rows
    m2.add_(m2_b + delta * shift * count).clamp_min_(0.0)
    count.copy_(n_new)
    mean.add_(shift)
    inv = (count >= 2.0) / (m2 / count.clamp_min(1.0)).sqrt_().clamp_min_(min_std)
    d.sub_(shift.to(a.dtype).unsqueeze(2))
    return d.mul_(inv.to(a.dtype).unsqueeze(2))


def frozen_scale(count: Tensor, m2: Tensor, min_std: float, dtype: torch.dtype) -> Tensor:
    """`1 / max(std, min_std)` `[N', c, 1]` (0 while count < 2) of frozen statistics."""
    inv = (count >= 2.0) / (m2 / count.clamp_min(1.0)).sqrt().clamp_min(min_std)
    return inv.to(dtype).unsqueeze(2)


def dynamic_chunk(
    x: Tensor,
    batch_sizes: List[int],
    bags: Tensor,
    offsets: Tensor,
    bag_weights: Tensor,
    real: Tensor,
    passes: Tensor,
    count: Tensor,
    mean: Tensor,
    m2: Tensor,
    values: Tensor,
    outputs: Optional[Tensor],
    final: Optional[Tensor],
    targets: Optional[Tensor],
    num_inputs: int,
    num_outputs: int,
    update: bool,
    min_std: float,
    nonlinear: bool,
) -> Optional[Tensor]:
    """Run packed episodes through c networks; returns their summed cross-entropy `[c]`
    (float64) when `targets` is given.

    `x [I, 1 | c, Ntot]` packed inputs (shared by the nets, or one row per net); `batch_sizes`
    episodes per step (non-increasing, summing to Ntot). The graph: `bags`, `offsets`,
    `bag_weights` are `embedding_bag` operands (three rows of the gather table and their frozen
    weights per non-input node, node-major), `real [Nh, c]` marks the nets' real (not padded)
    non-input nodes, `passes [c]` (int64) the passes per step of each net. `count`, `mean`,
    `m2 [Nmax, c]` float64 Welford statistics (updated in place when `update`); `values
    [Nmax, c, E]` the state at the start (z-scores). Written: `outputs [O, c, Ntot]` (the output
    nodes' z-scores, the logits) and `final [Nmax, c, E]` (each episode's state after its last
    step). `targets [Ntot]` (int64, packed like `x`).

    Every step: the inputs are written (standardised by their own statistics), then each pass
    updates every non-input node from the previous pass's values (synchronous): weighted sum of
    its three inputs, tanh (`nonlinear`), standardisation. A net with fewer passes than the
    chunk's maximum keeps its values (and statistics) in the extra passes.
    """
    i = num_inputs
    nmax = values.shape[0]
    c = values.shape[1]
    nh = nmax - i
    k_max = int(passes.max())
    dtype = values.dtype
    # frozen statistics: the standardisation is one subtraction and one product
    center = mean.to(dtype).unsqueeze(2)
    scale = frozen_scale(count, m2, min_std, dtype)
    # pass k > 0 runs only the nets with more than k passes (`subsets[k - 1]`, their indices)
    bags3 = bags.view(nh, c, 3)
    weights3 = bag_weights.view(nh, c, 3)
    subsets: List[Tensor] = []
    sub_bags: List[Tensor] = []
    sub_offsets: List[Tensor] = []
    sub_weights: List[Tensor] = []
    sub_rows: List[Tensor] = []
    sub_center: List[Tensor] = []
    sub_scale: List[Tensor] = []
    for k in range(1, k_max):
        idx = (passes > k).nonzero().view(-1)
        ck = idx.shape[0]
        subsets.append(idx)
        sub_bags.append(bags3.index_select(1, idx).reshape(-1))
        sub_weights.append(weights3.index_select(1, idx).reshape(-1))
        sub_offsets.append(torch.arange(0, nh * ck * 3, 3, device=bags.device))
        sub_rows.append(real.index_select(1, idx).double())
        sub_center.append(center[i:].index_select(1, idx))
        sub_scale.append(scale[i:].index_select(1, idx))
    all_rows = real.double()
    off = 0
    for t in range(len(batch_sizes)):
        b = batch_sizes[t]
        if b < values.shape[2]:  # episodes ended: keep their final state, drop their columns
            if final is not None:
                final[:, :, b : values.shape[2]] = values[:, :, b:]
            values = values[:, :, :b].contiguous()
        if b == 0:
            continue
        xt = x[:, :, off : off + b]
        if update:
            values[:i] = standardise(xt, count[:i], mean[:i], m2[:i], None, min_std)
        else:
            torch.mul(xt - center[:i], scale[:i], out=values[:i])
        table = values.view(nmax * c, b)
        hidden = values[i:]
        a = F.embedding_bag(bags, table, offsets, mode="sum", per_sample_weights=bag_weights)
        a = a.view(nh, c, b)
        if nonlinear:
            a.tanh_()
        if update:
            hidden.copy_(standardise(a, count[i:], mean[i:], m2[i:], all_rows, min_std))
        else:
            hidden.copy_(a.sub_(center[i:]).mul_(scale[i:]))
        for k in range(1, k_max):
            idx = subsets[k - 1]
            a = F.embedding_bag(
                sub_bags[k - 1],
                table,
                sub_offsets[k - 1],
                mode="sum",
                per_sample_weights=sub_weights[k - 1],
            ).view(nh, idx.shape[0], b)
            if nonlinear:
                a.tanh_()
            if update:
                stats = [s.index_select(1, idx) for s in (count[i:], mean[i:], m2[i:])]
                z = standardise(a, stats[0], stats[1], stats[2], sub_rows[k - 1], min_std)
                count[i:].index_copy_(1, idx, stats[0])
                mean[i:].index_copy_(1, idx, stats[1])
                m2[i:].index_copy_(1, idx, stats[2])
            else:
                z = a.sub_(sub_center[k - 1]).mul_(sub_scale[k - 1])
            hidden.index_copy_(1, idx, z)
        if outputs is not None:
            outputs[:, :, off : off + b] = values[i : i + num_outputs]
        off += b
    if final is not None and values.shape[2] > 0:
        final[:, :, : values.shape[2]] = values
    if targets is None or outputs is None:
        return None
    return cross_entropy_sums(outputs, targets)


def cross_entropy_sums(outputs: Tensor, targets: Tensor) -> Tensor:
    """Summed cross-entropy `[c]` (float64) of logits `outputs [O, c, N]` against `targets
    [N]`: softplus of the signed margin for two classes, else logsumexp minus the target's."""
    if outputs.shape[0] == 2:
        sign = 1.0 - 2.0 * targets.to(outputs.dtype)
        per = F.softplus((outputs[1] - outputs[0]) * sign)
    else:
        index = targets.view(1, 1, -1).expand(1, outputs.shape[1], outputs.shape[2])
        per = torch.logsumexp(outputs, 0) - outputs.gather(0, index)[0]
    return per.double().sum(1)


#: False runs the Python kernel (tests compare both).
USE_TORCHSCRIPT = True

_FUNCTIONS: dict[str, Callable[..., object]] = {"dynamic_chunk": dynamic_chunk}


def kernel(name: str, device: torch.device) -> Callable[..., object]:
    """Kernel `name` for tensors on `device`: scripted on CPU (`USE_TORCHSCRIPT`), else the
    Python function (accelerators queue kernels asynchronously: no interpreter lock to avoid)."""
    if USE_TORCHSCRIPT and device.type == "cpu":
        return scripted(name)
    return _FUNCTIONS[name]


@functools.cache
def scripted(name: str) -> Callable[..., object]:
    """The TorchScript version of kernel `name` (compiled once), else the Python one."""
    fn = _FUNCTIONS[name]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.script(fn)  # type: ignore[no-any-return]
    except Exception as err:  # any failure: the Python kernel is equivalent
        logger.warning("TorchScript unavailable for %s (%s): running it as Python", name, err)
        return fn
