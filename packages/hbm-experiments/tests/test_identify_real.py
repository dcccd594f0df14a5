"""Identification of real players (`hbm identify-real`) on synthetic players with a known
answer: distinct styles are identified above chance (and beyond the player index), identical
styles only at chance; and the files `hbm-data import-overcooked` writes are read with their
study split."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from hbm_experiments.identify_real import (
    Segment,
    identify_players,
    read_segments,
    run,
    segment_features,
    wilson_interval,
)

LAYOUTS = ("a", "b", "c", "d")


def _play(rng: np.random.Generator, hold: float, prefer: int, steps: int = 120) -> np.ndarray:
    """Key presses held for ~`hold` frames (geometric), preferring action `prefer`."""
    probs = np.full(6, 0.5 / 5)
    probs[prefer] = 0.5
    out: list[int] = []
    while len(out) < steps:
        out += [int(rng.choice(6, p=probs))] * int(rng.geometric(1.0 / hold))
    return np.array(out[:steps])


def _players(styles: list[tuple[float, int]], seed: int = 0) -> list[Segment]:
    """Each player plays layouts a, b (training trials) and c, d (test), 8 segments each."""
    rng = np.random.default_rng(seed)
    out = []
    for i, (hold, prefer) in enumerate(styles):
        for layout in LAYOUTS:
            split = "train" if layout in ("a", "b") else "test"
            for _ in range(8):
                player = f"oc-w{i // 2:02d}-p{i % 2}"
                out.append(Segment(player, layout, split, _play(rng, hold, prefer)))
    return out


def test_distinct_styles_are_identified() -> None:
    styles = [(h, p) for h in (1.5, 4.0, 10.0) for p in (0, 4)]  # six players
    (row,) = identify_players(_players(styles), ks=[3], permutations=19)
    assert row.n_players == 6 and row.queries == 6 * (16 // 3)
    assert row.accuracy > 0.8 and row.low > row.index_only  # beyond chance and the index
    assert row.permutation_p == pytest.approx(1 / 20)  # no shuffle as good


def test_identical_styles_are_at_chance() -> None:
    """One style for all: the permutation check finds nothing (its p is the decision: the
    Wilson interval treats queries as independent, and one classifier's chance preference
    for some players makes them overdispersed), and accuracy stays near chance 1/8."""
    rows = identify_players(_players([(3.0, 4)] * 8, seed=1), ks=[1, 4], permutations=19)
    for row in rows:
        assert row.permutation_p is not None and row.permutation_p > 0.05, row
        assert abs(row.accuracy - row.chance) < 0.15, row
    assert rows[0].low <= rows[0].chance <= rows[0].high  # 128 single-segment queries


def test_subsets_of_players_and_their_baselines() -> None:
    styles = [(h, p) for h in (1.5, 4.0, 10.0) for p in (0, 4)]
    rows = identify_players(_players(styles), ks=[1], sizes=[2, None], subsets=5, permutations=0)
    two, every = rows
    assert (two.n_players, two.subsets, two.chance) == (2, 5, 0.5)
    assert 0.5 <= two.index_only <= 1.0 and every.index_only == pytest.approx(2 / 6)
    assert two.permutation_p is None and every.permutation_p is None
    with pytest.raises(ValueError, match="at least two players"):
        identify_players([s for s in _players(styles) if s.player == "oc-w00-p0"])


def test_features_and_interval_known_answers() -> None:
    f = segment_features(np.array([0, 0, 1, 1, 1, 1]))
    np.testing.assert_allclose(f[:6], [2 / 6, 4 / 6, 0, 0, 0, 0])
    assert f[6] == pytest.approx(np.log(3.0)) and f[9] == pytest.approx(1 / 5)  # switch rate
    assert f[10 + 0 * 6 + 1] == pytest.approx(0.5) and f[10 + 1 * 6 + 1] == 1.0
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_reads_imported_files_with_their_split(tmp_path: Path) -> None:
    from hbm_data.overcooked import import_trials
    from test_real_players import T0, trial  # the synthetic trials of the report tests

    import_trials([trial(1, "train", T0), trial(2, "test", T0 + 600_000)], tmp_path, segments=3)
    segments = read_segments(tmp_path)
    assert len(segments) == 4 * 3  # two trials, two players, three segments; oc-all skipped
    assert {(s.player, s.split) for s in segments} == {
        ("oc-w01-p0", "train"), ("oc-w01-p1", "train"),
        ("oc-w02-p0", "test"), ("oc-w02-p1", "test"),
    }  # fmt: skip
    with pytest.raises(ValueError, match="at least two players with both"):
        run(argparse.Namespace(layout=["all"], k=[1], n=["all"], subsets=1, permutations=0,
                               seed=0, data_dir=tmp_path))  # fmt: skip
    with pytest.raises(FileNotFoundError, match="import-overcooked"):
        read_segments(tmp_path, ["random0"])


def test_the_command_reaches_the_check_and_says_what_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hbm_data.overcooked import import_trials
    from hbm_experiments.cli import main
    from test_real_players import T0, trial

    import_trials([trial(1, "train", T0), trial(2, "test", T0 + 600_000)], tmp_path, segments=3)
    code = main(["identify-real", "--data-dir", str(tmp_path), "--k", "1", "--permutations", "0"])
    assert code == 1
    assert "at least two players with both" in capsys.readouterr().err
