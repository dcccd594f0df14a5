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
CANONICAL = ROOT / "packages/hbm-ne/src/hbm_ne/_shared"
MIRRORS = (ROOT / "packages/hbm-dl/src/hbm_dl/_shared",)
ATOMIC = ROOT / "packages/hbm-data/src/hbm_data/_atomic.py"
ATOMIC_COPIES = tuple(d / "atomic.py" for d in (CANONICAL, *MIRRORS))


def _sources(directory: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(directory.glob("*.py"))}


def differences() -> list[str]:
    """Every way the copies differ from their canonical files (empty: all in sync)."""
    problems = []
    for copy in ATOMIC_COPIES:
        if not copy.exists() or not filecmp.cmp(ATOMIC, copy, shallow=False):
            problems.append(f"{copy.relative_to(ROOT)} differs from {ATOMIC.relative_to(ROOT)}")
    canonical = _sources(CANONICAL)
    for mirror in MIRRORS:
        copies = _sources(mirror)
        for name in sorted(set(canonical) | set(copies)):
            where = (mirror / name).relative_to(ROOT)
            if name not in copies:
                problems.append(f"{where} is missing")
            elif name not in canonical:
                problems.append(f"{where} has no counterpart in {CANONICAL.relative_to(ROOT)}")
            elif not filecmp.cmp(canonical[name], copies[name], shallow=False):
                problems.append(f"{where} differs from {canonical[name].relative_to(ROOT)}")
    return problems


def write() -> list[Path]:
    """Copy the canonical files over their mirrors (removing mirror files with no canonical
    counterpart); returns the files written or removed."""
    changed = []
    for copy in ATOMIC_COPIES:
        if not copy.exists() or not filecmp.cmp(ATOMIC, copy, shallow=False):
            shutil.copyfile(ATOMIC, copy)
            changed.append(copy)
    canonical = _sources(CANONICAL)
    for mirror in MIRRORS:
        mirror.mkdir(parents=True, exist_ok=True)
        for name, path in _sources(mirror).items():
            if name not in canonical:
                path.unlink()
                changed.append(path)
        for name, source in canonical.items():
            target = mirror / name
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
