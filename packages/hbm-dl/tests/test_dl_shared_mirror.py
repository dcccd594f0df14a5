"""`hbm_ne/_shared/` is one contract held twice: hbm-ne and hbm-dl never import each other, so
hbm-dl holds a byte-identical copy (`nox -s sync_shared` writes it from this one, the canonical
copy), and its `atomic.py` is hbm-data's `_atomic.py`, the one atomic writer of every package.
These tests run in hbm-dl's own test session, so a diverged copy fails here, not only where all
packages are installed together."""

from __future__ import annotations

import difflib
from pathlib import Path

import hbm_dl._shared
import pytest
import torch

PACKAGES = Path(__file__).resolve().parents[2]
OWN = Path(hbm_dl._shared.__file__).parent
SIBLING = PACKAGES / "hbm-ne" / "src" / "hbm_ne" / "_shared"
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


def test_shared_is_byte_identical_to_hbm_ne() -> None:
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


def test_episode_data_pads_sessions_as_one_sequence() -> None:
    """hbm-dl's `EpisodeData` is the shared one: `padded(sequences)` runs a session's episodes
    as one sequence and unpacks as `(obs, actions, mask)`."""
    from hbm_dl import EpisodeData

    obs = torch.arange(12.0).reshape(6, 2) + 1
    data = EpisodeData.from_arrays(obs, torch.ones(6), [1, 2, 3], sessions=[5, 6, 5])
    x, y, mask = data.padded(data.sequences("session"))
    assert mask.sum(1).tolist() == [4, 2]
    assert x[0, :, 0].tolist() == [1.0, 7.0, 9.0, 11.0] and x[1, 2:].abs().sum() == 0
    assert y[1].tolist() == [1, 1, 0, 0]
