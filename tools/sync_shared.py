"""Write or check the mirrored copies of the code hbm's packages share but cannot import.

The base packages never import each other, so a contract they share is held as byte-identical
copies:

- `packages/hbm-ne/src/hbm_ne/_shared/` (canonical) -> `packages/hbm-dl/src/hbm_dl/_shared/`
- `packages/hbm-data/src/hbm_data/_atomic.py` (canonical: the one atomic writer, which hbm-data
  and hbm-experiments use directly) -> `_shared/atomic.py` of hbm-ne and hbm-dl.

`python tools/sync_shared.py` writes the copies from the canonical files (`nox -s sync_shared`);
`python tools/sync_shared.py --check` exits 1 naming every file that differs (`nox -s lint`).
Standard library only.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CANONICAL = "packages/hbm-ne/src/hbm_ne/_shared"
MIRRORS = ("packages/hbm-dl/src/hbm_dl/_shared",)
ATOMIC = "packages/hbm-data/src/hbm_data/_atomic.py"


def _sources(directory: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(directory.glob("*.py"))}


def _atomic_copies(root: Path) -> list[Path]:
    return [root / d / "atomic.py" for d in (CANONICAL, *MIRRORS)]


def differences(root: Path = ROOT) -> list[str]:
    """Every way the copies under `root` differ from their canonical files (empty: in sync)."""
    problems = []
    atomic = root / ATOMIC
    for copy in _atomic_copies(root):
        if not copy.exists() or not filecmp.cmp(atomic, copy, shallow=False):
            problems.append(f"{copy.relative_to(root)} differs from {ATOMIC}")
    canonical = _sources(root / CANONICAL)
    for mirror in MIRRORS:
        copies = _sources(root / mirror)
        for name in sorted(set(canonical) | set(copies)):
            where = f"{mirror}/{name}"
            if name not in copies:
                problems.append(f"{where} is missing")
            elif name not in canonical:
                problems.append(f"{where} has no counterpart in {CANONICAL}")
            elif not filecmp.cmp(canonical[name], copies[name], shallow=False):
                problems.append(f"{where} differs from {CANONICAL}/{name}")
    return problems


def write(root: Path = ROOT) -> list[Path]:
    """Copy the canonical files over their mirrors under `root` (removing mirror files with no
    canonical counterpart); returns the files written or removed."""
    changed = []
    atomic = root / ATOMIC
    for copy in _atomic_copies(root):
        if not copy.exists() or not filecmp.cmp(atomic, copy, shallow=False):
            shutil.copyfile(atomic, copy)
            changed.append(copy)
    canonical = _sources(root / CANONICAL)
    for mirror in MIRRORS:
        target_dir = root / mirror
        target_dir.mkdir(parents=True, exist_ok=True)
        for name, path in _sources(target_dir).items():
            if name not in canonical:
                path.unlink()
                changed.append(path)
        for name, source in canonical.items():
            target = target_dir / name
            if not target.exists() or not filecmp.cmp(source, target, shallow=False):
                shutil.copyfile(source, target)
                changed.append(target)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = parser.parse_args(argv)
    if args.check:
        problems = differences()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run `nox -s sync_shared` to rewrite the copies", file=sys.stderr)
        return 1 if problems else 0
    for path in write():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
