"""`hbm status --watch`: the status table redrawn until every experiment has finished.

Why its own module: it watches the cache's records, not a training loop's callbacks, so it
shares no state with the live training display (`hbm_experiments.progress`). The sleep is
injectable, so tests watch without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["ACTIVE_STATES", "watch_status"]

# `hbm status` states (compared lowercased: ours are lowercase, Slurm's uppercase) of an
# experiment that may still change; every other one (completed, failed, not submitted,
# CANCELLED, TIMEOUT, ...) is final for `watch_status`.
ACTIVE_STATES = frozenset(
    {"submitted", "running", "pending", "requeued", "requeue_hold", "requeue_fed"}
    | {"configuring", "completing", "suspended", "resizing", "signaling", "stage_out"}
)


def _all_final(records: Sequence[Any]) -> bool:
    """No record in `ACTIVE_STATES`; a state's first word decides (`running (on node7)`,
    `running? (on node7)` are running, `interrupted (generation 5)` is final)."""
    return all(_state_word(getattr(r, "status", "")) not in ACTIVE_STATES for r in records)


def _state_word(status: Any) -> str:
    words = str(status).lower().split()
    return words[0].rstrip("?") if words else ""


def watch_status(
    fetch: Callable[[], Sequence[Any]],
    render: Callable[[Sequence[Any]], str],
    *,
    console: Console,
    interval: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    max_rounds: int | None = None,
) -> Sequence[Any]:
    """Show `render(fetch())` every `interval` seconds until no record is in `ACTIVE_STATES`.

    On a terminal the table is redrawn in place (rich Live); elsewhere it is written once per
    interval. Ctrl-C stops watching (not an error). Returns the last records fetched.
    """
    from rich.text import Text

    def frame(records: Sequence[Any]) -> str:
        stamp = time.strftime("%H:%M:%S")
        final = _all_final(records)
        tail = "every experiment has finished" if final else f"refresh every {interval:g}s"
        return f"{render(records)}\n\n[{stamp}] {tail}"

    records = fetch()
    rounds = 1
    try:
        if console.is_terminal:
            from rich.live import Live

            with Live(Text(frame(records)), console=console, auto_refresh=False) as live:
                while not _all_final(records) and (max_rounds is None or rounds < max_rounds):
                    sleep(interval)
                    records = fetch()
                    rounds += 1
                    live.update(Text(frame(records)), refresh=True)
        else:
            console.print(frame(records), markup=False, highlight=False, soft_wrap=True)
            while not _all_final(records) and (max_rounds is None or rounds < max_rounds):
                sleep(interval)
                records = fetch()
                rounds += 1
                console.print("\n" + frame(records), markup=False, highlight=False, soft_wrap=True)
    except KeyboardInterrupt:
        pass
    return records
