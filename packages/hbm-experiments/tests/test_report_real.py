"""`hbm report` and `hbm collect` on real small experiments: two people, a two-value sweep,
two seeds, and a data-size sweep. One row per (person, config); every row against its own
person's held-out returns; seeds counted as seeds; sweep values as their own column."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hbm_experiments import DataPreprocessingTask, make_experiment, run_experiments
from hbm_experiments.cli import main as hbm
from hbm_experiments.report import comparison_rows, make_report
from hbm_experiments.status import find_experiments

TINY: dict[str, Any] = {
    "method": "ga_feedforward",
    "num_threads": 1,
    "optimizer": {"population_size": 4},
    "training": {"max_generations": 2, "eval_every": 1},
}


@pytest.fixture(scope="module")
def human_returns(shared_data_dir: Path) -> dict[str, list[float]]:
    out = {}
    for subject in ("sim01", "sim02"):
        meta = DataPreprocessingTask(subject=subject, data_dir=str(shared_data_dir)).load().metadata
        out[subject] = [e.score for e in meta.test_episodes]
    assert out["sim01"] != out["sim02"]  # two people, two different held-out sets
    return out


def test_one_row_per_person_and_config(
    tmp_path: Path, human_returns: dict[str, list[float]]
) -> None:
    exps = [
        make_experiment({**TINY, "subject": subject, "seed": seed, "model": {"hidden_size": h}})
        for subject in ("sim01", "sim02")
        for h in (2, 3)
        for seed in (0, 1)
    ]
    run_experiments(exps)
    every = comparison_rows(find_experiments(load_results=True))
    rows = [r for r in every if not r.get("reference")]
    refs = [r for r in every if r.get("reference")]
    assert len(rows) == 4  # 2 people x 2 sweep values; seeds aggregated, never pooled people
    # each person's rows are followed by their person and random references, once
    assert [(r["subject"], r["method"]) for r in refs] == [
        ("sim01", "person"),
        ("sim01", "random"),
        ("sim02", "person"),
        ("sim02", "random"),
    ]
    assert every[2]["method"] == "person" and every[3]["method"] == "random"
    for row in rows:
        assert "±" in row["state JSD"] and "±" in row["action acc"]
        assert row["seeds"] == 2
        assert row["model.hidden_size"] in (2, 3)  # the sweep value is its own column
        group = row["_group"]
        assert group.human_returns() == human_returns[row["subject"]]
        assert row["human return"] == f"{np.mean(human_returns[row['subject']]):.1f}"
        assert "±" in row["test CE"]  # mean ± 95 % interval across the two seeds
        assert row["return Δ"].count("[") == 1  # difference of means, bootstrap interval
        pooled = len(group.records) * len(human_returns[row["subject"]])
        assert len(group.records) == 2 and pooled == 2 * len(human_returns[row["subject"]])
    assert {(r["subject"], r["model.hidden_size"]) for r in rows} == {
        (s, h) for s in ("sim01", "sim02") for h in (2, 3)
    }
    table, files = make_report(find_experiments(load_results=True), tmp_path / "rep")
    names = {f.name for f in files}
    assert {"curves_cartpole_sim01.png", "curves_cartpole_sim02.png"} <= names
    assert {"humanlike_cartpole_sim01.png", "humanlike_cartpole_sim02.png"} <= names
    assert "hidden_size" in table and "sim02" in table
    # each person's two hidden sizes compared seed by seed (2 seeds: never decided)
    assert "Paired over shared seeds" in table
    assert "hidden_size=2 vs ga_feedforward hidden_size=3 on test CE: cannot tell apart" in table
    assert hbm(["collect", "--out", str(tmp_path / "rows.csv")]) == 0
    csv_rows = list(csv.DictReader((tmp_path / "rows.csv").open()))
    assert len(csv_rows) == 8
    assert all(0 <= float(r["humanlike.state_jsd"]) <= 1 for r in csv_rows)
    assert all(float(r["compute.flops"]) > 0 for r in csv_rows)
    assert (
        {r["data"] for r in csv_rows}
        == {  # the data's content hash, per person
            e.data.content_hash.rpartition(":")[2][:8]
            for e in exps  # type: ignore[union-attr]
        }
    )


def test_data_size_sweep_rows_and_scaling_plot(tmp_path: Path) -> None:
    # every training sample in each fitness evaluation, so that the data's size shows in the
    # compute (a batch at least the training set's size is all of it)
    every = {**TINY["training"], "batch_size": 10**6}
    exps = [
        make_experiment({**TINY, "training": every, "data": {"max_train_episodes": n}, "seed": 0})
        for n in (4, 12)
    ]
    results = run_experiments(exps)
    assert [r["data"]["n_train_episodes"] for r in results] == [4, 12]
    assert results[0]["data"]["n_test_episodes"] == results[1]["data"]["n_test_episodes"]
    assert results[0]["compute"]["flops"] < results[1]["compute"]["flops"]  # fewer samples
    assert results[0]["compute"]["backward_passes"] == 0  # a GA runs forward passes only
    rows = comparison_rows(find_experiments(load_results=True))
    assert [r["data.max_train_episodes"] for r in rows if not r.get("reference")] == [4, 12]
    _, files = make_report(find_experiments(load_results=True), tmp_path / "rep")
    assert "scaling_cartpole_sim01.png" in {f.name for f in files}
