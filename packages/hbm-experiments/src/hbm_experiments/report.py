"""`hbm collect` (one CSV row per experiment) and `hbm report` (PNG plots + a markdown table)."""

from __future__ import annotations

import csv
import io
import logging
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .files import atomic_save, atomic_write_text
from .status import ExperimentRecord, describe, flat_config, format_table

__all__ = ["collect_rows", "comparison_rows", "make_report", "write_csv"]

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
    return out


def collect_rows(records: Sequence[ExperimentRecord]) -> list[dict[str, Any]]:
    """One row per experiment: identity, state, every config field (dotted), metrics."""
    rows = []
    for rec in records:
        row: dict[str, Any] = {"task": rec.task, "version": rec.version, **describe(rec)}
        row |= {f"config.{k}": v for k, v in flat_config(rec).items()}
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
# Report


def _res(rec: ExperimentRecord) -> dict[str, Any]:
    """The result of a completed record (the report only looks at those)."""
    if rec.result is None:
        raise ValueError(f"{rec.folder}: no result loaded")
    return rec.result


def _label(rec: ExperimentRecord) -> str:
    d = describe(rec)
    return f"{d['method']}{' +CL' if d['cl'] == 'yes' else ''}"


def _stars(p: float | None) -> str:
    if p is None:
        return ""
    return "**" if p < 0.01 else "*" if p < 0.05 else "ns"


def comparison_rows(records: Sequence[ExperimentRecord]) -> list[dict[str, Any]]:
    """Per dataset x method x CL: means over seeds of the metrics (completed experiments)."""
    groups: dict[tuple[str, str, str], list[ExperimentRecord]] = defaultdict(list)
    for rec in records:
        if rec.status == "completed" and rec.result:
            d = describe(rec)
            groups[(d["dataset"], d["method"], d["cl"])].append(rec)
    rows = []
    for (dataset, method, cl), recs in sorted(groups.items()):
        ms = [_metrics(r.result) for r in recs]
        pooled_model = np.concatenate(
            [_res(r)["behaviour"]["model_returns"] for r in recs if r.result]
        )
        human = _res(recs[0])["behaviour"]["human_returns"]
        pct = [m["pct_diff_mean"] for m in ms]
        from .evaluation import compare_returns

        pooled = (
            compare_returns(pooled_model, human) if len(recs) > 1 else _res(recs[0])["behaviour"]
        )
        rows.append(
            {
                "dataset": dataset,
                "method": method,
                "CL": cl,
                "seeds": len(recs),
                "test CE": f"{np.mean([m['test_ce'] for m in ms]):.3f}",
                "test F1": f"{np.mean([m['test_f1'] for m in ms]):.3f}",
                "model return": f"{np.mean([m['model_mean_return'] for m in ms]):.1f}",
                "human return": f"{np.mean([m['human_mean_return'] for m in ms]):.1f}",
                "% diff (means)": _pct(pooled.get("pct_diff_of_means")),
                "% diff (per episode)": (
                    f"{np.mean(pct):+.1f} ± {np.mean([m['pct_diff_std'] for m in ms]):.1f}"
                ),
                "U p-value": "-" if pooled["p_value"] is None else f"{pooled['p_value']:.3g}",
                "sig": _stars(pooled["p_value"]),
            }
        )
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}"


def _markdown(rows: Sequence[dict[str, Any]]) -> str:
    if not rows:
        return "_no completed experiments_\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _save(fig: Any, path: Path) -> Path:
    return atomic_save(path, lambda f: fig.savefig(f, format="png", dpi=120, bbox_inches="tight"))


def _bars(ax: Any, methods: list[str], values: dict[tuple[str, str], tuple[float, float]]) -> None:
    """Grouped bars: no-CL solid, with-CL hatched."""
    x = np.arange(len(methods))
    for j, (cl, hatch) in enumerate((("no", ""), ("yes", "//"))):
        vals = [values.get((m, cl), (np.nan, 0.0)) for m in methods]
        ax.bar(
            x + (j - 0.5) * 0.38,
            [v[0] for v in vals],
            0.36,
            yerr=[v[1] for v in vals],
            hatch=hatch,
            color=[f"C{i}" for i in range(len(methods))],
            edgecolor="black",
            label="with CL" if cl == "yes" else "no CL",
            capsize=3,
        )
    ax.set_xticks(x, methods, rotation=20)
    ax.legend(fontsize=8)


def make_report(
    records: Sequence[ExperimentRecord], out_dir: str | Path, *, html: bool = False
) -> tuple[str, list[Path]]:
    """Plots per dataset (curves, final F1, % difference with significance, return violins) and
    `report.md` (with `html`, also a self-contained `report.html` of the same table and plots).
    Returns the markdown comparison table and the written files."""
    from matplotlib.figure import Figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    done = [r for r in records if r.status == "completed" and r.result]
    rows = comparison_rows(done)
    files: list[Path] = []
    by_env: dict[str, list[ExperimentRecord]] = defaultdict(list)
    for r in done:
        by_env[describe(r)["dataset"]].append(r)
    for env, recs in sorted(by_env.items()):
        labels = sorted({_label(r) for r in recs})
        colours = {lab: f"C{i}" for i, lab in enumerate(labels)}
        # 1. learning curves against runtime %
        fig = Figure(figsize=(11, 4))
        axes = fig.subplots(1, 2)
        for r in recs:
            hist = [h for h in _res(r)["history"] if h.get("test_ce") is not None]
            if not hist:
                continue
            t = np.array([h.get("elapsed", i) for i, h in enumerate(hist)], dtype=float)
            pct = 100 * t / t.max() if t.max() > 0 else np.linspace(0, 100, len(t))
            lab = _label(r)
            style = "--" if "+CL" in lab else "-"
            axes[0].plot(pct, [h["test_ce"] for h in hist], style, color=colours[lab], label=lab)
            if all(h.get("test_f1") is not None for h in hist):
                axes[1].plot(
                    pct, [h["test_f1"] for h in hist], style, color=colours[lab], label=lab
                )
        axes[0].set(xlabel="runtime %", ylabel="test cross-entropy", title=f"{env}: test CE")
        axes[1].set(xlabel="runtime %", ylabel="test macro F1", title=f"{env}: test F1")
        handles, names = axes[0].get_legend_handles_labels()
        uniq = dict(zip(names, handles, strict=False))
        axes[0].legend(uniq.values(), uniq.keys(), fontsize=8)
        files.append(_save(fig, out / f"curves_{env}.png"))

        methods = sorted({describe(r)["method"] for r in recs})
        groups: dict[tuple[str, str], list[ExperimentRecord]] = defaultdict(list)
        for r in recs:
            d = describe(r)
            groups[(d["method"], d["cl"])].append(r)
        # 2. final F1 bars
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        f1 = {
            k: (
                float(np.mean([_res(g)["metrics"]["test_f1"] for g in v])),
                float(np.std([_res(g)["metrics"]["test_f1"] for g in v])),
            )
            for k, v in groups.items()
        }
        _bars(ax, methods, f1)
        ax.set(ylabel="final test macro F1", title=f"{env}: final F1 (no CL vs CL)")
        files.append(_save(fig, out / f"final_f1_{env}.png"))
        # 3. % difference bars with significance marks
        fig = Figure(figsize=(7, 4))
        ax = fig.subplots()
        pdiff = {}
        for k, v in groups.items():
            model = np.concatenate([_res(g)["behaviour"]["model_returns"] for g in v])
            from .evaluation import compare_returns

            cmp = compare_returns(model, _res(v[0])["behaviour"]["human_returns"])
            pdiff[k] = (cmp["pct_diff_mean"], cmp["pct_diff_std"], cmp["p_value"])
        _bars(ax, methods, {k: (v[0], v[1]) for k, v in pdiff.items()})
        for (m, cl), (mean, std, p) in pdiff.items():
            x = methods.index(m) + (-0.19 if cl == "no" else 0.19)
            ax.annotate(
                _stars(p),
                (x, mean + (std if mean >= 0 else -std)),
                ha="center",
                va="bottom" if mean >= 0 else "top",
                fontsize=9,
            )
        ax.axhline(0, color="green", linestyle="--", linewidth=1)
        ax.set(
            ylabel="% difference from the person (return)",
            title=f"{env}: behaviour vs person (* p<.05, ** p<.01, Mann-Whitney U)",
        )
        files.append(_save(fig, out / f"pct_diff_{env}.png"))
        # 4. return distributions
        fig = Figure(figsize=(max(6, 1.2 * (len(labels) + 1)), 4))
        ax = fig.subplots()
        human = _res(recs[0])["behaviour"]["human_returns"]
        data = [human] + [
            np.concatenate(
                [_res(r)["behaviour"]["model_returns"] for r in recs if _label(r) == lab]
            )
            for lab in labels
        ]
        data = [
            np.asarray(d, dtype=float) + (0 if np.ptp(d) else 1e-9 * np.arange(len(d)))
            for d in data
        ]
        ax.violinplot(data, showmeans=True)
        ax.set_xticks(range(1, len(data) + 1), ["person", *labels], rotation=20)
        ax.set(ylabel="episode return", title=f"{env}: returns on the person's held-out seeds")
        files.append(_save(fig, out / f"returns_{env}.png"))
    table = _markdown(rows)
    notes = []
    if done and any(r.result and r.result.get("simulated") for r in done):
        notes.append("Subjects marked simulated are scripted players, not people.")
    md = "# hbm report\n\n" + "".join(f"{n}\n\n" for n in notes)
    md += table + "\n" + "".join(f"![{p.stem}]({p.name})\n" for p in files)
    plots = list(files)
    files.append(atomic_write_text(out / "report.md", md))
    if html:
        from .html_report import write_html_report

        files.append(write_html_report(rows, plots, out, records=done, notes=notes))
    return format_table(rows) if rows else "(no completed experiments)", files
