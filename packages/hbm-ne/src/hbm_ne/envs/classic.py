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
        self._force_table = torch.tensor([-self.force_mag / tm, self.force_mag / tm], dtype=_F64, device=dev)
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
        torch.sub(self._two_thirds, den, alpha=self.length * self.masspole / self.total_mass, out=den)
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
        self._push_table = torch.tensor([-self.force, 0.0, self.force], dtype=_F64, device=dev)
        self._dv = torch.empty(b, dtype=_F64, device=dev)
        self._tmp = torch.empty(b, dtype=_F64, device=dev)
        self._mask = torch.empty(b, dtype=torch.bool, device=dev)
        self._mask2 = torch.empty(b, dtype=torch.bool, device=dev)
        self._minus_ones = torch.full((b,), -1.0, dtype=torch.float32, device=dev)

    def _reset(self, seeds: list[int]) -> None:
        init = torch.from_numpy(gymnasium_uniform(seeds, -0.6, -0.4, 1))[:, 0]
        self._state[0].copy_(init.to(self.device))
        self._state[1].zero_()
        self._obs_t.copy_(self._state)

    def _step(self, actions: torch.Tensor) -> None:
        pos, vel, dv, tmp = self._state[0], self._state[1], self._dv, self._tmp
        # velocity += (action - 1) * force + cos(3 position) * (-gravity)
        torch.mul(pos, 3.0, out=tmp)
        tmp.cos_()
        torch.index_select(self._push_table, 0, actions, out=dv)
        dv.add_(tmp, alpha=-self.gravity)
        vel.add_(dv).clamp_(-self.max_speed, self.max_speed)
        pos.add_(vel).clamp_(self.min_position, self.max_position)
        # at the left wall a leftward velocity is zeroed: velocity = max(velocity, 0) there
        torch.eq(pos, self.min_position, out=self._mask)
        torch.clamp(vel, max=0.0, out=tmp)
        tmp.mul_(self._mask)
        vel.sub_(tmp)
        torch.ge(pos, self.goal_position, out=self._mask)
        torch.ge(vel, self.goal_velocity, out=self._mask2)
        torch.logical_and(self._mask, self._mask2, out=self.terminated)
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
        self._state = torch.zeros(4, b, dtype=_F64, device=dev)  # th1, th2, dth1, dth2
        self._torque_table = torch.tensor([-1.0, 0.0, 1.0], dtype=_F64, device=dev)
        self._torque = torch.empty(b, dtype=_F64, device=dev)
        self._y = torch.empty(4, b, dtype=_F64, device=dev)  # RK4 stage input
        self._ks = torch.empty(4, 4, b, dtype=_F64, device=dev)  # k1..k4
        self._trig_in = torch.empty(3, b, dtype=_F64, device=dev)  # th2, th1, th1 + th2
        self._sin = torch.empty(3, b, dtype=_F64, device=dev)
        self._cos = torch.empty(b, dtype=_F64, device=dev)
        self._d1 = torch.empty(b, dtype=_F64, device=dev)
        self._d2 = torch.empty(b, dtype=_F64, device=dev)
        self._phi1 = torch.empty(b, dtype=_F64, device=dev)
        self._num = torch.empty(b, dtype=_F64, device=dev)
        self._tmp = torch.empty(b, dtype=_F64, device=dev)
        self._angles_cos = torch.empty(2, b, dtype=_F64, device=dev)
        self._wrap = torch.empty(2, b, dtype=torch.bool, device=dev)
        self._turn = torch.empty(2, b, dtype=_F64, device=dev)
        self._minus_ones = torch.full((b,), -1.0, dtype=torch.float32, device=dev)
        m1, m2 = self.link_mass_1, self.link_mass_2
        l1, lc1, lc2, moi = self.link_length_1, self.link_com_pos_1, self.link_com_pos_2, 1.0
        # Gymnasium's d1 = m1 lc1² + m2 (l1² + lc2² + 2 l1 lc2 cos th2) + I1 + I2, etc.
        self._d1_const = m1 * lc1**2 + m2 * (l1**2 + lc2**2) + moi + moi
        self._d1_cos = m2 * 2 * l1 * lc2
        self._d2_const = m2 * lc2**2 + moi
        self._d2_cos = m2 * l1 * lc2
        self._mllc = m2 * l1 * lc2
        self._phi1_g = (m1 * lc1 + m2 * l1) * self.g
        self._phi2_g = m2 * lc2 * self.g
        self._den_const = m2 * lc2**2 + moi

    def _reset(self, seeds: list[int]) -> None:
        # Gymnasium stores the initial state as float32, then integrates in float64.
        init = gymnasium_uniform(seeds, -0.1, 0.1, 4).astype("float32").astype("float64")
        self._state.copy_(torch.from_numpy(init).to(self.device).T)
        self._write_obs()

    def _write_obs(self) -> None:
        angles, obs_t = self._state[0:2], self._obs_t
        torch.cos(angles, out=self._angles_cos)
        obs_t[0:4:2].copy_(self._angles_cos)
        obs_t[1:4:2].copy_(torch.sin(angles, out=self._trig_in[0:2]))
        obs_t[4:6].copy_(self._state[2:4])

    def _derivs(self, y: torch.Tensor, out: torch.Tensor) -> None:
        """Time derivative of y = (th1, th2, dth1, dth2) `[4, B]` under `self._torque`."""
        th1, th2, dth1, dth2 = y[0], y[1], y[2], y[3]
        trig_in, sin, cos = self._trig_in, self._sin, self._cos
        d1, d2, phi1, num, tmp = self._d1, self._d2, self._phi1, self._num, self._tmp
        out[0:2].copy_(y[2:4])
        trig_in[0:2].copy_(y[0:2])
        torch.add(th1, th2, out=trig_in[2])
        # cos(x - pi/2) = sin(x): sin of (th1, th2, th1 + th2) in one kernel
        torch.sin(trig_in, out=sin)
        sin1, sin2, sin12 = sin[0], sin[1], sin[2]
        torch.cos(th2, out=cos)
        torch.mul(cos, self._d1_cos, out=d1).add_(self._d1_const)
        torch.mul(cos, self._d2_cos, out=d2).add_(self._d2_const)
        # phi1 = -mllc dth2² sin2 - 2 mllc dth2 dth1 sin2 + phi1_g sin1 + phi2
        #      = phi1_g sin1 + phi2 - mllc sin2 dth2 (dth2 + 2 dth1)
        torch.add(dth2, dth1, alpha=2.0, out=tmp)
        tmp.mul_(dth2).mul_(sin2)
        torch.mul(sin1, self._phi1_g, out=phi1)
        phi1.add_(sin12, alpha=self._phi2_g).sub_(tmp, alpha=self._mllc)
        # ddth2 = (a + d2/d1 phi1 - mllc dth1² sin2 - phi2) / (den_const - d2²/d1)
        ddth2, ddth1 = out[3], out[2]
        torch.div(d2, d1, out=num)  # num = d2/d1 for now
        torch.mul(num, d2, out=ddth2)
        ddth2.neg_().add_(self._den_const)  # ddth2 holds the denominator
        num.mul_(phi1).add_(self._torque)
        torch.mul(dth1, dth1, out=tmp)
        tmp.mul_(sin2)
        num.sub_(tmp, alpha=self._mllc).sub_(sin12, alpha=self._phi2_g)
        torch.div(num, ddth2, out=ddth2)
        # ddth1 = -(d2 ddth2 + phi1) / d1
        torch.addcmul(phi1, d2, ddth2, out=ddth1)
        ddth1.div_(d1).neg_()

    def _step(self, actions: torch.Tensor) -> None:
        state, y, ks = self._state, self._y, self._ks
        torch.index_select(self._torque_table, 0, actions, out=self._torque)
        h = self.dt
        self._derivs(state, ks[0])
        torch.add(state, ks[0], alpha=h / 2, out=y)
        self._derivs(y, ks[1])
        torch.add(state, ks[1], alpha=h / 2, out=y)
        self._derivs(y, ks[2])
        torch.add(state, ks[2], alpha=h, out=y)
        self._derivs(y, ks[3])
        # state += dt/6 (k1 + 2 k2 + 2 k3 + k4)
        torch.add(ks[1], ks[2], out=y)
        y.mul_(2.0).add_(ks[0]).add_(ks[3])
        state.add_(y, alpha=h / 6.0)
        # wrap angles into [-pi, pi] as Gymnasium's `wrap` does (one turn at most per step),
        # clip velocities
        angles, wrap, turn = state[0:2], self._wrap, self._turn
        torch.gt(angles, math.pi, out=wrap)
        torch.mul(wrap, 2 * math.pi, out=turn)
        angles.sub_(turn)
        torch.lt(angles, -math.pi, out=wrap)
        torch.mul(wrap, 2 * math.pi, out=turn)
        angles.add_(turn)
        state[2].clamp_(-self.max_vel_1, self.max_vel_1)
        state[3].clamp_(-self.max_vel_2, self.max_vel_2)
        # terminal: -cos(th1) - cos(th1 + th2) > 1
        self._write_obs()
        trig_in = self._trig_in
        torch.add(angles[0], angles[1], out=trig_in[2])
        torch.cos(trig_in[2], out=self._cos)
        self._cos.add_(self._angles_cos[0])
        torch.lt(self._cos, -1.0, out=self.terminated)
        # reward -1 per step, 0 on the terminating step
        torch.add(self._minus_ones, self.terminated, out=self.reward)
