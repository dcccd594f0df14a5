"""The plots of `hbm report`, one set per game and person: learning curves, final F1, the
difference of mean returns from the person's (bootstrap interval), return distributions,
human-likeness panels and, for a data-size sweep, scaling curves."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_save
from .report import (
    ConfigGroup,
    _pooled_behaviour,
    _res,
    _stars,
    _validity,
    humanlike_columns,
    mean_ci,
    safe_slug,
)
from .stats import Interval

__all__ = ["SIZE_KEY", "person_plots"]


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
    person's own play and a random policy as lines, the metric's ideal dotted; a metric that
    fails the validity suite on the game is titled so, in grey."""
    from .humanlike import METRICS

    keys = list(humanlike_columns())
    axes = fig.subplots(2, (len(keys) + 1) // 2, squeeze=False).ravel()
    refs = groups[0].results()[0].get("humanlike_references") or {}
    for ax, key in zip(axes, keys, strict=False):
        values = [
            mean_ci([(r.get("humanlike") or {}).get(key) for r in g.results()]) for g in groups
        ]
        _bars(ax, labels, values, [g.cl for g in groups])
        for name, style in (("person", "-"), ("random", "--")):
            value = (refs.get(name) or {}).get(key)
            if value is not None and np.isfinite(value):
                ax.axhline(value, color="black", linestyle=style, linewidth=1, label=name)
        ax.axhline(METRICS[key].ideal, color="green", linestyle=":", linewidth=1, label="ideal")
        ok, _ = _validity(groups[0].dataset, key)
        ax.set_title(
            METRICS[key].label + ("" if ok else " (fails validity)"),
            fontsize=9,
            color="black" if ok else "grey",
        )
    axes[0].legend(fontsize=7)
    for ax in axes[len(keys) :]:
        ax.axis("off")
    fig.suptitle(f"{title}: human-likeness (person = their own held-out play; random = ceiling)")


def _return_diff_plot(
    ax: Any, labels: list[str], pooled: list[dict[str, Any]], cl: list[bool]
) -> None:
    """Model minus person mean return per row with its bootstrap 95 % interval, starred by
    the Mann-Whitney test: 0 (green) plays as well as the person."""
    x = np.arange(len(labels))
    ivs: list[Interval] = [p["return_diff"] for p in pooled]
    means = [iv.mean for iv in ivs]
    lower = [iv.mean - iv.low if iv.low is not None else 0.0 for iv in ivs]
    upper = [iv.high - iv.mean if iv.high is not None else 0.0 for iv in ivs]
    ax.bar(
        x,
        means,
        0.7,
        yerr=[lower, upper],
        hatch=["//" if c else "" for c in cl],
        color=[f"C{i % 10}" for i in range(len(labels))],
        edgecolor="black",
        capsize=3,
    )
    for i, p in enumerate(pooled):
        top = means[i] + upper[i] if means[i] >= 0 else means[i] - lower[i]
        ax.annotate(_stars(p["p_value"]), (i, top), ha="center",
                    va="bottom" if means[i] >= 0 else "top", fontsize=9)  # fmt: skip
    ax.axhline(0, color="green", linestyle="--", linewidth=1)
    ax.set_xticks(x, labels, rotation=20, ha="right", fontsize=8)


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


def _humanlike_file(
    out: Path, env: str, subject: str, gs: Sequence[ConfigGroup], labels: list[str], tag: str
) -> list[Path]:
    from matplotlib.figure import Figure

    if not any(g.results()[0].get("humanlike") for g in gs):
        return []
    fig = Figure(figsize=(16, 7))
    _humanlike_plot(fig, gs, labels, f"{env}, {subject}")
    return [_save(fig, out / f"humanlike_{tag}.png")]


def person_plots(
    out: Path, env: str, subject: str, gs: Sequence[ConfigGroup], varying: Sequence[str]
) -> list[Path]:
    """Every plot of one person's rows (groups with completed seeds) under `out`; file names
    from `safe_slug`, so a subject that looks like a path stays a name."""
    from matplotlib.figure import Figure

    files: list[Path] = []
    tag = f"{safe_slug(env)}_{safe_slug(subject)}"  # never a path: stays in `out`
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
    # difference of mean returns, bootstrap interval, Mann-Whitney stars (all seeds)
    found = [_pooled_behaviour(g) for g in gs]
    pooled = [p for p in found if p is not None]
    if len(pooled) < len(found):  # a game with recordings only: no returns to plot
        return [*files, *_humanlike_file(out, env, subject, gs, labels, tag)]
    fig = Figure(figsize=(max(6, 0.9 * len(gs) + 2), 4))
    ax = fig.subplots()
    _return_diff_plot(ax, labels, pooled, cl)
    ax.set(
        ylabel="model - person mean return",
        title=f"{env}, {subject}: return vs person (95 % bootstrap; * p<.05, ** p<.01, "
        "Mann-Whitney U)",
    )
    files.append(_save(fig, out / f"return_diff_{tag}.png"))
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
    files += _humanlike_file(out, env, subject, gs, labels, tag)
    if SIZE_KEY in varying:
        fig = Figure(figsize=(11, 4))
        _scaling(fig, gs, [k for k in varying if k != SIZE_KEY], f"{env}, {subject}")
        files.append(_save(fig, out / f"scaling_{tag}.png"))
    return files
