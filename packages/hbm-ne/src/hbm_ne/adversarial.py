"""Adversarial imitation: generators co-evolved against discriminators of person-like windows.

`AdversarialFitness(env_id, person, seeds, discriminator="ga" | "es" | "adam")` is a fitness for
`hbm_ne.evolve` that owns the discriminator(s). The lab's version scored every generator with
net 0's play, used the raw discriminator output as a probability, could not run
(`hide_indices` undefined) and trained the two sides one after the other; here every
generation alternates:

1. every generator plays the person's training seeds, each member its own episodes, all P*E
   episodes in one batched environment (`hbm_ne.envs.record_rollout`), observations and
   actions recorded;
2. the discriminator(s) take one update on `windows_per_class` person windows against as many
   windows of this generation's play (drawn with replacement, seeded by `evolve`'s generator):
   "ga" / "es", one ask/tell generation of a discriminator population whose fitness is each
   discriminator's binary cross-entropy; "adam", `discriminator_steps` Adam steps of one network
   on that sample (GAIL's discriminator update, Ho & Ermon 2016, as in HumanCompatibleAI's
   `imitation`), so the evolved and gradient-trained adversaries can be compared;
3. each generator's loss is 1 − the mean, over all its windows, of sigmoid(D(window)), D the
   updated discriminator: "how often it is taken for the person", smooth. For "ga" / "es" D is
   the mean of the `judges` discriminators with the lowest cross-entropy this generation
   (default 1, the best), not the whole population: most of a population is mutants, and
   averaging them would reward fooling bad discriminators.

A window (`hbm_ne.windows`) is `window` consecutive steps of one episode, each step the
observation with `hide_elements` zeroed (what the discriminator may not see; the generators
still see it) followed by the one-hot action.

The discriminators' state (population and algorithm, or module and Adam state, and the last
judges) is `state_dict()`, which `evolve` saves in its checkpoints under "fitness_state";
every draw comes from `evolve`'s generator or the discriminator algorithm's own, both
checkpointed, so a resumed run is bitwise identical on CPU. Each generation costs one rollout
of the population plus a discriminator forward over every generated window, so it grows with
the length of the person's episodes as well as with P.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from hbm_ne._shared import CheckpointError, FeedforwardMLP, check_fingerprint, data_signature
from hbm_ne.algorithms import Algorithm
from hbm_ne.envs._base import BatchedEnv, as_seed_list
from hbm_ne.envs._registry import env_class, make_env, resolve_env_id
from hbm_ne.envs.rollout import Trajectories, record_rollout
from hbm_ne.fitness import EpisodeData
from hbm_ne.population import BatchedFeedforward, BatchedRecurrent, Population
from hbm_ne.training import EvolveResult, evolve, make_algorithm
from hbm_ne.windows import (
    EpisodeWindows,
    WindowDiscriminator,
    _accuracy,
    _bce,
    episode_windows,
    step_features,
)

__all__ = [
    "DISCRIMINATORS",
    "AdversarialFitness",
    "EpisodeWindows",
    "WindowDiscriminator",
    "episode_windows",
    "evolve_adversarial",
    "step_features",
]

#: The discriminator kinds `AdversarialFitness(discriminator=...)` accepts.
DISCRIMINATORS = ("ga", "es", "adam")

#: Generated windows scored per discriminator call (bounds the memory of long episodes).
WINDOW_CHUNK = 1 << 15


class AdversarialFitness:
    """Fitness (a loss, lower = more person-like) of a generator population; owns the
    discriminator(s). See the module docstring for the generation's three steps.

    `person`: the person's training episodes (`obs [N, obs_size]` raw environment observations,
    `actions [N]`, `episode_lengths` set), played from `seeds` (one per episode, in order);
    every generator replays all of them. `discriminator`: "ga" / "es" (a population of
    `discriminator_population_size` MLPs `window*(obs+A) -> discriminator_hidden_sizes -> 1`,
    mutation `discriminator_sigma_init`, self-adaptive; the loss of a generator uses the
    `judges` best of them) or "adam" (one such MLP, `discriminator_learning_rate`,
    `discriminator_steps` full-sample steps a generation). `max_episode_steps` caps the
    generated episodes; `deterministic` plays the argmax instead of sampling (with `evolve`'s
    generator). The discriminators live on `device` (default CPU), which must be the
    generators'.

    After a call: `last_stats` (generation; `discriminator_loss` and `discriminator_accuracy`
    of the judge(s) on this generation's sample, after the update; `discriminator_mean_loss`
    of the population; `person_score`: mean sigmoid(D) on the person windows;
    `generated_score` / `best_generator_score`: mean and best member score), `last_scores`
    `[P]` (1 − loss), `last_trajectories` (the `Trajectories` played) and `last_num_samples`
    (environment steps per member).
    """

    def __init__(
        self,
        env_id: str,
        person: EpisodeData,
        seeds: Sequence[int],
        *,
        discriminator: str = "ga",
        discriminator_population_size: int = 50,
        discriminator_hidden_sizes: Sequence[int] = (32,),
        window: int = 8,
        hide_elements: Sequence[int] = (),
        windows_per_class: int = 512,
        discriminator_learning_rate: float = 1e-3,
        discriminator_steps: int = 10,
        max_episode_steps: int | None = None,
        deterministic: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
        discriminator_sigma_init: float = 0.02,
        judges: int = 1,
    ) -> None:
        self.env_id = resolve_env_id(env_id)
        cls = env_class(self.env_id)
        self.obs_size, self.num_actions = int(cls.obs_size), int(cls.num_actions)
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        if not isinstance(person, EpisodeData) or person.episode_lengths is None:
            raise ValueError(
                "person must be an hbm_ne.EpisodeData with episode_lengths (windows never "
                "span two episodes)"
            )
        if person.input_size != self.obs_size:
            raise ValueError(
                f"person.obs has {person.input_size} columns but {self.env_id} observations "
                f"have {self.obs_size} values (raw observations only: no CL features)"
            )
        if person.num_steps and int(person.actions.max()) >= self.num_actions:
            raise ValueError(
                f"person.actions go up to {int(person.actions.max())}, {self.env_id} has "
                f"{self.num_actions} actions"
            )
        self.seeds = as_seed_list(seeds)
        if len(self.seeds) != person.num_episodes:
            raise ValueError(
                f"seeds has {len(self.seeds)} entries, person has {person.num_episodes} "
                "episodes: give one seed per episode, in order"
            )
        if discriminator not in DISCRIMINATORS:
            raise ValueError(
                f"discriminator must be one of {list(DISCRIMINATORS)}, got {discriminator!r}"
            )
        self.discriminator = discriminator
        self.hidden_sizes = tuple(int(h) for h in discriminator_hidden_sizes)
        if any(h < 1 for h in self.hidden_sizes):
            raise ValueError(
                f"discriminator_hidden_sizes must be positive, got {self.hidden_sizes}"
            )
        for name, value in (
            ("window", window),
            ("windows_per_class", windows_per_class),
            ("discriminator_steps", discriminator_steps),
            ("judges", judges),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        evolved = discriminator != "adam"
        if evolved and discriminator_population_size < 2:
            raise ValueError(
                "discriminator_population_size must be >= 2 for an evolved discriminator, got "
                f"{discriminator_population_size}"
            )
        if evolved and judges > discriminator_population_size:
            raise ValueError(
                f"judges ({judges}) cannot exceed discriminator_population_size "
                f"({discriminator_population_size})"
            )
        if not evolved and judges != 1:
            raise ValueError(
                f"discriminator='adam' has one network: judges must be 1, got {judges}"
            )
        if any(isinstance(i, bool) or int(i) != i for i in hide_elements):
            raise ValueError(f"hide_elements must be integer indices, got {list(hide_elements)}")
        hide = sorted({int(i) for i in hide_elements})
        bad = [i for i in hide if not 0 <= i < self.obs_size]
        if bad:
            raise ValueError(
                f"hide_elements {bad} out of range: {self.env_id} observations have indices "
                f"0..{self.obs_size - 1}"
            )
        if not discriminator_learning_rate > 0:
            raise ValueError(
                f"discriminator_learning_rate must be > 0, got {discriminator_learning_rate}"
            )
        if not discriminator_sigma_init > 0:
            raise ValueError(
                f"discriminator_sigma_init must be > 0, got {discriminator_sigma_init}"
            )
        cap = cls.max_episode_steps
        if max_episode_steps is not None and not 1 <= max_episode_steps <= cap:
            raise ValueError(
                f"max_episode_steps must be in [1, {cap}] for {self.env_id}, "
                f"got {max_episode_steps}"
            )
        self.person = person.to(self.device)
        self.discriminator_population_size = int(discriminator_population_size)
        self.window = int(window)
        self.hide_elements = tuple(hide)
        self.windows_per_class = int(windows_per_class)
        self.discriminator_learning_rate = float(discriminator_learning_rate)
        self.discriminator_steps = int(discriminator_steps)
        self.discriminator_sigma_init = float(discriminator_sigma_init)
        self.judges = int(judges)
        self.max_episode_steps = max_episode_steps
        self.deterministic = bool(deterministic)
        self.seed = int(seed)
        self.input_size = self.window * (self.obs_size + self.num_actions)
        self._signature = data_signature(person)

        p_obs, p_act, mask = self.person.padded([[i] for i in range(person.num_episodes)])
        p_len = mask.sum(dim=1)
        steps = step_features(p_obs, p_act, p_len, self.num_actions, self.hide_elements)
        #: every window of the person `[N_p, window * (obs + A)]`
        self.person_windows, _ = episode_windows(steps, p_len, self.window)
        self._scale, self._shift = self._standardisation(self.person.obs)

        init = torch.Generator().manual_seed(self.seed)
        self._population: BatchedFeedforward | None = None
        self._algorithm: Algorithm | None = None
        self._judges: BatchedFeedforward | None = None
        self._module: WindowDiscriminator | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        if evolved:
            self._population = BatchedFeedforward(
                self.input_size,
                1,
                self.discriminator_population_size,
                self.hidden_sizes,
                sigma_init=self.discriminator_sigma_init,
                generator=init,
                device=self.device,
            )
            self._algorithm = make_algorithm(discriminator, self._population, seed=self.seed)
            self._judges = BatchedFeedforward(
                self.input_size, 1, self.judges, self.hidden_sizes, device=self.device
            )
            self._judges.params.copy_(self._population.params[: self.judges])
        else:
            mlp = FeedforwardMLP(
                self.input_size, self.hidden_sizes, 1, generator=init, device=self.device
            )
            self._module = WindowDiscriminator(mlp, self._scale, self._shift)
            self._optimizer = torch.optim.Adam(
                self._module.mlp.parameters(), lr=self.discriminator_learning_rate
            )
        self.last_stats: dict[str, float] = {}
        self.last_scores: Tensor | None = None
        self.last_trajectories: Trajectories | None = None
        self.last_num_samples = 0
        self._members = torch.zeros(0, dtype=torch.int64, device=self.device)
        self._env: BatchedEnv | None = None

    def _standardisation(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """Per-column `scale`, `shift` `[window * (obs + A)]`: z-score by the person's
        observation statistics, hidden columns 0, action columns unchanged."""
        o = obs.double()
        mean = o.mean(dim=0) if o.shape[0] else torch.zeros(self.obs_size, dtype=torch.float64)
        std = o.std(dim=0, unbiased=False) if o.shape[0] > 1 else torch.ones_like(mean)
        scale_obs = torch.where(std > 1e-8, 1.0 / std.clamp_min(1e-8), torch.ones_like(std))
        scale = torch.cat([scale_obs, torch.ones(self.num_actions, dtype=torch.float64)])
        shift = torch.cat([-mean * scale_obs, torch.zeros(self.num_actions, dtype=torch.float64)])
        scale[list(self.hide_elements)] = 0.0
        shift[list(self.hide_elements)] = 0.0
        tile = (self.window,)
        return (
            scale.repeat(tile).to(device=self.device, dtype=torch.float32),
            shift.repeat(tile).to(device=self.device, dtype=torch.float32),
        )

    def config(self) -> dict[str, Any]:
        """JSON-able settings, for checkpoint fingerprints (a resumed state must match them)."""
        return {
            "class": type(self).__name__,
            "env_id": self.env_id,
            "person": self._signature,
            "seeds": list(self.seeds),
            "discriminator": self.discriminator,
            "discriminator_population_size": self.discriminator_population_size,
            "discriminator_hidden_sizes": list(self.hidden_sizes),
            "window": self.window,
            "hide_elements": list(self.hide_elements),
            "windows_per_class": self.windows_per_class,
            "discriminator_learning_rate": self.discriminator_learning_rate,
            "discriminator_steps": self.discriminator_steps,
            "discriminator_sigma_init": self.discriminator_sigma_init,
            "judges": self.judges,
            "max_episode_steps": self.max_episode_steps,
            "deterministic": self.deterministic,
            "seed": self.seed,
        }

    # -- one generation ------------------------------------------------------------------------
    def _env_for(self, n: int) -> BatchedEnv:
        if self._env is None or self._env.num_envs != n:
            if self._env is not None:
                self._env.close()
            self._env = make_env(self.env_id, n, device=self.device)
        return self._env

    def _check_population(self, population: Any) -> None:
        if not isinstance(population, BatchedFeedforward | BatchedRecurrent):
            raise TypeError(
                "generators must be a BatchedFeedforward or BatchedRecurrent population, got "
                f"{type(population).__name__}"
            )
        if population.input_size != self.obs_size or population.output_size != self.num_actions:
            raise ValueError(
                f"generators map {population.input_size} inputs to {population.output_size} "
                f"actions; {self.env_id} needs {self.obs_size} -> {self.num_actions}"
            )
        if population.device != self.device:
            raise ValueError(
                f"generators live on {population.device}, the discriminators on {self.device}: "
                "pass device= to AdversarialFitness"
            )

    def generated_windows(
        self, population: Any, generator: torch.Generator | None
    ) -> EpisodeWindows:
        """Play the person's seeds with every member; returns their windows and sets
        `last_trajectories` and `_members [N]` (the member of each window)."""
        p, e = int(population.population_size), len(self.seeds)
        traj = record_rollout(
            population,
            self._env_for(p * e),
            self.seeds,
            deterministic=self.deterministic,
            generator=generator,
            max_steps=self.max_episode_steps,
        )
        lengths = traj.lengths.reshape(p * e)
        steps = step_features(
            traj.obs.flatten(0, 1),
            traj.actions.flatten(0, 1),
            lengths,
            self.num_actions,
            self.hide_elements,
        )
        windows = EpisodeWindows.of(steps, lengths, self.window)
        self.last_trajectories = traj
        self.last_num_samples = int(lengths.sum()) // p
        self._members = windows.episode // e
        return windows

    def _member_scores(self, windows: EpisodeWindows, p: int) -> Tensor:
        """Mean person probability of each member's windows `[P]` float64 (in chunks)."""
        prob = torch.cat(
            [
                self.person_probability(windows.gather(slice(i, i + WINDOW_CHUNK)))
                for i in range(0, len(windows), WINDOW_CHUNK)
            ]
        )
        members = self._members
        sums = torch.zeros(p, dtype=torch.float64, device=prob.device)
        sums.index_add_(0, members, prob)
        return sums / torch.bincount(members, minlength=p).double()

    @torch.no_grad()
    def _evolved_update(self, x: Tensor, y: Tensor) -> dict[str, float]:
        pop, algo, judges = self._population, self._algorithm, self._judges
        assert pop is not None and algo is not None and judges is not None
        algo.ask()
        logits = pop.forward(x * self._scale + self._shift)[..., 0]  # [P_D, 2W]
        loss = _bce(logits, y)
        best = torch.argsort(torch.nan_to_num(loss, nan=math.inf), stable=True)[: self.judges]
        judges.params.copy_(pop.params.index_select(0, best))
        stats = {
            "discriminator_loss": float(loss[best].mean()),
            "discriminator_accuracy": float(_accuracy(logits[best], y).mean()),
            "discriminator_mean_loss": float(loss.mean()),
        }
        algo.tell(loss)
        return stats

    def _adam_update(self, x: Tensor, y: Tensor) -> dict[str, float]:
        module, optimizer = self._module, self._optimizer
        assert module is not None and optimizer is not None
        with torch.enable_grad():
            for _ in range(self.discriminator_steps):
                optimizer.zero_grad(set_to_none=True)
                F.binary_cross_entropy_with_logits(module(x), y).backward()
                optimizer.step()
        with torch.no_grad():
            logits = module(x)
            loss = float(_bce(logits, y))
        return {
            "discriminator_loss": loss,
            "discriminator_accuracy": float(_accuracy(logits, y)),
            "discriminator_mean_loss": loss,
        }

    @torch.no_grad()
    def person_probability(self, windows: Tensor) -> Tensor:
        """The current judges' mean sigmoid(D) of `windows [N, in]` -> `[N]` float64."""
        if self._module is not None:
            return torch.sigmoid(self._module(windows).double())
        assert self._judges is not None
        logits = self._judges.forward(windows * self._scale + self._shift)[..., 0]
        return torch.sigmoid(logits.double()).mean(dim=0)

    def score(self, population: Population, generator: torch.Generator | None = None) -> Tensor:
        """How person-like each member plays for the current judges, without updating them:
        `[P]` mean sigmoid(D) over its windows (1 − the loss `__call__` would give after its
        update). Needs `generator` unless `deterministic`."""
        self._check_population(population)
        windows = self.generated_windows(population, generator)
        return self._member_scores(windows, population.population_size)

    def __call__(
        self, population: Population, generation: int, generator: torch.Generator
    ) -> Tensor:
        """`[P]` float64 loss = 1 − the judges' mean sigmoid(D) over the member's windows."""
        self._check_population(population)
        p = int(population.population_size)
        generated = self.generated_windows(population, generator)
        w, dev = self.windows_per_class, generator.device
        pick_person = torch.randint(
            self.person_windows.shape[0], (w,), generator=generator, device=dev
        )
        pick_generated = torch.randint(len(generated), (w,), generator=generator, device=dev)
        x = torch.cat([self.person_windows[pick_person], generated.gather(pick_generated)])
        y = torch.cat([x.new_ones(w), x.new_zeros(w)])
        update = self._evolved_update if self._module is None else self._adam_update
        stats = update(x, y)
        scores = self._member_scores(generated, p)
        self.last_scores = scores
        self.last_stats = {
            "generation": float(generation),
            **stats,
            "person_score": float(self.person_probability(x[:w]).mean()),
            "generated_score": float(scores.mean()),
            "best_generator_score": float(scores.max()),
        }
        return 1.0 - scores

    # -- results and checkpoints -----------------------------------------------------------------
    def discriminator_module(self) -> nn.Module:
        """The current discriminator (the best judge of the last generation, or the Adam
        network) as a plain module, a copy: `[B, window*(obs+A)]` windows -> logits `[B]`."""
        if self._module is not None:
            return copy.deepcopy(self._module).eval()
        assert self._judges is not None
        return WindowDiscriminator(self._judges.export(0), self._scale, self._shift).eval()

    def history_stats(self) -> dict[str, float | None]:
        """The keys `evolve_adversarial` adds to each history row (None before a call)."""
        keys = ("discriminator_loss", "discriminator_accuracy", "generated_score")
        return {k: self.last_stats.get(k) for k in keys}

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs: the discriminators and their optimiser's state."""
        state: dict[str, Any] = {"config": self.config(), "last_stats": dict(self.last_stats)}
        if self._module is not None:
            assert self._optimizer is not None
            state["module"] = self._module.state_dict()
            state["optimizer"] = self._optimizer.state_dict()
        else:
            assert self._population is not None and self._algorithm is not None
            assert self._judges is not None
            state["population"] = self._population.state_dict()
            state["algorithm"] = self._algorithm.state_dict()
            state["judges"] = self._judges.params.clone()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict()`; `CheckpointError` naming the differing settings if it was
        saved by a fitness with other settings."""
        check_fingerprint("adversarial fitness state", state.get("config"), self.config())
        try:
            if self._module is not None:
                assert self._optimizer is not None
                self._module.load_state_dict(state["module"])
                self._optimizer.load_state_dict(state["optimizer"])
            else:
                assert self._population is not None and self._algorithm is not None
                assert self._judges is not None
                self._population.load_state_dict(state["population"])
                self._algorithm.load_state_dict(state["algorithm"])
                self._judges.params.copy_(state["judges"])
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"adversarial fitness state does not load: {exc!r}") from exc
        self.last_stats = {k: float(v) for k, v in dict(state.get("last_stats", {})).items()}


def evolve_adversarial(
    population: Population,
    algorithm: Algorithm,
    fitness: AdversarialFitness,
    *,
    fingerprint: Mapping[str, Any] | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    **kwargs: Any,
) -> EvolveResult:
    """`hbm_ne.evolve` of generators against `fitness`'s discriminators, alternating each
    generation; the fitness's settings join the checkpoint fingerprint and its discriminators
    the checkpoint, so resume is bitwise.

    History rows: `train_loss` = `best_fitness` = 1 − the best generator's score, plus
    `discriminator_loss`, `discriminator_accuracy` (the judges on that generation's sample) and
    `generated_score` (the population's mean score), and whatever `eval_fn` returns. Other
    keyword arguments go to `evolve` unchanged.
    """
    if not isinstance(population, BatchedFeedforward | BatchedRecurrent):
        raise TypeError(
            "generators must be a BatchedFeedforward or BatchedRecurrent population, got "
            f"{type(population).__name__}"
        )
    fp = {**(fingerprint or {}), "adversarial_fitness": fitness.config()}
    user_eval = kwargs.pop("eval_fn", None)

    def eval_fn(best_params: Tensor, step: int) -> dict[str, Any]:
        row: dict[str, Any] = dict(fitness.history_stats())
        if user_eval is not None:
            row.update(user_eval(best_params, step))
        return row

    return evolve(
        population,
        algorithm,
        fitness,
        fingerprint=fp,
        checkpoint_path=checkpoint_path,
        eval_fn=eval_fn,
        **kwargs,
    )
