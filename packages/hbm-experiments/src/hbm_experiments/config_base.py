"""The base of every config section: unknown keys, NaN, inf and a bool for a number refused;
0.1's renamed keys read with a DeprecationWarning."""

from __future__ import annotations

import typing
import warnings
from collections.abc import Mapping
from typing import Any

import pydantic

__all__ = ["SEED_LIMIT", "StrictModel", "renamed"]


class StrictModel(pydantic.BaseModel):
    # inf passes `gt=0` (an infinite sigma, learning rate or time budget): refused, as is NaN
    model_config = pydantic.ConfigDict(extra="forbid", allow_inf_nan=False)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, data: Any) -> Any:
        """pydantic reads `true` as 1 for an int field (`seed: true`, `hidden_size: true`):
        a bool where a number is expected is a mistake, refused here rather than trained."""
        if not isinstance(data, Mapping):
            return data
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(value, bool) else None
            if field is None:
                continue
            kinds = set(typing.get_args(field.annotation)) or {field.annotation}
            if kinds <= {int, float, type(None)}:
                raise ValueError(f"{name}: expected a number, got the boolean {value!r}")
        return data


SEED_LIMIT = 2**64
"""Seeds are 0 <= seed < 2**64: what torch's and numpy's generators both accept."""


def renamed(data: Any, names: Mapping[str, str], where: str, *, stacklevel: int = 6) -> Any:
    """Accept the 0.1 spelling of renamed fields (`vocabulary.RENAMED_0_1`) until 0.3, with a
    DeprecationWarning."""
    if not isinstance(data, Mapping) or not any(old in data for old in names):
        return data
    out = dict(data)
    for old, new in names.items():
        if old not in out:
            continue
        if new in out:
            raise ValueError(f"{where}{old} and {where}{new} are the same field: give only {new}")
        warnings.warn(
            f"{where}{old} is deprecated: write {where}{new} (the design guide's name)",
            DeprecationWarning,
            stacklevel=stacklevel,
        )
        out[new] = out.pop(old)
    return out
