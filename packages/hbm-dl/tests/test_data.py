from __future__ import annotations

import numpy as np
import pytest
import torch
from hbm_dl import EpisodeData


def test_from_arrays_converts_and_pads() -> None:
    obs = np.arange(12, dtype=np.float64).reshape(6, 2)
    actions = np.array([0, 1, 2, 0, 1, 2])
    data = EpisodeData.from_arrays(obs, actions, [3, 1, 2])
    assert data.obs.dtype == torch.float32 and data.actions.dtype == torch.int64
    assert len(data) == 6 and data.num_episodes == 3 and data.input_size == 2
    p = data.padded()
    assert p.obs.shape == (3, 3, 2)
    assert p.lengths.tolist() == [3, 1, 2]
    assert p.mask.tolist() == [[True] * 3, [True, False, False], [True, True, False]]
    torch.testing.assert_close(p.obs[1, 0], torch.tensor([6.0, 7.0]))
    torch.testing.assert_close(p.obs[2, :2], torch.tensor([[8.0, 9.0], [10.0, 11.0]]))
    assert p.actions[2, :2].tolist() == [1, 2]
    assert p.obs[1, 1:].abs().sum() == 0 and p.actions[1, 1:].tolist() == [0, 0]
    assert data.padded() is p  # built once
    sub = p.select(torch.tensor([1, 2]))
    assert sub.obs.shape == (2, 2, 2) and sub.lengths.tolist() == [1, 2]


def test_pool_of_steps_has_no_episodes() -> None:
    data = EpisodeData.from_arrays(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    assert data.num_episodes == 0
    with pytest.raises(ValueError, match="episode_lengths"):
        data.padded()


@pytest.mark.parametrize(
    ("obs", "actions", "lengths", "message"),
    [
        (np.zeros((4,)), np.zeros(4), None, r"obs must be \[N, input_size\]"),
        (np.zeros((4, 2)), np.zeros(3), None, r"actions must be \[N\] with N = 4"),
        (np.zeros((4, 2)), np.array([0, 1.5, 0, 0]), None, "integer class indices"),
        (np.zeros((4, 2)), np.array([0, -1, 0, 0]), None, ">= 0"),
        (np.array([[0, 0], [0, np.nan], [0, 0]]), np.zeros(3), None, "NaN.*row 1"),
        (np.zeros((4, 2)), np.zeros(4), [2, 1], "sum to 3, expected N = 4"),
        (np.zeros((4, 2)), np.zeros(4), [4, 0], ">= 1"),
    ],
)
def test_bad_input_names_the_field(obs, actions, lengths, message) -> None:
    with pytest.raises(ValueError, match=message):
        EpisodeData.from_arrays(obs, actions, lengths)


def test_sessions_and_the_fields_shared_with_hbm_ne() -> None:
    import dataclasses

    data = EpisodeData.from_arrays(torch.zeros(6, 2), torch.zeros(6), [2, 2, 2], sessions=[0, 1, 0])
    assert [f.name for f in dataclasses.fields(EpisodeData)] == [
        "obs",
        "actions",
        "episode_lengths",
        "sessions",
    ]
    assert data.sessions == (0, 1, 0) and data.num_steps == 6
    assert data.sequences("session") == [[0, 2], [1]]
    assert data.to("cpu").sessions == (0, 1, 0)
    with pytest.raises(ValueError, match="one per episode"):
        EpisodeData.from_arrays(torch.zeros(6, 2), torch.zeros(6), [3, 3], sessions=[0])
