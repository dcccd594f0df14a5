"""Cross-subject matrix and stylometry on the simulated subjects."""

from __future__ import annotations

import json

import hbm_dl
import numpy as np
import pytest
import torch
from hbm_data import SIMULATED_PROFILES, load_human_data
from hbm_experiments import humanlike as H
from hbm_experiments import identify as I

SUBJECTS = ("sim01", "sim02", "sim03", "sim04")


def _block(**values: float | None) -> dict[str, float | None]:
    return {k: values.get(k) for k in H.METRICS}


def test_vote_majority_then_summed_probabilities() -> None:
    # two votes for subject 1, one for 0
    assert I._vote(np.array([[0.1, 0.9], [0.4, 0.6], [0.99, 0.01]])) == 1
    # one vote each: the larger summed probability wins the tie
    assert I._vote(np.array([[0.9, 0.1], [0.45, 0.55]])) == 0


def test_diagonal_best_reads_gaps_per_column() -> None:
    m = I.CrossSubjectMatrix(
        models=("a", "b"),
        subjects=("a", "b", "c"),
        blocks=(
            (_block(state_jsd=0.1, discriminator_auc=0.3), _block(state_jsd=0.2), _block()),
            (_block(state_jsd=0.3, discriminator_auc=0.45), _block(state_jsd=0.1), _block()),
        ),
    )
    assert m.diagonal_best("state_jsd") == {"a": True, "b": True}  # c has no model of its own
    # AUCs below 0.5 are both chance (gap 0): a tie counts as best
    assert m.diagonal_best("discriminator_auc") == {"a": True, "b": None}
    np.testing.assert_array_equal(m.metric("state_jsd"), [[0.1, 0.2, np.nan], [0.3, 0.1, np.nan]])
    worse = I.CrossSubjectMatrix(
        ("a", "b"), ("a",), ((_block(state_jsd=0.5),), (_block(state_jsd=0.1),))
    )
    assert worse.diagonal_best("state_jsd") == {"a": False}


@pytest.fixture(scope="module")
def subjects(shared_data_dir):  # type: ignore[no-untyped-def]
    assert set(SUBJECTS) <= set(SIMULATED_PROFILES)
    return {
        s: load_human_data("mountaincar", s, holdout_pct=0.3, data_dir=shared_data_dir)
        for s in SUBJECTS
    }


def test_cross_subject_matrix_shapes_and_entries(subjects) -> None:  # type: ignore[no-untyped-def]
    two = {s: subjects[s] for s in SUBJECTS[:2]}
    gen = torch.Generator().manual_seed(0)
    models = {s: hbm_dl.FeedforwardMLP(2, 8, 3, generator=gen) for s in two}
    m = I.cross_subject_matrix(models, two, seed=1, references=False)
    assert m.models == m.subjects == ("sim01", "sim02")
    assert m.metric("action_accuracy").shape == (2, 2)
    for j, subject in enumerate(m.subjects):  # row 0 against each column, computed alone
        alone = H.evaluate_humanlike(models["sim01"], two[subject], seed=1)
        assert m.blocks[0][j]["action_accuracy"] == alone["action_accuracy"]
        assert m.blocks[1][j]["person_episodes"] == two[subject].metadata.n_test
    assert m.references is None
    # with references: the person / random rows of each column; no own model, no diagonal
    one = I.cross_subject_matrix({"sim01": models["sim01"]}, {"sim02": two["sim02"]}, seed=1)
    assert one.references is not None and set(one.references["sim02"]) == {"person", "random"}
    assert one.diagonal_best("state_jsd") == {}
    d = m.to_dict()
    assert json.loads(json.dumps(d))["tables"]["state_jsd"] == m.metric("state_jsd").tolist()


def test_stylometry_identifies_subjects_better_with_more_episodes(subjects) -> None:  # type: ignore[no-untyped-def]
    out = I.stylometry(subjects, ks=(1, 5, 13), seed=0)
    assert out["subjects"] == list(SUBJECTS) and out["chance"] == 0.25
    acc = out["accuracy"]
    assert acc[0] > 2 * out["chance"]  # one episode already tells a lot
    assert acc[2] > acc[0] + 0.2 and acc[2] > 0.8  # episodes voting add up
    assert np.sum(out["confusion"]) == sum(out["episodes"].values())
    assert I.stylometry(subjects, ks=(1, 5, 13), seed=0) == out  # deterministic
    too_many = I.stylometry(subjects, ks=(1000,), seed=0)
    assert too_many["accuracy"] == [None]
