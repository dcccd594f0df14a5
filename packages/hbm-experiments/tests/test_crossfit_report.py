"""Cross-fitted results beside their references and in `hbm report`: the person and random rows
pooled by the models' protocol at the same sample sizes, the pooled result kept beside the
cache, and the report's cross-fitted table (episodes per metric, invalid metrics greyed, stale
results left out with a note)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hbm_experiments import humanlike
from hbm_experiments.comparisons import contrasts, metric_validity
from hbm_experiments.crossfit import (
    CROSSFIT_FORMAT,
    FoldPlay,
    crossfit_folder,
    fold_experiments,
    load_pooled,
    pooled_references,
    result_digest,
    save_pooled,
)
from hbm_experiments.crossfit_report import crossfit_section
from hbm_experiments.files import RESULT_FILE
from hbm_experiments.humanlike import (
    HumanlikeTarget,
    Trajectories,
    compare_play,
    person_reference,
    random_reference,
)
from hbm_experiments.humanlike.references import person_play, random_play
from hbm_experiments.report import config_groups, humanlike_columns, make_report, varying_keys
from hbm_experiments.status import ExperimentRecord
from hbm_experiments.tasks import make_experiment

K = 3
R = 2
TOL = 1e-9


def _base() -> Any:
    return make_experiment(
        {
            "method": "adam_feedforward",
            "dataset": "cartpole",
            "subject": "sim01",
            "training": {"max_epochs": 1, "behaviour_repeats": R},
            "model": {"hidden_size": 4},
        }
    )


def _plays() -> list[FoldPlay]:
    """Per fold: its held-out episodes as the target (a reaction shift of 2 frames, set, not
    chosen), the fold's data for its references; the model's side is not needed here."""
    plays = []
    for e in fold_experiments(_base(), K):
        data = e.data_task().load()
        test = Trajectories.from_human(data, "test")
        target = HumanlikeTarget(test, "cartpole", shift=2, permutations=49)
        plays.append(FoldPlay(target, test, {}, R, data))
    return plays


def _concat(parts: list[Trajectories], sizes: list[int]) -> Trajectories:
    """A single model's order: rollout r of pooled episode e at r·E + e."""
    pieces = [p.subset(np.arange(r * n, (r + 1) * n)) for r in range(R)
              for p, n in zip(parts, sizes, strict=True)]  # fmt: skip
    return Trajectories(
        tuple(o for p in pieces for o in p.obs),
        tuple(a for p in pieces for a in p.actions),
        np.concatenate([p.returns for p in pieces]),
        np.concatenate([p.sessions for p in pieces]),
        np.concatenate([p.seeds for p in pieces]),
    )


def test_pooled_references_are_each_folds_floor_and_random_play_scored_at_once() -> None:
    plays = _plays()
    refs = pooled_references(plays, seed=0, discriminator=False)
    sizes = [len(p.target.trajectories) for p in plays]
    total = sum(sizes)
    target = Trajectories(
        tuple(o for p in plays for o in p.target.trajectories.obs),
        tuple(a for p in plays for a in p.target.trajectories.actions),
        np.concatenate([p.target.trajectories.returns for p in plays]),
        np.concatenate([p.target.trajectories.sessions for p in plays]),
        np.concatenate([p.target.trajectories.seeds for p in plays]),
    )
    floors = [person_play(p.data, seed=0, repeats=R, target=p.target) for p in plays]
    randoms = [random_play(p.data, seed=0, repeats=R, target=p.target) for p in plays]
    for name, parts in (("person", [f[0] for f in floors]), ("random", [r[0] for r in randoms])):
        block = refs[name]
        # the model rows' sample sizes: every target episode, R candidates for each
        assert block["person_episodes"] == total and block["episodes"] == R * total
        assert block["target_episodes"]["hold_duration_w1"] == total
        cand = _concat(parts, sizes)
        direct = compare_play(target, cand, "cartpole", permutations=49, discriminator=False)
        for key in ("hold_duration_w1", "switch_rate_ratio", "state_jsd", "hold_duration_w1_p",
                    "switch_rate_ratio_p", "combined_z"):  # fmt: skip
            assert block[key] == pytest.approx(direct[key], abs=TOL), (name, key)
    # accuracies: each fold's predictions on its own steps, pooled over all steps
    steps = [int(p.target.lengths.sum()) for p in plays]
    hits = sum(
        int(np.count_nonzero(f[1] == p.target.actions)) for f, p in zip(floors, plays, strict=True)
    )
    assert refs["person"]["action_accuracy"] == pytest.approx(hits / sum(steps), abs=TOL)
    hits = sum(
        int(np.count_nonzero(r[1] == p.target.actions)) for r, p in zip(randoms, plays, strict=True)
    )
    assert refs["random"]["action_accuracy"] == pytest.approx(hits / sum(steps), abs=TOL)
    # known answers: the person's own play is near the person, random play is not
    floor, rand = refs["person"], refs["random"]
    assert abs(np.log(floor["switch_rate_ratio"])) < abs(np.log(rand["switch_rate_ratio"]))
    assert floor["hold_duration_w1"] < rand["hold_duration_w1"]
    assert floor["action_accuracy"] > rand["action_accuracy"] + 0.1
    assert rand["switch_rate_ratio_p"] < 0.05


def test_one_fold_pooled_is_the_ordinary_floor_and_random_row() -> None:
    """The cross-fitted references reuse the ordinary rows' builders: with one fold they are
    those rows (same draws, same scores)."""
    (play,) = _plays()[:1]
    pooled = pooled_references([play], seed=3, discriminator=False)
    floor = person_reference(play.data, seed=3, repeats=R, target=play.target)
    rand = random_reference(play.data, seed=3, repeats=R, target=play.target)
    for key in ("hold_duration_w1", "switch_rate_ratio", "state_jsd", "return_diff",
                "hold_duration_w1_p", "state_jsd_p", "action_accuracy",
                "action_accuracy_shift", "episodes", "paired_seeds"):  # fmt: skip
        assert pooled["person"][key] == pytest.approx(floor[key], abs=TOL), key
        assert pooled["random"][key] == pytest.approx(rand[key], abs=TOL), key


def _pooled(uids: list[str], digests: list[str | None], **extra: Any) -> dict[str, Any]:
    """A pooled result as `pool_folds` lays it out (values made up for the report)."""
    block = {key: 0.2 for key in humanlike.METRICS} | {"discriminator_p": 0.01}
    block |= {"session_return_spearman": None, "discriminator_auc": 0.61}
    used = {key: 18 for key in humanlike.METRICS} | {"session_return_spearman": 0}
    used |= {"discriminator_auc": 12, "test_ce": 18, "test_f1": 18, "test_accuracy": 18}
    ref = {key: 0.1 for key in humanlike.METRICS}
    ref["target_episodes"] = {key: 18 for key in humanlike.METRICS}
    return {
        "format": CROSSFIT_FORMAT,
        "method": "adam_feedforward",
        "dataset": "cartpole",
        "subject": "sim01",
        "seed": 0,
        "use_cl_info": False,
        "folds": K,
        "config": {
            "method": "adam_feedforward",
            "dataset": "cartpole",
            "subject": "sim01",
            "data": {"crossfit_folds": K},
        },
        "uids": uids,
        "fold_results": digests,
        "episodes": 18,
        "fold_episodes": [6, 6, 6],
        "metrics": {"test_ce": 0.55, "test_f1": 0.7, "test_accuracy": 0.8},
        "behaviour": {
            "model_returns": [200.0 + i for i in range(36)],
            "human_returns": [190.0 + i for i in range(18)],
        },
        "humanlike": block,
        "humanlike_references": {"person": ref, "random": {**ref, "hold_duration_w1": 3.5}},
        "episodes_used": used,
    } | extra


def _fold_records(
    root: Path, tag: str = "abc", method: str = "adam_feedforward"
) -> list[ExperimentRecord]:
    """K completed fold records with result files, under `root` as the cache lays them out."""
    records = []
    for k in range(K):
        folder = root / "hbm_experiments.tasks.SGDExperiment.run,9" / f"fold={k}-{tag}"
        folder.mkdir(parents=True)
        result = {
            "history": [{"step": 1, "elapsed": 1.0, "test_ce": 0.5, "test_f1": 0.6}],
            "metrics": {"test_ce": 0.5 + k / 100, "test_f1": 0.6, "test_accuracy": 0.7},
            "behaviour": {"model_returns": [200.0] * 6, "human_returns": [190.0 + k] * 6},
            "humanlike": {"hold_duration_w1": 0.3},
            "train_time": 1.0,
            "num_params": 10,
        }
        (folder / RESULT_FILE).write_text(json.dumps(result))
        data = {"crossfit_folds": K, "crossfit_fold": k}
        config = {"method": method, "seed": 0, "dataset": "cartpole", "data": data}
        task = "SGDExperiment" if method.startswith("adam") else "GAExperiment"
        records.append(ExperimentRecord(folder, task, "9", config, "completed", result=result))
    return records


def _uids(records: list[ExperimentRecord]) -> list[str]:
    return [f"{r.folder.parent.name}/{r.folder.name}" for r in records]


def test_pooled_results_are_kept_beside_the_cache_and_bad_files_are_named(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    records = _fold_records(root)
    out = _pooled(_uids(records), [result_digest(r.folder) for r in records])
    path = save_pooled(out, root)
    assert path.parent.parent == crossfit_folder(root) and path.name == "result.json"
    assert save_pooled(out, root) == path  # the same folds: the same file, rewritten
    (found,), problems = load_pooled(root)
    assert problems == [] and found["uids"] == out["uids"] and found["file"] == str(path)
    bad = crossfit_folder(root) / "broken"
    bad.mkdir()
    (bad / "result.json").write_text("{")
    wrong = crossfit_folder(root) / "wrong"
    wrong.mkdir()
    (wrong / "result.json").write_text(json.dumps({**out, "uids": "x", "seed": "0"}))
    old = crossfit_folder(root) / "old"
    old.mkdir()
    (old / "result.json").write_text(json.dumps({**out, "format": "0"}))
    found, problems = load_pooled(root)
    assert len(found) == 1 and len(problems) == 3
    text = "\n".join(problems)
    assert f"{bad / 'result.json'}: not readable JSON" in text
    assert f"{wrong / 'result.json'}: missing or wrong fields" in text
    assert "seed (expected int), uids (expected list)" in text
    assert f"{old / 'result.json'}: format '0'" in text and "rerun hbm crossfit" in text


def test_hbm_report_shows_cross_fitted_rows_beside_their_references(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    records = _fold_records(root)
    save_pooled(_pooled(_uids(records), [result_digest(r.folder) for r in records]), root)
    rows, notes = crossfit_section(records)
    assert [r["method"] for r in rows] == ["adam_feedforward", "person", "random"]
    learner, person, rand = rows
    cols = humanlike_columns()
    assert learner["folds"] == K and learner["seeds"] == 1 and learner["target episodes"] == "18"
    # a metric that used fewer of the person's episodes says how many; an undefined one is "-"
    assert learner[cols["discriminator_auc"]].startswith("0.610") and "(E=12)" in str(
        learner[cols["discriminator_auc"]]
    )
    assert learner[cols["session_return_spearman"]] == "-"
    assert "(E=" not in str(learner[cols["hold_duration_w1"]])
    assert str(rand[cols["hold_duration_w1"]]).startswith("3.500") and person["reference"]
    assert learner["return Δ"].startswith("+19.0 [")  # 217.5 - 198.5, with its interval
    assert learner[f"{cols['discriminator_auc']} p<.05"] == "1/1"  # p = 0.01 on its one seed
    # metrics that fail the validity suite on this game under the cross-fitted protocol (or
    # that it has not checked there): greyed with the reason, as elsewhere; the others are not
    verdicts = {c: metric_validity("cartpole", k, "crossfit") for k, c in cols.items()}
    invalid = [c for c, (ok, _) in verdicts.items() if not ok]
    assert invalid, "the shipped validity verdicts mark some metric invalid on cartpole"
    for row in rows:
        assert set(row["_invalid"]) == set(invalid), row["method"]
        for column in invalid:
            assert row["_invalid"][column] == verdicts[column][1]
            if row[column] not in (None, "-"):
                assert str(row[column]).endswith("✗")
    assert "Cross-fitted" in notes[0]

    text, _ = make_report(records, tmp_path / "out", html=True)
    assert "cross-fitted (every episode of the person a target once)" in text
    md = (tmp_path / "out" / "report.md").read_text()
    section = md.split("## Cross-fitted evaluation", 1)[1].split("## Comparisons", 1)[0]
    assert "| adam_feedforward |" in section and "| person |" in section
    assert "| random |" in section and "(E=12)" in section
    page = (tmp_path / "out" / "report.html").read_text()
    table = page.split('id="crossfit"', 1)[1].split("</table>", 1)[0]
    assert table.count('<tr class="reference">') == 2
    assert 'class="invalid"' in table or 'class="text invalid"' in table

    # a fold rerun since the pooling: the result is stale, left out with a note
    (records[1].folder / RESULT_FILE).write_text(json.dumps({"metrics": {}}))
    rows, notes = crossfit_section(records)
    assert rows == [] and any("stale" in n and "rerun hbm crossfit" in n for n in notes)
    # a report on other experiments (a fold not among them) does not show it, and says nothing
    rows, notes = crossfit_section(records[:2])
    assert rows == [] and notes == []


def test_seeds_of_one_config_share_a_row_and_other_configs_get_their_own(tmp_path: Path) -> None:
    root = tmp_path / "cache"
    records: list[ExperimentRecord] = []
    for tag, seed, ce, lr in (
        ("s0", 0, 0.50, 0.001),
        ("s1", 1, 0.60, 0.001),
        ("lr", 0, 0.70, 0.01),
    ):
        folds = _fold_records(root, tag)
        out = _pooled(_uids(folds), [result_digest(r.folder) for r in folds], seed=seed)
        out["config"]["optimizer"] = {"name": "adam", "learning_rate": lr}
        out["metrics"]["test_ce"] = ce
        save_pooled(out, root)
        records += folds
    rows, _ = crossfit_section(records)
    learners = [r for r in rows if not r.get("reference")]
    assert [r["optimizer.learning_rate"] for r in learners] == [0.001, 0.01]
    assert [r["seeds"] for r in learners] == [2, 1]
    assert learners[0]["test CE"].startswith("0.550 ± ")  # two seeds: mean ± t-interval
    assert learners[1]["test CE"] == "0.700"
    assert [r["method"] for r in rows[2:]] == ["person", "random"]  # once per person and K


def test_folds_are_never_compared_with_each_other(tmp_path: Path) -> None:
    """Two folds were tested on other episodes of the person: their seeds do not pair. Two
    learners on the same fold do."""
    records = [*_fold_records(tmp_path, "adam"), *_fold_records(tmp_path, "ga", "ga_feedforward")]
    groups = config_groups(records)
    found = contrasts(groups, varying_keys(groups))
    assert {(c.a, c.b) for c in found} == {
        (f"adam_feedforward crossfit_fold={k}", f"ga_feedforward crossfit_fold={k}")
        for k in range(K)
    }
