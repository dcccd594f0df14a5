"""Developer sessions for the hbm workspace.

`uv run nox` runs lint, typecheck, every package's tests in its own venv, and the wheel check;
`uv run nox -s bench` runs benchmarks; `uv run nox -s slurm` runs the tests on local Slurm.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "tests", "data_extras", "wheels"]

ROOT = Path(__file__).parent
PACKAGES = ["hbm-data", "hbm-ne", "hbm-dl", "hbm-experiments"]
MODULES = {p: p.replace("-", "_") for p in PACKAGES}


def _sync(session: nox.Session, *args: str) -> None:
    """Install from uv.lock into the session's venv (only what the named package declares)."""
    session.run_install(
        "uv",
        "sync",
        "--frozen",
        "--no-default-groups",
        "--inexact",
        *args,
        env={"UV_PROJECT_ENVIRONMENT": session.virtualenv.location},
        external=True,
    )


@nox.session
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """Run one package's tests in a venv that holds only that package and its declared deps."""
    _sync(session, "--package", package, "--extra", "test")
    args = session.posargs or ["-m", "not slurm and not slow"]
    session.run(
        "python", "-m", "pytest", f"packages/{package}/tests", "-p", "no:cacheprovider", *args
    )


@nox.session
def data_extras(session: nox.Session) -> None:
    """hbm-data's tests with its extras installed. `tests(package='hbm-data')` proves the core
    installs and works with numpy alone (those that need gymnasium/pygame skip there, saying
    which extra); here the same tests run with all its extras, so none is skipped. The
    Overcooked-AI recordings come in their package, installed without its dependencies (an old
    gym, ipython, ipywidgets), as the README tells users to."""
    extras = ("test", "simulate", "record", "plot", "expert", "minari", "overcooked")
    _sync(session, "--package", "hbm-data", *(a for e in extras for a in ("--extra", e)))
    session.install("--no-deps", "overcooked-ai==1.1.0")
    args = session.posargs or ["-m", "not slurm and not slow"]
    session.run(
        "python",
        "-m",
        "pytest",
        "packages/hbm-data/tests",
        "-p",
        "no:cacheprovider",
        "-rs",
        *args,
        env={"SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "HBM_REQUIRE_EXTRAS": "1"},
    )


@nox.session
@nox.parametrize("package", PACKAGES)
def slow(session: nox.Session, package: str) -> None:
    """Run one package's tests marked slow (convergence and end-to-end checks), with the
    Overcooked-AI recordings installed so that the tests on real people run, not skip."""
    _sync(session, "--package", package, "--extra", "test")
    session.install("pandas>=2.1")
    session.install("--no-deps", "overcooked-ai==1.1.0")
    session.run(
        "python",
        "-m",
        "pytest",
        f"packages/{package}/tests",
        "-p",
        "no:cacheprovider",
        "-m",
        "slow and not slurm",
        *session.posargs,
        success_codes=[0, 5],
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check over the whole tree; the mirrored shared code in sync."""
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", "tools/sync_shared.py", "--check")


@nox.session(python=False)
def sync_shared(session: nox.Session) -> None:
    """Write the mirrored copies of shared code from their canonical files: hbm-ne's `_shared/`
    over hbm-dl's, hbm-data's `_atomic.py` over `_shared/atomic.py` (tools/sync_shared.py)."""
    session.run(sys.executable, str(ROOT / "tools" / "sync_shared.py"))


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over every package's sources."""
    _sync(session, "--all-packages", "--group", "dev")
    session.run("mypy", *(f"packages/{p}/src" for p in PACKAGES))


@nox.session
def wheels(session: nox.Session) -> None:
    """Build all wheels and sdists; install hbm-experiments from them in a fresh venv; smoke-run."""
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    for package in PACKAGES:
        session.run("uv", "build", f"packages/{package}", "--out-dir", str(dist), external=True)
    built = sorted(p.name for p in dist.iterdir())
    for package in PACKAGES:
        stem = package.replace("-", "_")
        if not any(n.startswith(stem) and n.endswith(".whl") for n in built):
            session.error(f"no wheel built for {package}: {built}")
        if not any(n.startswith(stem) and n.endswith(".tar.gz") for n in built):
            session.error(f"no sdist built for {package}: {built}")
    # A fresh venv, no workspace: hbm-* are the wheels just built (given by path: by name,
    # uv may serve an earlier build of the same version from its cache), the rest from PyPI.
    wheels = sorted(str(p) for p in dist.glob("*.whl"))
    refresh = [f"--refresh-package={p}" for p in PACKAGES]
    session.install("--find-links", str(dist), *refresh, *wheels)
    session.run("python", "-c", "import " + ", ".join(MODULES.values()) + "; print('imports ok')")
    session.run("hbm", "--help")
    session.run("hbm-data", "--help")
    smoke = ROOT / "packages" / "hbm-experiments" / "tests" / "wheel_smoke.py"
    if smoke.exists():
        tmp = tempfile.mkdtemp(dir=session.create_tmp())  # an empty cache on every run
        session.run("python", str(smoke), env={"HBM_CACHE": tmp, "HBM_DATA_DIR": tmp}, silent=False)


@nox.session
def bench(session: nox.Session) -> None:
    """Run benchmarks under bench/ and write bench/results/results.{json,md}.

    Extra args go to bench/run.py, e.g. `nox -s bench -- --device cuda --only ne`.
    """
    _sync(session, "--all-packages", "--extra", "test")
    session.install("evotorch")
    session.run("python", "bench/run.py", *session.posargs, env={"PYTHONHASHSEED": "0"})


@nox.session
def slurm(session: nox.Session) -> None:
    """Start a local single-node Slurm cluster, run the tests marked slurm, always stop it.

    Needs root (tools/slurm/start.sh installs the Debian packages when missing). A cluster that
    was already running before the session is left running. Logs: /var/log/slurm/.
    """
    _sync(session, "--package", "hbm-experiments", "--extra", "test")
    tools = ROOT / "tools" / "slurm"
    started = session.run("bash", str(tools / "start.sh"), external=True, silent=True)
    session.log(str(started).strip())
    ours = "already running" not in str(started)
    try:
        session.run(
            "python",
            "-m",
            "pytest",
            "packages/hbm-experiments/tests",
            "-p",
            "no:cacheprovider",
            "-m",
            "slurm",
            *session.posargs,
            env={"HBM_SLURM_REQUIRED": "1"},
        )
    finally:
        if ours:
            session.run("bash", str(tools / "stop.sh"), external=True)
        else:
            session.log("the cluster was running before this session: left running")
