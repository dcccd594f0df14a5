"""Torch versions of Gymnasium's classic-control tasks, stepping B environments at once.

The dynamics follow `gymnasium/envs/classic_control/*.py` operation for operation. The state is
kept in float64, as Gymnasium keeps it, so trajectories agree with Gymnasium to float64
rounding (torch's and numpy's `cos`/`sin` differ by at most one ulp) and termination decisions
match; observations are float32, as Gymnasium returns them. Every step runs a fixed, short list
of in-place kernels on preallocated `[k, B]` buffers (structure of arrays): at B ≈ 1000 a step
costs per-kernel overhead, not arithmetic, so the number of kernels is what is optimised.
"""

from __future__ import annotations

import math

import torch

from hbm_ne.envs._base import BatchedEnv, gymnasium_uniform

_F64 = torch.float64


class CartPole(BatchedEnv):
    """CartPole-v1: push the cart left (0) or right (1); +1 per step, 500 steps at most."""

    env_id = "CartPole-v1"
    obs_size = 4
    num_actions = 2
    max_episode_steps = 500

    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4

    def __init__(self, num_envs: int, *, device: torch.device | str = "cpu") -> None:
        super().__init__(num_envs, device=device)
        b, dev = self.num_envs, self.device
        # rows in observation order: x, x_dot, theta, theta_dot. Positions (rows 0, 2) and
        # velocities (rows 1, 3) are [2, B] strided views, each updated by one kernel.
        self._state = state = torch.zeros(4, b, dtype=_F64, device=dev)
        self._pos, self._vel = state[0::2], state[1::2]
        self._theta, self._theta_dot = state[2], state[3]
        tm = self.total_mass
        # force / total_mass, indexed by the action
        self._force_table = torch.tensor(
            [-self.force_mag / tm, self.force_mag / tm], dtype=_F64, device=dev
        )
        self._thresholds = torch.tensor(
            [[self.x_threshold], [self.theta_threshold_radians]], dtype=_F64, device=dev
        )
        self._two_thirds = torch.tensor(self.length * 4.0 / 3.0, dtype=_F64, device=dev)
        self._sin = torch.empty(b, dtype=_F64, device=dev)
        self._cos = torch.empty(b, dtype=_F64, device=dev)
        self._temp = torch.empty(b, dtype=_F64, device=dev)
        self._tmp = torch.empty(b, dtype=_F64, device=dev)
        self._den = torch.empty(b, dtype=_F64, device=dev)
        self._acc = torch.empty(2, b, dtype=_F64, device=dev)  # x_acc, theta_acc
        self._x_acc, self._theta_acc = self._acc[0], self._acc[1]
        self._delta = torch.empty(2, b, dtype=_F64, device=dev)
        self._outside = torch.empty(2, b, dtype=torch.bool, device=dev)
        self._outside_x, self._outside_theta = self._outside[0], self._outside[1]
        self._ones = torch.ones(b, dtype=torch.float32, device=dev)

    def _reset(self, seeds: list[int]) -> None:
        init = torch.from_numpy(gymnasium_uniform(seeds, -0.05, 0.05, 4))  # [B, 4]
        self._state.copy_(init.to(self.device).T)
        self._obs_t.copy_(self._state)

    def _step(self, actions: torch.Tensor) -> None:
        sin, cos, temp, tmp, den = self._sin, self._cos, self._temp, self._tmp, self._den
        theta_acc, theta_dot = self._theta_acc, self._theta_dot
        torch.sin(self._theta, out=sin)
        torch.cos(self._theta, out=cos)
        # temp = (force + polemass_length * theta_dot**2 * sin) / total_mass
        torch.index_select(self._force_table, 0, actions, out=temp)
        torch.mul(theta_dot, theta_dot, out=tmp)
        tmp.mul_(sin)
        temp.add_(tmp, alpha=self.polemass_length / self.total_mass)
        # theta_acc = (g sin - cos temp) / (length (4/3 - masspole cos**2 / total_mass))
        torch.mul(cos, cos, out=den)
        torch.sub(
            self._two_thirds, den, alpha=self.length * self.masspole / self.total_mass, out=den
        )
        torch.mul(cos, temp, out=tmp)
        torch.mul(sin, self.gravity, out=theta_acc)
        theta_acc.sub_(tmp).div_(den)
        # x_acc = temp - polemass_length theta_acc cos / total_mass
        torch.mul(theta_acc, cos, out=tmp)
        torch.sub(temp, tmp, alpha=self.polemass_length / self.total_mass, out=self._x_acc)
        # Euler: positions from the old velocities, then velocities.
        self._pos.add_(self._vel, alpha=self.tau)
        self._vel.add_(self._acc, alpha=self.tau)
        torch.abs(self._pos, out=self._delta)
        torch.gt(self._delta, self._thresholds, out=self._outside)
        torch.logical_or(self._outside_x, self._outside_theta, out=self.terminated)
        self._obs_t.copy_(self._state)
        self.reward.copy_(self._ones)


class MountainCar(BatchedEnv):
    """MountainCar-v0: push left (0), no push (1), push right (2); -1 per step, 200 steps."""

    env_id = "MountainCar-v0"
    obs_size = 2
    num_actions = 3
    max_episode_steps = 200

    min_position = -1.2
    max_position = 0.6
    max_speed = 0.07
    goal_position = 0.5
    goal_velocity = 0.0
    force = 0.001
    gravity = 0.0025

    def __init__(self, num_envs: int, *, device: torch.device | str = "cpu") -> None:
        super().__init__(num_envs, device=device)
        b, dev = self.num_envs, self.device
        self._state = torch.zeros(2, b, dtype=_F64, device=dev)  # position, velocity
        self._pos, self._vel = self._state.unbind(0)
        self._push_table = torch.tensor([-self.force, 0.0, self.force], dtype=_F64, device=dev)
        self._dv = torch.empty(b, dtype=_F64, device=dev)
        self._tmp = torch.empty(b, dtype=_F64, device=dev)
        self._mask = torch.empty(b, dtype=torch.bool, device=dev)
        self._goal = torch.tensor(
            [[self.goal_position], [self.goal_velocity]], dtype=_F64, device=dev
        )
        self._at_goal = torch.empty(2, b, dtype=torch.bool, device=dev)
        self._at_goal_rows = self._at_goal.unbind(0)
        self._minus_ones = torch.full((b,), -1.0, dtype=torch.float32, device=dev)

    def _reset(self, seeds: list[int]) -> None:
        init = torch.from_numpy(gymnasium_uniform(seeds, -0.6, -0.4, 1))[:, 0]
        self._state[0].copy_(init.to(self.device))
        self._state[1].zero_()
        self._obs_t.copy_(self._state)

    def _step(self, actions: torch.Tensor) -> None:
        pos, vel, dv, tmp = self._pos, self._vel, self._dv, self._tmp
        # velocity += (action - 1) * force + cos(3 position) * (-gravity)
        torch.mul(pos, 3.0, out=tmp)
        tmp.cos_()
        torch.index_select(self._push_table, 0, actions, out=dv)
        dv.add_(tmp, alpha=-self.gravity)
        vel.add_(dv).clamp_(-self.max_speed, self.max_speed)
        pos.add_(vel).clamp_(self.min_position, self.max_position)
        # Gymnasium zeroes a leftward velocity at the left wall; the clip puts the car at the
        # wall only when the velocity was <= 0, so zeroing it whenever the car is there agrees
        torch.eq(pos, self.min_position, out=self._mask)
        vel.masked_fill_(self._mask, 0.0)
        torch.ge(self._state, self._goal, out=self._at_goal)
        torch.logical_and(*self._at_goal_rows, out=self.terminated)
        self._obs_t.copy_(self._state)
        self.reward.copy_(self._minus_ones)


class Acrobot(BatchedEnv):
    """Acrobot-v1: torque -1 (0), 0 (1), +1 (2) on the joint; -1 per step until the tip
    swings above the bar, 500 steps at most. RK4 over one 0.2 s step, as in Gymnasium."""

    env_id = "Acrobot-v1"
    obs_size = 6
    num_actions = 3
    max_episode_steps = 500

    dt = 0.2
    link_length_1 = 1.0
    link_mass_1 = 1.0
    link_mass_2 = 1.0
    link_com_pos_1 = 0.5
    link_com_pos_2 = 0.5
    link_moi = 1.0
    max_vel_1 = 4 * math.pi
    max_vel_2 = 9 * math.pi
    g = 9.8

    def __init__(self, num_envs: int, *, device: torch.device | str = "cpu") -> None:
        super().__init__(num_envs, device=device)
        b, dev = self.num_envs, self.device

        def buf(*shape: int) -> torch.Tensor:
            return torch.empty(*shape, dtype=_F64, device=dev)

        def const(rows: list[list[float]]) -> torch.Tensor:
            return torch.tensor(rows, dtype=_F64, device=dev)

        m1, m2 = self.link_mass_1, self.link_mass_2
        l1, lc1, lc2, moi = self.link_length_1, self.link_com_pos_1, self.link_com_pos_2, 1.0
        half_pi = math.pi / 2
        self._state = state = torch.zeros(4, b, dtype=_F64, device=dev)  # th1, th2, dth1, dth2
        self._torque_table = torch.tensor([-1.0, 0.0, 1.0], dtype=_F64, device=dev)
        self._torque = buf(b)
        self._y = y = buf(4, b)  # RK4 stage input
        self._ks = ks = buf(4, 4, b)  # k1..k4
        # One small matmul makes every angle that a sin is taken of; cos x = sin(x + pi/2) and
        # cos(x - pi/2) = sin x, so one sin kernel gives all the trigonometry of a stage.
        self._trig_map = const([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0]])
        self._trig_offset = const([[0], [0], [0], [half_pi]])
        self._trig = buf(4, b)  # sin th1, sin th2, sin(th1 + th2), cos th2
        _, self._sin2, self._sin12, _ = self._trig.unbind(0)
        self._cos2_row = self._trig[3:4]
        # (-d1, d2) = c0 + c1 cos th2, from Gymnasium's
        # d1 = m1 lc1² + m2 (l1² + lc2² + 2 l1 lc2 cos th2) + I1 + I2,
        # d2 = m2 (lc2² + l1 lc2 cos th2) + I2
        self._d_c0 = const(
            [[-(m1 * lc1**2 + m2 * (l1**2 + lc2**2) + moi + moi)], [m2 * lc2**2 + moi]]
        )
        self._d_c1 = const([[-(m2 * 2 * l1 * lc2)], [m2 * l1 * lc2]])
        self._d = buf(2, b)
        self._neg_d1, self._d2 = self._d.unbind(0)
        self._mllc = m2 * l1 * lc2
        self._phi2_g = m2 * lc2 * self.g
        phi1_g = (m1 * lc1 + m2 * l1) * self.g
        self._phi_weights = const([[phi1_g, 0.0, self._phi2_g, 0.0]])
        self._den_0 = torch.tensor(m2 * lc2**2 + moi, dtype=_F64, device=dev)
        self._phi1_row, self._q, self._den, self._num, self._tmp = (
            buf(1, b), buf(b), buf(b), buf(b), buf(b)
        )  # fmt: skip
        self._phi1 = self._phi1_row[0]
        # state += dt/6 (k1 + 2 k2 + 2 k3 + k4) as one matmul over the stacked k's
        self._rk4_weights = const([[1.0, 2.0, 2.0, 1.0]]).mul_(self.dt / 6.0)
        self._state_row, self._ks_rows = state.view(1, 4 * b), ks.view(4, 4 * b)
        self._turns = buf(2, b)
        self._max_vel = const([[self.max_vel_1], [self.max_vel_2]])
        self._min_vel = -self._max_vel
        # observation angles: th1 + pi/2, th1, th2 + pi/2, th2 (sin -> cos th1, sin th1, cos
        # th2, sin th2) and th1 + th2 + pi/2 (-> cos(th1 + th2), for the terminal test)
        self._obs_map = const(
            [[1, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0]]
        )
        self._obs_offset = const([[half_pi], [0], [half_pi], [0], [half_pi]])
        self._obs_trig = buf(5, b)
        self._cos_th1, self._cos_th12 = self._obs_trig[0], self._obs_trig[4]
        self._obs_trig_src, self._obs_trig_dst = self._obs_trig[0:4], self._obs_t[0:4]
        self._obs_vel = self._obs_t[4:6]
        # Views made once: slicing costs as much as a small kernel at this batch size.
        self._angles, self._velocities = state[0:2], state[2:4]
        self._stages = [
            (self._stage_views(inp), self._stage_views(k))
            for inp, k in ((state, ks[0]), (y, ks[1]), (y, ks[2]), (y, ks[3]))
        ]
        self._k = ks.unbind(0)

    @staticmethod
    def _stage_views(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(whole, angles, velocities, th1, th2, dth1, dth2) views of a `[4, B]` tensor."""
        return (t, t[0:2], t[2:4], *t.unbind(0))

    def _reset(self, seeds: list[int]) -> None:
        # Gymnasium stores the initial state as float32, then integrates in float64.
        init = gymnasium_uniform(seeds, -0.1, 0.1, 4).astype("float32").astype("float64")
        self._state.copy_(torch.from_numpy(init).to(self.device).T)
        self._write_obs()

    def _write_obs(self) -> None:
        torch.addmm(self._obs_offset, self._obs_map, self._state, out=self._obs_trig).sin_()
        self._obs_trig_dst.copy_(self._obs_trig_src)
        self._obs_vel.copy_(self._velocities)

    def _derivs(self, y: tuple[torch.Tensor, ...], out: tuple[torch.Tensor, ...]) -> None:
        """Time derivative of y = (th1, th2, dth1, dth2) `[4, B]` under `self._torque`.

        Gymnasium's `_dsdt` ("book" variant) with its constants folded:
        phi1 = phi1_g sin th1 + phi2_g sin(th1 + th2) - mllc sin th2 dth2 (dth2 + 2 dth1),
        ddth2 = (a + d2/d1 phi1 - mllc dth1² sin th2 - phi2_g sin(th1 + th2))
                / (den_0 - d2²/d1),  ddth1 = -(d2 ddth2 + phi1) / d1.
        """
        whole, _, velocities, _, _, dth1, dth2 = y
        sin2, sin12, neg_d1, d2 = self._sin2, self._sin12, self._neg_d1, self._d2
        phi1, q, den, num, tmp = self._phi1, self._q, self._den, self._num, self._tmp
        ddth1, ddth2 = out[5], out[6]
        out[1].copy_(velocities)
        torch.addmm(self._trig_offset, self._trig_map, whole, out=self._trig).sin_()
        torch.addcmul(self._d_c0, self._d_c1, self._cos2_row, out=self._d)
        torch.mm(self._phi_weights, self._trig, out=self._phi1_row)
        torch.add(dth2, dth1, alpha=2.0, out=tmp)
        tmp.mul_(dth2)
        torch.addcmul(phi1, tmp, sin2, value=-self._mllc, out=phi1)
        torch.div(d2, neg_d1, out=q)  # -d2/d1
        torch.addcmul(self._den_0, q, d2, out=den)
        torch.addcmul(self._torque, q, phi1, value=-1.0, out=num)
        torch.mul(dth1, dth1, out=tmp)
        torch.addcmul(num, tmp, sin2, value=-self._mllc, out=num)
        num.sub_(sin12, alpha=self._phi2_g)
        torch.div(num, den, out=ddth2)
        torch.addcmul(phi1, d2, ddth2, out=ddth1)
        ddth1.div_(neg_d1)

    def _step(self, actions: torch.Tensor) -> None:
        state, y, (k1, k2, k3, _) = self._state, self._y, self._k
        torch.index_select(self._torque_table, 0, actions, out=self._torque)
        h = self.dt
        stages = self._stages
        self._derivs(*stages[0])
        torch.add(state, k1, alpha=h / 2, out=y)
        self._derivs(*stages[1])
        torch.add(state, k2, alpha=h / 2, out=y)
        self._derivs(*stages[2])
        torch.add(state, k3, alpha=h, out=y)
        self._derivs(*stages[3])
        self._state_row.addmm_(self._rk4_weights, self._ks_rows)
        # wrap angles into [-pi, pi] as Gymnasium's `wrap` does (x -+ 2 pi; one turn at most
        # per step), clip velocities
        angles, turns = self._angles, self._turns
        torch.mul(angles, 1.0 / (2 * math.pi), out=turns).round_()
        angles.sub_(turns, alpha=2 * math.pi)
        torch.clamp(self._velocities, self._min_vel, self._max_vel, out=self._velocities)
        self._write_obs()
        # terminal: -cos(th1) - cos(th1 + th2) > 1; reward -1 per step, 0 on the last
        torch.add(self._cos_th1, self._cos_th12, out=self._tmp)
        torch.lt(self._tmp, -1.0, out=self.terminated)
        self.reward.copy_(self.terminated).sub_(1.0)
