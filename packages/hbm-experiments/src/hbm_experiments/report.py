"""`hbm collect` (one CSV row per experiment) and `hbm report` (PNG plots + a markdown table)."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_save, atomic_write_text
from .status import ExperimentRecord, describe, flat_config, format_table

__all__ = [
    "ConfigGroup",
    "collect_rows",
    "comparison_rows",
    "config_groups",
    "make_report",
    "mean_ci",
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


@dataclass
class ConfigGroup:
    """The completed seeds of one config for one person: what one report row aggregates."""

    task: str
    config: dict[str, Any]  # flat config without seed and uid-excluded fields
    records: list[ExperimentRecord] = field(default_factory=list)

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
        return sorted({int(r.config.get("seed", 0)) for r in self.records})

    def label(self, varying: Sequence[str]) -> str:
        extra = "".join(f" {k.rsplit('.', 1)[-1]}={self.config.get(k)}" for k in varying)
        return f"{self.method}{' +CL' if self.cl else ''}{extra}"

    def results(self) -> list[dict[str, Any]]:
        return [_res(r) for r in self.records]

    def human_returns(self) -> list[float]:
        """The person's held-out returns: the same for every seed (same data, same split)."""
        first = self.results()[0]["behaviour"]["human_returns"]
        for rec in self.records[1:]:
            if _res(rec)["behaviour"]["human_returns"] != first:
                raise ValueError(
                    f"{rec.folder}: human returns differ from {self.records[0].folder} although "
                    "subject, data and split are the same"
                )
        return list(first)


def config_groups(records: Sequence[ExperimentRecord]) -> list[ConfigGroup]:
    """Completed records grouped by their full config minus the seed (and minus the fields that
    cannot change a result): subjects, data versions and sweep values are never pooled."""
    drop = _not_config_keys()
    groups: dict[str, ConfigGroup] = {}
    for rec in records:
        if rec.status != "completed" or not rec.result:
            continue
        cfg = {
            k: v
            for k, v in flat_config(rec).items()
            if k not in drop and not k.startswith("infra.")
        }
        key = json.dumps([rec.task, cfg], sort_keys=True, default=str)
        groups.setdefault(key, ConfigGroup(rec.task, cfg)).records.append(rec)

    def natural(value: Any) -> tuple[int, float, str]:  # 4 before 12; None (all) last
        if isinstance(value, bool) or not isinstance(value, int | float):
            return (1 if value is not None else 2, 0.0, str(value))
        return (0, float(value), "")

    return sorted(
        groups.values(),
        key=lambda g: (
            g.dataset,
            g.subject,
            g.method,
            g.cl,
            tuple(natural(g.config[k]) for k in sorted(g.config)),
        ),
    )


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


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float | None]:
    """Mean and the half-width of its t-interval across seeds (None for a single seed)."""
    from scipy import stats

    arr = np.asarray([v for v in values if v is not None], dtype=float)
    if arr.size == 0:
        return float("nan"), None
    if arr.size == 1:
        return float(arr[0]), None
    half = stats.t.ppf(0.5 + confidence / 2, arr.size - 1) * arr.std(ddof=1) / np.sqrt(arr.size)
    return float(arr.mean()), float(half)


def _fmt_ci(values: Sequence[float], spec: str) -> str:
    mean, half = mean_ci(values)
    if not np.isfinite(mean):
        return "-"
    return f"{mean:{spec}}" + ("" if half is None else f" ± {half:{spec}}")


def _pooled_behaviour(group: ConfigGroup) -> dict[str, Any]:
    """Every seed's rollouts against the person's held-out returns (one Mann-Whitney test)."""
    from .evaluation import compare_returns

    results = group.results()
    model = np.concatenate([r["behaviour"]["model_returns"] for r in results])
    out = compare_returns(model, group.human_returns())
    if not all(r["behaviour"].get("seeds_replayable", True) for r in results):
        # placeholder seeds (expert sets): rollouts do not pair with episodes
        out["pct_diff_mean"] = out["pct_diff_std"] = out["pct_diff_median"] = None
    return out


def comparison_rows(records: Sequence[ExperimentRecord]) -> list[dict[str, Any]]:
    """One row per (person, config): seeds aggregated as mean ± 95 % interval; the % difference
    and the Mann-Whitney test pool all seeds' rollouts against that row's own person. The
    `_group` entry (not a column) is the `ConfigGroup` behind the row."""
    groups = config_groups(records)
    varying = varying_keys(groups)
    rows = []
    for g in groups:
        results = g.results()
        ms = [_metrics(r) for r in results]
        pooled = _pooled_behaviour(g)
        row: dict[str, Any] = {
            "dataset": g.dataset,
            "subject": g.subject,
            "method": g.method,
            "trained on": g.objective,
            "CL": "yes" if g.cl else "no",
        }
        row |= {k: g.config.get(k) for k in varying}
        row |= {
            "seeds": len(g.seeds),
            "test CE": _fmt_ci([m["test_ce"] for m in ms], ".3f"),
            "test F1": _fmt_ci([m["test_f1"] for m in ms], ".3f"),
            "model return": _fmt_ci([m["model_mean_return"] for m in ms], ".1f"),
            "human return": f"{np.mean(g.human_returns()):.1f}",
            "% diff (means)": _pct(pooled.get("pct_diff_of_means")),
            "% diff (per episode)": (
                "-"
                if pooled["pct_diff_mean"] is None
                else f"{pooled['pct_diff_mean']:+.1f} ± {pooled['pct_diff_std']:.1f}"
            ),
            "U p-value": "-" if pooled["p_value"] is None else f"{pooled['p_value']:.3g}",
            "sig": _stars(pooled["p_value"]),
        }
        for key, column in HUMANLIKE_COLUMNS.items():
            row[column] = _fmt_ci([r.get("humanlike", {}).get(key) for r in results], ".3f")
        row["_group"] = g
        rows.append(row)
    # after each person's rows (groups are sorted by game and person): their reference rows
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        out.append(row)
        g = row["_group"]
        nxt = rows[i + 1]["_group"] if i + 1 < len(rows) else None
        if nxt is None or (nxt.dataset, nxt.subject) != (g.dataset, g.subject):
            out.extend(_reference_rows(g, varying))
    return out


HUMANLIKE_COLUMNS = {
    "action_accuracy": "action acc",
    "action_accuracy_lag": "acc ±300ms",
    "hold_duration_w1": "hold W1",
    "switch_rate_ratio": "switch ratio",
    "state_jsd": "state JSD",
    "discriminator_auc": "disc AUC",
    "session_return_spearman": "session ρ",
}
"""The humanlike metrics (`humanlike.METRICS`) as report columns."""


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
        for key, column in HUMANLIKE_COLUMNS.items():
            value = refs[name].get(key)
            row[column] = None if value is None else f"{value:.3f}"
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
                    "test F1", "% diff (means)", "sig", "action acc", "state JSD",
                    "disc AUC")  # fmt: skip


def terminal_table(rows: Sequence[dict[str, Any]]) -> str:
    """The comparison in a terminal's width: identity, sweep values, headline metrics."""
    public = _public(rows)
    if not public:
        return "(no completed experiments)"
    varying = [c for c in public[0] if "." in c]  # sweep columns are dotted config keys
    cols = [c for c in TERMINAL_COLUMNS[:5] if c in public[0]] + varying
    cols += [c for c in TERMINAL_COLUMNS[5:] if c in public[0]]
    return format_table(public, cols)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _markdown(rows: Sequence[dict[str, Any]]) -> str:
    rows = _public(rows)
    if not rows:
        return "_no completed experiments_\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_cell(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _save(fig: Any, path: Path) -> Path:
    return atomic_save(path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))


def _bars(
    ax: Any, labels: list[str], values: list[tuple[float, float | None]], cl: list[bool]
) -> None:
    """One bar per row (hatched with CL), its 95 % interval across seeds as error bar."""
    x = np.arange(len(labels))
    ax.bar(
        x,
        [v[0] for v in values],
        0.7,
        yerr=[v[1] or 0.0 for v in values],
        hatch=["//" if c else "" for c in cl],
        color=[f"C{i % 10}" for i in range(len(labels))],
        edgecolor="black",
        capsize=3,
    )
    ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)


def _curves(fig: Any, groups: Sequence[ConfigGroup], varying: Sequence[str], title: str) -> None:
    """Test CE and F1 against runtime %, wall-clock seconds and samples seen (one axis for
    every learner: a generation counts N samples x P members, an SGD step its batch)."""
    axes = fig.subplots(2, 3, squeeze=False)
    xs = (("runtime %", None), ("seconds", "elapsed"), ("samples seen", "samples_seen"))
    for i, g in enumerate(groups):
        lab, colour = g.label(varying), f"C{i % 10}"
        style = "--" if g.cl else "-"
        for k, rec in enumerate(g.records):
            hist = [h for h in _res(rec)["history"] if h.get("test_ce") is not None]
            if not hist:
                continue
            t = np.array([h.get("elapsed") or 0.0 for h in hist], dtype=float)
            for col, (xlabel, key) in enumerate(xs):
                if key is None:
                    x = 100 * t / t.max() if t.max() > 0 else np.linspace(0, 100, len(t))
                else:
                    x = np.array([h.get(key) or 0.0 for h in hist], dtype=float)
                for row, metric in enumerate(("test_ce", "test_f1")):
                    y = [h.get(metric) for h in hist]
                    if any(v is None for v in y):
                        continue
                    axes[row][col].plot(x, y, style, color=colour, label=lab if k == 0 else None)
                    axes[row][col].set(xlabel=xlabel)
                    if key == "samples_seen":
                        axes[row][col].set_xscale("symlog")
    axes[0][0].set(ylabel="test cross-entropy")
    axes[1][0].set(ylabel="test macro F1")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)


def _humanlike_plot(fig: Any, groups: Sequence[ConfigGroup], labels: list[str], title: str) -> None:
    """One panel per humanlike metric: a bar per row (mean ± 95 % interval across seeds), the
    person's own play and a random policy as lines, the metric's ideal dotted."""
    from .humanlike import METRICS

    axes = fig.subplots(2, 4, squeeze=False).ravel()
    refs = groups[0].results()[0].get("humanlike_references") or {}
    for ax, key in zip(axes, HUMANLIKE_COLUMNS, strict=False):
        values = [mean_ci([r.get("humanlike", {}).get(key) for r in g.results()]) for g in groups]
        _bars(ax, labels, values, [g.cl for g in groups])
        for name, style in (("person", "-"), ("random", "--")):
            value = refs.get(name, {}).get(key)
            if value is not None and np.isfinite(value):
                ax.axhline(value, color="black", linestyle=style, linewidth=1, label=name)
        ax.axhline(METRICS[key].ideal, color="green", linestyle=":", linewidth=1, label="ideal")
        ax.set_title(METRICS[key].label, fontsize=9)
    axes[0].legend(fontsize=7)
    for ax in axes[len(HUMANLIKE_COLUMNS) :]:
        ax.axis("off")
    fig.suptitle(f"{title}: human-likeness (person = their own held-out play; random = ceiling)")


SIZE_KEY = "data.max_train_episodes"


def _scaling(fig: Any, groups: Sequence[ConfigGroup], others: Sequence[str], title: str) -> None:
    """Test CE against data size (training episodes used) and against training compute
    (FLOPs, `results.Compute`), one line per learner config, mean ± 95 % interval over seeds."""
    axes = fig.subplots(1, 2)
    lines: dict[str, list[tuple[float, float, float, float | None]]] = defaultdict(list)
    for g in groups:
        results = g.results()
        n = float(np.mean([r["data"]["n_train_episodes"] for r in results]))
        flops = float(np.mean([r.get("compute", {}).get("flops", np.nan) for r in results]))
        ce, half = mean_ci([r["metrics"]["test_ce"] for r in results])
        lines[g.label(others)].append((n, flops, ce, half))
    for i, (label, points) in enumerate(sorted(lines.items())):
        for ax, x in ((axes[0], 0), (axes[1], 1)):
            pts = sorted(points, key=lambda p: float(p[x] or 0.0))
            ax.errorbar(
                [p[x] for p in pts],
                [p[2] for p in pts],
                yerr=[p[3] or 0.0 for p in pts],
                marker="o",
                color=f"C{i % 10}",
                label=label,
                capsize=3,
            )
    axes[0].set(xlabel="training episodes", ylabel="test cross-entropy", title=f"{title}: data")
    axes[1].set(xlabel="training FLOPs", xscale="log", title=f"{title}: compute")
    axes[0].legend(fontsize=7)


def make_report(
    records: Sequence[ExperimentRecord], out_dir: str | Path, *, html: bool = False
) -> tuple[str, list[Path]]:
    """Plots per game and person (learning curves against runtime %, seconds and samples seen;
    final F1 and % difference bars with 95 % intervals across seeds; return distributions
    against the person's) and `report.md` (with `html`, also a self-contained `report.html`).
    Returns the comparison table as text and the written files."""
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = [r for r in records if r.status == "completed" and r.result]
    rows = comparison_rows(done)
    groups = [r["_group"] for r in rows if "_group" in r]
    varying = varying_keys(groups)
    files: list[Path] = []
    by_person: dict[tuple[str, str], list[ConfigGroup]] = defaultdict(list)
    for g in groups:
        by_person[(g.dataset, g.subject)].append(g)
    for (env, subject), gs in sorted(by_person.items()):
        tag = f"{env}_{subject}"
        labels = [g.label(varying) for g in gs]
        cl = [g.cl for g in gs]
        fig = Figure(figsize=(14, 7))
        _curves(fig, gs, varying, f"{env}, {subject}: learning curves")
        files.append(_save(fig, out / f"curves_{tag}.png"))
        # final F1 bars (mean ± 95 % interval across seeds)
        fig = Figure(figsize=(max(6, 0.9 * len(gs) + 2), 4))
        ax = fig.subplots()
        _bars(ax, labels, [mean_ci([r["metrics"]["test_f1"] for r in g.results()]) for g in gs], cl)
        ax.set(ylabel="final test macro F1", title=f"{env}, {subject}: final F1 (hatched: CL)")
        files.append(_save(fig, out / f"final_f1_{tag}.png"))
        # % difference bars with significance marks (all seeds' rollouts vs the person)
        fig = Figure(figsize=(max(6, 0.9 * len(gs) + 2), 4))
        ax = fig.subplots()
        pooled = [_pooled_behaviour(g) for g in gs]
        # per-episode % difference; the difference of means where episodes do not pair
        pct = [
            (p["pct_diff_mean"], p["pct_diff_std"])
            if p["pct_diff_mean"] is not None
            else (p.get("pct_diff_of_means") or 0.0, 0.0)
            for p in pooled
        ]
        _bars(ax, labels, pct, cl)
        for i, p in enumerate(pooled):
            mean, std = pct[i]
            ax.annotate(
                _stars(p["p_value"]),
                (i, mean + (std if mean >= 0 else -std)),
                ha="center",
                va="bottom" if mean >= 0 else "top",
                fontsize=9,
            )
        ax.axhline(0, color="green", linestyle="--", linewidth=1)
        ax.set(
            ylabel="% difference from the person (return)",
            title=f"{env}, {subject}: behaviour vs person (* p<.05, ** p<.01, Mann-Whitney U)",
        )
        files.append(_save(fig, out / f"pct_diff_{tag}.png"))
        # return distributions: the person's, then each row's (all seeds)
        fig = Figure(figsize=(max(6, 1.2 * (len(gs) + 1)), 4))
        ax = fig.subplots()
        data = [np.asarray(gs[0].human_returns(), dtype=float)]
        data += [np.asarray(p["model_returns"], dtype=float) for p in pooled]
        data = [d + (0 if np.ptp(d) else 1e-9 * np.arange(len(d))) for d in data]
        ax.violinplot(data, showmeans=True)
        ax.set_xticks(range(1, len(data) + 1), ["person", *labels], rotation=20, ha="right")
        ax.set(ylabel="episode return", title=f"{env}, {subject}: returns on held-out seeds")
        files.append(_save(fig, out / f"returns_{tag}.png"))
        if any(g.results()[0].get("humanlike") for g in gs):
            fig = Figure(figsize=(16, 7))
            _humanlike_plot(fig, gs, labels, f"{env}, {subject}")
            files.append(_save(fig, out / f"humanlike_{tag}.png"))
        if SIZE_KEY in varying:
            fig = Figure(figsize=(11, 4))
            _scaling(fig, gs, [k for k in varying if k != SIZE_KEY], f"{env}, {subject}")
            files.append(_save(fig, out / f"scaling_{tag}.png"))
    table = _markdown(rows)
    notes = []
    if done and any(r.result and r.result.get("simulated") for r in done):
        notes.append("Subjects marked simulated are scripted players, not people.")
    notes.append(
        "One row per person and config; seeds aggregate as mean ± 95 % interval (t) across "
        "seeds; % difference and the Mann-Whitney test pool all seeds' rollouts against that "
        "row's own person's held-out returns."
    )
    md = "# hbm report\n\n" + "".join(f"{n}\n\n" for n in notes)
    md += table + "\n" + "".join(f"![{p.stem}]({p.name})\n" for p in files)
    plots = list(files)
    files.append(atomic_write_text(out / "report.md", md))
    if html:
        from .html_report import write_html_report

        files.append(write_html_report(rows, plots, out, records=done, notes=notes))
    return terminal_table(rows), files
