"""Optional dependencies: a light install reads and validates data with numpy alone.

`pip install hbm-data` pulls numpy, platformdirs and orjson. The rest is in extras, imported
only inside the functions that need them, each failing with the `pip install` to run:

- `hbm-data[simulate]`: gymnasium with Box2D, to generate simulated players (LunarLander's
  physics is Box2D);
- `hbm-data[record]`: pygame and gymnasium, to record a person (LunarLander also needs
  Box2D: `hbm-data[record,simulate]`);
- `hbm-data[plot]`: matplotlib, for the score plot of `hbm-data info`.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtraError", "require"]


class MissingExtraError(ImportError):
    """A feature needs an optional dependency that is not installed; the message says which
    `pip install "hbm-data[…]"` brings it."""

    def __init__(self, feature: str, extra: str, missing: str, detail: str = "") -> None:
        self.feature, self.extra, self.missing, self.detail = feature, extra, missing, detail
        self.install = f'pip install "hbm-data[{extra}]"'
        super().__init__(
            f"{feature} needs {missing}, which is not installed"
            + (f" ({detail})" if detail else "")
            + f": {self.install}",
            name=missing,
        )

    def __reduce__(self) -> tuple[type, tuple[str, str, str, str]]:
        return type(self), (self.feature, self.extra, self.missing, self.detail)


def require(module: str, extra: str, feature: str) -> ModuleType:
    """`import module`, or `MissingExtraError` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(feature, extra, module.split(".")[0], str(exc)) from exc
