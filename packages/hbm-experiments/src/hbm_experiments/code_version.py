"""The fingerprint of the code a training runs: the hbm packages' sources and the torch/numpy
versions, stored in the uid folder when training starts, so a resume under other code warns
(the packages are usually installed editable, and a requeued job imports them as they are then).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .files import CHECKPOINT_FILE, atomic_write_text

__all__ = ["CODE_FILE", "check_code", "code_fingerprint"]

logger = logging.getLogger(__name__)

CODE_FILE = "code.txt"
_CODE_PACKAGES = ("hbm_data", "hbm_ne", "hbm_dl", "hbm_experiments")


def code_fingerprint() -> str:
    """sha256 of the hbm packages' Python sources and the torch/numpy versions.

    The packages are usually installed editable, so a job restarted after a requeue imports the
    sources as they are *then*; `Experiment.run` compares this with the fingerprint stored when
    training started and warns when a resume runs other code than the start did.
    """
    import hashlib
    import importlib

    import numpy as np

    digest = hashlib.sha256(f"torch {torch.__version__} numpy {np.__version__}".encode())
    for name in _CODE_PACKAGES:
        module = importlib.import_module(name)
        if module.__file__ is None:
            continue
        root = Path(module.__file__).parent
        for path in sorted(root.rglob("*.py")):
            digest.update(f"{name}/{path.relative_to(root).as_posix()}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def check_code(folder: Path) -> None:
    """Store the code fingerprint when training starts; warn when a resume runs other code."""
    code = code_fingerprint()
    stored = folder / CODE_FILE
    if not (folder / CHECKPOINT_FILE).exists():
        atomic_write_text(stored, code + "\n")
        return
    before = stored.read_text().strip() if stored.exists() else None
    if before is not None and before != code:
        logger.warning(
            "%s: resuming from %s with changed hbm sources (code %s; training started with %s): "
            "the result mixes two code versions; delete the checkpoint and rerun for a clean one",
            folder,
            CHECKPOINT_FILE,
            code,
            before,
        )
