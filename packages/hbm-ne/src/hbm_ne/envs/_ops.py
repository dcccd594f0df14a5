"""The elementwise ops of the torch envs: numpy on the memory of CPU tensors, torch elsewhere.

Why numpy on CPU: Gymnasium computes its classic-control steps on numpy float64 scalars and
Python floats, so its `cos`, `sin` and `x**2` are glibc's `cos`, `sin` and `pow` (numpy's
float64 loops call libm). torch's vectorised `cos`/`sin` differ from them in the last bit for
~0.1 % of inputs, and glibc's `pow(x, 2)` differs from `x * x` for ~0.1 % (it is not correctly
rounded); in chaotic Acrobot one such bit grows into a different episode. numpy ufuncs with
`out=` on the tensors' own memory run exactly Gymnasium's functions with no copy, and at these
sizes a numpy call costs ~1 µs where a torch kernel costs ~5 µs. Every other op is one IEEE
operation (no fused multiply-add, no reassociation), so the same sequence gives the same bits.

On other devices the same op sequence runs in torch: the arithmetic is the same, the
transcendental functions are the device's own, so states agree to rounding, not bit for bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

Array = Any  # a numpy view of a CPU tensor, or the tensor itself


def _numpy_pow_is_scalar_pow() -> bool:
    """Whether numpy's float64 array `power` gives the same bits as `np.float64 ** 2`.

    Gymnasium squares numpy scalars (`dtheta**2`), which numpy computes with libm's `pow`; an
    array `power` with an array exponent calls the same `pow` in the numpy builds tested, but a
    build may vectorise it. Probed once, on values where `pow(x, 2)` and `x * x` differ here
    and on random ones.
    """
    known = ["-0x1.1b53da34186bdp+4", "0x1.f7e52192137d0p+1", "-0x1.f72a9969bff38p+2"]
    probe = np.concatenate(
        [[float.fromhex(h) for h in known], np.random.default_rng(0).uniform(-30, 30, 1000)]
    )
    scalar = np.array([np.float64(v) ** 2 for v in probe.tolist()])
    return bool(np.array_equal(np.power(probe, np.full_like(probe, 2.0)), scalar))


_ARRAY_POW_OK: bool | None = None


class NumpyOps:
    """numpy ufuncs on CPU tensors' memory: Gymnasium's functions, bit for bit.

    Every op takes its output last, positionally (`add(x, y, out)`): at ~1 µs a call, keyword
    parsing and slicing are a measurable share, so callers also keep their views prebuilt.
    """

    exact = True
    add = staticmethod(np.add)
    sub = staticmethod(np.subtract)
    mul = staticmethod(np.multiply)
    div = staticmethod(np.divide)
    cos = staticmethod(np.cos)
    sin = staticmethod(np.sin)
    abs = staticmethod(np.abs)
    gt = staticmethod(np.greater)
    lt = staticmethod(np.less)
    ge = staticmethod(np.greater_equal)
    eq = staticmethod(np.equal)
    logical_and = staticmethod(np.logical_and)
    logical_or = staticmethod(np.logical_or)
    logical_not = staticmethod(np.logical_not)

    def __init__(self) -> None:
        global _ARRAY_POW_OK
        if _ARRAY_POW_OK is None:
            _ARRAY_POW_OK = _numpy_pow_is_scalar_pow()
        self._array_pow = _ARRAY_POW_OK
        self._twos: dict[tuple[int, ...], np.ndarray] = {}

    @staticmethod
    def view(t: torch.Tensor) -> Array:
        return t.numpy()

    def pow2(self, x: Array, out: Array) -> None:
        """`out = x ** 2` as numpy float64 scalars compute it (libm `pow`, not `x * x`)."""
        if self._array_pow:
            twos = self._twos.get(x.shape)
            if twos is None:
                twos = self._twos[x.shape] = np.full(x.shape, 2.0)
            np.power(x, twos, out)
        else:  # element by element through the scalar path Gymnasium takes (slow, exact)
            out[...] = np.array([v**2 for v in x.reshape(-1)]).reshape(x.shape)

    @staticmethod
    def maximum(x: Array, y: Any, out: Array) -> None:
        np.maximum(x, y, out=out)  # (a positional `out` is deprecated for these two)

    @staticmethod
    def minimum(x: Array, y: Any, out: Array) -> None:
        np.minimum(x, y, out=out)

    @staticmethod
    def take(table: Array, index: Array, out: Array) -> None:
        table.take(index, out=out)

    @staticmethod
    def copy(dst: Array, src: Array) -> None:
        np.copyto(dst, src)

    @staticmethod
    def fill(dst: Array, value: float) -> None:
        dst.fill(value)

    @staticmethod
    def fill_where(dst: Array, value: float, mask: Array) -> None:
        np.copyto(dst, value, where=mask)

    @staticmethod
    def sub_where(x: Array, value: float, mask: Array) -> None:
        np.subtract(x, value, out=x, where=mask)

    @staticmethod
    def any(mask: Array) -> bool:
        return bool(np.count_nonzero(mask))

    @staticmethod
    def strided(x: Array, shape: tuple[int, ...], strides: tuple[int, ...]) -> Array:
        """A view of contiguous `x` with `strides` in elements (positive)."""
        item = x.itemsize
        return np.lib.stride_tricks.as_strided(
            x, shape=shape, strides=tuple(s * item for s in strides), writeable=True
        )


class TorchOps:
    """The same op sequence in torch, for devices numpy cannot reach (agrees to rounding)."""

    exact = False

    @staticmethod
    def _binary(fn: Any) -> Any:
        return staticmethod(lambda x, y, out: fn(x, y, out=out))

    @staticmethod
    def _unary(fn: Any) -> Any:
        return staticmethod(lambda x, out: fn(x, out=out))

    add = _binary(torch.add)
    sub = _binary(torch.sub)
    mul = _binary(torch.mul)
    div = _binary(torch.div)
    gt = _binary(torch.gt)
    lt = _binary(torch.lt)
    ge = _binary(torch.ge)
    eq = _binary(torch.eq)
    maximum = _binary(torch.clamp_min)
    minimum = _binary(torch.clamp_max)
    logical_and = _binary(torch.logical_and)
    logical_or = _binary(torch.logical_or)
    cos = _unary(torch.cos)
    sin = _unary(torch.sin)
    abs = _unary(torch.abs)
    logical_not = _unary(torch.logical_not)

    @staticmethod
    def view(t: torch.Tensor) -> Array:
        return t

    @staticmethod
    def pow2(x: Array, out: Array) -> None:
        torch.mul(x, x, out=out)

    @staticmethod
    def take(table: Array, index: Array, out: Array) -> None:
        torch.index_select(table, 0, index, out=out)

    @staticmethod
    def copy(dst: Array, src: Array) -> None:
        dst.copy_(src)

    @staticmethod
    def fill(dst: Array, value: float) -> None:
        dst.fill_(value)

    @staticmethod
    def fill_where(dst: Array, value: float, mask: Array) -> None:
        dst.masked_fill_(mask, value)

    @staticmethod
    def sub_where(x: Array, value: float, mask: Array) -> None:
        torch.where(mask, x - value, x, out=x)

    @staticmethod
    def any(mask: Array) -> bool:
        return bool(mask.any())

    @staticmethod
    def strided(x: Array, shape: tuple[int, ...], strides: tuple[int, ...]) -> Array:
        return x.as_strided(shape, strides, x.storage_offset())


def ops_for(device: torch.device) -> NumpyOps | TorchOps:
    """numpy (exact) for CPU tensors, torch for the rest."""
    return NumpyOps() if device.type == "cpu" else TorchOps()
