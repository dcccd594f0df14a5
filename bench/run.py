"""Run the benchmarks and write `bench/results/results.json` and `results.md`.

Each `bench/bench_*.py` module exposes `run(args: argparse.Namespace) -> list[Result]`.
Usage: `uv run nox -s bench -- [--only NAME ...] [--device cpu|cuda] [--quick]`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from _harness import Result  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", default=None, help="suite names (bench_<name>.py)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, smaller sizes")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    args = parser.parse_args(argv)

    suites = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    if args.only:
        unknown = set(args.only) - set(suites)
        if unknown:
            parser.error(f"unknown suites {sorted(unknown)}; available: {suites}")
        suites = [s for s in suites if s in args.only]

    results: list[Result] = []
    failures: dict[str, str] = {}
    for suite in suites:
        print(f"== {suite}", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"bench_{suite}")
            got = module.run(args)
        except Exception as exc:  # one broken suite must not hide the others
            import traceback

            traceback.print_exc()
            failures[suite] = f"{type(exc).__name__}: {exc}"
            continue
        for r in got:
            print(
                f"   {r.name}: {r.value:.4g} {r.unit} vs {r.reference_name} "
                f"{r.reference_value:.4g} -> {r.ratio:.2f}x"
                + ("" if r.target is None else f" (target {r.target:g}x)"),
                flush=True,
            )
        results.extend(got)
        print(f"   ({time.perf_counter() - t0:.1f} s)", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "device": args.device,
        "results": [r.to_dict() for r in results],
        "failures": failures,
    }
    tmp = args.out / "results.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(args.out / "results.json")
    lines = [
        "| suite | figure | value | reference | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        target = (
            "" if r.target is None else f"≥ {r.target:g}× {'✅' if r.ratio >= r.target else '❌'}"
        )
        lines.append(
            f"| {r.suite} | {r.name} | {r.value:.4g} {r.unit} | {r.reference_name}: "
            f"{r.reference_value:.4g} | {r.ratio:.2f}× | {target} |"
        )
    for suite, err in failures.items():
        lines.append(f"| {suite} | FAILED | {err} | | | |")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
