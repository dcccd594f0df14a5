"""Problems found in an episode file, each naming the file, episode, step and field.

A problem is an `"error"` (the file cannot be used: `load_episodes` raises, `hbm-data check`
exits 1) or a `"warning"` (probably a mistake, but nothing downstream fails on it: duplicate
episode ids, an episode recorded twice, a score that is not the sum of the rewards, a clock
that went back between episodes). Warnings are reported, never fatal.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

#: Steps reported per (episode, field, kind of problem) before the rest are summarised, so a file
#: recorded for the wrong game yields a readable list rather than one line per step.
MAX_STEPS_PER_PROBLEM = 3

#: Episodes reported per kind of warning (a score that is not the sum of the rewards, a clock
#: that went back) before the rest are counted in one line: a file of 50 000 episodes with the
#: same slip gets a readable report.
MAX_EPISODES_PER_WARNING = 3

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an episode file. `episode`/`step` are 0-based indices (None: n/a)."""

    file: str
    message: str
    episode: int | None = None
    step: int | None = None
    field: str | None = None
    severity: Severity = "error"

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def __str__(self) -> str:
        where = [self.file]
        if self.episode is not None:
            where.append(f"episode {self.episode}")
        if self.step is not None:
            where.append(f"step {self.step}")
        if self.field is not None:
            where.append(f"field {self.field!r}")
        tag = "warning: " if self.severity == "warning" else ""
        return ", ".join(where) + f": {tag}{self.message}"


def errors(problems: Iterable[Problem]) -> list[Problem]:
    """The problems that make a file unusable (warnings left out)."""
    return [p for p in problems if p.is_error]


def warnings_of(problems: Iterable[Problem]) -> list[Problem]:
    """The problems reported as warnings."""
    return [p for p in problems if not p.is_error]


class EpisodeFormatError(ValueError):
    """An episode file that cannot be used; `problems` lists everything found, first one first.

    Pickles with all its problems (it crosses process and Slurm boundaries): `file`, and each
    problem's episode, step and field survive `pickle.loads(pickle.dumps(err))`.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        if not problems or isinstance(problems, str | bytes):
            raise ValueError(
                f"EpisodeFormatError needs a non-empty sequence of Problem, got {problems!r}"
            )
        self.problems = tuple(problems)
        more = len(self.problems) - 1
        suffix = f" (and {more} more problem{'s' * (more > 1)}; run `hbm-data check`)" * (more > 0)
        super().__init__(str(self.problems[0]) + suffix)

    @property
    def file(self) -> str:
        """The file of the first problem (every problem of one load names the same file)."""
        return self.problems[0].file

    def __reduce__(self) -> tuple[Any, ...]:
        # The default rebuilds from `args` (the message), i.e. EpisodeFormatError("msg"): the
        # characters of the message would become the problems. Rebuild from the problems.
        return type(self), (self.problems,), dict(self.__dict__)


class ProblemLog:
    """Collects problems for one file, summarising per-step repeats beyond a few."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self._step_counts: Counter[tuple[int | None, str | None, str, Severity]] = Counter()
        self._warning_counts: Counter[tuple[str | None, str]] = Counter()

    def add(
        self,
        message: str,
        *,
        episode: int | None = None,
        step: int | None = None,
        field: str | None = None,
        kind: str | None = None,
        severity: Severity = "error",
    ) -> None:
        if step is not None:
            key = (episode, field, kind or message, severity)
            self._step_counts[key] += 1
            if self._step_counts[key] > MAX_STEPS_PER_PROBLEM:
                return
        self.problems.append(Problem(self.file, message, episode, step, field, severity))

    def warn(
        self,
        message: str,
        *,
        episode: int | None = None,
        step: int | None = None,
        field: str | None = None,
        kind: str | None = None,
    ) -> None:
        """A problem that is reported but does not make the file unusable. Episode warnings of
        one `kind` beyond `MAX_EPISODES_PER_WARNING` are counted, not listed."""
        if kind is not None and step is None:
            self._warning_counts[(field, kind)] += 1
            if self._warning_counts[(field, kind)] > MAX_EPISODES_PER_WARNING:
                return
        self.add(message, episode=episode, step=step, field=field, severity="warning")

    def finish(self) -> list[Problem]:
        """All problems, with one summary line per repeated per-step problem."""
        out = list(self.problems)
        for (field, kind), n in self._warning_counts.items():
            if n > MAX_EPISODES_PER_WARNING:
                out.append(
                    Problem(
                        self.file,
                        f"{n - MAX_EPISODES_PER_WARNING} more episodes with the same warning "
                        f"({kind})",
                        None,
                        None,
                        field,
                        "warning",
                    )
                )
        for (episode, field, kind, severity), n in self._step_counts.items():
            if n > MAX_STEPS_PER_PROBLEM:
                out.append(
                    Problem(
                        self.file,
                        f"{n - MAX_STEPS_PER_PROBLEM} more steps with the same problem ({kind})",
                        episode,
                        None,
                        field,
                        severity,
                    )
                )
        return out

    def has_errors(self) -> bool:
        return any(p.is_error for p in self.problems)

    def __bool__(self) -> bool:
        return bool(self.problems)
