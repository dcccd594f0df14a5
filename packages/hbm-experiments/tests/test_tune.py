"""`hbm tune`: spaces, trials as cached experiments, a study that resumes (kill -9 included)
without training a finished trial again."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hbm_experiments import make_experiment
from hbm_experiments.cli import main
from hbm_experiments.configs import ConfigError
from hbm_experiments.methods import METHOD_TABLE, METHODS
from hbm_experiments.tune import (
    DEFAULT_SPACES,
    default_space,
    load_space,
    open_study,
    parse_space,
    study_folder,
    trial_experiment,
    tune,
)
from hbm_experiments.tune_spaces import RECURRENT_BATCH

CONFIG = {
    "method": "adam_feedforward",
    "dataset": "cartpole",
    "subject": "sim01",
    "model": {"hidden_size": 8},
    "training": {"max_steps": 6, "eval_every": 3},
    "num_threads": 1,
}
SPACE = {"optimizer.learning_rate": {"low": 1e-3, "high": 0.1, "log": True}}


def _results(cache: Path) -> dict[Path, tuple[int, int]]:
    """Every finished experiment: (result.json's mtime, the pid that ran it)."""
    out = {}
    for f in cache.glob("hbm_experiments.tasks.*/*/result.json"):
        pid = json.loads((f.parent / "run_context.json").read_text())["pid"]
        out[f.parent] = (f.stat().st_mtime_ns, pid)
    return out


def test_default_spaces_apply_to_their_methods() -> None:
    for algorithm in DEFAULT_SPACES:
        method = f"{algorithm}_feedforward"
        base = make_experiment({**CONFIG, "method": method, "training": {"max_samples": 100}})
        space = load_space("default", base)
        assert "model.hidden_size" in space
        assert space == default_space(method)
    with pytest.raises(ConfigError, match="dynamic"):
        default_space("ga_dynamic")


@pytest.mark.parametrize(
    "method", sorted(m for m, (_, kind) in METHODS.items() if kind != "dynamic")
)
def test_every_corner_of_a_default_space_is_a_valid_config(method: str) -> None:
    """A trial at the lowest or highest value of every dimension is a config its method
    accepts: a space offering what the method refuses would fail every trial."""
    base = make_experiment({**CONFIG, "method": method, "training": {"max_samples": 100}})
    space = default_space(method)
    for pick in (0, -1):
        values = {
            name: spec.choices[pick] if spec.kind == "categorical" else (spec.low, spec.high)[pick]
            for name, spec in space.items()
        }
        values = {k: int(v) if space[k].kind == "int" else v for k, v in values.items()}
        trial_experiment(base, values)  # raises ConfigError naming the key when refused
    batch = space.get("training.batch_size")
    if METHOD_TABLE[method].objective != "person":
        assert batch is None  # trained on the game: no minibatches of the person's steps
    elif METHODS[method][1] != "feedforward":
        assert batch is not None and batch.high == RECURRENT_BATCH["training.batch_size"]["high"]


def test_bad_space_names_file_and_key(tmp_path: Path) -> None:
    base = make_experiment(CONFIG)
    with pytest.raises(ConfigError, match=r"space.yaml: optimizer.lr: expected numbers low"):
        parse_space({"optimizer.lr": {"low": 1, "high": 1}}, "space.yaml")
    with pytest.raises(ConfigError, match="log scale needs low > 0"):
        parse_space({"optimizer.learning_rate": {"low": 0, "high": 1, "log": True}}, "s")
    bad = tmp_path / "space.yaml"
    bad.write_text(yaml.safe_dump({"optimizer.population_size": {"low": 8, "high": 64}}))
    with pytest.raises(ConfigError, match="population_size"):  # not an Adam setting
        load_space(bad, base)
    exp = trial_experiment(base, {"optimizer.learning_rate": 0.05})
    assert exp.optimizer.learning_rate == 0.05 and exp.seed == base.seed


@pytest.mark.slow  # three trainings with their evaluations: ~15 s of CPU
def test_trials_are_cached_experiments_and_the_study_extends() -> None:
    base = make_experiment(CONFIG)
    space = parse_space(SPACE, "test")
    cache = Path(os.environ["HBM_CACHE"])
    study = tune(base, space, trials=2)
    first = _results(cache)
    assert len(first) == 2
    assert all(t.state.name == "COMPLETE" for t in study.trials)
    # asking for more trials continues the same study; the finished ones are not retrained
    study = tune(base, space, trials=3)
    assert len(study.trials) == 3
    after = _results(cache)
    assert len(after) == 3
    assert all(after[k] == v for k, v in first.items())
    # each trial's value is its experiment's validation CE, never the test CE
    for t in study.trials:
        result = trial_experiment(base, t.params).run()
        assert t.value == pytest.approx(result["metrics"]["val_loss"], rel=1e-12)
        assert t.value != result["metrics"]["test_ce"]
    folder = study_folder(base, space)
    assert folder.parent == cache / "tune" and (folder / "journal.log").exists()
    assert len(open_study(folder).trials) == 3


@pytest.mark.slow
def test_kill_9_resumes_without_retraining_finished_trials(tmp_path: Path) -> None:
    cfg, space = tmp_path / "c.yaml", tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({**CONFIG, "training": {"max_steps": 60, "eval_every": 10}}))
    space.write_text(yaml.safe_dump(SPACE))
    cache = Path(os.environ["HBM_CACHE"])
    base = make_experiment(yaml.safe_load(cfg.read_text()))
    folder = study_folder(base, parse_space(SPACE, str(space)))
    argv = ["tune", str(cfg), "--space", str(space), "--trials", "4", "-q"]

    def asked_not_told() -> bool:
        if not (folder / "journal.log").exists():
            return False
        return any(t.state.name == "RUNNING" for t in open_study(folder).trials)

    proc = subprocess.Popen(
        [sys.executable, "-m", "hbm_experiments.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 240
        # two trials done and one asked (its experiment training): read from the journal, not
        # guessed from a pause, so a busy machine cannot let the kill land between two trials
        while len(_results(cache)) < 2 or not asked_not_told():
            assert proc.poll() is None, "the tuning ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finished = _results(cache)
    assert 2 <= len(finished) < 4
    before = open_study(folder).trials
    assert any(t.state.name == "RUNNING" for t in before)  # asked, never told
    assert main(argv) == 0
    study = open_study(folder)
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4  # adopted, not re-asked
    for t_before, t_after in zip(before, study.trials, strict=False):
        assert t_before.params == t_after.params
    after = _results(cache)
    assert len(after) == 4
    assert all(after[k] == v for k, v in finished.items())  # never trained again


def test_readme_space_example_is_a_valid_space(tmp_path: Path) -> None:
    import re

    readme = Path(__file__).parents[3] / "README.md"
    blocks = re.findall(r"```yaml\n(.*?)```", readme.read_text(), flags=re.DOTALL)
    example = next(b for b in blocks if "optimizer.learning_rate: {low" in b)
    path = tmp_path / "space.yaml"
    path.write_text(example)
    space = load_space(path, make_experiment(CONFIG))
    assert set(space) == {"optimizer.learning_rate", "training.batch_size", "model.hidden_size"}
    assert space["model.hidden_size"].choices == (16, 32, 64)
    assert space["optimizer.learning_rate"].log and space["training.batch_size"].kind == "int"


def test_local_waves_are_not_killed_at_submitits_two_minutes() -> None:
    from hbm_experiments.infra import LOCAL_TIMEOUT_MIN, local_timeout

    base = make_experiment(CONFIG)
    infra = {"cluster": "local", **local_timeout("local", None)}
    exp = trial_experiment(base, {"optimizer.learning_rate": 0.01}, **infra)
    assert exp.infra.timeout_min == LOCAL_TIMEOUT_MIN >= 24 * 60
    assert exp.infra.uid() == trial_experiment(base, {"optimizer.learning_rate": 0.01}).infra.uid()
    assert local_timeout("local", 30) == {} and local_timeout("slurm", None) == {}


def test_every_local_job_gets_a_time_limit_beyond_submitits_two_minutes(tmp_path: Path) -> None:
    """submitit's local executor kills a job after 2 minutes unless `timeout_min` is set: every
    local experiment (seeds, sweeps, demo), not only tuning waves, gets the long default."""
    from hbm_experiments import GAExperiment
    from hbm_experiments.infra import LOCAL_TIMEOUT_MIN

    base = {
        "dataset": "cartpole",
        "subject": "sim01",
        "training": {"max_generations": 1},
    }
    local = GAExperiment(**base, infra={"folder": str(tmp_path), "cluster": "local"})
    assert local.infra.timeout_min == LOCAL_TIMEOUT_MIN
    chosen = GAExperiment(
        **base, infra={"folder": str(tmp_path), "cluster": "local", "timeout_min": 30}
    )
    assert chosen.infra.timeout_min == 30
    inline = GAExperiment(**base, infra={"folder": str(tmp_path)})
    assert inline.infra.timeout_min is None
    assert local.infra.uid() == inline.infra.uid()  # a resource, not part of the cache key


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.mark.slow  # four trainings and one worker start: ~20 s of CPU
def test_local_waves_share_worker_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """`--parallel 2` without Slurm: each wave runs one trial here and one on a worker that
    the tuning started once (not a process per trial); the worker's INFO lines reach this
    process's handlers under `hbm`'s levels (root WARNING, hbm_experiments INFO)."""
    base = make_experiment(CONFIG)
    space = parse_space(SPACE, "test")
    cache = Path(os.environ["HBM_CACHE"])
    root, lg, handler = logging.getLogger(), logging.getLogger("hbm_experiments"), _Records()
    levels = root.level, lg.level
    monkeypatch.setattr(lg, "propagate", False)
    root.setLevel(logging.WARNING)
    lg.setLevel(logging.INFO)
    lg.addHandler(handler)
    try:
        study = tune(base, space, trials=4, parallel=2)
    finally:
        lg.removeHandler(handler)
        root.setLevel(levels[0])
        lg.setLevel(levels[1])
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    results = _results(cache)
    assert len(results) == 4
    pids = sorted(pid for _, pid in results.values())
    here = [p for p in pids if p == os.getpid()]
    workers = {p for p in pids if p != os.getpid()}
    assert len(here) == 2 and len(workers) == 1  # two waves, one worker for both
    worker_lines = [r.getMessage() for r in handler.records if r.process in workers]
    assert sum(": done, " in line for line in worker_lines) == 2  # its two trials' summaries
    # a worker's trial is the same cached experiment as one run here: read, never retrained
    for t in study.trials:
        result = trial_experiment(base, t.params).run()
        assert t.value == pytest.approx(result["metrics"]["val_loss"], rel=1e-12)
    assert _results(cache) == results


def _spawned_children(parent: int) -> list[int]:
    """The multiprocessing workers `parent` spawned (not its resource tracker)."""
    out = []
    for p in Path("/proc").iterdir():
        try:
            ppid = int((p / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            cmdline = (p / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"spawn_main" in cmdline:
            out.append(int(p.name))
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ")[-1].startswith("Z"))


@pytest.mark.slow
@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="workers die with their parent via prctl"
)
def test_kill_9_of_a_parallel_tuning_stops_its_workers_and_resumes(tmp_path: Path) -> None:
    cfg, space = tmp_path / "c.yaml", tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({**CONFIG, "training": {"max_steps": 400, "eval_every": 50}}))
    space.write_text(yaml.safe_dump(SPACE))
    cache = Path(os.environ["HBM_CACHE"])
    argv = ["tune", str(cfg), "--space", str(space), "--trials", "4", "--parallel", "2", "-q"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "hbm_experiments.cli", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while len(_results(cache)) < 2:  # the first wave done, the second one training
            assert proc.poll() is None, "the tuning ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        workers = _spawned_children(proc.pid)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert workers, "no worker process under the tuning"
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers):  # killed with their parent, not left training
        assert time.monotonic() < deadline, f"workers {workers} outlived the killed tuning"
        time.sleep(0.05)
    finished = _results(cache)
    assert 2 <= len(finished) < 4
    assert main(argv) == 0
    base = make_experiment(yaml.safe_load(cfg.read_text()))
    study = open_study(study_folder(base, parse_space(SPACE, str(space))))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4
    after = _results(cache)
    assert len(after) == 4
    assert all(after[k] == v for k, v in finished.items())  # never trained again
