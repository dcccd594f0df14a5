"""`hbm collect` (one CSV row per experiment) and `hbm report` (PNG plots + a markdown table)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_write_text
from .stats import MIN_DECIDING, Interval, difference_of_means, mean_interval
from .status import ExperimentRecord, describe, flat_config, format_table

__all__ = [
    "ConfigGroup",
    "collect_rows",
    "comparison_rows",
    "config_groups",
    "make_report",
    "mean_ci",
    "report_notes",
    "safe_slug",
    "varying_keys",
    "write_csv",
]

logger = logging.getLogger(__name__)

METRIC_COLUMNS = (
    "test_ce",
    "test_f1",
    "test_accuracy",
    "model_mean_return",
    "human_mean_return",
    "diff_of_means",
    "diff_of_means_p",
    "pct_diff_of_means",
    "pct_diff_mean",
    "pct_diff_std",
    "mannwhitney_u",
    "p_value",
    "cohen_d",
    "train_time",
    "num_params",
)


def _metrics(result: dict[str, Any] | None) -> dict[str, Any]:
    if not result:
        return {}
    out: dict[str, Any] = dict(result.get("metrics", {}))
    b = result.get("behaviour", {})
    for k in METRIC_COLUMNS:
        if k in b:
            out[k] = b[k]
    ci = b.get("diff_of_means_ci")
    if isinstance(ci, list | tuple) and len(ci) == 2:  # the bootstrap interval as two columns
        out["diff_of_means_lo"], out["diff_of_means_hi"] = ci
    out["train_time"] = result.get("train_time")
    out["num_params"] = result.get("num_params")
    if result.get("humanlike"):
        from .humanlike import humanlike_columns

        out |= humanlike_columns(result["humanlike"])
    for key, value in (result.get("compute") or {}).items():
        out[f"compute.{key}"] = value
    return out


def collect_rows(records: Sequence[ExperimentRecord]) -> list[dict[str, Any]]:
    """One row per experiment: identity, state, every config field (dotted), metrics."""
    rows = []
    for rec in records:
        row: dict[str, Any] = {"task": rec.task, "version": rec.version, **describe(rec)}
        row |= {f"config.{k}": v for k, v in flat_config(rec).items()}
        if rec.result:  # results before the research lines were all trained on the person
            row["objective"] = rec.result.get("objective", "person")
        row |= _metrics(rec.result)
        row["folder"] = str(rec.folder)
        rows.append(row)
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Rows as CSV (columns = union in first-seen order), written atomically."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, buf.getvalue())


# ----------------------------------------------------------------------------------------------
# Report: one row per (person, config), seeds aggregated


def _res(rec: ExperimentRecord) -> dict[str, Any]:
    """The result of a completed record (the report only looks at those)."""
    if rec.result is None:
        raise ValueError(f"{rec.folder}: no result loaded")
    return rec.result


def _stars(p: float | None) -> str:
    if p is None:
        return ""
    return "**" if p < 0.01 else "*" if p < 0.05 else "ns"


# Fields that never change a trained model (uid-excluded) or that a row aggregates over (seed).
def _not_config_keys() -> frozenset[str]:
    from .configs import TrainingConfig
    from .tasks import Experiment

    names = {"seed", *Experiment._exclude_from_cls_uid}
    names |= {f"training.{n}" for n in TrainingConfig._exclude_from_cls_uid}
    return frozenset(names)


# Columns that identify a row already (shown as their own columns, never as "varying").
_IDENTITY = ("dataset", "subject", "method", "data.use_cl_info")
_HIDDEN = ("data.content_hash", "optimizer.name", "model.kind")


# Final states of a run that did not produce a result (hbm's and Slurm's): a failed seed
_FAILED = ("failed", "damaged", "interrupted", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY",
           "NODE_FAIL", "BOOT_FAIL", "DEADLINE", "PREEMPTED")  # fmt: skip


def _has_failed(rec: ExperimentRecord) -> bool:
    """A run that ended without a usable result (a completed run whose result did not load
    counts: its numbers are not in the row)."""
    if rec.status == "completed":
        return not rec.result
    return rec.status.startswith(_FAILED)


@dataclass
class ConfigGroup:
    """The seeds of one config for one person: what one report row aggregates. `records` are
    the completed seeds; `failed` and `unfinished` the others of the same config; `missing`
    the seeds other rows of the person have and this one does not (set by `comparison_rows`)."""

    task: str
    config: dict[str, Any]  # flat config without seed and uid-excluded fields
    records: list[ExperimentRecord] = field(default_factory=list)
    failed: list[ExperimentRecord] = field(default_factory=list)
    unfinished: list[ExperimentRecord] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)

    @property
    def dataset(self) -> str:
        return str(self.config.get("dataset", "cartpole"))

    @property
    def subject(self) -> str:
        return str(self.config.get("subject", "sim01"))

    @property
    def method(self) -> str:
        return str(self.config.get("method", "?"))

    @property
    def objective(self) -> str:
        """What the config's method trains on ("person", "returns", "adversarial"): rows of
        different objectives are different methods, so they are never pooled."""
        from .configs import OBJECTIVES

        return OBJECTIVES.get(self.method, "person")

    @property
    def cl(self) -> bool:
        return bool(self.config.get("data.use_cl_info", False))

    @property
    def seeds(self) -> list[int]:
        """The completed seeds."""
        return sorted({int(r.config.get("seed", 0)) for r in self.records})

    @property
    def all_seeds(self) -> set[int]:
        """Every seed this config was run with, whatever its state."""
        recs = [*self.records, *self.failed, *self.unfinished]
        return {int(r.config.get("seed", 0)) for r in recs}

    def seeds_cell(self) -> int | str:
        """`5`, or `3 of 5 (1 failed, 1 missing)`: a row never hides a seed it lacks."""
        done = len(self.seeds)
        parts = [
            f"{n} {what}"
            for n, what in (
                (len({int(r.config.get("seed", 0)) for r in self.failed}), "failed"),
                (len({int(r.config.get("seed", 0)) for r in self.unfinished}), "not finished"),
                (len(self.missing), "missing"),
            )
            if n
        ]
        if not parts:
            return done
        total = len(self.all_seeds) + len(self.missing)
        return f"{done} of {total} ({', '.join(parts)})"

    def label(self, varying: Sequence[str]) -> str:
        extra = "".join(f" {k.rsplit('.', 1)[-1]}={self.config.get(k)}" for k in varying)
        return f"{self.method}{' +CL' if self.cl else ''}{extra}"

    def results(self) -> list[dict[str, Any]]:
        return [_res(r) for r in self.records]

    def human_returns(self) -> list[float]:
        """The person's held-out returns: the same for every seed (same data, same split)."""
        if not self.records:
            return []
        first = self.results()[0]["behaviour"].get("human_returns")
        if first is None:  # a game hbm cannot play: no returns (behaviour "skipped")
            return []
        for rec in self.records[1:]:
            if _res(rec)["behaviour"].get("human_returns") != first:
                raise ValueError(
                    f"{rec.folder}: human returns differ from {self.records[0].folder} although "
                    "subject, data and split are the same"
                )
        return list(first)


def _natural(value: Any) -> tuple[int, float, str]:  # 4 before 12; None (all) last
    if isinstance(value, bool) or not isinstance(value, int | float):
        return (1 if value is not None else 2, 0.0, str(value))
    return (0, float(value), "")


def _all_groups(records: Sequence[ExperimentRecord]) -> list[ConfigGroup]:
    """Every record grouped by its full config minus the seed (and minus the fields that
    cannot change a result), completed or not; missing seeds set per person."""
    drop = _not_config_keys()
    groups: dict[str, ConfigGroup] = {}
    for rec in records:
        cfg = {
            k: v
            for k, v in flat_config(rec).items()
            if k not in drop and not k.startswith("infra.")
        }
        key = json.dumps([rec.task, cfg], sort_keys=True, default=str)
        g = groups.setdefault(key, ConfigGroup(rec.task, cfg))
        if rec.status == "completed" and rec.result:
            g.records.append(rec)
        elif _has_failed(rec):
            g.failed.append(rec)
        else:
            g.unfinished.append(rec)
    person_seeds: dict[tuple[str, str], set[int]] = defaultdict(set)
    for g in groups.values():
        person_seeds[(g.dataset, g.subject)] |= g.all_seeds
    for g in groups.values():
        g.missing = sorted(person_seeds[(g.dataset, g.subject)] - g.all_seeds)
    return sorted(
        groups.values(),
        key=lambda g: (
            g.dataset,
            g.subject,
            g.method,
            g.cl,
            tuple(_natural(g.config[k]) for k in sorted(g.config)),
        ),
    )


def config_groups(records: Sequence[ExperimentRecord]) -> list[ConfigGroup]:
    """The groups with at least one completed seed (`_all_groups`): subjects, data versions
    and sweep values are never pooled; each group knows its failed and missing seeds."""
    return [g for g in _all_groups(records) if g.records]


def varying_keys(groups: Sequence[ConfigGroup]) -> list[str]:
    """Config keys whose value differs between groups of one person, method and CL setting
    (sweep parameters): their own columns. Keys that differ only between methods (a line's own
    config section, an optimizer's defaults) are told apart by the method column already."""
    keys = sorted({k for g in groups for k in g.config} - set(_IDENTITY) - set(_HIDDEN))
    peers: dict[tuple[str, str, str, bool], list[ConfigGroup]] = {}
    for g in groups:
        peers.setdefault((g.dataset, g.subject, g.method, g.cl), []).append(g)

    def varies(key: str) -> bool:
        return any(
            len({json.dumps(g.config.get(key), default=str) for g in same}) > 1
            for same in peers.values()
        )

    return [k for k in keys if varies(k)]


def mean_ci(values: Sequence[float | None], confidence: float = 0.95) -> tuple[float, float | None]:
    """Mean and the half-width of its t-interval across seeds (None for a single seed):
    `stats.mean_interval` as a (mean, half) pair, for error bars."""
    iv = mean_interval(values, confidence)
    return iv.mean, iv.half_width


def _fmt_interval(iv: Interval, spec: str, expected: int) -> str:
    """`0.612 ± 0.030`; `(n=2)` where fewer seeds than the row's completed ones had a value."""
    if not np.isfinite(iv.mean):
        return "-"
    text = f"{iv.mean:{spec}}" + ("" if iv.half_width is None else f" ± {iv.half_width:{spec}}")
    return text + (f" (n={iv.n})" if iv.n < expected else "")


def _fmt_ci(values: Sequence[float | None], spec: str) -> str:
    return _fmt_interval(mean_interval(values), spec, len(values))


def _pooled_behaviour(group: ConfigGroup) -> dict[str, Any] | None:
    """Every seed's rollouts against the person's held-out returns: the difference of the
    mean returns with a bootstrap interval (`stats.difference_of_means`) and one two-sided
    Mann-Whitney test (`evaluation.compare_returns`). None where a seed has no rollouts (a
    game that exists only as recordings: behaviour "skipped")."""
    from .evaluation import compare_returns

    results = group.results()
    if any("model_returns" not in r["behaviour"] for r in results):
        return None
    model = np.concatenate([r["behaviour"]["model_returns"] for r in results])
    human = group.human_returns()
    out = dict(compare_returns(model, human))
    out["model_returns"] = model.tolist()
    out["return_diff"] = difference_of_means(model, human)
    return out


def _partners(results: Sequence[dict[str, Any]]) -> str | None:
    """Which partner the seeds' play had (`training.behaviour_partner`); None for a game
    played alone."""
    from .overcooked_play import partner_name

    names = {partner_name(r.get("behaviour")) for r in results} - {None}
    return ", ".join(sorted(str(n) for n in names)) or None


def _fmt_diff(iv: Interval) -> str:
    if not np.isfinite(iv.mean):
        return "-"
    if iv.low is None or iv.high is None:
        return f"{iv.mean:+.1f}"
    return f"{iv.mean:+.1f} [{iv.low:+.1f}, {iv.high:+.1f}]"


# Short report columns of the humanlike metrics (`humanlike.METRICS`; others use its label)
_SHORT = {
    "action_accuracy": "action acc",
    "action_accuracy_shift": "acc shifted",
    "action_accuracy_lag": "acc ±300ms",
    "hold_duration_w1": "hold W1",
    "switch_rate_ratio": "switch ratio",
    "state_jsd": "state JSD",
    "discriminator_auc": "disc AUC",
    "session_return_spearman": "session ρ",
}


def humanlike_columns() -> dict[str, str]:
    """The humanlike metrics (`humanlike.METRICS`, in report order) as report columns; the
    return difference has its own pooled column."""
    from .humanlike import METRICS

    return {k: _SHORT.get(k, m.label) for k, m in METRICS.items() if k != "return_diff"}


def _p_columns() -> dict[str, tuple[str, str]]:
    """Metric key -> (its permutation p-value key, the report column counting seeds with
    p < 0.05: how often the model's play was told apart from the person's)."""
    from .humanlike import METRICS

    cols = humanlike_columns()
    return {
        k: (str(m.p_key), f"{cols.get(k, 'return')} p<.05")
        for k, m in METRICS.items()
        if getattr(m, "p_key", None)
    }


def _validity(dataset: str, key: str, protocol: str = "holdout") -> tuple[bool, str]:
    from .comparisons import metric_validity

    return metric_validity(dataset, key, protocol)


def _mark_invalid(row: dict[str, Any], dataset: str, protocol: str = "holdout") -> None:
    """Cells of metrics that fail the validity suite on this game under the row's target
    `protocol` ("crossfit" for pooled rows): marked ✗ (greyed in the HTML, with the reason in
    `_invalid`)."""
    invalid: dict[str, str] = {}
    for key, column in humanlike_columns().items():
        ok, reason = _validity(dataset, key, protocol)
        if not ok and column in row:
            invalid[column] = reason
            if row[column] not in (None, "-"):
                row[column] = f"{row[column]} ✗"
    if invalid:
        row["_invalid"] = invalid


def comparison_rows(records: Sequence[ExperimentRecord]) -> list[dict[str, Any]]:
    """One row per (person, config): seeds aggregated as mean ± 95 % t-interval, the seeds
    column saying how many failed, are not finished or are missing; the return difference and
    the Mann-Whitney test pool all seeds' rollouts against that row's own person. A config
    whose every seed failed still has its row. The `_group` entry (not a column) is the
    `ConfigGroup` behind the row; `_invalid` maps a column to why its metric is not valid."""
    groups = _all_groups(records)
    varying = varying_keys(groups)
    cols = humanlike_columns()
    p_cols = _p_columns()
    rows = []
    for g in groups:
        results = g.results()
        ms = [_metrics(r) for r in results]
        row: dict[str, Any] = {
            "dataset": g.dataset,
            "subject": g.subject,
            "method": g.method,
            "trained on": g.objective,
            "CL": "yes" if g.cl else "no",
        }
        row |= {k: g.config.get(k) for k in varying}
        row["seeds"] = g.seeds_cell()
        if not results:  # every seed failed or is still running: a row of dashes
            rows.append(row | {"_group": g})
            continue
        pooled = _pooled_behaviour(g)
        row |= {
            "test CE": _fmt_ci([m.get("test_ce") for m in ms], ".3f"),
            "test F1": _fmt_ci([m.get("test_f1") for m in ms], ".3f"),
        }
        if pooled is None:  # recordings only: teacher-forced metrics, no returns
            row |= {"model return": "-", "human return": "-", "return Δ": "-"}
            row |= {"U p-value": "-", "sig": "", "play": "teacher-forced (no game)"}
        else:
            row |= {
                "model return": _fmt_ci([m.get("model_mean_return") for m in ms], ".1f"),
                "human return": f"{np.mean(g.human_returns()):.1f}",
                "return Δ": _fmt_diff(pooled["return_diff"]),
                "U p-value": "-" if pooled["p_value"] is None else f"{pooled['p_value']:.3g}",
                "sig": _stars(pooled["p_value"]),
            }
        partners = _partners(results)
        if partners:  # a two-player kitchen: who played beside the model
            row["partner"] = partners
            # its humanlike cells are the teacher-forced block's; only the returns are played
            if any((r.get("humanlike") or {}).get("protocol") == "teacher-forced" for r in results):
                row["play"] = "teacher-forced (returns: played)"
        for key, column in cols.items():
            row[column] = _fmt_ci([(r.get("humanlike") or {}).get(key) for r in results], ".3f")
        for p_key, column in p_cols.values():
            found = [(r.get("humanlike") or {}).get(p_key) for r in results]
            ps = [float(p) for p in found if p is not None]
            row[column] = f"{sum(p < 0.05 for p in ps)}/{len(ps)}" if ps else "-"
        _mark_invalid(row, g.dataset)
        row["_group"] = g
        rows.append(row)
    # after each person's rows (groups are sorted by game and person): their reference rows
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        out.append(row)
        g = row["_group"]
        nxt = rows[i + 1]["_group"] if i + 1 < len(rows) else None
        if nxt is None or (nxt.dataset, nxt.subject) != (g.dataset, g.subject):
            done = next((r["_group"] for r in rows[: i + 1][::-1] if r["_group"].records
                         and (r["_group"].dataset, r["_group"].subject)
                         == (g.dataset, g.subject)), None)  # fmt: skip
            if done is not None:
                out.extend(_reference_rows(done, varying))
    return out


def _reference_rows(group: ConfigGroup, varying: Sequence[str]) -> list[dict[str, Any]]:
    """The person and random rows of the group's person (same code, same data): a metric
    means something only between the two."""
    refs = group.results()[0].get("humanlike_references")
    if not refs:
        return []
    out = []
    for name in ("person", "random"):
        row: dict[str, Any] = {
            "dataset": group.dataset,
            "subject": group.subject,
            "method": name,
            "trained on": "-",
            "CL": "-",
            **{k: None for k in varying},
            "seeds": None,
        }
        for key, column in humanlike_columns().items():
            value = (refs.get(name) or {}).get(key)
            row[column] = None if value is None else f"{value:.3f}"
        _mark_invalid(row, group.dataset)
        row["reference"] = True
        out.append(row)
    return out


def _public(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The table's columns: no `_group`, no `reference` flag (a reference row's method says)."""
    return [
        {k: v for k, v in r.items() if not k.startswith("_") and k != "reference"} for r in rows
    ]


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


# The terminal table (the markdown and HTML tables have every column)
TERMINAL_COLUMNS = ("dataset", "subject", "method", "trained on", "CL", "seeds", "test CE",
                    "test F1", "return Δ", "action acc", "state JSD", "disc AUC")  # fmt: skip


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        cols += [c for c in row if c not in cols]
    return cols


def terminal_table(rows: Sequence[dict[str, Any]]) -> str:
    """The comparison in a terminal's width: identity, sweep values, headline metrics."""
    public = _public(rows)
    if not public:
        return "(no completed experiments)"
    present = _columns(public)
    varying = [c for c in present if re.fullmatch(r"\w+(\.\w+)+", c)]  # dotted config keys
    cols = [c for c in TERMINAL_COLUMNS[:5] if c in present] + varying
    cols += [c for c in TERMINAL_COLUMNS[5:] if c in present]
    return format_table(public, cols)


def _markdown(rows: Sequence[dict[str, Any]]) -> str:
    rows = _public(rows)
    if not rows:
        return "_no completed experiments_\n"
    cols = _columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def safe_slug(text: str, limit: int = 40) -> str:
    """A file-name part from a subject or game name that can never leave its folder:
    letters, digits, `_` and `-` only, plus a short hash of the original whenever anything
    was changed (so `a/b` and `a_b` never write the same file)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-_")[:limit] or "x"
    if slug != text:
        slug += "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return slug


def make_report(
    records: Sequence[ExperimentRecord], out_dir: str | Path, *, html: bool = False
) -> tuple[str, list[Path]]:
    """Plots per game and person (learning curves against runtime %, seconds and samples seen;
    final F1 bars with 95 % intervals across seeds; the difference of mean returns from the
    person's with its bootstrap interval; return distributions; human-likeness panels) and
    `report.md` with the table, the paired comparisons (`comparisons.contrasts`) and notes on
    every seed left out (with `html`, also a self-contained `report.html`). File names use
    `safe_slug`, so no subject can write outside `out_dir`. Returns the terminal table with
    the headline comparisons, and the written files."""
    from .report_plots import person_plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = [r for r in records if r.status == "completed" and r.result]
    rows = comparison_rows(records)
    every = [r["_group"] for r in rows if "_group" in r]
    varying = varying_keys(every)
    groups = [g for g in every if g.records]
    files: list[Path] = []
    by_person: dict[tuple[str, str], list[ConfigGroup]] = defaultdict(list)
    for g in groups:
        by_person[(g.dataset, g.subject)].append(g)
    for (env, subject), gs in sorted(by_person.items()):
        files += person_plots(out, env, subject, gs, varying)
    from .comparisons import contrasts, markdown_section, terminal_lines
    from .crossfit_report import crossfit_section, crossfit_terminal

    found = contrasts(groups, varying)
    cf_rows, cf_notes = crossfit_section(records)  # pooled over every episode: its own table
    notes = report_notes(records, [*rows, *cf_rows]) + cf_notes
    md = "# hbm report\n\n" + "".join(f"{n}\n\n" for n in notes) + _markdown(rows)
    if cf_rows:
        md += "\n## Cross-fitted evaluation\n\n" + _markdown(cf_rows)
    md += "\n## Comparisons\n\n" + markdown_section(found) + "\n"
    md += "".join(f"![{p.stem}]({p.name})\n" for p in files)
    plots = list(files)
    files.append(atomic_write_text(out / "report.md", md))
    if html:
        from .html_report import write_html_report

        html_file = write_html_report(
            rows, plots, out, records=done, notes=notes, comparisons=found, crossfit_rows=cf_rows
        )
        files.append(html_file)
    return terminal_table(rows) + crossfit_terminal(cf_rows) + terminal_lines(found), files


def report_notes(records: Sequence[ExperimentRecord], rows: Sequence[dict[str, Any]]) -> list[str]:
    """What a reader must know before reading the table: simulated players, how rows
    aggregate, rows too small to decide, every seed left out of a mean, invalid metrics."""
    done = [r for r in records if r.status == "completed" and r.result]
    notes = []
    if any(r.result and r.result.get("simulated") for r in done):
        notes.append("Subjects marked simulated are scripted players, not people.")
    notes.append(
        "One row per person and config; seeds aggregate as mean ± 95 % t-interval across "
        "seeds. return Δ is the model's mean return minus the person's on the person's "
        "held-out seeds (all seeds' rollouts) with a 95 % bootstrap interval; the Mann-Whitney "
        "test pools the same rollouts. A 'p<.05' column counts the seeds whose play the "
        "metric's permutation test told apart from the person's."
    )
    groups = [r["_group"] for r in rows if "_group" in r]
    if any(0 < len(g.seeds) < MIN_DECIDING for g in groups):
        notes.append(
            f"Rows over fewer than {MIN_DECIDING} seeds cannot decide: a 95 % t-interval over 2 "
            "seeds is 12.7 standard errors wide each side, over 1 seed there is none."
        )
    left_out = [
        f"{g.subject} {g.label([])} seed {rec.config.get('seed', 0)}: {rec.status}"
        + (f" ({rec.error_summary})" if rec.error_summary else "")
        for g in groups
        for rec in [*g.failed, *g.unfinished]
    ]
    missing = [f"{g.subject} {g.label([])} seeds {g.missing}" for g in groups if g.missing]
    if left_out or missing:
        shown = [*left_out, *(f"{m}: missing" for m in missing)]
        more = f"; and {len(shown) - 20} more" if len(shown) > 20 else ""
        notes.append("Seeds not in the means: " + "; ".join(shown[:20]) + more + ".")
    invalid = sorted(
        {(r["dataset"], column, reason) for r in rows for column, reason in
         (r.get("_invalid") or {}).items()}
    )  # fmt: skip
    by_reason: dict[tuple[str, str], list[str]] = defaultdict(list)
    for dataset, column, reason in invalid:
        by_reason[(dataset, reason)].append(column)
    for (dataset, reason), columns in by_reason.items():
        notes.append(f"✗ ({', '.join(columns)}) on {dataset}, validity suite: {reason}")
    return notes
