"""Chunk kernels written for TorchScript: a scripted call runs all its operations in C++ without
the GIL, so the worker threads that evaluate chunks of a population side by side do not queue
for the interpreter between operations (on a 2-core VM every such handoff costs tens of µs).

Plain Python functions here; `kernel(name)` gives the TorchScript version, compiled on first
use, or the Python one where TorchScript is unavailable (it is deprecated in torch, yet still the
one GIL-free executor that needs no C++ compiler). Both compute the same thing.
"""

# ruff: noqa: UP006, UP035, UP045 - TorchScript reads `typing.List` / `Optional` annotations
import functools
import logging
import warnings
from collections.abc import Callable
from typing import List, Optional

import torch
from torch import Tensor

logger = logging.getLogger(__name__)


def mlp_chunk_logits(
    weights: List[Tensor],
    biases: List[Tensor],
    x_shared: Optional[Tensor],
    x_member: Optional[Tensor],
    work: List[Tensor],
    logits: Tensor,
    tile_c: int,
    tile_n: int,
) -> None:
    """Logits `[c, out, N]` of a chunk of members into `logits`, tile by tile.

    `weights[l] [c, out, in]`, `biases[l] [c, out, 1]`; inputs shared, `x_shared [in+1, N]`
    (a ones row: the first layer's weights carry its bias as a last column), or per member,
    `x_member [c, N, in]`. `work[l] [tile_c, width, tile_n]` holds hidden layer `l` of one
    tile, small enough to stay in a core's cache from one layer to the next. Tiles of one
    member use 2-D products (half the overhead of batched ones).
    """
    c = logits.shape[0]
    n = logits.shape[2]
    last = len(weights) - 1
    per_member = tile_c == 1
    if per_member and tile_n == n:
        _whole_members(weights, biases, x_shared, x_member, work, logits)
    else:
        for t0 in range(0, c, tile_c):
            t1 = min(t0 + tile_c, c)
            tc = t1 - t0
            for n0 in range(0, n, tile_n):
                n1 = min(n0 + tile_n, n)
                tn = n1 - n0
                if x_shared is not None:
                    a = x_shared[:, n0:n1]
                else:
                    assert x_member is not None
                    a = x_member[t0:t1, n0:n1].transpose(1, 2)
                    if per_member:
                        a = a[0]
                for li in range(last + 1):
                    w = weights[li]
                    width = w.shape[1]
                    if li == last:
                        out = (
                            logits[t0:t1]
                            if tn == n
                            else torch.empty(
                                tc, width, tn, dtype=logits.dtype, device=logits.device
                            )
                        )
                    else:
                        out = work[li].view(-1)[: tc * width * tn].view(tc, width, tn)
                    bias_done = (li == 0 and x_shared is not None) or li == last
                    if per_member:
                        out = out[0]
                        if bias_done:
                            torch.mm(w[t0], a, out=out)
                        else:
                            torch.addmm(biases[li][t0], w[t0], a, out=out)
                    elif bias_done:
                        torch.matmul(w[t0:t1], a, out=out)
                    else:
                        torch.baddbmm(biases[li][t0:t1], w[t0:t1], a, out=out)
                    if li < last:
                        out.tanh_()
                    a = out
                if tn != n:
                    logits[t0:t1, :, n0:n1] = a.view(tc, -1, tn)
    if last > 0 or x_shared is None:  # the last layer's bias, once for the chunk
        logits += biases[last]


def _whole_members(
    weights: List[Tensor],
    biases: List[Tensor],
    x_shared: Optional[Tensor],
    x_member: Optional[Tensor],
    work: List[Tensor],
    logits: Tensor,
) -> None:
    """`mlp_chunk_logits` with tiles of one member and all samples (the common case): every
    view made once, so a member costs its products and its tanh and little else; the last
    layer's bias left out."""
    last = len(weights) - 1
    rows = [w.unbind(0) for w in weights]
    bias_rows = [b.unbind(0) for b in biases]
    hidden = [t[0] for t in work]
    outs = logits.unbind(0)
    for j in range(logits.shape[0]):
        if x_shared is not None:
            a = x_shared
        else:
            assert x_member is not None
            a = x_member[j].t()
        for li in range(last + 1):
            if li == last:
                torch.mm(rows[li][j], a, out=outs[j])
            else:
                h = hidden[li]
                if li == 0 and x_shared is not None:
                    torch.mm(rows[li][j], a, out=h)
                else:
                    torch.addmm(bias_rows[li][j], rows[li][j], a, out=h)
                h.tanh_()
                a = h


def softplus_sum(z: Tensor, weight: Optional[Tensor], check_range: bool = True) -> Tensor:
    """`Σ softplus(z)` over all but the first axis, in float64; overwrites `z`.

    `log(1 + e^z)` in three vectorised passes, 2× faster here than torch's fused softplus, which
    serves only where some `z ≥ 80` would overflow `exp`. Where `e^z < 6e-8` a step's loss
    rounds to 0, below float32's resolution of the sum. Accelerators always take the fused
    softplus (a range check would wait for the device). `check_range=False`: the caller knows
    every `z < 80`.
    """
    if z.device.type != "cpu" or (check_range and z.numel() > 0 and float(z.max()) >= 80.0):
        per = torch.nn.functional.softplus(z)  # on accelerators: no host sync for the check
    else:
        per = z.exp_().add_(1.0).log_()
    if weight is not None:
        per = per * weight
    return per.reshape(z.shape[0], -1).sum(dim=1, dtype=torch.float64)


def signed_softplus_sum(margin: Tensor, sign: Tensor, check_range: bool) -> Tensor:
    """Two-class cross-entropy sums `[c]` from margins `l_1 - l_0 [c, ...]` and `sign = 1 - 2y`
    (precomputed once per call: after a heavy kernel every small op here costs several times
    its usual time); overwrites `margin`."""
    return softplus_sum(margin.mul_(sign), None, check_range)


def multiclass_ce_sum(
    by_class: Tensor,
    onehot: Tensor,
    weight: Optional[Tensor],
    inplace: bool,
    check_range: bool = True,
) -> Tensor:
    """`Σ w (log Σ_k e^{l_k} - l_y)` per member: `by_class [c, A, ...]` -> `[c]` float64, with
    `onehot [A, ...]` the targets' indicator times `weight [...]` (`class_indicator`). `Σ l_y`
    is one matrix-vector product with it (a gather over the class axis is 3× slower); no
    max-shift pass where every |l| < 80 (checked unless `check_range=False`: the caller knows)."""
    c = by_class.shape[0]
    picked = torch.mv(by_class.reshape(c, -1), onehot.reshape(-1))
    small = by_class.device.type == "cpu"  # elsewhere logsumexp: no host sync for the check
    if small and check_range and by_class.numel() > 0:
        lo, hi = torch.aminmax(by_class)
        small = float(lo) > -80.0 and float(hi) < 80.0
    if small:  # exp can neither overflow nor underflow to 0
        e = by_class.exp_() if inplace else by_class.exp()
        lse = e.sum(1).log_()
    else:
        lse = torch.logsumexp(by_class, dim=1)
    if weight is not None:
        lse = lse * weight
    return lse.reshape(c, -1).sum(dim=1, dtype=torch.float64) - picked.double()


def class_indicator(
    targets: Tensor, num_classes: int, weight: Optional[Tensor], dtype: torch.dtype
) -> Tensor:
    """`[A, ...]`: 1 where `targets [...]` is the class (times `weight`), contiguous."""
    classes = torch.arange(num_classes, device=targets.device)
    onehot = (targets.unsqueeze(0) == classes.view([-1] + [1] * targets.dim())).to(dtype)
    return onehot if weight is None else onehot * weight


_FUNCTIONS: dict[str, Callable[..., object]] = {
    "mlp_chunk_logits": mlp_chunk_logits,
    "softplus_sum": softplus_sum,
    "signed_softplus_sum": signed_softplus_sum,
    "multiclass_ce_sum": multiclass_ce_sum,
}


#: False runs the Python kernels (tests compare both).
USE_TORCHSCRIPT = True


def kernel(name: str, device: torch.device) -> Callable[..., object]:
    """Kernel `name` for tensors on `device`: scripted on CPU (`USE_TORCHSCRIPT`), else the
    Python function (accelerators queue kernels asynchronously: no GIL to avoid)."""
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
