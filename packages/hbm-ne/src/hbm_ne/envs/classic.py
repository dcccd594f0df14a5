"""Torch versions of Gymnasium's classic-control tasks, stepping B environments at once.

The dynamics repeat `gymnasium/envs/classic_control/*.py` operation for operation on float64
state, as Gymnasium keeps it: the same IEEE operations in the same order with the same
constants (no fused multiply-adds, no reassociation), and Gymnasium's own `cos`, `sin` and
`x**2` (glibc's, through numpy; see `_ops`). On CPU every observation, reward and flag is
therefore bit for bit Gymnasium's; on other devices the same sequence runs in torch and agrees
to rounding. Observations are float32, as Gymnasium returns them. Each step is a fixed list of
`out=` calls on preallocated `[k, B]` buffers (structure of arrays), several rows per call.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
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
        b, dev, v = self.num_envs, self.device, self._ops.view

        def buf(*shape: int, dtype: torch.dtype = _F64) -> torch.Tensor:
            return torch.zeros(*shape, dtype=dtype, device=dev)

        # rows in observation order: x, x_dot, theta, theta_dot. Positions (rows 0, 2) and
        # velocities (rows 1, 3) are [2, B] strided views, each updated by one call.
        self._state_t = buf(4, b)
        state = v(self._state_t)
        self._state, self._pos, self._vel = state, state[0::2], state[1::2]
        self._theta, self._theta_dot = state[2], state[3]
        # force = force_mag if action == 1 else -force_mag, indexed by the action
        self._force_table = self._const([-self.force_mag, self.force_mag])
        self._thresholds = self._const([[self.x_threshold], [self.theta_threshold_radians]])
        self._sin, self._cos = v(buf(b)), v(buf(b))
        self._temp, self._tmp, self._den = v(buf(b)), v(buf(b)), v(buf(b))
        acc = v(buf(2, b))  # x_acc, theta_acc
        self._acc, self._x_acc, self._theta_acc = acc, acc[0], acc[1]
        self._delta = v(buf(2, b))
        outside = v(buf(2, b, dtype=torch.bool))
        self._outside, self._outside_x, self._outside_theta = outside, outside[0], outside[1]

    def _reset(self, seeds: list[int]) -> None:
        init = torch.from_numpy(gymnasium_uniform(seeds, -0.05, 0.05, 4))  # [B, 4]
        self._state_t.copy_(init.to(self.device).T)
        self._obs_t.copy_(self._state_t)

    def _step(self, actions: torch.Tensor) -> None:
        ops = self._ops
        sin, cos, temp, tmp, den = self._sin, self._cos, self._temp, self._tmp, self._den
        theta_acc, theta_dot = self._theta_acc, self._theta_dot
        ops.cos(self._theta, cos)
        ops.sin(self._theta, sin)
        # temp = (force + polemass_length * np.square(theta_dot) * sintheta) / total_mass
        ops.take(self._force_table, ops.view(actions), temp)
        ops.mul(theta_dot, theta_dot, tmp)
        ops.mul(tmp, self.polemass_length, tmp)
        ops.mul(tmp, sin, tmp)
        ops.add(temp, tmp, temp)
        ops.div(temp, self.total_mass, temp)
        # thetaacc = (gravity * sintheta - costheta * temp)
        #     / (length * (4.0 / 3.0 - masspole * np.square(costheta) / total_mass))
        ops.mul(cos, cos, den)
        ops.mul(den, self.masspole, den)
        ops.div(den, self.total_mass, den)
        ops.sub(4.0 / 3.0, den, den)
        ops.mul(den, self.length, den)
        ops.mul(sin, self.gravity, theta_acc)
        ops.mul(cos, temp, tmp)
        ops.sub(theta_acc, tmp, theta_acc)
        ops.div(theta_acc, den, theta_acc)
        # xacc = temp - polemass_length * thetaacc * costheta / total_mass
        ops.mul(theta_acc, self.polemass_length, tmp)
        ops.mul(tmp, cos, tmp)
        ops.div(tmp, self.total_mass, tmp)
        ops.sub(temp, tmp, self._x_acc)
        # Euler: x = x + tau * x_dot (old velocities), then x_dot = x_dot + tau * xacc
        delta = self._delta
        ops.mul(self._vel, self.tau, delta)
        ops.add(self._pos, delta, self._pos)
        ops.mul(self._acc, self.tau, delta)
        ops.add(self._vel, delta, self._vel)
        # x < -x_threshold or x > x_threshold or theta < -... or theta > ... (|.| is exact)
        ops.abs(self._pos, delta)
        ops.gt(delta, self._thresholds, self._outside)
        ops.logical_or(self._outside_x, self._outside_theta, self._terminated_a)
        ops.copy(self._obs_a, self._state)
        ops.fill(self._reward_a, 1.0)


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
        b, dev, v = self.num_envs, self.device, self._ops.view
        self._state_t = torch.zeros(2, b, dtype=_F64, device=dev)  # position, velocity
        self._state = v(self._state_t)
        self._pos, self._vel = self._state[0], self._state[1]
        # (action - 1) * force, indexed by the action
        self._push_table = self._const([(a - 1) * self.force for a in range(3)])
        self._dv = v(torch.empty(b, dtype=_F64, device=dev))
        self._tmp = v(torch.empty(b, dtype=_F64, device=dev))
        masks = v(torch.empty(2, b, dtype=torch.bool, device=dev))
        self._masks, self._mask0, self._mask1 = masks, masks[0], masks[1]
        self._goal = self._const([[self.goal_position], [self.goal_velocity]])

    def _reset(self, seeds: list[int]) -> None:
        init = torch.from_numpy(gymnasium_uniform(seeds, -0.6, -0.4, 1))[:, 0]
        self._state_t[0].copy_(init.to(self.device))
        self._state_t[1].zero_()
        self._obs_t.copy_(self._state_t)

    def _step(self, actions: torch.Tensor) -> None:
        ops, pos, vel, dv, tmp = self._ops, self._pos, self._vel, self._dv, self._tmp
        # velocity += (action - 1) * force + math.cos(3 * position) * (-gravity)
        ops.mul(pos, 3.0, tmp)
        ops.cos(tmp, tmp)
        ops.mul(tmp, -self.gravity, tmp)
        ops.take(self._push_table, ops.view(actions), dv)
        ops.add(dv, tmp, dv)
        ops.add(vel, dv, vel)
        ops.maximum(vel, -self.max_speed, vel)
        ops.minimum(vel, self.max_speed, vel)
        ops.add(pos, vel, pos)
        ops.maximum(pos, self.min_position, pos)
        ops.minimum(pos, self.max_position, pos)
        # if position == min_position and velocity < 0: velocity = 0
        ops.eq(pos, self.min_position, self._mask0)
        ops.lt(vel, 0.0, self._mask1)
        ops.logical_and(self._mask0, self._mask1, self._mask0)
        ops.fill_where(vel, 0.0, self._mask0)
        # position >= goal_position and velocity >= goal_velocity
        ops.ge(self._state, self._goal, self._masks)
        ops.logical_and(self._mask0, self._mask1, self._terminated_a)
        ops.copy(self._obs_a, self._state)
        ops.fill(self._reward_a, -1.0)


class _Stage(NamedTuple):
    """Prebuilt views of one RK4 stage's buffers (slicing costs as much as a small op)."""

    y: Any  # [7, B] (see `Acrobot.__init__`)
    state: Any  # rows 1..4: the stage input y (th1, th2, dth1, dth2)
    k: Any  # rows 3..6: its derivative (dth1, dth2, ddth1, ddth2)
    th1: Any
    th2: Any
    vel: Any  # rows 3..4
    dth1: Any
    dth2: Any
    ddth1: Any
    ddth2: Any
    shifted: Any  # rows 0..1: th1 + th2 - pi/2, th1 - pi/2
    sum_: Any  # row 0
    trig_in: Any  # rows 0..2
    cos: Any  # [3, B]: cos(th1 + th2 - pi/2), cos(th1 - pi/2), cos th2 (stages 2..4)
    cos_ab: Any  # rows 0..1 of cos
    cos2: Any
    sin2: Any  # [B]

    @classmethod
    def of(cls, y: Any, cos: Any, cos_ab: Any, cos2: Any, sin2: Any) -> _Stage:
        return cls(
            y, y[1:5], y[3:7], y[1], y[2], y[3:5], y[3], y[4], y[5], y[6], y[0:2], y[0],
            y[0:3], cos, cos_ab, cos2, sin2,
        )  # fmt: skip


class Acrobot(BatchedEnv):
    """Acrobot-v1: torque -1 (0), 0 (1), +1 (2) on the joint; -1 per step until the tip
    swings above the bar, 500 steps at most. RK4 over one 0.2 s step, as in Gymnasium.

    Gymnasium's `_dsdt` ("book" dynamics) and `rk4` evaluated expression by expression, in
    Python's left-to-right order, with Gymnasium's constants folded as Python folds them
    (`2 * l1 * lc2` = 1.0, `m2 * lc2 * g` = 4.9, ...). Multiplications by an exact 1.0 are
    left out, and d1 is carried negated (IEEE rounding is symmetric, so -(a + b) == (-a) - b),
    which turns `d2 / d1 * phi1`, `- d2**2 / d1` and `-(...) / d1` into plain ops. Each stage
    needs cos th2, sin th2, cos(th1 + th2 - pi/2), cos(th1 - pi/2) and three squares (libm
    `pow`, as numpy scalars square): these libm calls are most of a step's time. The first
    stage's trigonometry comes with the previous step's observation.
    """

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
        b, dev, v = self.num_envs, self.device, self._ops.view

        def buf(*shape: int, dtype: torch.dtype = _F64) -> Any:
            return v(torch.zeros(*shape, dtype=dtype, device=dev))

        m1, m2, l1 = self.link_mass_1, self.link_mass_2, self.link_length_1
        lc1, lc2, i1, i2, g = self.link_com_pos_1, self.link_com_pos_2, 1.0, 1.0, 9.8
        # the factors that `_dsdt` leaves out (x * 1.0 == x)
        assert m2 == 1.0 and 2 * l1 * lc2 == 1.0, "constants of Acrobot-v1"
        self._torque_table = self._const([-1.0, 0.0, 1.0])  # AVAIL_TORQUE
        self._torque = buf(b)

        # The state lives in one [9, B] buffer with what its trigonometry and its first RK4
        # stage need, rows: 0 th1 + th2 - pi/2, 1 th1 - pi/2, 2 th1 + th2, 3 th1, 4 th2, 5 dth1,
        # 6 dth2, 7 ddth1, 8 ddth2: rows 3..6 are the state, rows 0..4 the inputs of its cos
        # (rows 3..4 of its sin), rows 5..8 the first stage's derivative k1.
        self._ext_t = torch.zeros(9, b, dtype=_F64, device=dev)
        self._state_t = self._ext_t[3:7]  # th1, th2, dth1, dth2
        ext = v(self._ext_t)
        self._s = s = ext[3:7]
        self._angles, self._velocities = s[0:2], s[2:4]
        # cos of ext rows 0..4 (0 cos A, 1 cos B, 2 cos(th1 + th2), 3 cos th1, 4 cos th2), then
        # 5 sin th1, 6 sin th2: the observation, the terminal test and the next first stage.
        self._trig = trig = buf(7, b)
        self._trig_views = (
            ext[3], ext[4], ext[2], ext[2:4], ext[0:2], ext[0:5], trig[0:5], ext[3:5], trig[5:7]
        )  # fmt: skip
        # One [7, B] buffer per later RK4 stage, rows: 0 th1 + th2 - pi/2 (scratch), 1 th1
        # (then th1 - pi/2), 2 th2, 3 dth1, 4 dth2, 5 ddth1, 6 ddth2: rows 1..4 are the stage
        # input y, rows 3..6 its derivative k.
        stage1 = ext[2:9]  # the same rows 3..6 (k) as a stage buffer
        self._stages = []
        for i in range(4):
            if i == 0:  # the state's cos(th1 + th2 - pi/2), cos(th1 - pi/2), cos th2, sin th2
                y = stage1
                cos, cos_ab, cos2, sin2 = trig[0:5], trig[0:2], trig[4], trig[6]
            else:
                y, cos, sin2 = buf(7, b), buf(3, b), buf(b)
                cos_ab, cos2 = cos[0:2], cos[2]
            self._stages.append(_Stage.of(y, cos, cos_ab, cos2, sin2))
        # [[cos th1, sin th1], [cos th2, sin th2]]: trig rows (3, 5; 4, 6)
        self._obs_trig = self._ops.strided(trig[3:], (2, 2, b), (b, 2 * b, 1))
        self._obs_trig_dst = self._obs_a[0:4].reshape(2, 2, b)
        self._obs_vel = self._obs_a[4:6]
        self._cos1, self._cos12 = trig[3], trig[2]
        self._tip, self._abs_angles = buf(b), buf(2, b)
        self._turn = buf(2, b, dtype=torch.bool)

        # scratch of the derivative (see `_dsdt`)
        d = buf(3, b)  # -d1, d2, d2**2
        sq = buf(3, b)  # dth1**2, dth2**2, dth2 dth1 -> the three terms with sin th2
        phi = buf(2, b)  # phi2, (m1 lc1 + m2 l1) g cos(th1 - pi/2)
        ratio = buf(2, b)  # d2 / -d1, d2**2 / -d1
        self._scratch = (
            d, d[0:2], d[0], d[1], d[2], d[1:3], sq, sq[0:2], sq[0], sq[1], sq[2],
            phi, phi[0], phi[1], buf(b), ratio, ratio[0], ratio[1], buf(b),
        )  # fmt: skip
        self._k_sum, self._k_tmp = buf(4, b), buf(4, b)

        self._c_d_scale = self._const([[-1.0], [l1 * lc2]])
        self._c_d_inner = self._const([[-(l1**2 + lc2**2)], [lc2**2]])
        self._c_d_outer = self._const([[-(m1 * lc1**2)], [i2]])
        self._c_i1, self._c_i2 = i1, i2
        self._c_phi = self._const([[m2 * lc2 * g], [(m1 * lc1 + m2 * l1) * g]])
        self._c_sq = self._const([[m2 * l1 * lc2], [-m2 * l1 * lc2]])
        self._c_den = m2 * lc2**2 + i2
        self._vel_low = self._const([[-self.max_vel_1], [-self.max_vel_2]])
        self._vel_high = self._const([[self.max_vel_1], [self.max_vel_2]])

    def _reset(self, seeds: list[int]) -> None:
        # Gymnasium draws the state as float32 (and so computes the first observation's
        # trigonometry in float32), then integrates in float64.
        init = gymnasium_uniform(seeds, -0.1, 0.1, 4).astype(np.float32)  # [B, 4]
        th1, th2 = init[:, 0], init[:, 1]
        obs = np.stack([np.cos(th1), np.sin(th1), np.cos(th2), np.sin(th2), init[:, 2], init[:, 3]])
        self._obs_t.copy_(torch.from_numpy(obs))
        self._state_t.copy_(torch.from_numpy(init.T.astype(np.float64)))
        self._state_trig()

    def _state_trig(self) -> None:
        """cos/sin of the state's angles (buffer `_trig`), as Gymnasium needs them."""
        ops = self._ops
        th1, th2, th12, sum_th1, shifted, cos_in, cos_out, sin_in, sin_out = self._trig_views
        # cos(s[1] + s[0]) (terminal) and theta1 + theta2 (`_dsdt`): the same sum
        ops.add(th1, th2, th12)
        ops.sub(sum_th1, math.pi / 2, shifted)
        ops.cos(cos_in, cos_out)
        ops.sin(sin_in, sin_out)

    def _dsdt(self, st: _Stage) -> None:
        """Gymnasium's `_dsdt`: ddth1, ddth2 of a stage from its velocities and trigonometry."""
        ops = self._ops
        _, d01, nd1, d2, d2sq, d12, sq, sq01, sq0, sq1, sq2, phi, phi2, phi_b, phi1, ratio, r0, r1, num = self._scratch  # fmt: skip  # noqa: E501
        # d1 = m1 lc1**2 + m2 (l1**2 + lc2**2 + 2 l1 lc2 cos th2) + I1 + I2 (as -d1);
        # d2 = m2 (lc2**2 + l1 lc2 cos th2) + I2
        ops.mul(st.cos2, self._c_d_scale, d01)
        ops.add(d01, self._c_d_inner, d01)
        ops.add(d01, self._c_d_outer, d01)
        ops.sub(nd1, self._c_i1, nd1)
        ops.sub(nd1, self._c_i2, nd1)
        # phi2 = m2 lc2 g cos(th1 + th2 - pi/2); (m1 lc1 + m2 l1) g cos(th1 - pi/2)
        ops.mul(st.cos_ab, self._c_phi, phi)
        # m2 l1 lc2 dth1**2 sin th2, -m2 l1 lc2 dth2**2 sin th2, 2 m2 l1 lc2 dth2 dth1 sin th2
        ops.pow2(st.vel, sq01)
        ops.mul(st.dth2, st.dth1, sq2)
        ops.mul(sq01, self._c_sq, sq01)
        ops.mul(sq, st.sin2, sq)
        # phi1 = -m2 l1 lc2 dth2**2 sin th2 - 2 m2 l1 lc2 dth2 dth1 sin th2 + (...) + phi2
        ops.sub(sq1, sq2, phi1)
        ops.add(phi1, phi_b, phi1)
        ops.add(phi1, phi2, phi1)
        # ddth2 = (a + d2 / d1 * phi1 - m2 l1 lc2 dth1**2 sin th2 - phi2)
        #     / (m2 lc2**2 + I2 - d2**2 / d1)
        ops.pow2(d2, d2sq)
        ops.div(d12, nd1, ratio)
        ops.mul(r0, phi1, num)
        ops.sub(self._torque, num, num)
        ops.sub(num, sq0, num)
        ops.sub(num, phi2, num)
        ops.add(r1, self._c_den, r1)
        ops.div(num, r1, st.ddth2)
        # ddth1 = -(d2 * ddth2 + phi1) / d1
        ops.mul(d2, st.ddth2, num)
        ops.add(num, phi1, num)
        ops.div(num, nd1, st.ddth1)

    def _stage(self, st: _Stage, k: Any, h: float) -> None:
        """An RK4 stage after the first: its input y = y0 + h k, its trigonometry, derivative."""
        ops = self._ops
        ops.mul(k, h, self._k_tmp)
        ops.add(self._s, self._k_tmp, st.state)
        # theta1 + theta2 - pi / 2.0, theta1 - pi / 2, theta2
        ops.add(st.th1, st.th2, st.sum_)
        ops.sub(st.shifted, math.pi / 2, st.shifted)
        ops.cos(st.trig_in, st.cos)
        ops.sin(st.th2, st.sin2)
        self._dsdt(st)

    def _step(self, actions: torch.Tensor) -> None:
        ops, s = self._ops, self._s
        s1, s2, s3, s4 = self._stages
        ops.take(self._torque_table, ops.view(actions), self._torque)
        # rk4(self._dsdt, s_augmented, [0, self.dt]): one step of size dt
        dt = self.dt - 0
        dt2 = dt / 2.0
        self._dsdt(s1)  # its input is the state itself
        self._stage(s2, s1.k, dt2)
        self._stage(s3, s2.k, dt2)
        self._stage(s4, s3.k, dt)
        # y0 + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        acc, tmp = self._k_sum, self._k_tmp
        ops.mul(s2.k, 2.0, acc)
        ops.add(s1.k, acc, acc)
        ops.mul(s3.k, 2.0, tmp)
        ops.add(acc, tmp, acc)
        ops.add(acc, s4.k, acc)
        ops.mul(acc, dt / 6.0, acc)
        ops.add(s, acc, s)
        # wrap(ns[0], -pi, pi): while x > M: x = x - diff; then while x < m: x = x + diff.
        # One turn each way suffices but in extreme swings: one pass each, then the loops
        # only if some angle is still outside (an element > M after one turn is untouched by
        # the second pass, so finishing both loops then gives the scalar loops' result).
        angles, turn, diff = self._angles, self._turn, math.pi - -math.pi
        ops.gt(angles, math.pi, turn)
        ops.sub_where(angles, diff, turn)
        ops.lt(angles, -math.pi, turn)
        ops.sub_where(angles, -diff, turn)
        ops.abs(angles, self._abs_angles)
        ops.gt(self._abs_angles, math.pi, turn)
        if ops.any(turn):
            self._wrap_loops()
        # bound(ns[2], -MAX_VEL_1, MAX_VEL_1) = min(max(x, m), M)
        ops.maximum(self._velocities, self._vel_low, self._velocities)
        ops.minimum(self._velocities, self._vel_high, self._velocities)
        self._state_trig()
        ops.copy(self._obs_trig_dst, self._obs_trig)
        ops.copy(self._obs_vel, self._velocities)
        # terminal: -cos(s[0]) - cos(s[1] + s[0]) > 1.0, i.e. cos th1 + cos(th1 + th2) < -1
        ops.add(self._cos1, self._cos12, self._tip)
        ops.lt(self._tip, -1.0, self._terminated_a)
        # reward = -1.0 if not terminated else 0.0
        ops.add(self._terminated_a, -1.0, self._reward_a)

    def _wrap_loops(self) -> None:
        ops, angles, turn, diff = self._ops, self._angles, self._turn, math.pi - -math.pi
        while True:
            ops.gt(angles, math.pi, turn)
            if not ops.any(turn):
                break
            ops.sub_where(angles, diff, turn)
        while True:
            ops.lt(angles, -math.pi, turn)
            if not ops.any(turn):
                break
            ops.sub_where(angles, -diff, turn)
