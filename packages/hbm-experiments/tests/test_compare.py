"""`hbm compare`'s verdict: paired statistics against scipy on a known example, the budget
note, the written files, and the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hbm_experiments.cli import build_parser
from hbm_experiments.compare import build_verdict, verdict_markdown, write_verdict
from hbm_experiments.method_defaults import unchecked_defaults
from scipy import stats

SEEDS = list(range(6))
BASE = np.array([0.52, 0.47, 0.55, 0.50, 0.49, 0.53])
# adam clearly lower than ga on every seed; cmaes equal to adam up to noise of both signs
CE = {
    "adam_feedforward": BASE,
    "ga_feedforward": BASE + np.array([0.06, 0.04, 0.05, 0.07, 0.05, 0.06]),
    "cmaes_feedforward": BASE + np.array([0.01, -0.012, 0.004, -0.006, 0.009, -0.008]),
}


def _results(budget: Any = None) -> dict[str, list[dict[str, Any] | None]]:
    b = {"max_samples": 1000} if budget is None else budget
    return {
        m: [{"metrics": {"test_ce": float(v)}, "budget": b} for v in values]
        for m, values in CE.items()
    }


def _holm(p: list[float]) -> list[float]:
    """Holm (1979), written out: the k-th smallest p times (m - k), running max, cap 1."""
    order = np.argsort(p)
    out = np.empty(len(p))
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - k) * p[i]))
        out[i] = running
    return list(out)


def test_paired_statistics_match_scipy_and_holm() -> None:
    v = build_verdict(_results(), subject="sim01", dataset="cartpole", seeds=SEEDS)
    ranked = [m for m, _ in v.rankings["test CE"]]
    assert ranked[-1] == "ga_feedforward"  # highest mean test CE last
    rows = v.comparisons["test CE"]
    assert len(rows) == 3
    raw_p = []
    for a, b, _, _ in rows:
        raw_p.append(float(stats.ttest_rel(CE[a], CE[b]).pvalue))
    expected_adj = _holm(raw_p)
    for (a, b, c, _), p_adj in zip(rows, expected_adj, strict=True):
        ref = stats.ttest_rel(CE[a], CE[b])
        ci = ref.confidence_interval(0.95)
        assert c.n == len(SEEDS)
        assert c.delta == pytest.approx(float(np.mean(CE[a] - CE[b])), abs=1e-12)
        assert c.low == pytest.approx(float(ci.low), abs=1e-12)
        assert c.high == pytest.approx(float(ci.high), abs=1e-12)
        assert c.p_value == pytest.approx(float(ref.pvalue), rel=1e-12)
        assert c.p_adjusted == pytest.approx(p_adj, rel=1e-12)
    sentences = {frozenset((a, b)): s for a, b, _, s in rows}
    win = sentences[frozenset(("adam_feedforward", "ga_feedforward"))]
    assert win.startswith("adam_feedforward predicts sim01's actions better than ga_feedforward")
    assert "6 seeds" in win
    tie = sentences[frozenset(("adam_feedforward", "cmaes_feedforward"))]
    assert "cannot tell apart" in tie


def test_same_budget_is_stated_and_different_budgets_are_flagged() -> None:
    same = verdict_markdown(
        build_verdict(_results(), subject="sim01", dataset="cartpole", seeds=SEEDS)
    )
    assert "different budgets" not in same
    assert "max_samples" in same
    mixed = _results()
    mixed["ga_feedforward"] = [
        {**r, "budget": {"max_samples": 2000}} for r in mixed["ga_feedforward"] if r
    ]
    text = verdict_markdown(build_verdict(mixed, subject="sim01", dataset="cartpole", seeds=SEEDS))
    assert "different budgets" in text
    assert "2000" in text and "1000" in text


def test_learners_at_defaults_never_checked_against_tuning_are_named() -> None:
    assert unchecked_defaults(["ga_feedforward", "adam_feedforward", "ga_recurrent"]) == [
        "ga_recurrent"
    ]
    plain = verdict_markdown(
        build_verdict(_results(), subject="sim01", dataset="cartpole", seeds=SEEDS)
    )
    assert "never measured against tuning" not in plain
    noted = build_verdict(
        _results(), subject="sim01", dataset="cartpole", seeds=SEEDS, unchecked=["ga_recurrent"]
    )
    assert "ga_recurrent ran untuned" in verdict_markdown(noted)


def test_failed_seed_is_named_and_left_out_of_pairs(tmp_path: Path) -> None:
    res = _results()
    res["ga_feedforward"][2] = None
    v = build_verdict(res, subject="sim01", dataset="cartpole", seeds=SEEDS)
    assert any("seeds [2] failed" in w for w in v.warnings)
    pair = next(c for a, b, c, _ in v.comparisons["test CE"] if "ga_feedforward" in (a, b))
    assert pair.n == len(SEEDS) - 1
    files = write_verdict(v, tmp_path / "out")
    assert [f.name for f in files] == ["verdict.md", "verdict.html"]
    page = files[1].read_text()
    assert page.startswith("<!doctype html>") and "cannot tell apart" in page


def test_cli_parses_tune_and_compare() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["compare", "--subject", "sim01", "--dataset", "cartpole", "--methods", "ga_feedforward",
         "adam_feedforward", "--budget-samples", "5000", "--seeds", "3", "--tune-trials", "4",
         "--set", "adam_feedforward:training.batch_size=64"]
    )  # fmt: skip
    assert args.methods == ["ga_feedforward", "adam_feedforward"]
    assert (args.budget_samples, args.seeds, args.tune_trials) == (5000, 3, 4)
    assert callable(args.handler)
    args = parser.parse_args(["tune", "c.yaml", "--trials", "8", "--parallel", "2"])
    assert (args.trials, args.parallel, args.space, args.show) == (8, 2, "default", False)
    with pytest.raises(SystemExit):
        parser.parse_args(["compare", "--subject", "sim01", "--dataset", "cartpole"])


@pytest.mark.slow  # eight small trainings with their evaluations
def test_compare_end_to_end_tunes_then_runs_every_learner_on_the_same_seeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hbm_experiments.cli import main
    from hbm_experiments.status import find_experiments

    out = tmp_path / "verdict"
    argv = ["compare", "--subject", "sim01", "--dataset", "cartpole",
            "--methods", "ga_feedforward", "adam_feedforward", "--budget-samples", "3000",
            "--seeds", "2", "--tune-trials", "2", "--set", "model.hidden_size=4",
            "--set", "ga_feedforward:training.batch_size=64",
            "--set", "adam_feedforward:training.eval_every=50",
            "--out", str(out), "-q"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "# Verdict: cartpole, sim01 (2 seeds)" in text
    assert "different budgets" not in text and '{"max_samples": 3000}' in text
    assert (out / "verdict.md").read_text().strip() == text.split("\nwrote ")[0].strip()
    assert (out / "verdict.html").exists()
    records = find_experiments(load_results=True)
    runs = [r.result for r in records if r.result is not None]
    by_seed = {(r["method"], r["seed"]) for r in runs}
    # 2 tuning trials per learner on the tuning seed, then seeds 0 and 1 for both learners
    assert {s for m, s in by_seed} == {0, 1, 1000}
    assert sum(1 for r in runs if r["seed"] == 1000) == 4
    for m in ("ga_feedforward", "adam_feedforward"):
        assert {(m, 0), (m, 1)} <= by_seed
    assert all(r["budget"] == {"max_samples": 3000} for r in runs)
    # a second call reads everything from the cache: nothing trained again
    stamps = {r.folder: (r.folder / "result.json").stat().st_mtime_ns for r in records}
    assert main(argv) == 0
    again = find_experiments()
    assert {r.folder: (r.folder / "result.json").stat().st_mtime_ns for r in again} == stamps


def test_local_waves_share_one_set_of_worker_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """`run_waves` starts its local workers once for all its waves (a set per wave would pay
    every worker's imports again), hands that set to each wave, and keeps the input order."""
    import contextlib
    from types import SimpleNamespace

    from hbm_experiments import compare, tune

    started: list[tuple[str | None, int]] = []
    waves: list[tuple[list[int], Any]] = []
    pool = object()

    @contextlib.contextmanager
    def fake_workers(cluster: str | None, parallel: int) -> Any:
        started.append((cluster, parallel))
        yield pool

    def fake_run_wave(exps: Any, *, retry: bool, max_workers: int, workers: Any) -> list[Any]:
        waves.append(([e.n for e in exps], workers))
        return [{"n": e.n} for e in exps]

    monkeypatch.setattr(tune, "wave_workers", fake_workers)
    monkeypatch.setattr(tune, "run_wave", fake_run_wave)
    exps = [SimpleNamespace(n=i, infra=SimpleNamespace(cluster="local")) for i in range(5)]
    out = compare.run_waves(exps, parallel=2)  # type: ignore[arg-type]
    assert started == [("local", 2)]
    assert waves == [([0, 1], pool), ([2, 3], pool), ([4], pool)]
    assert [r["n"] for r in out if r is not None] == [0, 1, 2, 3, 4]
