"""Problems found in an episode file, each naming the file, episode, step and field."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

#: Steps reported per (episode, field, kind of problem) before the rest are summarised, so a file
#: recorded for the wrong game yields a readable list rather than one line per step.
MAX_STEPS_PER_PROBLEM = 3


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an episode file. `episode`/`step` are 0-based indices (None: n/a)."""

    file: str
    message: str
    episode: int | None = None
    step: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.episode is not None:
            where.append(f"episode {self.episode}")
        if self.step is not None:
            where.append(f"step {self.step}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return ", ".join(where) + f": {self.message}"


class EpisodeFormatError(ValueError):
    """An episode file that cannot be used; `problems` lists everything found, first one first."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems:
            raise ValueError("EpisodeFormatError needs at least one problem")
        self.problems = tuple(problems)
        more = len(self.problems) - 1
        suffix = f" (and {more} more problem{'s' * (more > 1)}; run `hbm-data check`)" * (more > 0)
        super().__init__(str(self.problems[0]) + suffix)


class ProblemLog:
    """Collects problems for one file, summarising per-step repeats beyond a few."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self._step_counts: Counter[tuple[int | None, str | None, str]] = Counter()

    def add(
        self,
        message: str,
        *,
        episode: int | None = None,
        step: int | None = None,
        field: str | None = None,
        kind: str | None = None,
    ) -> None:
        if step is not None:
            key = (episode, field, kind or message)
            self._step_counts[key] += 1
            if self._step_counts[key] > MAX_STEPS_PER_PROBLEM:
                return
        self.problems.append(Problem(self.file, message, episode, step, field))

    def finish(self) -> list[Problem]:
        """All problems, with one summary line per repeated per-step problem."""
        out = list(self.problems)
        for (episode, field, kind), n in self._step_counts.items():
            if n > MAX_STEPS_PER_PROBLEM:
                out.append(
                    Problem(
                        self.file,
                        f"{n - MAX_STEPS_PER_PROBLEM} more steps with the same problem ({kind})",
                        episode,
                        None,
                        field,
                    )
                )
        return out

    def __bool__(self) -> bool:
        return bool(self.problems)
