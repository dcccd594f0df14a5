"""The cross-fitted table of `hbm report`: pooled results (`crossfit.save_pooled`) beside the
experiments they pooled.

A cross-fitted result scores every episode of the person, so it is read apart from the
ordinary rows (one held-out fold each): one row per learner (its seeds aggregated as the
ordinary rows are), the number of the person's episodes each metric used, and the person and
random rows pooled by the same protocol at the same sample sizes, the two ends a model's
numbers are read against. A result is shown only when every fold it pooled is among the
report's completed experiments and still holds the result it pooled (a fold rerun since makes
it stale: left out, with a note).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["crossfit_results", "crossfit_rows", "crossfit_section", "crossfit_terminal"]


def crossfit_results(records: Sequence[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The pooled results whose folds are all among `records` (`status.ExperimentRecord`s,
    completed) with the result files they pooled, and a note per result left out or file that
    could not be read."""
    from .crossfit import load_pooled, result_digest

    done = {
        f"{rec.folder.parent.name}/{rec.folder.name}": rec.folder
        for rec in records
        if rec.status == "completed" and rec.result
    }
    roots = sorted({Path(rec.folder).parent.parent for rec in records})
    found: list[dict[str, Any]] = []
    notes: list[str] = []
    for root in roots:
        results, problems = load_pooled(root)
        notes += [f"Cross-fitted result not read: {p}." for p in problems]
        for out in results:
            uids = [str(u) for u in out["uids"]]
            if not all(u in done for u in uids):
                continue  # another selection of experiments: not this report's
            now = [result_digest(done[u]) for u in uids]
            if now != out["fold_results"]:
                notes.append(
                    f"Cross-fitted result left out, stale: {out['file']} pooled fold results "
                    "that have been rerun since; rerun hbm crossfit on its config."
                )
                continue
            found.append(out)
    return found, notes


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = v
    return out


def _key(out: dict[str, Any]) -> str:
    return json.dumps([out["dataset"], out["subject"], out["config"]], sort_keys=True, default=str)


def _varying(groups: Sequence[list[dict[str, Any]]]) -> list[str]:
    """Config keys that differ between groups of one person, method, CL setting and K."""
    flats = [_flat(g[0]["config"]) for g in groups]
    peers: dict[str, list[dict[str, Any]]] = {}
    for g, flat in zip(groups, flats, strict=True):
        who = json.dumps([g[0]["dataset"], g[0]["subject"], g[0]["method"],
                          g[0].get("use_cl_info"), g[0]["folds"]])  # fmt: skip
        peers.setdefault(who, []).append(flat)
    keys = sorted({k for f in flats for k in f} - {"method", "dataset", "subject"})
    return [
        k
        for k in keys
        if any(
            len({json.dumps(f.get(k), default=str) for f in same}) > 1 for same in peers.values()
        )
    ]


def _episodes_cell(values: Sequence[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}–{high}"


def _with_count(text: Any, used: Sequence[int], total: int) -> Any:
    """A metric cell with `(E=n)` where the metric used other than all `total` episodes."""
    if text in (None, "-") or all(u == total for u in used):
        return text
    return f"{text} (E={_episodes_cell(used)})"


def _learner_row(results: list[dict[str, Any]], varying: Sequence[str]) -> dict[str, Any]:
    from .report import _fmt_ci, _fmt_diff, _mark_invalid, _p_columns, humanlike_columns
    from .stats import difference_of_means

    first = results[0]
    flat = _flat(first["config"])
    episodes = [int(r["episodes"]) for r in results]
    total = min(episodes)
    row: dict[str, Any] = {
        "dataset": first["dataset"],
        "subject": first["subject"],
        "method": first["method"],
        "CL": "yes" if first.get("use_cl_info") else "no",
        **{k: flat.get(k) for k in varying},
        "folds": first["folds"],
        "seeds": len(results),
        "target episodes": _episodes_cell(episodes),
    }
    for key, column in (("test_ce", "test CE"), ("test_f1", "test F1")):
        row[column] = _fmt_ci([r["metrics"].get(key) for r in results], ".3f")
    blocks = [r["humanlike"] for r in results]
    behaviour = [r.get("behaviour") or {} for r in results]
    if any("skipped" in b or "model_returns" not in b for b in behaviour):
        row["return Δ"] = "-"
    else:
        model = np.concatenate([b["model_returns"] for b in behaviour])
        row["return Δ"] = _fmt_diff(difference_of_means(model, behaviour[0]["human_returns"]))
    for key, column in humanlike_columns().items():
        used = [int((r["episodes_used"]).get(key, 0)) for r in results]
        text = _fmt_ci([b.get(key) for b in blocks], ".3f")
        row[column] = _with_count(text, used, total)
    for p_key, column in _p_columns().values():
        ps = [float(p) for b in blocks if (p := b.get(p_key)) is not None]
        row[column] = f"{sum(p < 0.05 for p in ps)}/{len(ps)}" if ps else "-"
    _mark_invalid(row, str(first["dataset"]), protocol="crossfit")
    return row


def _reference_rows(out: dict[str, Any], varying: Sequence[str]) -> list[dict[str, Any]]:
    """The pooled person and random rows of one result (`crossfit.pooled_references`)."""
    from .report import _mark_invalid, humanlike_columns

    refs = out.get("humanlike_references") or {}
    rows = []
    for name in ("person", "random"):
        block = refs.get(name)
        if not block:
            continue
        row: dict[str, Any] = {
            "dataset": out["dataset"],
            "subject": out["subject"],
            "method": name,
            "CL": "-",
            **{k: None for k in varying},
            "folds": out["folds"],
            "seeds": None,
            "target episodes": str(out["episodes"]),
        }
        used = block.get("target_episodes") or {}
        for key, column in humanlike_columns().items():
            value = block.get(key)
            text = None if value is None else f"{value:.3f}"
            row[column] = _with_count(text, [int(used.get(key, 0))], int(out["episodes"]))
        _mark_invalid(row, str(out["dataset"]), protocol="crossfit")
        row["reference"] = True
        rows.append(row)
    return rows


def crossfit_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (person, config) over its seeds, then after each person and fold count
    the pooled person and random rows of its first result. `_invalid` maps a column to why
    its metric fails the validity suite (greyed, ✗), as in `report.comparison_rows`."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for out in sorted(results, key=lambda o: (_key(o), int(o["seed"]))):
        groups.setdefault(_key(out), []).append(out)
    ordered = sorted(
        groups.values(),
        key=lambda g: (g[0]["dataset"], g[0]["subject"], g[0]["folds"], g[0]["method"], _key(g[0])),
    )
    varying = _varying(ordered)
    rows: list[dict[str, Any]] = []
    for i, group in enumerate(ordered):
        rows.append(_learner_row(group, varying))
        who = (group[0]["dataset"], group[0]["subject"], group[0]["folds"])
        nxt = ordered[i + 1][0] if i + 1 < len(ordered) else None
        if nxt is None or (nxt["dataset"], nxt["subject"], nxt["folds"]) != who:
            rows += _reference_rows(group[0], varying)
    return rows


CROSSFIT_NOTE = (
    "Cross-fitted: K models each trained without one fold of the person's episodes (per "
    "session), every metric pooled over all the person's episodes, each scored against the "
    "model that did not train on it. 'target episodes' is how many of the person's episodes "
    "the metrics used; (E=n) marks a metric that used fewer. The person and random rows are "
    "pooled by the same protocol at the same sample sizes."
)


def crossfit_section(records: Sequence[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The cross-fitted rows for `records` and the notes a reader needs (what the table is,
    results left out)."""
    results, notes = crossfit_results(records)
    rows = crossfit_rows(results)
    return rows, ([CROSSFIT_NOTE] if rows else []) + notes


_TERMINAL = ("dataset", "subject", "method", "CL", "folds", "seeds", "target episodes", "test CE",
             "return Δ", "action acc", "hold W1", "switch ratio", "disc AUC")  # fmt: skip


def crossfit_terminal(rows: Sequence[dict[str, Any]]) -> str:
    """The cross-fitted rows in a terminal's width (after the main table); "" without any."""
    from .status import format_table

    if not rows:
        return ""
    public = [{k: v for k, v in r.items() if not k.startswith("_") and k != "reference"}
              for r in rows]  # fmt: skip
    present = {c for r in public for c in r}
    dotted = sorted(c for c in present if "." in c and " " not in c)
    cols = [c for c in _TERMINAL[:4] if c in present] + dotted
    cols += [c for c in _TERMINAL[4:] if c in present]
    return "\n\ncross-fitted (every episode of the person a target once):\n" + format_table(
        public, cols
    )
