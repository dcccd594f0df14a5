"""hbm-dl: `optimize_sgd` throughput against hand-written torch loops in the same process.

- `sgd_mlp_*`: steps/s at batch 32 for `FeedforwardMLP` 4-50-2 (CartPole sizes), one epoch per
  timed call, evaluations included, against (a) a minimal hand-written loop over a pre-shuffled
  tensor with the same model and `torch.optim.SGD` defaults, (b) the same loop fed by
  `DataLoader(TensorDataset, shuffle=True)`. Targets: >= 1.0x and >= 1.4x.
- `episodes_*`: episodes/s training 50-unit recurrent models on whole padded episodes (batch 32
  episodes, lengths 100-300, masked loss, Adam), against the same model written with
  `torch.nn.RNN` + `nn.Linear` in a hand-written loop.

Runs with one intra-op thread (restored afterwards): batch-32 steps are pure overhead and 2-thread
OpenMP spin-waiting on a shared 2-core machine only adds noise.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _harness import Result, interleaved, torch_threads
from hbm_dl import (
    EpisodeData,
    FeedforwardMLP,
    RecurrentMLPReservoir,
    RecurrentMLPTrainable,
    optimize_sgd,
)
from hbm_dl.metrics import cross_entropy
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

SUITE = "dl"
NO_EVAL = 10**9  # only the step-0 and final evaluations (the hand-written loops evaluate nothing)


def _mlp_figures(device: torch.device, quick: bool) -> list[Result]:
    n, batch = (8_000 if quick else 32_000), 32
    gen = torch.Generator().manual_seed(0)
    obs = torch.randn(n, 4, generator=gen)
    actions = (obs[:, 0] + obs[:, 2] > 0).long()
    test = (obs[:1000], actions[:1000])
    x, y = obs.to(device), actions.to(device)
    steps_per_epoch = math.ceil(n / batch)

    ours = FeedforwardMLP(4, 50, 2, device=device)
    seed = {"n": 0}

    def run_ours() -> None:
        seed["n"] += 1
        optimize_sgd(
            ours, (x, y), test, learning_rate=1e-3, batch_size=batch, max_epochs=1,
            eval_every=NO_EVAL, seed=seed["n"], device=device,
        )  # fmt: skip

    hand = FeedforwardMLP(4, 50, 2, device=device)
    hand_opt = torch.optim.SGD(hand.parameters(), lr=1e-3)
    hand_gen = torch.Generator().manual_seed(0)

    def run_hand() -> None:
        perm = torch.randperm(n, generator=hand_gen).to(device)
        xs, ys = x[perm], y[perm]
        for i in range(0, n, batch):
            hand_opt.zero_grad()
            loss = F.cross_entropy(hand(xs[i : i + batch]), ys[i : i + batch])
            loss.backward()
            hand_opt.step()

    loader_model = FeedforwardMLP(4, 50, 2, device=device)
    loader_opt = torch.optim.SGD(loader_model.parameters(), lr=1e-3)
    loader = DataLoader(
        TensorDataset(obs, actions), batch_size=batch, shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip

    def run_loader() -> None:
        for xb, yb in loader:
            loader_opt.zero_grad()
            loss = F.cross_entropy(loader_model(xb.to(device)), yb.to(device))
            loss.backward()
            loader_opt.step()

    times = interleaved(
        {"ours": run_ours, "hand": run_hand, "loader": run_loader}, repeat=3 if quick else 5
    )
    rate = {k: steps_per_epoch / v for k, v in times.items()}
    extra = {"n": n, "batch_size": batch, "steps_per_epoch": steps_per_epoch}
    return [
        Result(SUITE, "sgd_mlp_vs_handwritten", "steps/s", rate["ours"],
               "hand-written loop", rate["hand"], target=1.0, extra=extra),
        Result(SUITE, "sgd_mlp_vs_dataloader", "steps/s", rate["ours"],
               "DataLoader loop", rate["loader"], target=1.4, extra=extra),
    ]  # fmt: skip


class _TorchRNNModel(nn.Module):
    """The same recurrent model written with `nn.RNN` (full W_hh, frozen for the reservoir)."""

    def __init__(self, reservoir: bool) -> None:
        super().__init__()
        self.rnn = nn.RNN(4, 50, batch_first=True)
        self.readout = nn.Linear(50, 2)
        if reservoir:
            self.rnn.weight_hh_l0.requires_grad_(False)
            self.rnn.bias_hh_l0.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.rnn(x)[0])


def _recurrent_figures(device: torch.device, quick: bool) -> list[Result]:
    num_episodes, batch, epochs = (96 if quick else 256), 32, 4
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(100, 301, (num_episodes,), generator=gen).tolist()
    obs = torch.randn(sum(lengths), 4, generator=gen)
    actions = (obs[:, 0] > 0).long()
    data = EpisodeData.from_arrays(obs, actions, lengths, device=device)
    test = EpisodeData.from_arrays(obs[: sum(lengths[:4])], actions[: sum(lengths[:4])],
                                   lengths[:4], device=device)  # fmt: skip
    padded = data.padded()
    lengths_t = torch.tensor(lengths)

    def hand_loop(model: nn.Module) -> Callable[[], None]:
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        g = torch.Generator().manual_seed(0)

        def run() -> None:
            for _ in range(epochs):
                perm = torch.randperm(num_episodes, generator=g)
                for i in range(0, num_episodes, batch):
                    idx = perm[i : i + batch]
                    t = int(lengths_t[idx].max())
                    idx = idx.to(device)
                    opt.zero_grad()
                    logits = model(padded.obs[idx, :t])
                    loss = cross_entropy(logits, padded.actions[idx, :t], padded.mask[idx, :t])
                    loss.backward()
                    opt.step()

        return run

    def ours_loop(model: nn.Module) -> Callable[[], None]:
        seed = {"n": 0}

        def run() -> None:
            seed["n"] += 1
            optimize_sgd(
                model, data, test, optimizer="adam", batch_size=batch, max_epochs=epochs,
                eval_every=NO_EVAL, seed=seed["n"], device=device,
            )  # fmt: skip

        return run

    results = []
    for name, ours, reservoir in (
        ("reservoir", RecurrentMLPReservoir(4, 50, 2, device=device), True),
        ("trainable_rank1", RecurrentMLPTrainable(4, 50, 2, device=device), False),
        ("trainable_full", RecurrentMLPTrainable(4, 50, 2, rank=None, device=device), False),
    ):
        times = interleaved(
            {"ours": ours_loop(ours), "rnn": hand_loop(_TorchRNNModel(reservoir).to(device))},
            repeat=3 if quick else 5,
        )
        results.append(
            Result(SUITE, f"episodes_{name}_vs_nn_rnn", "episodes/s",
                   epochs * num_episodes / times["ours"], "nn.RNN hand-written loop",
                   epochs * num_episodes / times["rnn"],
                   extra={"episodes": num_episodes, "batch_episodes": batch,
                          "mean_length": sum(lengths) / num_episodes})
        )  # fmt: skip
    return results


def run(args: argparse.Namespace) -> list[Result]:
    device = torch.device(args.device)
    with torch_threads(1):
        return _mlp_figures(device, args.quick) + _recurrent_figures(device, args.quick)
