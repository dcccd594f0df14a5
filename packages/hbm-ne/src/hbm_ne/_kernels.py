"""Chunk kernels written for TorchScript: a scripted call runs all its operations in C++ without
the GIL, so the worker threads that evaluate chunks of a population side by side do not queue
for the interpreter between operations (on a 2-core VM every such handoff costs tens of µs).

Plain Python functions here; `kernel(name)` gives the TorchScript version, compiled on first
use, or the Python one where TorchScript is unavailable (it is deprecated in torch, yet still the
one GIL-free executor that needs no C++ compiler). Both compute the same thing.
"""

# ruff: noqa: UP006, UP035, UP045 - TorchScript reads `typing.List` / `Optional` / `Tuple`
import functools
import logging
import math
import warnings
from collections.abc import Callable
from typing import List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor

logger = logging.getLogger(__name__)


class ChunkOperands(NamedTuple):
    """The tensors of a chunk's forward pass (`mlp_chunk_logits` documents them)."""

    weights: List[Tensor]
    biases: List[Tensor]
    x_shared: Optional[Tensor]
    x_member: Optional[Tensor]
    work: List[Tensor]
    logits: Tensor


def mlp_chunk_logits(
    operands: ChunkOperands,
    p0: int,
    tile_c: int,
    tile_n: int,
    margin: bool,
    targets: Optional[Tensor],
) -> Optional[Tensor]:
    """Logits `[c, out, N]` of members `p0 : p0 + c` into `operands.logits`; with `targets` (from
    `encode_targets`), then the members' summed cross-entropy `[c]` (float64; the logits are
    overwritten) in the same call: a return to Python in between would wait for the
    interpreter lock, which the other workers take between their own chunks.

    `weights[l] [P, out, in]`, `biases[l] [P, out]`, the whole population's (the chunk's
    slices are taken here, in parallel with the other workers'); `margin`: the two output
    units folded into one, `l_1 - l_0` (`out` = 1). Inputs shared, `x_shared [in+1, N]` (a
    ones row: the first layer's bias rides in its product as a last weight column), or per
    member, `x_member [P, N, in]`. `work[l] [tile_c, width, tile_n]` holds hidden layer `l`
    of one tile (`_tiled_forward`).

    The loss takes the fast path (`exp` without a max shift) and checks its result, not its
    input: where an `exp` overflowed (or, multi-class, a step's `Σ e^l` fell below `e^-80`,
    where float32 loses precision) the chunk is computed again and takes the stable path.
    """
    logits = operands.logits
    c = logits.shape[0]
    weights = [w[p0 : p0 + c] for w in operands.weights]  # [c, out, in]
    biases = [b[p0 : p0 + c].unsqueeze(2) for b in operands.biases]  # [c, out, 1]
    if margin:
        w = weights[-1]
        b = biases[-1]
        weights[-1] = w[:, 1:2] - w[:, 0:1]
        biases[-1] = b[:, 1:2] - b[:, 0:1]
    _sigmoid_form(weights, biases)
    if operands.x_shared is not None:
        weights[0] = torch.cat([weights[0], biases[0]], 2)  # [c, H, in+1]
    x_member = operands.x_member
    if x_member is not None:
        x_member = x_member[p0 : p0 + c]
    chunk = ChunkOperands(weights, biases, operands.x_shared, x_member, operands.work, logits)
    _tiled_forward(chunk, tile_c, tile_n)
    if targets is None:
        return None
    stable = logits.device.type != "cpu"  # accelerators: no check, it would wait for them
    if margin:  # targets: the signs 1 - 2y [N]; a step's loss is softplus(±margin)
        sums = _softplus_sums(logits[:, 0].mul_(targets), None, stable)
        if not stable and bool(torch.isinf(sums).any()):  # some ±margin ≥ 88.7
            _tiled_forward(chunk, tile_c, tile_n)
            sums = _softplus_sums(logits[:, 0].mul_(targets), None, True)
        return sums.double()
    # targets: the one-hot [A, N]
    ce, lse = _multiclass_sums(logits, targets, None, True, stable)
    if not stable:
        lo, hi = torch.aminmax(lse)
        if not (float(lo) > -80.0 and float(hi) < math.inf):
            _tiled_forward(chunk, tile_c, tile_n)
            ce, _ = _multiclass_sums(logits, targets, None, True, True)
    return ce


def _sigmoid_form(weights: List[Tensor], biases: List[Tensor]) -> None:
    """Rewrite the layers in place of the lists so that hidden units compute `s = sigmoid(.)`
    where the network has `tanh`: tanh(z) = 2 sigmoid(2z) - 1, and torch's CPU sigmoid costs a
    quarter of its tanh (4 vs 15 ns an element on one thread here; tanh was ~75 % of the
    population cross-entropy). A hidden layer's weights and bias are doubled (its sigmoid takes
    2z, exactly), and the layer after it takes s for 2s - 1: `W a + b = (2W) s + (b - W 1)`.
    Activations agree with tanh's to ~2e-7 (absolute)."""
    last = len(weights) - 1
    for li in range(last + 1):
        w = weights[li]
        b = biases[li]
        if li > 0:
            b = b - w.sum(2, keepdim=True)
            w = w * 2.0
        if li < last:
            w = w * 2.0
            b = b * 2.0
        weights[li] = w
        biases[li] = b


def encode_targets(targets: Tensor, num_classes: int, margin: bool, dtype: torch.dtype) -> Tensor:
    """Class indices `[N]` as `mlp_chunk_logits` takes them, once per call: with `margin` the
    signs `1 - 2y`, else the one-hot `[A, N]`."""
    if margin:
        return 1.0 - 2.0 * targets.to(dtype)
    return class_indicator(targets, num_classes, None, dtype)


def _tiled_forward(chunk: ChunkOperands, tile_c: int, tile_n: int) -> None:
    """`mlp_chunk_logits`' forward pass over the chunk's own operands (`weights [c, out, in]`,
    `biases [c, out, 1]`, `x_member [c, N, in]`): tile by tile, each small enough to stay in a
    core's cache from one layer to the next. Tiles of one member use 2-D products (half the
    overhead of batched ones)."""
    weights, biases, x_shared, x_member, work, logits = chunk
    c = logits.shape[0]
    n = logits.shape[2]
    last = len(weights) - 1
    per_member = tile_c == 1
    if per_member and tile_n == n:
        _whole_members(chunk)
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
                        out.sigmoid_()  # tanh in sigmoid form (`_sigmoid_form`)
                    a = out
                if tn != n:
                    logits[t0:t1, :, n0:n1] = a.view(tc, -1, tn)
    if last > 0 or x_shared is None:  # the last layer's bias, once for the chunk
        logits += biases[last]


def _whole_members(chunk: ChunkOperands) -> None:
    """`_tiled_forward` with tiles of one member and all samples (the common case): every
    view made once, so a member costs its products and its sigmoid and little else; the last
    layer's bias left out."""
    weights, biases, x_shared, x_member, work, logits = chunk
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
                h.sigmoid_()
                a = h


def softplus_sum(z: Tensor, weight: Optional[Tensor]) -> Tensor:
    """`Σ softplus(z)` over all but the first axis, returned as float64; overwrites `z`.

    `log(1 + e^z)` in three vectorised passes, 2× faster here than torch's fused softplus, which
    serves only where some `z ≥ 80` would overflow `exp`. Where `e^z < 6e-8` a step's loss
    rounds to 0, below float32's resolution of the sum. Accelerators always take the fused
    softplus (a range check would wait for the device).
    """
    stable = z.device.type != "cpu" or (z.numel() > 0 and float(z.max()) >= 80.0)
    return _softplus_sums(z, weight, stable).double()


def _softplus_sums(z: Tensor, weight: Optional[Tensor], stable: bool) -> Tensor:
    """`Σ w softplus(z)` over all but the first axis, `[c]` float32: torch's fused softplus
    where `stable`, else `log(1 + e^z)` in place (inf where some `z ≥ 88.7`). The sum runs in
    float32 (torch's cascade summation: error ~ log2(n) ulp, where a float64 one costs 4× more
    here); callers accumulate chunks over samples in float64."""
    per = torch.nn.functional.softplus(z) if stable else z.exp_().add_(1.0).log_()
    if weight is not None:
        per = per * weight
    return per.reshape(z.shape[0], -1).sum(dim=1)


def multiclass_ce_sum(
    by_class: Tensor,
    onehot: Tensor,
    weight: Optional[Tensor],
    inplace: bool,
) -> Tensor:
    """`Σ w (log Σ_k e^{l_k} - l_y)` per member: `by_class [c, A, ...]` -> `[c]` float64, with
    `onehot [A, ...]` the targets' indicator times `weight [...]` (`class_indicator`); no
    max-shift pass where every |l| < 80. Accelerators always take `logsumexp` (a range check
    would wait for the device)."""
    stable = by_class.device.type != "cpu"
    if not stable and by_class.numel() > 0:
        lo, hi = torch.aminmax(by_class)
        stable = not (float(lo) > -80.0 and float(hi) < 80.0)
    return _multiclass_sums(by_class, onehot, weight, inplace, stable)[0]


def _multiclass_sums(
    by_class: Tensor, onehot: Tensor, weight: Optional[Tensor], inplace: bool, stable: bool
) -> Tuple[Tensor, Tensor]:
    """(`[c]` float64 cross-entropy sums, per-step log-sum-exp `[c, ...]`): `logsumexp` where
    `stable`, else `log Σ e^l` without the max shift (`by_class` overwritten if `inplace`).
    `Σ l_y` is one matrix-vector product with `onehot` (a gather over the class axis is 3×
    slower), taken before any overwrite."""
    c = by_class.shape[0]
    picked = torch.mv(by_class.reshape(c, -1), onehot.reshape(-1))
    if stable:
        lse = torch.logsumexp(by_class, dim=1)
    else:
        e = by_class.exp_() if inplace else by_class.exp()
        lse = e.sum(1).log_()
    per = lse if weight is None else lse * weight
    return per.reshape(c, -1).sum(dim=1).double() - picked.double(), lse


def class_indicator(
    targets: Tensor, num_classes: int, weight: Optional[Tensor], dtype: torch.dtype
) -> Tensor:
    """`[A, ...]`: 1 where `targets [...]` is the class (times `weight`), contiguous."""
    shape = [num_classes] + list(targets.shape)  # noqa: RUF005 - TorchScript: no starred lists
    onehot = torch.zeros(shape, dtype=dtype, device=targets.device)
    onehot.scatter_(0, targets.long().unsqueeze(0), 1.0)
    return onehot if weight is None else onehot * weight


_FUNCTIONS: dict[str, Callable[..., object]] = {
    "mlp_chunk_logits": mlp_chunk_logits,
    "encode_targets": encode_targets,
    "softplus_sum": softplus_sum,
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
