"""A model plays its person's Overcooked segments: behaviour rollouts on the recorded kitchens.

The recordings (`hbm_data.overcooked`) cut each 1204-tick trial into consecutive segments, so a
held-out episode starts mid-game. Its start is rebuilt from the episode's own first observation
(`state_from_observation`): hbm-data's player-centred encoding keeps every part of the state the
2019 rules read (positions, orientations, held objects, pot onions, whether a pot has cooked its
`COOK_TICKS`, the objects on every counter a player can reach), so no copy of the recorded pickle
is needed and a rollout runs wherever the subject file is. What it drops never changes a later
tick: a soup off the pot is always a finished one (only a ready soup can be served up), a pot
with fewer than three onions never cooks, and counters with no floor beside them are never
faced.

The model plays the person's player in hbm-ne's batched game; the partner is driven *open
loop* by the recorded partner's actions at the same ticks (`PARTNER`), read from the partner's
own subject file (or the same file, for the pooled `oc-all`); or *closed loop* by a partner
policy observing the game from its side (`CLOSED_LOOP_PARTNER`: Carroll et al. 2019 paired
models with a behaviour-cloned "human proxy"; training one is the caller's). The segment's
team return (`DELIVERY_REWARD` per soup served) and the played observations and actions then
compare with the person's through the experiments' own functions (`compare_returns`,
`HumanlikeTarget.score`). Replaying the person's own actions reproduces the recorded segment
exactly, which the tests check.

An experiment picks its partner with `training.behaviour_partner` (`PARTNERS`: "recorded", the
default, or "proxy", a human proxy cloned from the study's training trials of the kitchen by
`overcooked_proxy`). The block of that play is read between two references made by the same
protocol (`overcooked_references`): the person's own training segments paired with the held-out ones
(the floor, as `humanlike.person_reference` makes it) and a uniform random policy playing every
held-out segment from its start beside the same partner (the ceiling).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

__all__ = [
    "CLOSED_LOOP_PARTNER",
    "HUMAN_PROXY_PARTNER",
    "PARTNER",
    "PARTNERS",
    "RecordedSegment",
    "evaluate_overcooked",
    "layout_of",
    "overcooked_references",
    "partner_name",
    "play_recorded_segments",
    "play_segments",
    "recorded_segments",
    "state_from_observation",
]

PARTNER = "open-loop (the recorded partner's actions)"
"""How the partner moves in these rollouts; results say it (`behaviour.partner`)."""
CLOSED_LOOP_PARTNER = "closed-loop (a partner policy playing the partner's side)"
"""The partner with `partner_policy` (e.g. a behaviour-cloned human proxy)."""
HUMAN_PROXY_PARTNER = (
    "closed-loop (a human proxy behaviour-cloned on the study's training trials of the kitchen)"
)
"""The partner of `training.behaviour_partner: proxy` (`human_proxy`)."""
PARTNERS: dict[str, str] = {"recorded": PARTNER, "proxy": HUMAN_PROXY_PARTNER}
"""`training.behaviour_partner` -> what the result's `behaviour.partner` says."""

_PREFIX = "overcooked-"
_OBJECTS = ("onion", "dish", "soup")
_ORIENTATIONS = ((0, -1), (0, 1), (1, 0), (-1, 0))  # north, south, east, west


def layout_of(env_name: str) -> str:
    """`overcooked-cramped_room` -> `cramped_room`."""
    if not env_name.startswith(_PREFIX):
        raise ValueError(f"{env_name!r} is not an Overcooked kitchen (expected {_PREFIX}<layout>)")
    return env_name[len(_PREFIX) :]


def _one_hot(values: np.ndarray, where: str, *, allow_none: bool) -> int | None:
    """Index of the single 1 of `values` (None for all zeros where allowed)."""
    ones = np.flatnonzero(values == 1.0)
    if np.all((values == 0.0) | (values == 1.0)) and len(ones) <= 1:
        if len(ones) == 1:
            return int(ones[0])
        if allow_none:
            return None
    raise ValueError(f"{where}: {values.tolist()} is not a one-hot{' (or all 0)' * allow_none}")


def state_from_observation(obs: np.ndarray, layout: str, player: int) -> dict[str, Any]:
    """The state (recorded dict format) that `obs` `[D]` encodes from `player`'s side.

    Inverts `hbm_data.overcooked.layout_encoding(layout).encode` up to what the rules never
    read (module docstring): soups off the pot hold three onions cooked `COOK_TICKS`, a pot's
    ticks past `COOK_TICKS` are `COOK_TICKS`. Raises `ValueError` naming the slot that is not
    a valid encoding."""
    from hbm_data.overcooked.layouts import COOK_TICKS, SOUP_ONIONS, layout_encoding

    enc = layout_encoding(layout)
    o = np.asarray(obs, dtype=np.float64)
    if o.shape != (enc.size,):
        raise ValueError(f"{layout}: observation of shape {o.shape}, expected ({enc.size},)")
    if player not in (0, 1):
        raise ValueError(f"player must be 0 or 1, got {player!r}")
    ready_soup = ["onion", SOUP_ONIONS, COOK_TICKS]

    def obj(code: int | None, x: int, y: int) -> dict[str, Any] | None:
        if code is None:
            return None
        out: dict[str, Any] = {"name": _OBJECTS[code], "position": [x, y]}
        if _OBJECTS[code] == "soup":
            out["state"] = list(ready_soup)
        return out

    x, y = int(np.rint(o[0])), int(np.rint(o[1]))
    ox, oy = x + int(np.rint(o[9])), y + int(np.rint(o[10]))
    me: dict[str, Any] = {
        "position": [x, y],
        "orientation": list(_ORIENTATIONS[_one_hot(o[2:6], "orientation", allow_none=False) or 0]),
    }
    other: dict[str, Any] = {
        "position": [ox, oy],
        "orientation": list(
            _ORIENTATIONS[_one_hot(o[11:15], "partner orientation", allow_none=False) or 0]
        ),
    }
    for who, at, px, py in ((me, 6, x, y), (other, 15, ox, oy)):
        held = obj(_one_hot(o[at : at + 3], f"held object at {at}", allow_none=True), px, py)
        if held is not None:
            who["held_object"] = held
    objects: dict[str, Any] = {}
    for j, (px, py) in enumerate(enc.pots):
        k = 18 + 3 * j
        onions, ticks = int(np.rint(o[k] * SOUP_ONIONS)), int(np.rint(o[k + 1] * COOK_TICKS))
        if not 0 <= onions <= SOUP_ONIONS or not 0 <= ticks <= COOK_TICKS:
            raise ValueError(f"{layout}: pot at {(px, py)}: {o[k : k + 3].tolist()}")
        if onions:
            objects[f"{px},{py}"] = {
                "name": "soup",
                "position": [px, py],
                "state": ["onion", onions, ticks],
            }
    base = 18 + 3 * len(enc.pots)
    for j, (cx, cy) in enumerate(enc.counters):
        k = base + 3 * j
        what = obj(_one_hot(o[k : k + 3], f"counter at {(cx, cy)}", allow_none=True), cx, cy)
        if what is not None:
            objects[f"{cx},{cy}"] = what
    players = [me, other] if player == 0 else [other, me]
    return {"players": players, "objects": objects, "order_list": ["onion"], "pot_explosion": False}


@dataclass(frozen=True)
class RecordedSegment:
    """One held-out episode and what its replay needs: the person's observations `[T, D]` and
    actions `[T]`, the partner's actions at the same ticks `[T]`, the recorded return."""

    index: int  # the episode's index in its subject file
    player: int
    trial: str
    segment: int
    session: int
    obs: np.ndarray
    actions: np.ndarray
    partner_actions: np.ndarray
    score: float


def _sidecar_entries(path: Path) -> list[dict[str, Any]]:
    from hbm_data.sidecar import read_sidecar

    side = read_sidecar(path) or {}
    entries = side.get("episodes")
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise ValueError(
            f"{path}: the sidecar has no 'episodes' list (trial, player, segment of each "
            "episode, written by `hbm-data import-overcooked`): re-import the recordings"
        )
    return entries


def _partner_file(path: Path, env_name: str, entry: dict[str, Any], pooled: bool) -> Path:
    from hbm_data.overcooked import subject_name
    from hbm_data.paths import episode_file_name

    if pooled:
        return path
    subject = subject_name(int(entry["worker"]), 1 - int(entry["player"]))
    for compressed in (True, False):
        candidate = path.parent / episode_file_name(env_name, subject, compressed=compressed)
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"{path}: the partner of episode {entry} is subject {subject}, whose file for "
        f"{env_name} is not in {path.parent}: import both players (`hbm-data import-overcooked`)"
    )


def recorded_segments(data: Any) -> list[RecordedSegment]:
    """The held-out episodes of an Overcooked `hbm_data.HumanData`, in its test order, each
    with the partner's recorded actions (from the sidecars' trial/player/segment)."""
    from hbm_data.episodes import load_episodes
    from hbm_data.sidecar import read_sidecar

    meta = data.metadata
    path = Path(meta.source_file)
    entries = _sidecar_entries(path)
    pooled = bool((read_sidecar(path) or {}).get("pooled", False))
    partners: dict[Path, tuple[list[Any], list[dict[str, Any]]]] = {}
    out = []
    for info in meta.test_episodes:
        if not 0 <= info.index < len(entries):
            raise ValueError(f"{path}: episode {info.index} has no sidecar entry")
        entry = entries[info.index]
        p_path = _partner_file(path, meta.env_name, entry, pooled)
        if p_path not in partners:
            partners[p_path] = (load_episodes(p_path), _sidecar_entries(p_path))
        p_eps, p_entries = partners[p_path]
        want = (entry["trial"], 1 - int(entry["player"]), int(entry["segment"]))
        match = [
            i
            for i, e in enumerate(p_entries)
            if (e.get("trial"), int(e.get("player", -1)), int(e.get("segment", -1))) == want
        ]
        if len(match) != 1:
            raise ValueError(
                f"{p_path}: expected one episode of trial {want[0]}, player {want[1]}, segment "
                f"{want[2]} (the partner of episode {info.index} of {path}), found {len(match)}"
            )
        partner = np.asarray(p_eps[match[0]].actions, dtype=np.int64)
        obs = data.test_obs[info.start : info.start + info.length, : meta.obs_size]
        if len(partner) != info.length:
            raise ValueError(
                f"{p_path}: the partner's segment has {len(partner)} steps, "
                f"{path} episode {info.index} has {info.length}"
            )
        out.append(
            RecordedSegment(
                info.index, int(entry["player"]), str(entry["trial"]), int(entry["segment"]),
                int(info.session), np.asarray(obs, dtype=np.float64),
                np.asarray(data.test_act[info.start : info.start + info.length], np.int64),
                partner, float(info.score),
            )
        )  # fmt: skip
    return out


@torch.no_grad()
def play_segments(
    policies: Any,
    layout: str,
    segments: Sequence[RecordedSegment],
    *,
    repeats: int = 1,
    extra_features: np.ndarray | None = None,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    partner_policy: torch.nn.Module | None = None,
    partner_generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> list[Any]:
    """Every policy (`humanlike.rollouts.Policies`) plays each segment `repeats` times from its
    recorded start, the partner open loop (the recorded partner's actions), or closed loop
    with `partner_policy` (one module, e.g. a behaviour-cloned "human proxy" as in Carroll et
    al. 2019, observing the game from the partner's side, its actions drawn from its softmax
    with `partner_generator`, or its argmax under `deterministic`); returns one
    `humanlike.Trajectories` per policy (rollout r of segment e at `r·E + e`, `seeds` = the
    segment's file index, so the humanlike tests pair each rollout with its segment).
    `extra_features [E, k]` are appended to the observations (CL features).
    Actions are drawn as hbm-ne's rollouts draw them."""
    from hbm_ne.envs.overcooked import encode_states, observation_size, observe, step_games
    from hbm_ne.envs.rollout import select_actions

    from .humanlike.rollouts import _Members
    from .humanlike.trajectories import Trajectories

    dev = torch.device(device)
    members = _Members(policies, dev)
    e = len(segments)
    if e == 0:
        raise ValueError("no segments to play")
    p, b = members.size, repeats * len(segments)
    d = observation_size(layout)
    lengths = np.tile([len(s.actions) for s in segments], repeats)  # [B]
    t_max = int(lengths.max())
    starts = [state_from_observation(s.obs[0], layout, s.player) for s in segments]
    state = encode_states(starts * repeats * p, layout, device=dev)  # game m·B + r·E + e
    players = torch.as_tensor(np.tile([s.player for s in segments], repeats * p), device=dev)
    partner = np.full((t_max, repeats * e), 4, dtype=np.int64)  # stay past a segment's end
    for i, s in enumerate(segments):
        for r in range(repeats):
            partner[: len(s.partner_actions), r * e + i] = s.partner_actions
    partner_t = torch.as_tensor(np.tile(partner, (1, p)), device=dev)  # [T, P·B]
    feats = None
    if extra_features is not None:
        feats = torch.as_tensor(np.tile(extra_features, (repeats, 1)), dtype=torch.float32)
        feats = feats.to(dev).expand(p, b, -1)
    if not deterministic and generator is None:
        generator = torch.Generator(device=dev).manual_seed(0)
    own = torch.zeros(p * b, d, device=dev)
    obs0, obs1 = torch.zeros(p * b, d, device=dev), torch.zeros(p * b, d, device=dev)
    obs_rec = np.zeros((t_max, p * b, d), np.float32)
    act_rec = np.zeros((t_max, p * b), np.int64)
    rewards = np.zeros((t_max, p * b), np.float64)
    joint = torch.zeros(p * b, 2, dtype=torch.int64, device=dev)
    acts = torch.zeros(p, b, dtype=torch.int64, device=dev)
    is0 = (players == 0)[:, None]
    members.start(b)
    proxy = None
    if partner_policy is not None:
        proxy = _Members(partner_policy, dev)
        proxy.start(p * b)
        if not deterministic and partner_generator is None:
            partner_generator = torch.Generator(device=dev).manual_seed(1)
    partner_acts = torch.zeros(1, p * b, dtype=torch.int64, device=dev)
    for t in range(t_max):
        observe(state, layout, 0, obs0)
        observe(state, layout, 1, obs1)
        torch.where(is0, obs0, obs1, out=own)
        x = own.view(p, b, d)
        if feats is not None:
            x = torch.cat([x, feats], dim=-1)
        select_actions(members.step(x), deterministic=deterministic, generator=generator, out=acts)
        a = acts.reshape(-1)
        other = partner_t[t]
        if proxy is not None:
            seen = torch.where(is0, obs1, obs0).unsqueeze(0)  # [1, P·B, D]
            select_actions(
                proxy.step(seen), deterministic=deterministic, generator=partner_generator,
                out=partner_acts,
            )  # fmt: skip
            other = partner_acts[0]
        joint[:, 0] = torch.where(players == 0, a, other)
        joint[:, 1] = torch.where(players == 1, a, other)
        obs_rec[t] = own.cpu().numpy()
        act_rec[t] = a.cpu().numpy()
        rewards[t] = step_games(state, joint).double().cpu().numpy()
    out = []
    for m in range(p):
        cols = range(m * b, (m + 1) * b)
        out.append(
            Trajectories(
                tuple(np.ascontiguousarray(obs_rec[: lengths[c - m * b], c]) for c in cols),
                tuple(np.ascontiguousarray(act_rec[: lengths[c - m * b], c]) for c in cols),
                np.array([rewards[: lengths[c - m * b], c].sum() for c in cols]),
                np.tile([s.session for s in segments], repeats).astype(np.int64),
                np.tile([s.index for s in segments], repeats).astype(np.int64),
            )
        )
    return out


def _person(segments: Sequence[RecordedSegment]) -> Any:
    """The held-out play as the humanlike target: seeds are the segments' file indices (the
    start each rollout replays), so the tests relabel within each segment."""
    from .humanlike.trajectories import Trajectories

    return Trajectories(
        tuple(s.obs for s in segments),
        tuple(s.actions for s in segments),
        np.array([s.score for s in segments], dtype=np.float64),
        np.array([s.session for s in segments], dtype=np.int64),
        np.array([s.index for s in segments], dtype=np.int64),
    )


def _target(data: Any, segments: Sequence[RecordedSegment], seed: int) -> Any:
    """The person's held-out segments as the `humanlike.HumanlikeTarget` of a rollout block."""
    from .humanlike.compare import HumanlikeTarget
    from .humanlike.trajectories import Trajectories

    meta = data.metadata
    train = Trajectories.from_human(data, "train") if meta.n_train else None
    return HumanlikeTarget(_person(segments), meta.env_name, train=train, seed=seed)


def _partner_generator(
    partner_policy: torch.nn.Module | None, seed: int, device: torch.device | str
) -> torch.Generator | None:
    """The closed-loop partner's draws: the same for a model row and its random reference."""
    if partner_policy is None:
        return None
    return torch.Generator(device=torch.device(device)).manual_seed(seed * 7 + 5)


def _partner_label(partner_policy: torch.nn.Module | None, label: str | None) -> str:
    return label or (PARTNER if partner_policy is None else CLOSED_LOOP_PARTNER)


def evaluate_overcooked(
    policy: torch.nn.Module,
    data: Any,
    *,
    generator: torch.Generator,
    repeats: int = 1,
    seed: int = 0,
    humanlike: bool = True,
    segments: Sequence[RecordedSegment] | None = None,
    partner_policy: torch.nn.Module | None = None,
    partner_label: str | None = None,
    device: torch.device | str = "cpu",
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The policy plays each held-out segment of an Overcooked `hbm_data.HumanData` `repeats`
    times (partner open loop): `(behaviour, humanlike block)`, `behaviour` as
    `evaluation.compare_returns` gives it plus `partner`; the block by
    `humanlike.HumanlikeTarget.score` against the person's segments (None when `humanlike`
    is False), with `partner` and `repeats`. `segments`: `recorded_segments(data)`, if read.
    `partner_policy`: the partner closed loop (`play_segments`; its draws seeded from
    `seed`), said as `partner_label` (default `CLOSED_LOOP_PARTNER`)."""
    from .evaluation import compare_returns
    from .humanlike.rollouts import predict_actions

    meta = data.metadata
    layout = layout_of(meta.env_name)
    segments = recorded_segments(data) if segments is None else segments
    feats = None
    if meta.use_cl_info:
        feats = np.array([[i.session_cl, i.run_cl] for i in meta.test_episodes], np.float32)
    (rollouts,) = play_segments(
        policy, layout, segments, repeats=repeats, extra_features=feats, generator=generator,
        partner_policy=partner_policy,
        partner_generator=_partner_generator(partner_policy, seed, device), device=device,
    )  # fmt: skip
    partner = _partner_label(partner_policy, partner_label)
    behaviour = compare_returns(rollouts.returns, [s.score for s in segments], seed=seed)
    behaviour |= {"seeds_replayable": True, "partner": partner}
    if not humanlike:
        return behaviour, None
    target = _target(data, segments, seed)
    (predicted,) = predict_actions(
        [policy], data.test_obs, meta.test_episode_lengths, device=device
    )
    block = target.score(rollouts, predicted, seed=seed)
    return behaviour, block | {"repeats": repeats, "partner": partner}


def overcooked_references(
    data: Any,
    *,
    seed: int = 0,
    repeats: int = 1,
    segments: Sequence[RecordedSegment] | None = None,
    partner_policy: torch.nn.Module | None = None,
    partner_label: str | None = None,
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, Any]]:
    """`{"person": floor, "random": ceiling}` rollout blocks of an Overcooked
    `hbm_data.HumanData`, by a model row's protocol (`evaluate_overcooked` with these
    `seed`, `repeats` and partner): the floor is `humanlike.person_reference` against the
    same held-out segments (each paired with `repeats` of the person's training segments,
    which they played beside their real partner); the ceiling a uniform random policy playing
    every held-out segment `repeats` times from its start beside the same partner, its action
    predictions uniform draws (as `humanlike.random_reference`). Deterministic given `seed`."""
    from .humanlike.references import person_reference
    from .humanlike.rollouts import UniformPolicy

    meta = data.metadata
    segments = recorded_segments(data) if segments is None else segments
    target = _target(data, segments, seed)
    person = person_reference(data, seed=seed, repeats=repeats, target=target)
    gen = torch.Generator(device=torch.device(device)).manual_seed(seed * 1_000_003 + 5)
    (play,) = play_segments(
        UniformPolicy(meta.obs_size, meta.num_actions), layout_of(meta.env_name), segments,
        repeats=repeats, generator=gen, partner_policy=partner_policy,
        partner_generator=_partner_generator(partner_policy, seed, device), device=device,
    )  # fmt: skip
    guesses = np.random.default_rng([seed, 11]).integers(0, meta.num_actions, len(target.actions))
    partner = _partner_label(partner_policy, partner_label)
    return {
        "person": person | {"partner": "their own (the person's recorded training play)"},
        "random": target.score(play, guesses, seed=seed) | {"repeats": repeats, "partner": partner},
    }


def partner_name(behaviour: dict[str, Any] | None) -> str | None:
    """The `training.behaviour_partner` value (`PARTNERS`) a result's `behaviour.partner`
    says, the description itself for another partner, None where the play had no partner."""
    said = (behaviour or {}).get("partner")
    if said is None:
        return None
    return next((k for k, v in PARTNERS.items() if v == said), str(said))


def play_recorded_segments(
    policy: torch.nn.Module,
    data: Any,
    *,
    generator: torch.Generator,
    repeats: int = 1,
    seed: int = 0,
    humanlike: bool = True,
    partner: str = "recorded",
    device: torch.device | str = "cpu",
) -> dict[str, Any] | None:
    """`evaluate_overcooked`'s behaviour dict with its humanlike block and that block's
    references (`humanlike_references`, `overcooked_references`) under `humanlike`, for an
    Overcooked kitchen whose recording says where its segments start and who the partner is;
    None (logged, with why) for other games and for recordings that do not. `partner`: a key
    of `PARTNERS` ("proxy": `human_proxy`, which needs the kitchen's pooled file)."""
    if partner not in PARTNERS:
        raise ValueError(f"partner {partner!r}: expected one of {', '.join(PARTNERS)}")
    meta = data.metadata
    if not meta.env_name.startswith(_PREFIX):
        return None
    try:
        segments = recorded_segments(data)
        for s in segments:  # a start that is no valid state is refused here, with why
            state_from_observation(s.obs[0], layout_of(meta.env_name), s.player)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        logger.warning("%s: no behaviour rollouts (%s)", meta.source_file, exc)
        return None
    from .overcooked_proxy import human_proxy, pooled_file

    proxy = human_proxy(data, device=device) if partner == "proxy" else None
    label = PARTNERS[partner]
    behaviour, block = evaluate_overcooked(
        policy, data, generator=generator, repeats=repeats, seed=seed, humanlike=humanlike,
        segments=segments, partner_policy=proxy, partner_label=label, device=device,
    )  # fmt: skip
    if proxy is not None:  # what the proxy was cloned from (the uid keys the subject's file)
        from hbm_data.sidecar import data_content_hash

        behaviour["partner_data"] = data_content_hash(pooled_file(data))
    if block is not None:
        behaviour["humanlike"] = block
        behaviour["humanlike_references"] = overcooked_references(
            data, seed=seed, repeats=repeats, segments=segments, partner_policy=proxy,
            partner_label=label, device=device,
        )  # fmt: skip
    return behaviour
