"""hbm-data's game table (`hbm_data.envs`) and hbm-ne's environments are two tables of one
set of games: the person's recordings come from the first, the model's play from the second.
For every game both have, they must agree on its id, observation and action sizes and step
limit, or a model would be trained on one game and judged on another."""

from __future__ import annotations

import hbm_data
import pytest
from hbm_ne.envs import ENV_CLASSES, SHORT_NAMES, resolve_env_id


def _ne_class(name: str) -> type | None:
    """hbm-ne's class for hbm-data's game `name`, or None (a game hbm-ne cannot play)."""
    try:
        return ENV_CLASSES[resolve_env_id(name)]
    except ValueError:
        return None


@pytest.mark.parametrize("name", sorted(hbm_data.ENVIRONMENTS))
def test_a_game_in_both_tables_is_the_same_game(name: str) -> None:
    spec = hbm_data.ENVIRONMENTS[name]
    cls = _ne_class(name)
    if cls is None:
        # only recordings may lack a batched game: the methods that play it are refused there
        assert not spec.gymnasium, f"{name}: a Gymnasium game hbm-ne cannot play"
        return
    ne = (cls.env_id, cls.obs_size, cls.num_actions, cls.max_episode_steps)  # type: ignore[attr-defined]
    data = (spec.env_id, spec.obs_size, spec.num_actions, spec.max_episode_steps)
    assert ne == data, f"{name}: hbm-ne (id, obs, actions, steps) {ne} != hbm-data's {data}"


def test_every_game_hbm_ne_plays_has_recordings_in_hbm_data() -> None:
    data_ids = {spec.env_id for spec in hbm_data.ENVIRONMENTS.values()}
    assert set(ENV_CLASSES) <= data_ids, sorted(set(ENV_CLASSES) - data_ids)
    # hbm-ne's short names are hbm-data's names of the same games
    for short, env_id in SHORT_NAMES.items():
        assert hbm_data.ENVIRONMENTS[short].env_id == env_id
