"""The human proxy partner of the Overcooked kitchens: a policy behaviour-cloned on the study's
training trials (Carroll et al. 2019), which `overcooked_play` lets play the partner's side
closed loop (`training.behaviour_partner: proxy`).

Why its own module: cloning a partner is training, not play; the rollouts only need the
trained policy. One proxy per kitchen and pooled file content is kept per process, so every
experiment on a kitchen meets the same partner without training it again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .overcooked_play import _PREFIX, layout_of

logger = logging.getLogger(__name__)

__all__ = ["human_proxy", "pooled_file", "train_human_proxy"]

_PROXIES: dict[tuple[Any, ...], torch.nn.Module] = {}


def pooled_file(data: Any) -> Path:
    """The kitchen's pooled file beside `data`'s subject file (it may not exist)."""
    from hbm_data.overcooked import POOLED_SUBJECT
    from hbm_data.paths import find_episode_file

    meta = data.metadata
    return find_episode_file(meta.env_name, POOLED_SUBJECT, Path(meta.source_file).parent)


def human_proxy(data: Any, *, device: torch.device | str = "cpu") -> torch.nn.Module:
    """The human proxy partner of `data`'s kitchen (`train_human_proxy`, seed 0, from the
    pooled file beside `data`'s subject file): one partner for every experiment on that
    kitchen, so their rows compare. Trained once per process and pooled file content (its
    `data_content_hash` keys the copy kept)."""
    from hbm_data.sidecar import data_content_hash

    meta = data.metadata
    pooled = pooled_file(data)
    layout = layout_of(meta.env_name)
    if not pooled.exists():  # refused, saying how to import it
        return train_human_proxy(pooled.parent, layout, device=device)
    key = (data_content_hash(pooled), str(device))
    if key not in _PROXIES:
        _PROXIES[key] = train_human_proxy(pooled.parent, layout, device=device)
    return _PROXIES[key]


def train_human_proxy(
    data_dir: Path | str,
    layout: str,
    *,
    hidden_sizes: tuple[int, ...] = (64, 64),
    max_epochs: int = 20,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> torch.nn.Module:
    """A behaviour-cloned "human proxy" partner (Carroll et al. 2019): a feedforward policy
    trained by Adam on cross-entropy on every step of both players of the study's *training*
    trials of `layout` (the pooled `oc-all` file's episodes whose `source_split` is "train"),
    so the held-out trials never shape the partner a model is judged with. Deterministic for
    a given `seed` on CPU."""
    import hbm_dl
    from hbm_data.episodes import load_episodes
    from hbm_data.overcooked import POOLED_SUBJECT
    from hbm_data.paths import find_episode_file
    from hbm_data.sidecar import read_sidecar

    env_name = f"{_PREFIX}{layout}"
    path = find_episode_file(env_name, POOLED_SUBJECT, data_dir)
    if not path.exists():
        raise FileNotFoundError(
            f"{path}: no pooled file of {env_name}: import the recordings with "
            "`hbm-data import-overcooked` (it writes the pooled subject by default)"
        )
    splits = (read_sidecar(path) or {}).get("source_split")
    episodes = load_episodes(path)
    if not isinstance(splits, list) or len(splits) != len(episodes):
        raise ValueError(f"{path}: the sidecar's 'source_split' does not list every episode")
    train = [e for e, split in zip(episodes, splits, strict=True) if split == "train"]
    if not train:
        raise ValueError(f"{path}: no episode of the study's training trials to clone")
    obs = np.concatenate([np.asarray(e.observations, np.float32) for e in train])
    actions = np.concatenate([np.asarray(e.actions, np.int64) for e in train])
    gen = torch.Generator().manual_seed(seed)
    model = hbm_dl.FeedforwardMLP(obs.shape[1], hidden_sizes, 6, generator=gen)
    data = hbm_dl.EpisodeData.from_arrays(obs, actions)
    hbm_dl.optimize_sgd(
        model, data, optimizer="adam", learning_rate=1e-3, batch_size=256,
        max_epochs=max_epochs, eval_every=None, checkpoint_every_seconds=None, seed=seed,
        device=device,
    )  # fmt: skip
    logger.info("%s: human proxy cloned from %d training steps", path, len(actions))
    return model.eval()
