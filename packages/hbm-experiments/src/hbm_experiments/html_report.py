"""One self-contained `report.html`: the comparison table, the plots, the configs.

Why: results are shared as a page, often from a cluster's shared filesystem, so the file needs
no server, no CDN and no sibling files: plots are base64 PNG data URIs, sorting is a few lines
of inline JavaScript, the configs behind each row are collapsible YAML.

It renders what `report.make_report` already computed (its `comparison_rows` and its PNG
files); nothing is recomputed here. A row whose method is `person` or `random` (or that has a
true `reference` field) is shown as a reference row. The page checks its own images when it
loads: a broken one is logged with `console.error`, and `<body data-images-loaded>` says how
many decoded (the headless-Chromium test reads both).
"""

from __future__ import annotations

import base64
import html
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .configs import atomic_write_text

__all__ = ["METRIC_HELP", "PLOT_HELP", "REFERENCE_METHODS", "write_html_report"]

REFERENCE_METHODS = frozenset({"person", "human", "random"})

# "How to read this", per column of `report.comparison_rows` (other columns get no note).
METRIC_HELP: dict[str, str] = {
    "seeds": "Training runs (seeds) averaged in this row; '3 of 5 (1 failed, 1 missing)' "
    "names the seeds that are not in the means (failed, not finished, or run for other rows "
    "of this person but not this one).",
    "trained on": "What training optimised: the person's actions (person), the game's "
    "returns (returns) or fooling a discriminator of the person's play (adversarial). Every "
    "row is judged against the same person.",
    "CL": "Whether the model saw the curriculum-learning information (the person's "
    "level or phase) as an input.",
    "test CE": "Cross-entropy of the person's actions on held-out episodes under the model "
    "(nats per step). Lower is better; a uniform guess over k actions scores ln k.",
    "test F1": "Macro F1 of the model's sampled actions against the person's on held-out "
    "episodes: 1 is a perfect imitation, chance is about 1/k.",
    "test accuracy": "Share of held-out steps where the model's sampled action is the person's.",
    "model return": "Mean episode return of the model playing the game itself on the "
    "person's held-out seeds.",
    "human return": "Mean episode return of the person on the same seeds.",
    "return Δ": "Model mean return − person mean return on the person's held-out seeds "
    "(every seed's rollouts), with a 95 % bootstrap interval. 0 plays as well as the person; "
    "it says nothing of how.",
    "U p-value": "Mann-Whitney U test of model vs person returns. A small p says the "
    "returns differ; a large p does not prove they are the same.",
    "sig": "** p < 0.01, * p < 0.05, ns not significant (same test).",
    "folds": "Cross-fitting: K models, each trained without one fold of the person's "
    "episodes and tested on it.",
    "target episodes": "Cross-fitting: the person's episodes the metrics were pooled over "
    "(all of them); a metric that used fewer shows (E=n).",
    "play": "Where the human-likeness cells come from when they are not the model's own play: "
    "its teacher-forced choices on the person's held-out steps (games hbm has only as "
    "recordings; on the Overcooked kitchens the returns still come from play).",
    "partner": "Two-player kitchens: who played beside the model, 'recorded' (the recorded "
    "partner's actions, open loop) or 'proxy' (a human proxy cloned from the study's training "
    "trials, closed loop).",
    "action acc": "Share of the person's held-out actions the model predicts (1 is perfect).",
    "acc shifted": "Action accuracy against the person's action a reaction delay later (the "
    "delay chosen once per person on training episodes).",
    "hold W1": "Wasserstein distance between the model's and the person's key-hold durations "
    "(frames); 0 is the person.",
    "switch ratio": "Action changes per second, model / person; 1 is the person.",
    "state JSD": "Jensen-Shannon divergence of visited states on a grid; 0 is the person.",
    "disc AUC": "How well a classifier tells the model's play from the person's on the same "
    "seeds; 0.5 cannot tell them apart.",
    "session ρ": "Spearman correlation of the model's returns with the person's across "
    "sessions (following their learning); 1 is the person.",
}
_P_HELP = (
    "Seeds whose play this metric's permutation test told apart from the person's at p < 0.05, "
    "out of the seeds with a p-value (e.g. 3/5)."
)


def _help(column: str) -> str | None:
    """A column's "how to read this" (the `p<.05` columns share one)."""
    return _P_HELP if column.endswith(" p<.05") else METRIC_HELP.get(column)


# Captions of `make_report`'s plots, by file-name prefix.
PLOT_HELP: dict[str, str] = {
    "curves_": "Test cross-entropy (lower is better) and macro F1 (higher is better) during "
    "training, against the share of each run's training time.",
    "final_f1_": "Final test macro F1 per method, without (solid) and with (hatched) the "
    "curriculum-learning input; bars are means over seeds, whiskers their std.",
    "return_diff_": "Model mean return minus the person's, with a 95 % bootstrap interval; "
    "the green line is the person. Stars mark a significant difference (Mann-Whitney U).",
    "humanlike_": "Each human-likeness metric per row (mean ± 95 % interval over seeds), the "
    "person's own held-out play and a random policy as lines; a grey title marks a metric "
    "that fails the validity suite on this game.",
    "scaling_": "Test cross-entropy against training episodes and training FLOPs.",
    "returns_": "Distribution of episode returns on the person's held-out seeds: the person "
    "first, then each method.",
}

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; cursor: pointer; user-select: none; }
th[data-dir="asc"]::after { content: " ▲"; } th[data-dir="desc"]::after { content: " ▼"; }
td.text { text-align: left; }
tr.reference td { font-style: italic; background: #fbf7e8; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; max-width: 60em; }
dl dt { font-weight: 600; margin-top: .5em; } dl dd { margin-left: 1.5em; color: #444; }
details { margin: .4em 0; } summary { cursor: pointer; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: 12px; }
.note { color: #555; }
td.invalid, li.invalid { color: #999; }
li.decided { font-weight: 600; }
"""

# Sort on header click (numbers by value, "-" and text after them); mark undecodable images.
_JS = """
document.querySelectorAll("table.sortable th").forEach((th, col) => {
  th.addEventListener("click", () => {
    const table = th.closest("table"), body = table.tBodies[0];
    const dir = th.dataset.dir === "asc" ? "desc" : "asc";
    table.querySelectorAll("th").forEach(h => delete h.dataset.dir);
    th.dataset.dir = dir;
    const key = row => {
      const text = row.cells[col].textContent.trim(), num = parseFloat(text);
      return Number.isNaN(num) ? [1, text] : [0, num];
    };
    const rows = [...body.rows].sort((a, b) => {
      const [ka, va] = key(a), [kb, vb] = key(b);
      const c = ka - kb || (va < vb ? -1 : va > vb ? 1 : 0);
      return dir === "asc" ? c : -c;
    });
    rows.forEach(row => body.appendChild(row));
  });
});
window.addEventListener("load", () => {
  const images = [...document.images];
  const bad = images.filter(img => !(img.complete && img.naturalWidth > 0));
  bad.forEach(img => console.error("hbm report: image did not load: " + img.alt));
  document.body.dataset.images = images.length;
  document.body.dataset.imagesLoaded = images.length - bad.length;
});
"""


def _is_reference(row: Mapping[str, Any]) -> bool:
    return bool(row.get("reference")) or str(row.get("method", "")).lower() in REFERENCE_METHODS


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        cols += [c for c in row if c not in cols and c != "reference" and not c.startswith("_")]
    return cols


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


def _is_text(value: str) -> bool:
    try:
        float(value.split()[0].replace("±", ""))
    except (ValueError, IndexError):
        return value != "-"
    return False


def _row_key(row: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(row.get("dataset")), str(row.get("method")), str(row.get("CL")))


def _row_records(row: Mapping[str, Any], groups: Mapping[tuple[str, str, str], Any]) -> list[Any]:
    """The runs behind a row: its `_group` (rows of `report.comparison_rows`), else the
    records of the same dataset, method and CL (rows made elsewhere)."""
    group = row.get("_group")
    if group is not None:
        return list(group.records)
    return list(groups.get(_row_key(row), []))


def _configs_by_row(records: Sequence[Any]) -> dict[tuple[str, str, str], list[Any]]:
    """Records by (dataset, method, CL), for rows that do not carry their `_group`."""
    from .status import describe

    groups: dict[tuple[str, str, str], list[Any]] = {}
    for rec in records:
        d = describe(rec)
        groups.setdefault((str(d["dataset"]), str(d["method"]), str(d["cl"])), []).append(rec)
    return groups


def _image(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = next((text for pre, text in PLOT_HELP.items() if path.stem.startswith(pre)), "")
    label = html.escape(path.stem)
    return (
        f'<figure><img alt="{label}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{label}</b>{': ' + html.escape(caption) if caption else ''}"
        "</figcaption></figure>"
    )


def _table(
    rows: Sequence[Mapping[str, Any]],
    groups: Mapping[tuple[str, str, str], Any],
    table_id: str = "comparison",
) -> str:
    cols = _columns(rows)
    head = "".join(
        f'<th title="{html.escape(_help(c) or "click to sort")}">{html.escape(c)}</th>'
        for c in cols
    )
    if groups:
        head += '<th title="the config of each run behind this row">configs</th>'
    body = []
    for i, row in enumerate(rows):
        cells = []
        invalid = row.get("_invalid") or {}
        for c in cols:
            text = _cell(row.get(c))
            classes = [n for n, on in (("text", _is_text(text)), ("invalid", c in invalid)) if on]
            cls = f' class="{" ".join(classes)}"' if classes else ""
            why = f' title="{html.escape(str(invalid[c]))}"' if c in invalid else ""
            cells.append(f"<td{cls}{why}>{html.escape(text)}</td>")
        if groups:
            n = len(_row_records(row, groups))
            link = f'<a href="#configs-{i}">{n} run{"s" if n != 1 else ""}</a>' if n else "-"
            cells.append(f'<td class="text">{link}</td>')
        cls = ' class="reference"' if _is_reference(row) else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    return (
        f'<table class="sortable" id="{table_id}"><thead><tr>'
        f"{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def _configs(rows: Sequence[Mapping[str, Any]], groups: Mapping[tuple[str, str, str], Any]) -> str:
    parts = []
    for i, row in enumerate(rows):
        recs = _row_records(row, groups)
        if not recs:
            continue
        keys = ("dataset", "subject", "method", "CL")
        title = " · ".join(f"{k} {row[k]}" for k in keys if k in row)
        inner = "".join(
            f"<p><code>{html.escape(str(rec.folder))}</code></p>"
            f"<pre>{html.escape(yaml.safe_dump(rec.config, sort_keys=False))}</pre>"
            for rec in recs
        )
        parts.append(
            f'<details id="configs-{i}"><summary>{html.escape(title)}: {len(recs)} '
            f"run{'s' if len(recs) != 1 else ''}</summary>{inner}</details>"
        )
    return "".join(parts)


def _comparisons(found: Sequence[Any]) -> str:
    """One list per person: each contrast's sentence, decided ones bold, invalid ones grey."""
    parts = [
        '<p class="note">Rows of one person that differ in one factor, compared seed by seed '
        "over their shared seeds (paired t), p-values Holm-adjusted per metric across this "
        "report; each metric is its gap from the person (lower = closer).</p>"
    ]
    for dataset, subject in sorted({(c.dataset, c.subject) for c in found}):
        items = []
        for c in found:
            if (c.dataset, c.subject) != (dataset, subject):
                continue
            cls = "decided" if c.decided else "invalid" if not c.valid else "undecided"
            items.append(f'<li class="{cls}">{html.escape(c.sentence())}</li>')
        parts.append(f"<h3>{html.escape(f'{dataset}, {subject}')}</h3><ul>{''.join(items)}</ul>")
    return "".join(parts)


def write_html_report(
    rows: Sequence[Mapping[str, Any]],
    plots: Sequence[str | Path],
    out_dir: str | Path,
    *,
    records: Sequence[Any] = (),
    title: str = "hbm report",
    notes: Sequence[str] = (),
    filename: str = "report.html",
    comparisons: Sequence[Any] = (),
    crossfit_rows: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """Write `out_dir/filename` (atomically) and return its path.

    `rows`: the comparison table (`report.comparison_rows`), in order; `plots`: PNG files
    (other suffixes are skipped); `records`: the `ExperimentRecord`s behind the rows, for their
    configs; `notes`: short paragraphs shown under the title (e.g. "simulated players");
    `comparisons`: `comparisons.Contrast`s, one sentence each (decided ones bold, metrics that
    fail the validity suite greyed); `crossfit_rows`: the cross-fitted table
    (`crossfit_report.crossfit_rows`), shown under the comparison with its references.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    groups = _configs_by_row(records) if records else {}
    if any("_group" in r for r in rows):
        groups = groups or {("", "", ""): [None]}  # non-empty: show the configs column
    images = [Path(p) for p in plots if Path(p).suffix.lower() == ".png"]
    cols = _columns([*rows, *crossfit_rows])
    helps = "".join(
        f"<dt>{html.escape(c)}</dt><dd>{html.escape(_help(c) or '')}</dd>" for c in cols if _help(c)
    )
    refs = any(_is_reference(r) for r in [*rows, *crossfit_rows])
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Written {html.escape(time.strftime("%Y-%m-%d %H:%M"))}. '
        "Click a column header to sort.</p>",
        *(f'<p class="note">{html.escape(n)}</p>' for n in notes),
        "<h2>Comparison</h2>",
        _table(rows, groups) if rows else "<p><em>no completed experiments</em></p>",
    ]
    if refs:
        parts.append(
            '<p class="note">Rows in italics are references: the person (their own held-out '
            "play) and a random policy, the two ends a model's numbers are read against.</p>"
        )
    if crossfit_rows:
        parts += [
            "<h2>Cross-fitted evaluation</h2>",
            '<p class="note">Every episode of the person a target once, scored against the '
            "model that did not train on it; the person and random rows are pooled the same "
            "way at the same sample sizes.</p>",
            _table(crossfit_rows, {}, table_id="crossfit"),
        ]
    if comparisons:
        parts += ["<h2>Paired comparisons</h2>", _comparisons(comparisons)]
    if helps:
        parts += ["<h2>How to read this</h2>", f"<dl>{helps}</dl>"]
    if images:
        parts += ["<h2>Plots</h2>", *(_image(p) for p in images)]
    if groups:
        parts += ["<h2>Configs behind each row</h2>", _configs(rows, groups)]
    parts += [f"<script>{_JS}</script>", "</body></html>"]
    return atomic_write_text(out / filename, "\n".join(parts) + "\n")
