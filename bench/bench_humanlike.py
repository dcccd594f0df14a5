"""Human-likeness metrics (`hbm_experiments.humanlike`) against the rollouts they judge.

The person is `sim01` with 20 held-out episodes; the model a quick behaviour clone of the
person (full-batch Adam, so its episodes last about as long as the person's). Figures
(same-process ratios, timed in alternation, one torch and one BLAS thread):
- `metrics/1 model`: all humanlike metrics for one model (teacher-forced accuracies, the
  person's side, holds, switches, state JSD, discriminator with 5 grouped folds, session ρ),
  against the matched-seed rollout alone (`hbm_ne.envs.evaluate_module`, what the behaviour
  evaluation already pays). Ratio = rollout time / metrics time; target ≥ 1 (the metrics cost
  less than the rollouts).
- `recording/1 model`: the trajectory-recording rollout (`record_rollouts`) against the plain
  one: the price of keeping every observation and action.
- `metrics/64 models`: the same for a population of 64 (the clone plus noise), the person's side
  computed once, against one batched rollout of all 64 (`hbm_ne.envs.rollout`); and without the
  discriminator (`discriminator=False`), the one metric that does not batch (a classifier per
  model, cross-validated: its cost grows with the members while the batched rollout's barely
  does, so that row is reported without a target; the rest has one). `--quick`: CartPole only,
  16 members.
- `validity/1 draw`: one draw of the validity suite (`hbm validate`) on CartPole, against
  simulating one player's recording; the draws' null rates and random detection in `extra`.
  Once per protocol: the holdout's target (4-6 held-out episodes, 5 candidates per seed) and
  cross-fitting's (every episode of the person, 2 candidates per seed).
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile

import torch
from _harness import Result, interleaved, torch_threads
from hbm_data import load_human_data
from hbm_experiments import humanlike as H
from hbm_ne import BatchedFeedforward
from hbm_ne.envs import evaluate_module, rollout

SUITE = "humanlike"
EPISODES = 20


def _clone(data, steps: int = 300) -> torch.nn.Module:  # type: ignore[no-untyped-def]
    import hbm_dl

    meta = data.metadata
    gen = torch.Generator().manual_seed(0)
    model = hbm_dl.FeedforwardMLP(meta.input_size, 32, meta.num_actions, generator=gen)
    x, y = torch.as_tensor(data.train_obs), torch.as_tensor(data.train_act)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def _population(model: torch.nn.Module, size: int) -> BatchedFeedforward:
    sd = model.state_dict()
    hidden = (int(sd["hidden.0.weight"].shape[0]),)
    pop = BatchedFeedforward(
        int(sd["hidden.0.weight"].shape[1]), int(sd["output.weight"].shape[0]), size, hidden
    )
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, view in pop.views().items():
            view.copy_(sd[name].expand_as(view))
            view.add_(torch.randn(view.shape, generator=gen) * 0.05)
    return pop


def _bench_env(env: str, data_dir: str, repeat: int, members: int) -> list[Result]:
    full = load_human_data(env, "sim01", holdout_pct=0.4, data_dir=data_dir)
    meta = full.metadata
    n = min(EPISODES, meta.n_test)
    # keep the first n held-out episodes: a HumanData whose test split is those
    keep = meta.test_episodes[:n]
    stop = keep[-1].start + keep[-1].length
    data = full._replace(
        test_obs=full.test_obs[:stop],
        test_act=full.test_act[:stop],
        metadata=dataclasses.replace(meta, test_episodes=tuple(keep)),
    )
    model = _clone(full)
    seeds = [e.seed for e in keep]
    person = H.Trajectories.from_human(data)
    gen_seed = 5

    def plain_rollout() -> object:
        return evaluate_module(
            model, meta.env_id, seeds, generator=torch.Generator().manual_seed(gen_seed)
        )

    def recorded_rollout() -> object:
        return H.record_rollouts(
            model, meta.env_id, seeds, generator=torch.Generator().manual_seed(gen_seed)
        )

    (traj,) = H.record_rollouts(
        model, meta.env_id, seeds, generator=torch.Generator().manual_seed(gen_seed)
    )

    def metrics_one() -> object:
        target = H.HumanlikeTarget(person, env)
        pred = H.predict_actions(model, data.test_obs, meta.test_episode_lengths)
        return target.score(traj, pred[0])

    pop = _population(model, members)
    trajs = H.record_rollouts(
        pop, meta.env_id, seeds, generator=torch.Generator().manual_seed(gen_seed)
    )
    target = H.HumanlikeTarget(person, env)

    def pop_rollout() -> object:
        return rollout(pop, meta.env_id, seeds, generator=torch.Generator().manual_seed(gen_seed))

    def metrics_pop(discriminator: bool = True) -> object:
        pred = H.predict_actions(pop, data.test_obs, meta.test_episode_lengths)
        return [target.score(t, pred[i], discriminator=discriminator) for i, t in enumerate(trajs)]

    t = interleaved(
        {"plain": plain_rollout, "recorded": recorded_rollout, "metrics": metrics_one},
        repeat=repeat,
    )
    tp = interleaved(
        {
            "rollout": pop_rollout,
            "metrics": metrics_pop,
            "cheap": lambda: metrics_pop(discriminator=False),
        },
        repeat=1,
    )
    steps = int(traj.lengths.sum())
    extra = {"episodes": n, "model_steps": steps, "person_steps": len(data.test_act)}
    return [
        Result(SUITE, f"metrics/1 model ({env})", "s", t["metrics"], "rollout alone",
               t["plain"], higher_is_better=False, target=1.0, extra=extra),
        Result(SUITE, f"recording/1 model ({env})", "s", t["recorded"], "plain rollout",
               t["plain"], higher_is_better=False, extra=extra),
        Result(SUITE, f"metrics/{members} models ({env})", "s", tp["metrics"],
               f"batched rollout of {members}", tp["rollout"], higher_is_better=False,
               extra={**extra, "members": members,
                                  "metrics_per_model_s": tp["metrics"] / members}),
        Result(SUITE, f"metrics without discriminator/{members} models ({env})", "s",
               tp["cheap"], f"batched rollout of {members}", tp["rollout"],
               higher_is_better=False, target=1.0, extra={**extra, "members": members}),
    ]  # fmt: skip


def _bench_validity(env: str, draws: int, protocol: str = "holdout", repeats: int = 5) -> Result:
    """The validity suite's cost per draw (4 players, each scored against the 4 styles and
    random play, every test with its relabellings), against simulating one player's whole
    recording (what a draw's candidates cost to make); the rates of those draws ride along."""
    import time

    from hbm_data import SIMULATED_PROFILES, simulate_subject
    from hbm_experiments.humanlike.validity import run_suite

    t0 = time.perf_counter()
    simulate_subject(env, SIMULATED_PROFILES["sim01"].with_seed(12345))
    sim = time.perf_counter() - t0
    suite = run_suite([env], draws=draws, pool=6, repeats=repeats, protocol=protocol)
    games = suite["games"][env]
    per_draw = suite["seconds"] / draws  # people simulated included
    rates = {k: (r.get("null_fpr"), r.get("random_detection")) for k, r in games.items()}
    extra = {"draws": draws, "pool": 6, "repeats": repeats, "protocol": protocol,
             "null_rate_and_random_detection": rates,
             "identification_combined": games["combined"]["identification"]}  # fmt: skip
    return Result(SUITE, f"validity/1 draw ({env}, {protocol})", "s", per_draw,
                  "simulating one player",
                  sim, higher_is_better=False, extra=extra)  # fmt: skip


def run(args: argparse.Namespace) -> list[Result]:
    repeat = 3 if args.quick else 7
    envs = ["cartpole"] if args.quick else ["cartpole", "acrobot", "lunarlander"]
    members = 16 if args.quick else 64
    results: list[Result] = []
    with torch_threads(1), H._one_blas_thread(), tempfile.TemporaryDirectory() as tmp:
        for env in envs:
            results += _bench_env(env, tmp, repeat, members=members)
        results.append(_bench_validity("cartpole", 2 if args.quick else 5))
        results.append(
            _bench_validity("cartpole", 1 if args.quick else 3, protocol="crossfit", repeats=2)
        )
    return results
