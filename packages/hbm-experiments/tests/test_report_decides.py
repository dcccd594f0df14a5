"""`hbm report` on made-up records whose answers are known: rows say which seeds are not in
their means, learners are compared on paired differences over shared seeds ("cannot tell
apart" where the data cannot decide), metrics that fail the validity suite are marked, the
return difference has a bootstrap interval, and no subject can write outside `--out`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hbm_experiments import humanlike
from hbm_experiments.comparisons import contrasts
from hbm_experiments.html_report import write_html_report
from hbm_experiments.report import (
    collect_rows,
    comparison_rows,
    config_groups,
    make_report,
    report_notes,
    safe_slug,
    varying_keys,
)
from hbm_experiments.status import ExperimentRecord

TASKS = {"ga_feedforward": "GAExperiment", "adam_feedforward": "SGDExperiment"}
HUMAN = [200.0, 180.0, 220.0, 190.0, 210.0, 205.0]


def _record(
    tmp: Path,
    method: str,
    seed: int,
    *,
    subject: str = "sim01",
    ce: float = 0.6,
    auc: float = 0.7,
    status: str = "completed",
    human: list[float] = HUMAN,
    offset: float = 0.0,
) -> ExperimentRecord:
    config = {
        "method": method,
        "seed": seed,
        "dataset": "cartpole",
        "subject": subject,
        "data": {"use_cl_info": False},
        "model": {"hidden_size": 8},
    }
    model = [h + offset + seed for h in human]
    result = {
        "simulated": True,
        "history": [{"generation": 1, "elapsed": 1.0, "test_ce": ce, "test_f1": 0.5}],
        "metrics": {"test_ce": ce, "test_f1": 0.7, "test_accuracy": 0.8},
        "behaviour": {
            "model_returns": model,
            "human_returns": human,
            "model_mean_return": float(np.mean(model)),
            "human_mean_return": float(np.mean(human)),
            "p_value": 0.5,
        },
        "humanlike": {"discriminator_auc": auc, "discriminator_p": 0.01 if auc > 0.6 else 0.5},
        "train_time": 1.0,
        "num_params": 10,
    }
    folder = tmp / "cache" / f"{method}-{subject.replace('/', '_')}-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    done = status == "completed"
    return ExperimentRecord(
        folder=folder,
        task=TASKS[method],
        version="1",
        config=config,
        status=status,
        result=result if done else None,
        error="Traceback ...\nRuntimeError: boom\n" if status == "failed" else None,
    )


def _row(rows: list[dict[str, Any]], method: str) -> dict[str, Any]:
    return next(r for r in rows if r["method"] == method)


def test_rows_say_which_seeds_failed_are_unfinished_or_missing(tmp_path: Path) -> None:
    records = [
        *(_record(tmp_path, "ga_feedforward", s) for s in (0, 1)),
        _record(tmp_path, "ga_feedforward", 2, status="failed"),
        *(_record(tmp_path, "adam_feedforward", s) for s in (0, 1, 2)),
        _record(tmp_path, "adam_feedforward", 3, status="running"),
    ]
    rows = comparison_rows(records)
    assert _row(rows, "ga_feedforward")["seeds"] == "2 of 4 (1 failed, 1 missing)"
    assert _row(rows, "adam_feedforward")["seeds"] == "3 of 4 (1 not finished)"
    md = "\n".join(report_notes(records, rows))
    assert "Seeds not in the means:" in md
    assert "sim01 ga_feedforward seed 2: failed (RuntimeError: boom)" in md
    assert "sim01 adam_feedforward seed 3: running" in md
    assert "sim01 ga_feedforward seeds [3]: missing" in md
    # a config whose every seed failed keeps its row (never silently absent)
    lost = [_record(tmp_path / "lost", "ga_feedforward", s, status="failed") for s in (0, 1)]
    rows = comparison_rows([*lost, *(_record(tmp_path, "adam_feedforward", s) for s in (0, 1))])
    assert _row(rows, "ga_feedforward")["seeds"] == "0 of 2 (2 failed)"
    assert "test CE" not in _row(rows, "ga_feedforward")
    assert _row(rows, "adam_feedforward")["seeds"] == 2  # complete rows stay a plain count


def test_paired_over_shared_seeds_decides_where_separate_intervals_overlap(
    tmp_path: Path,
) -> None:
    # a seed effect shared by both learners (seed 0 easy, seed 4 hard) hides a steady 0.05 gap
    # from each row's own interval; pairing by seed removes it
    wobble = [0.0, 0.003, -0.002, 0.001, -0.001]
    records = [
        r
        for s in range(5)
        for r in (
            _record(tmp_path, "ga_feedforward", s, ce=0.5 + 0.1 * s + 0.05, auc=0.8),
            _record(tmp_path, "adam_feedforward", s, ce=0.5 + 0.1 * s + wobble[s], auc=0.8),
        )
    ]
    groups = config_groups(records)
    found = contrasts(groups, varying_keys(groups))
    ce = next(c for c in found if c.metric.key == "test_ce")
    assert ce.comparison.n == 5 and ce.decided
    assert ce.a == "adam_feedforward"  # rows in the table's order: a - b = adam - ga
    assert ce.comparison.delta == pytest.approx(np.mean(wobble) - 0.05, abs=1e-9)
    assert ce.sentence().startswith(
        "adam_feedforward predicts sim01's actions better than ga_feedforward on test CE: "
        "Δ -0.0498 ["
    )
    assert ce.sentence().endswith("6 held-out episodes, 5 seeds")
    rows = comparison_rows(records)
    lo_ga = float(_row(rows, "ga_feedforward")["test CE"].split(" ± ")[0])
    half_ga = float(_row(rows, "ga_feedforward")["test CE"].split(" ± ")[1])
    lo_adam = float(_row(rows, "adam_feedforward")["test CE"].split(" ± ")[0])
    assert lo_ga - half_ga < lo_adam  # separate intervals overlap: they alone cannot decide
    auc = next(c for c in found if c.metric.key == "discriminator_auc")
    assert not auc.decided and "cannot tell apart with this data" in auc.sentence()
    table, _ = make_report(records, tmp_path / "rep")
    assert "adam_feedforward predicts sim01's actions better than ga_feedforward" in table
    assert "on discriminator AUC: cannot tell apart with this data" in table
    assert "disc AUC p<.05" not in table.splitlines()[0]  # not a sweep column
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Comparisons" in md and "**adam_feedforward predicts sim01's" in md


def test_two_seeds_cannot_tell_apart_and_say_so(tmp_path: Path) -> None:
    records = [
        r
        for s, noise in ((0, 0.04), (1, -0.03))
        for r in (
            _record(tmp_path, "ga_feedforward", s, ce=0.60 + noise),
            _record(tmp_path, "adam_feedforward", s, ce=0.55 - noise),
        )
    ]
    for rec in records:  # the held-out count the split recorded (games without returns too)
        assert rec.result is not None
        rec.result["data"] = {"n_test_episodes": 9}
    groups = config_groups(records)
    ce = next(c for c in contrasts(groups, varying_keys(groups)) if c.metric.key == "test_ce")
    assert ce.sentence().startswith(
        "adam_feedforward vs ga_feedforward on test CE: cannot tell apart with this data"
    )
    assert ce.sentence().endswith("; 9 held-out episodes, 2 seeds)")
    md = "\n".join(report_notes(records, comparison_rows(records)))
    assert "Rows over fewer than 3 seeds cannot decide" in md and "12.7" in md


def test_metrics_failing_the_validity_suite_are_marked_with_the_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def validity(env: str, metric: str) -> tuple[bool, str]:
        if metric == "discriminator_auc":
            return False, "null rejected in 0.21 of draws"
        return True, ""

    monkeypatch.setattr(humanlike, "metric_validity", validity, raising=False)
    records = [_record(tmp_path, m, s, auc=0.9) for m in TASKS for s in (0, 1, 2)]
    rows = comparison_rows(records)
    row = _row(rows, "ga_feedforward")
    assert row["disc AUC"].endswith(" ✗") and row["_invalid"] == {
        "disc AUC": "null rejected in 0.21 of draws"
    }
    assert not row["state JSD"].endswith("✗")
    notes = report_notes(records, rows)
    reason = "null rejected in 0.21 of draws"
    assert f"✗ (disc AUC) on cartpole, validity suite: {reason}" in notes
    groups = config_groups(records)
    found = contrasts(groups, varying_keys(groups))
    auc = next(c for c in found if c.metric.key == "discriminator_auc")
    assert auc.sentence().endswith(f"[✗ on cartpole, validity suite: {reason}]")
    page = write_html_report(rows, [], tmp_path, comparisons=found, notes=notes).read_text()
    assert '<li class="invalid">' in page
    assert "<dt>disc AUC p&lt;.05</dt><dd>Seeds whose play this metric" in page
    assert _row(rows, "adam_feedforward")["disc AUC p<.05"] == "3/3"  # p = 0.01 on each seed
    assert '<td class="invalid" title="null rejected in 0.21 of draws">' in page


def test_return_difference_has_a_bootstrap_interval_where_percentages_explode(
    tmp_path: Path,
) -> None:
    near_zero = [0.5, -0.4, 0.2, -0.1, 0.3, -0.2]  # a person whose returns straddle 0
    records = [
        _record(tmp_path, "ga_feedforward", s, human=near_zero, offset=3.0) for s in (0, 1, 2)
    ]
    row = _row(comparison_rows(records), "ga_feedforward")
    assert "% diff (per episode)" not in row and "% diff (means)" not in row
    text = row["return Δ"]  # mean of model - person: 3 + mean seed offset (1) = 4
    mean, interval = text.split(" [")
    low, high = (float(v) for v in interval.rstrip("]").split(", "))
    assert float(mean) == pytest.approx(4.0 - np.mean(near_zero) + np.mean(near_zero), abs=0.05)
    assert low < 4.0 < high and high - low < 3.0


def test_report_files_stay_in_out_whatever_the_subject(tmp_path: Path) -> None:
    evil = "/../../../x/sim01_data_cartpole.json"
    records = [
        _record(tmp_path, "ga_feedforward", s, subject=subject)
        for subject in (evil, "sim01_data_cartpole.json")
        for s in (0, 1)
    ]
    out = tmp_path / "deep" / "rep"
    _, files = make_report(records, out, html=True)
    assert all(f.resolve().parent == out.resolve() for f in files)
    pngs = [f for f in files if f.suffix == ".png"]
    assert len(pngs) == len(set(pngs)) == 2 * 5  # two people, five plots each, none shared
    assert not (tmp_path / "x").exists()
    assert safe_slug("sim01") == "sim01"
    assert "/" not in safe_slug(evil) and ".." not in safe_slug(evil)
    assert safe_slug("a/b") != safe_slug("a_b") != safe_slug("a-b")


def test_collect_has_the_difference_of_means_and_its_interval(tmp_path: Path) -> None:
    rec = _record(tmp_path, "ga_feedforward", 0)
    assert rec.result is not None
    rec.result["behaviour"] |= {
        "diff_of_means": 3.5,
        "diff_of_means_ci": [1.0, 6.0],
        "diff_of_means_p": 0.02,
    }
    (row,) = collect_rows([rec])
    assert (row["diff_of_means"], row["diff_of_means_lo"], row["diff_of_means_hi"]) == (3.5, 1, 6)
    assert row["diff_of_means_p"] == 0.02
