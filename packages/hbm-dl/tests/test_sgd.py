from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import teacher_data
from hbm_dl import (
    HISTORY_FIELDS,
    CheckpointError,
    EpisodeData,
    FeedforwardMLP,
    Progress,
    RecurrentMLPReservoir,
    RecurrentMLPTrainable,
    checkpoint_info,
    evaluate,
    optimize_sgd,
)

MODELS = {
    "feedforward": lambda in_, out: FeedforwardMLP(in_, 50, out),
    "reservoir": lambda in_, out: RecurrentMLPReservoir(in_, 50, out),
    "trainable": lambda in_, out: RecurrentMLPTrainable(in_, 50, out),
    "trainable_full": lambda in_, out: RecurrentMLPTrainable(in_, 50, out, rank=None),
}


def episodes(obs: torch.Tensor, actions: torch.Tensor, length: int) -> EpisodeData:
    n = obs.shape[0]
    lengths = [length] * (n // length) + ([n % length] if n % length else [])
    return EpisodeData.from_arrays(obs, actions, lengths)


def memory_task(num_episodes: int, length: int, seed: int) -> EpisodeData:
    """A cue (±1) is shown at step 0 only; the action at every step is the cue's sign. Beyond
    step 0 the current observation says nothing about the action: only memory helps."""
    gen = torch.Generator().manual_seed(seed)
    cue = torch.randint(0, 2, (num_episodes,), generator=gen)
    obs = torch.randn(num_episodes, length, 3, generator=gen) * 0.3
    obs[:, 0, 0] = cue * 2.0 - 1.0
    obs[:, 1:, 0] = 0.0
    actions = cue[:, None].expand(num_episodes, length)
    return EpisodeData.from_arrays(obs.reshape(-1, 3), actions.reshape(-1), [length] * num_episodes)


def learn_teacher(
    kind: str, n_train: int, n_test: int, episode_length: int, **kwargs
) -> tuple[float, list[dict[str, float]]]:
    """Train a `kind` student on labels sampled from the random teacher of `teacher_data`;
    return the teacher's own test CE (the floor a student can approach) and the history."""
    from hbm_dl.metrics import cross_entropy

    obs, actions, _ = teacher_data(n_train)
    test_obs, test_actions, _ = teacher_data(n_test, seed=7)
    teacher = FeedforwardMLP(4, 16, 3, generator=torch.Generator().manual_seed(100))
    with torch.no_grad():
        floor = float(cross_entropy(teacher(test_obs) * 6.0, test_actions))
    if kind == "feedforward":
        train, test = (obs, actions), (test_obs, test_actions)
    else:
        train = episodes(obs, actions, episode_length)
        test = episodes(test_obs, test_actions, episode_length)
        kwargs["batch_size"] = 8
    result = optimize_sgd(MODELS[kind](4, 3), train, test, optimizer="adam", eval_every=None,
                          **kwargs)  # fmt: skip
    return floor, result.history


@pytest.mark.parametrize("kind", list(MODELS))
def test_learns_a_random_teacher(kind: str) -> None:
    epochs = 5 if kind == "feedforward" else 8
    floor, history = learn_teacher(kind, 4000, 1000, 20, learning_rate=1e-2, max_epochs=epochs)
    assert history[0]["test_ce"] > floor + 0.4
    assert history[-1]["test_ce"] < floor + 0.1, (kind, floor, [r["test_ce"] for r in history])
    assert history[-1]["test_accuracy"] > 0.7


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(MODELS))
def test_learns_a_random_teacher_closely(kind: str) -> None:
    floor, history = learn_teacher(kind, 20000, 4000, 50, learning_rate=3e-3, max_epochs=15)
    assert history[-1]["test_ce"] < floor + 0.03


@pytest.mark.parametrize("kind", ["reservoir", "trainable", "trainable_full"])
def test_recurrent_learns_memory_task_feedforward_cannot(kind: str) -> None:
    train, test = memory_task(200, 12, 0), memory_task(50, 12, 1)
    rec = optimize_sgd(
        MODELS[kind](3, 2),
        train,
        test,
        optimizer="adam",
        learning_rate=1e-2,
        batch_size=16,
        max_epochs=15,
        eval_every=None,
    ).history[-1]
    ff = optimize_sgd(
        MODELS["feedforward"](3, 2),
        (train.obs, train.actions),
        (test.obs, test.actions),
        optimizer="adam",
        learning_rate=1e-2,
        max_epochs=3,
        eval_every=None,
    ).history[-1]
    # Feedforward: right at step 0 only, chance after (CE ~ ln 2 on 11 of 12 steps).
    assert ff["test_ce"] > 0.55 and ff["test_accuracy"] < 0.65
    assert rec["test_ce"] < 0.1 and rec["test_accuracy"] > 0.97


def test_padding_never_changes_training() -> None:
    """Same episodes, batched with different padding partners and garbage in the padding:
    one update gives the same model (the loss is a mean over valid steps only)."""
    obs, actions, _ = teacher_data(60)
    lengths = [25, 10, 25]
    a = EpisodeData.from_arrays(obs, actions, lengths)
    models = []
    for data in (a, EpisodeData.from_arrays(obs, actions, lengths)):
        model = RecurrentMLPTrainable(4, 16, 3)
        if data is not a:  # poison the padding of the second copy
            padded = data.padded()
            padded.obs[~padded.mask] = 1e6
            padded.actions[~padded.mask] = 2
        optimize_sgd(model, data, a, batch_size=3, max_steps=1, eval_every=None, learning_rate=0.5)
        models.append(model)
    for key, value in models[0].state_dict().items():
        torch.testing.assert_close(value, models[1].state_dict()[key], rtol=0, atol=0)


def test_truncated_bptt() -> None:
    train = memory_task(16, 12, 0)
    results = {}
    for bptt in (None, 12, 50, 3):
        model = RecurrentMLPTrainable(3, 16, 2)
        r = optimize_sgd(
            model, train, train, batch_size=16, max_steps=1, bptt_length=bptt, learning_rate=0.5
        )
        results[bptt] = (r.history[-1]["train_loss"], model.state_dict())
    # The loss value never depends on truncation; the gradient does once chunks < length.
    for bptt in (12, 50, 3):
        assert results[bptt][0] == pytest.approx(results[None][0], rel=1e-6)
    for key in results[None][1]:
        torch.testing.assert_close(results[50][1][key], results[None][1][key])
    assert not torch.allclose(results[3][1]["recurrent_u"], results[None][1]["recurrent_u"])


def test_history_and_callbacks() -> None:
    obs, actions, _ = teacher_data(320)
    seen: list[Progress] = []
    result = optimize_sgd(
        FeedforwardMLP(4, 8, 3),
        (obs[:256], actions[:256]),
        (obs[256:], actions[256:]),
        max_steps=25,
        eval_every=10,
        callbacks=[seen.append],
    )
    assert [r["step"] for r in result.history] == [0, 10, 20, 25]
    assert all(tuple(r) == HISTORY_FIELDS for r in result.history)
    # one Progress per step (0 = before training); evaluated ones carry the history rows
    assert [p.step for p in seen] == list(range(26))
    evaluated = [p for p in seen if p.evaluated]
    assert [p.step for p in evaluated] == [0, 10, 20, 25]
    for p, row in zip(evaluated, result.history, strict=True):
        assert (p.train_loss, p.test_ce, p.test_f1, p.samples_seen) == (
            row["train_loss"],
            row["test_ce"],
            row["test_f1"],
            row["samples_seen"],
        )
    assert all(p.test_ce is None and p.test_f1 is None for p in seen if not p.evaluated)
    assert seen[3].samples_seen == 3 * 32 and result.samples_seen == 25 * 32
    assert result.history[-1]["epoch"] == pytest.approx(25 / 8)
    assert result.steps == 25 and result.stop_reason == "max_steps"
    elapsed = [r["elapsed"] for r in result.history]
    assert elapsed == sorted(elapsed) and result.elapsed >= elapsed[-1]
    assert result["test_loss_history"] == [r["test_ce"] for r in result.history]
    assert result["loss_history"] == [r["train_loss"] for r in result.history]
    # Epoch budget: 3 epochs of ceil(250 / 32) = 8 steps, evaluated at each epoch end.
    result = optimize_sgd(
        FeedforwardMLP(4, 8, 3),
        (obs[:250], actions[:250]),
        (obs[256:], actions[256:]),
        max_epochs=3,
        eval_every=None,
    )
    assert [r["step"] for r in result.history] == [0, 8, 16, 24]
    assert [r["epoch"] for r in result.history] == [0, 1, 2, 3]
    assert [r["samples_seen"] for r in result.history] == [0, 250, 500, 750]
    assert result.stop_reason == "max_epochs"


def test_callback_stops_the_run_and_it_resumes_exactly(tmp_path: Path) -> None:
    obs, actions, _ = teacher_data(320)
    train, test = (obs[:256], actions[:256]), (obs[256:], actions[256:])
    kwargs = dict(max_steps=30, eval_every=10, seed=4, checkpoint_every_seconds=None)
    straight = FeedforwardMLP(4, 8, 3)
    ref = optimize_sgd(straight, train, test, **kwargs)  # type: ignore[arg-type]

    path = tmp_path / "ckpt.pt"
    stopped = optimize_sgd(
        FeedforwardMLP(4, 8, 3),
        train,
        test,
        checkpoint_path=path,
        callbacks=[lambda p: p.step == 13],
        **kwargs,  # type: ignore[arg-type]
    )
    assert stopped.stop_reason == "callback" and stopped.steps == 13
    # the last row always describes the returned model: a closing evaluation at step 13
    assert [r["step"] for r in stopped.history] == [0, 10, 13]
    assert checkpoint_info(path).step == 13  # final checkpoint written
    model = FeedforwardMLP(4, 8, 3)
    resumed = optimize_sgd(model, train, test, checkpoint_path=path, **kwargs)  # type: ignore[arg-type]
    assert resumed.resumed_from == 13 and resumed.stop_reason == "max_steps"
    assert without_elapsed(resumed.history) == without_elapsed(ref.history)
    for key, value in straight.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key


def test_last_row_equals_evaluate_of_the_returned_model() -> None:
    obs, actions, _ = teacher_data(400)
    test = episodes(obs[300:], actions[300:], 20)
    result = optimize_sgd(
        RecurrentMLPTrainable(4, 16, 3),
        episodes(obs[:300], actions[:300], 15),
        test,
        batch_size=4,
        max_steps=7,
        eval_every=5,
        f1_samples=6,
        seed=9,
    )
    last = result.history[-1]
    assert last["step"] == 7
    # the same function on the same inputs: exactly the row's values
    again = evaluate(result.model, test, f1_samples=6, seed=9, step=last["step"])
    assert (again["ce"], again["accuracy"], again["f1"]) == (
        last["test_ce"],
        last["test_accuracy"],
        last["test_f1"],
    )
    other_step = evaluate(result.model, test, f1_samples=6, seed=9, step=6)
    assert other_step["f1"] != last["test_f1"] and other_step["ce"] == last["test_ce"]


def test_without_test_data_and_with_a_time_cadence() -> None:
    obs, actions, _ = teacher_data(320)
    result = optimize_sgd(
        FeedforwardMLP(4, 8, 3), (obs, actions), None, max_steps=12, eval_every=None,
        eval_every_seconds=1e-9,
    )  # fmt: skip
    assert [r["step"] for r in result.history] == list(range(13))
    assert all(r["test_ce"] is None and r["test_f1"] is None for r in result.history)
    assert result.test_loss_history == []


def test_time_budget_stops() -> None:
    obs, actions, _ = teacher_data(320)
    result = optimize_sgd(
        FeedforwardMLP(4, 8, 3), (obs, actions), (obs, actions), max_time=0.3, eval_every=None
    )
    assert result.stop_reason == "max_time" and result.steps > 0
    assert result.history[-1]["elapsed"] >= 0.3


def test_no_global_rng_and_reproducible() -> None:
    obs, actions, _ = teacher_data(200)
    data = episodes(obs, actions, 10)
    before = torch.random.get_rng_state()
    runs = []
    for _ in range(2):
        model = RecurrentMLPReservoir(4, 16, 3, generator=torch.Generator().manual_seed(5))
        r = optimize_sgd(model, data, data, optimizer="adam", batch_size=4, max_steps=12, seed=3)
        runs.append((model.state_dict(), [dict(h, elapsed=0) for h in r.history]))
    assert torch.equal(torch.random.get_rng_state(), before)
    assert runs[0][1] == runs[1][1]
    for key, value in runs[0][0].items():
        assert torch.equal(value, runs[1][0][key])
    other = RecurrentMLPReservoir(4, 16, 3, generator=torch.Generator().manual_seed(5))
    optimize_sgd(other, data, data, optimizer="adam", batch_size=4, max_steps=12, seed=4)
    assert not torch.equal(other.input.weight, runs[0][0]["input.weight"])


class Crash(Exception):
    pass


def crash_at(step: int):
    def callback(progress: Progress) -> None:
        if progress.step >= step:
            raise Crash

    return callback


def without_elapsed(history: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{k: v for k, v in row.items() if k != "elapsed"} for row in history]


@pytest.mark.parametrize("kind", ["feedforward", "trainable"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_resume_is_bitwise_identical(tmp_path: Path, kind: str, optimizer: str) -> None:
    obs, actions, _ = teacher_data(400)
    if kind == "feedforward":
        train, test, batch = (obs[:300], actions[:300]), (obs[300:], actions[300:]), 32
    else:
        train, test, batch = (
            episodes(obs[:300], actions[:300], 15),
            episodes(obs[300:], actions[300:], 20),
            4,
        )
    kwargs = dict(
        optimizer=optimizer,
        learning_rate=1e-2,
        batch_size=batch,
        max_steps=40,
        eval_every=6,
        seed=11,
        checkpoint_every=7,
        checkpoint_every_seconds=None,
    )
    straight = MODELS[kind](4, 3)
    ref = optimize_sgd(straight, train, test, checkpoint_path=tmp_path / "a.pt", **kwargs)

    path = tmp_path / "b.pt"
    with pytest.raises(Crash):  # dies at step 24, mid-epoch; last checkpoint at step 21
        optimize_sgd(
            MODELS[kind](4, 3),
            train,
            test,
            checkpoint_path=path,
            callbacks=[crash_at(24)],
            **kwargs,
        )
    resumed_model = MODELS[kind](
        4,
        3,
    )
    stored_elapsed = checkpoint_info(path).elapsed
    resumed = optimize_sgd(resumed_model, train, test, checkpoint_path=path, **kwargs)
    assert ref.resumed_from is None and resumed.resumed_from == 21
    assert resumed.checkpoint_time is not None
    assert without_elapsed(resumed.history) == without_elapsed(ref.history)
    # time counts every process: the resumed run's clock starts at the checkpoint's
    assert resumed.elapsed > stored_elapsed
    assert resumed.history[-1]["elapsed"] > stored_elapsed
    for key, value in straight.state_dict().items():
        assert torch.equal(value, resumed_model.state_dict()[key]), key
    # A finished run resumed to the same budget does no work and returns the same result.
    again_model = MODELS[kind](4, 3)
    again = optimize_sgd(again_model, train, test, checkpoint_path=path, **kwargs)
    assert without_elapsed(again.history) == without_elapsed(ref.history)
    assert torch.equal(
        next(iter(again_model.state_dict().values())), next(iter(straight.state_dict().values()))
    )


def test_extending_the_budget_continues_exactly(tmp_path: Path) -> None:
    obs, actions, _ = teacher_data(300)
    data = (obs, actions)
    kwargs = dict(optimizer="adam", eval_every=5, seed=2)
    straight = FeedforwardMLP(4, 8, 3)
    optimize_sgd(straight, data, data, max_steps=30, **kwargs)
    split = FeedforwardMLP(4, 8, 3)
    optimize_sgd(split, data, data, max_steps=15, checkpoint_path=tmp_path / "c.pt", **kwargs)
    r = optimize_sgd(split, data, data, max_steps=30, checkpoint_path=tmp_path / "c.pt", **kwargs)
    assert r.steps == 30
    for key, value in straight.state_dict().items():
        assert torch.equal(value, split.state_dict()[key])
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temp files left behind


def test_corrupt_or_foreign_checkpoint_is_refused_and_kept(tmp_path: Path) -> None:
    obs, actions, _ = teacher_data(100)
    data = (obs, actions)
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match=r"ckpt\.pt.*cannot read"):
        optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=2, checkpoint_path=path)
    assert path.read_bytes() == b"not a checkpoint at all"

    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointError, match="field 'format'"):
        optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=2, checkpoint_path=path)

    good = tmp_path / "good.pt"
    optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=2, checkpoint_path=good)
    content = good.read_bytes()
    with pytest.raises(CheckpointError, match=r"good\.pt.*fingerprint\.hbm_dl\.learning_rate"):
        optimize_sgd(
            FeedforwardMLP(4, 8, 3),
            data,
            data,
            max_steps=4,
            learning_rate=0.1,
            checkpoint_path=good,
        )
    with pytest.raises(CheckpointError, match=r"fingerprint\.hbm_dl\.model\.shapes"):
        optimize_sgd(FeedforwardMLP(4, 9, 3), data, data, max_steps=4, checkpoint_path=good)
    assert good.read_bytes() == content
    good.write_bytes(content[: len(content) // 2])  # truncated by a crash of something else
    with pytest.raises(CheckpointError, match=r"good\.pt"):
        optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=4, checkpoint_path=good)


def test_bad_arguments_are_explained() -> None:
    obs, actions, _ = teacher_data(50)
    data = (obs, actions)
    with pytest.raises(ValueError, match="needs a budget"):
        optimize_sgd(FeedforwardMLP(4, 8, 3), data, data)
    with pytest.raises(ValueError, match="optimizer must be"):
        optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=1, optimizer="rmsprop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs episode boundaries"):
        optimize_sgd(RecurrentMLPReservoir(4, 8, 3), data, data, max_steps=1)
    with pytest.raises(ValueError, match="input_size is 5"):
        optimize_sgd(FeedforwardMLP(5, 8, 3), data, data, max_steps=1)
    with pytest.raises(ValueError, match="out of range"):
        optimize_sgd(FeedforwardMLP(4, 8, 2), data, data, max_steps=1)
    with pytest.raises(ValueError, match="max_steps"):
        optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=0)
    with pytest.raises(ValueError, match="recurrent models only"):
        optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=1, bptt_length=4)
    with pytest.raises(TypeError, match="train_data must be EpisodeData"):
        optimize_sgd(FeedforwardMLP(4, 8, 3), [obs, actions], data, max_steps=1)  # type: ignore[arg-type]


def test_feedforward_ignores_episode_boundaries() -> None:
    obs, actions, _ = teacher_data(100)
    with_eps, plain = FeedforwardMLP(4, 8, 3), FeedforwardMLP(4, 8, 3)
    optimize_sgd(with_eps, episodes(obs, actions, 7), (obs, actions), max_steps=5)
    optimize_sgd(plain, (obs, actions), (obs, actions), max_steps=5)
    assert torch.equal(with_eps.output.weight, plain.output.weight)
    assert math.isfinite(float(plain.output.weight.detach().sum()))


def test_foreign_checkpoint_is_refused_with_the_field_named(tmp_path: Path) -> None:
    obs, actions, _ = teacher_data(100)
    data = (obs, actions)
    path = tmp_path / "ckpt.pt"
    mine = {"config": {"data": {"subject": "sim01"}, "seed": 1}, "data_hash": "abc"}
    optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=3, seed=1, fingerprint=mine,
                 checkpoint_path=path)  # fmt: skip
    content = path.read_bytes()
    assert checkpoint_info(path).fingerprint["config"] == mine["config"]
    with pytest.raises(CheckpointError, match=r"ckpt\.pt.*fingerprint\.hbm_dl\.seed is 1 in the"):
        optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=6, seed=2, fingerprint=mine,
                     checkpoint_path=path)  # fmt: skip
    other = {"config": {"data": {"subject": "sim02"}, "seed": 1}, "data_hash": "abc"}
    with pytest.raises(CheckpointError) as err:
        optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=6, seed=1, fingerprint=other,
                     checkpoint_path=path)  # fmt: skip
    message = str(err.value)
    assert "fingerprint.config.data.subject is 'sim01' in the checkpoint, 'sim02' now" in message
    assert "hbm_dl" not in message  # only what differs is named
    with pytest.raises(CheckpointError, match=r"fingerprint\.data_hash is 'abc'.*absent now"):
        optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=6, seed=1,
                     checkpoint_path=path)  # fmt: skip
    with pytest.raises(ValueError, match="reserved"):
        optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=1, fingerprint={"hbm_dl": 1})
    with pytest.raises(TypeError, match="JSON"):
        optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=1, fingerprint={"x": object()})
    assert path.read_bytes() == content
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    # the same run resumes: a larger budget continues from step 3
    again = optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=6, seed=1,
                         fingerprint=mine, checkpoint_path=path)  # fmt: skip
    assert again.resumed_from == 3 and again.steps == 6


def test_resume_false_starts_afresh_and_replaces_the_file(tmp_path: Path) -> None:
    obs, actions, _ = teacher_data(100)
    data = (obs, actions)
    path = tmp_path / "ckpt.pt"
    path.write_bytes(b"garbage of another program")
    fresh = FeedforwardMLP(4, 8, 3)
    ref = optimize_sgd(fresh, data, data, max_steps=4, seed=2)
    model = FeedforwardMLP(4, 8, 3)
    result = optimize_sgd(
        model, data, data, max_steps=4, seed=2, checkpoint_path=path, resume=False,
        checkpoint_every_seconds=None,
    )  # fmt: skip
    assert result.resumed_from is None
    assert without_elapsed(result.history) == without_elapsed(ref.history)
    assert checkpoint_info(path).step == 4
    # a foreign run's checkpoint is replaced too, and the new one resumes normally
    result = optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=2, seed=3,
                          checkpoint_path=path, resume=False)  # fmt: skip
    assert checkpoint_info(path).fingerprint["hbm_dl"]["seed"] == 3
    again = optimize_sgd(FeedforwardMLP(4, 8, 3), data, data, max_steps=2, seed=3,
                         checkpoint_path=path)  # fmt: skip
    assert again.resumed_from == 2
