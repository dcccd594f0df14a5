"""The gradient-descent task (hbm-dl): SGD or Adam on one model. Its cache address is
`hbm_experiments.tasks.SGDExperiment` (`tasks.py` pins it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import torch

from .configs import AdamConfig, OptimizerConfig, SGDConfig
from .experiment import Experiment, TrainOutput, _train_info
from .vocabulary import library_kwargs

__all__ = ["SGDExperiment"]


class SGDExperiment(Experiment):
    """Gradient descent (SGD or Adam) on one hbm-dl model."""

    _algorithms: ClassVar[tuple[str, ...]] = ("sgd", "adam")
    method: str = "sgd_feedforward"
    optimizer: OptimizerConfig = SGDConfig()

    def build(
        self, data: Any = None, *, device: torch.device | str | None = None
    ) -> dict[str, Any]:
        import hbm_dl

        device = torch.device(device if device is not None else self.device)
        data = self.data_task().load() if data is None else data
        meta = data.metadata
        gen = torch.Generator().manual_seed(self.seed)
        model = self.resolved("model").build_module(
            meta.input_size, meta.num_actions, kind=self.model_kind, generator=gen
        )
        train, test = self._episode_splits(hbm_dl.EpisodeData, data, device)
        t = self.resolved("training")
        opt = self.resolved("optimizer")
        assert isinstance(opt, SGDConfig | AdamConfig)
        return {
            "model": model,
            "train_data": train,
            "test_data": test,
            "validation_data": self._validation_split(hbm_dl.EpisodeData, data, device),
            "optimizer": opt.name,
            "learning_rate": opt.learning_rate,
            "batch_size": t.batch_size or 32,
            **library_kwargs(t, "max_epochs", "max_steps", "max_samples", "max_optim_time"),
            **library_kwargs(t, "eval_every", "loss_eval_interval_seconds"),
            "seed": self.seed,
            "device": device,
        }

    def _fit(self, setup: dict[str, Any], checkpoint_path: Path) -> TrainOutput:
        t = self.training
        unit, budget = ("step", t.max_steps) if t.max_steps else ("epoch", t.max_epochs)
        result = self._run_trainer(setup, checkpoint_path, unit, budget)  # hbm_dl.optimize_sgd
        return TrainOutput(result.model, list(result.history), _train_info(result))
