"""Plain `torch.nn.Module` networks that population members export to.

The classes live in `hbm_ne._shared.nets`, code hbm-ne and hbm-dl hold word for word: an exported
member is an instance of the same code as hbm-dl's model of that architecture, with the same
state-dict keys and shapes and the same constructor (`FeedforwardMLP(input_size, hidden_sizes,
output_size, *, init, generator, device)`, docs/interfaces.md), so a member evolved here can be
evaluated, trained further or saved anywhere a hbm-dl model can.
"""

from __future__ import annotations

from hbm_ne._shared import (
    FeedforwardMLP,
    RecurrentMLP,
    RecurrentMLPReservoir,
    RecurrentMLPTrainable,
    is_recurrent,
)

__all__ = [
    "FeedforwardMLP",
    "RecurrentMLP",
    "RecurrentMLPReservoir",
    "RecurrentMLPTrainable",
    "is_recurrent",
]
