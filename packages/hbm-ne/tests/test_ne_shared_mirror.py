"""`hbm_ne/_shared/` is one contract held twice: hbm-ne and hbm-dl never import each other, so
hbm-dl holds a byte-identical copy (`nox -s sync_shared` writes it from this one, the canonical
copy), and its `atomic.py` is hbm-data's `_atomic.py`, the one atomic writer of every package.
These tests run in hbm-ne's own test session, so a diverged copy fails here, not only where all
packages are installed together."""

from __future__ import annotations

import difflib
from pathlib import Path

import hbm_ne._shared
import pytest
import torch

PACKAGES = Path(__file__).resolve().parents[2]
OWN = Path(hbm_ne._shared.__file__).parent
SIBLING = PACKAGES / "hbm-dl" / "src" / "hbm_dl" / "_shared"
ATOMIC = PACKAGES / "hbm-data" / "src" / "hbm_data" / "_atomic.py"
FIX = "run `uv run nox -s sync_shared` (it copies hbm-ne's _shared/ and hbm-data's _atomic.py)"


def _sources(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.glob("*.py"))}


def _diff(a: bytes, b: bytes, name_a: str, name_b: str) -> str:
    lines = difflib.unified_diff(
        a.decode(errors="replace").splitlines(keepends=True),
        b.decode(errors="replace").splitlines(keepends=True),
        name_a,
        name_b,
    )
    return "".join(list(lines)[:40])


def _source_tree(path: Path) -> None:
    if not path.exists():
        pytest.skip(
            f"no source tree beside the installed package ({path} is absent): run from a checkout"
        )


def test_shared_is_byte_identical_to_hbm_dl() -> None:
    _source_tree(SIBLING)
    own, sibling = _sources(OWN), _sources(SIBLING)
    assert sorted(own) == sorted(sibling), f"the two _shared/ hold other files: {FIX}"
    for name, text in own.items():
        if text != sibling[name]:
            pytest.fail(
                f"{OWN / name} and {SIBLING / name} differ: {FIX}\n"
                + _diff(text, sibling[name], str(OWN / name), str(SIBLING / name))
            )


def test_atomic_is_hbm_data_atomic() -> None:
    _source_tree(ATOMIC)
    own, canonical = (OWN / "atomic.py").read_bytes(), ATOMIC.read_bytes()
    assert own == canonical, f"{OWN / 'atomic.py'} differs from {ATOMIC}: {FIX}\n" + _diff(
        canonical, own, str(ATOMIC), str(OWN / "atomic.py")
    )


def test_one_episode_data_pads_episodes_and_sessions_alike() -> None:
    """hbm-ne's `EpisodeData` is the shared one: `padded()` (every episode, cached) and
    `padded(sequences)` (sessions as one sequence) return the same zero-padded named tuple."""
    from hbm_ne import EpisodeData
    from hbm_ne._shared import PaddedEpisodes

    obs = torch.arange(20.0).reshape(10, 2) + 1  # no zero rows: padding is visible
    data = EpisodeData.from_arrays(
        obs, torch.arange(10) % 3 + 1, [2, 3, 1, 4], sessions=[0, 1, 0, 1]
    )
    assert len(data) == 10
    every = data.padded()
    assert isinstance(every, PaddedEpisodes) and data.padded() is every
    x, y, mask = data.padded(data.sequences("episode"))
    assert (
        torch.equal(x, every.obs)
        and torch.equal(y, every.actions)
        and torch.equal(mask, every.mask)
    )
    sessions = data.padded(data.sequences("session"))
    assert sessions.lengths.tolist() == [3, 7]
    assert sessions.obs[0, :3, 0].tolist() == [1.0, 3.0, 11.0]  # episodes 0 and 2, in order
    assert sessions.obs[0, 3:].abs().sum() == 0 and sessions.actions[0, 3:].tolist() == [0] * 4
    picked = sessions.select(torch.tensor([0]))
    assert picked.obs.shape == (1, 3, 2) and picked.lengths.tolist() == [3]
