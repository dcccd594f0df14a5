"""Supervised behaviour data held as tensors on the training device.

`EpisodeData` (with `PaddedEpisodes` and `as_episode_data`) is one of the contracts hbm-dl
shares with hbm-ne, so it lives in `hbm_dl._shared.data`; this module keeps its public names.
"""

from hbm_dl._shared.data import ArrayLike, EpisodeData, PaddedEpisodes, as_episode_data

__all__ = ["ArrayLike", "EpisodeData", "PaddedEpisodes", "as_episode_data"]
