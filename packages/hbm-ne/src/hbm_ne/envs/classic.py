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
    swings above the bar, 500 steps at most. RK4 over one 0.2 s step, as in Gymnasium.

    Every quantity lives in a row of a few `[rows, B]` float64 buffers laid out so that each
    kernel works on a strided 2- to 4-row view: one derivative evaluation costs 10 kernels, with
    one `sin` giving all of a stage's trigonometry (cos x = sin(x + pi/2)) and the 2x2 mass
    matrix solved by Cramer's rule. The arithmetic is rearranged from Gymnasium's, so states
    agree to float64 rounding, not bit for bit (as with numpy's and torch's `sin`).
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
        b, dev = self.num_envs, self.device

        def buf(*shape: int) -> torch.Tensor:
            return torch.empty(*shape, dtype=_F64, device=dev)

        def col(*values: float) -> torch.Tensor:
            return torch.tensor(values, dtype=_F64, device=dev).unsqueeze(1)  # [k, 1]

        m1, m2 = self.link_mass_1, self.link_mass_2
        l1, lc1, lc2, moi = self.link_length_1, self.link_com_pos_1, self.link_com_pos_2, 1.0
        half_pi = math.pi / 2
        mllc = m2 * l1 * lc2
        phi1_g, phi2_g = (m1 * lc1 + m2 * l1) * self.g, m2 * lc2 * self.g
        self._torque_table = torch.tensor([-1.0, 0.0, 1.0], dtype=_F64, device=dev)

        # State and observation angles, rows: th1 + pi/2, th2 + pi/2, th1 + th2 + pi/2, th1, th2,
        # dth1, dth2. One sin of rows 0..4 gives cos th1, cos th2, cos(th1 + th2), sin th1,
        # sin th2: the observation's trigonometry and the terminal test's cosines.
        self._ext = ext = torch.zeros(7, b, dtype=_F64, device=dev)
        self._state = ext[3:7]  # th1, th2, dth1, dth2 (contiguous)
        self._angles, self._velocities = ext[3:5], ext[5:7]
        self._obs_shifted, self._obs_sum = ext[0:2], ext[2]
        self._th1_shifted, self._th2 = ext[0], ext[4]
        self._obs_sin_in = ext[0:5]
        self._obs_trig = buf(5, b)
        # (cos th1, sin th1; cos th2, sin th2) as a [2, 2, B] view, copied to obs rows 0..3
        self._obs_trig_src = self._obs_trig.as_strided((2, 2, b), (b, 3 * b, 1))
        self._obs_trig_dst = self._obs_t[0:4].view(2, 2, b)
        self._obs_vel = self._obs_t[4:6]
        self._cos_th1, self._cos_th12 = self._obs_trig[0], self._obs_trig[2]
        self._tip = buf(b)
        self._reward_end = torch.zeros((), dtype=torch.float32, device=dev)
        self._reward_step = torch.full((), -1.0, dtype=torch.float32, device=dev)

        # One [12, B] buffer per RK4 stage, rows: 0 th1, 1 th2, 2 dth1, 3 dth2, 4 ddth1,
        # 5 ddth2, 6 pi/2, 7 th1 + th2, 8 th2 + pi/2, 9 zero, 10 dth1 + dth2, 11 dth1. Rows 0..3
        # are the stage input y and rows 2..5 its derivative k. One add of strided [2, 2, B]
        # views, [[th2, th2], [dth1, dth1]] + [[th1, pi/2], [dth2, 0]], fills rows 7, 8, 10, 11
        # (the constant rows 6 and 9 make that possible), and one sin of rows 0, 1, 7, 8 gives
        # all of a stage's trigonometry.
        stages = torch.zeros(4, 12, b, dtype=_F64, device=dev)
        stages[:, 6] = half_pi

        def view(s: torch.Tensor, row: int, strides: tuple[int, int]) -> torch.Tensor:
            return s.view(12 * b)[row * b :].as_strided((2, 2, b), (strides[0], strides[1], 1))

        self._stages = [
            (
                s[0:4],  # y
                view(s, 1, (b, 0)),  # [[th2, th2], [dth1, dth1]]
                view(s, 0, (3 * b, 6 * b)),  # [[th1, pi/2], [dth2, 0]]
                view(s, 7, (3 * b, b)),  # sums: [[th1 + th2, th2 + pi/2], [dth1 + dth2, dth1]]
                view(s, 0, (7 * b, b)),  # sin input: [[th1, th2], [th1 + th2, th2 + pi/2]]
                s[10:12],  # dth1 + dth2, dth1
                s[4:6],  # ddth1, ddth2
            )
            for s in stages.unbind(0)
        ]
        self._k = [s[2:6] for s in stages.unbind(0)]
        # state += dt/6 (k1 + 2 k2 + 2 k3 + k4): one matmul over the 4 stages' k rows
        self._rk4_weights = torch.tensor([[1.0, 2.0, 2.0, 1.0]], dtype=_F64, device=dev)
        self._rk4_weights.mul_(self.dt / 6.0)
        self._ks_rows = stages.view(4, 12 * b)[:, 2 * b : 6 * b]  # [4, 4B], row stride 12B
        self._state_row = ext.view(7 * b)[3 * b :].view(1, 4 * b)

        # sin outputs, rows: 0 sin th1, 1 sin th2, 2 sin(th1 + th2), 3 cos th2
        self._trig = trig = buf(4, b)
        self._trig_out = trig.view(2, 2, b)
        self._sin1_sin12, self._sin2, self._cos2 = trig[0::2], trig[1], trig[3]
        self._torque = buf(b)
        self._torque_2 = self._torque.expand(2, b)
        self._vel_sq = buf(2, b)  # (dth1 + dth2)², dth1²
        # Gymnasium's `_dsdt` ("book" variant) solves d1 ddth1 + d2 ddth2 = -phi1,
        # d2 ddth1 + i2 ddth2 = n for (ddth1, ddth2), with i2 = m2 lc2² + I2,
        # n = a - mllc dth1² sin th2 - phi2, d1 = c + 2 mllc cos th2, d2 = i2 + mllc cos th2;
        # here by Cramer's rule: det = d1 i2 - d2² = c i2 - i2² - mllc² cos² th2,
        # ddth1 = (-i2 phi1 - d2 n) / det, ddth2 = (d2 phi1 + d1 n) / det.
        # phi1 = phi1_g sin th1 + phi2 - mllc sin th2 dth2 (dth2 + 2 dth1) is carried as
        # psi - n with psi = a + phi1_g sin th1 - mllc sin th2 (dth1 + dth2)², so that (psi, n)
        # come from (dth1 + dth2, dth1) squared; then ddth1 = (-i2 psi + (i2 - d2) n) / det,
        # ddth2 = (d2 psi + (d1 - d2) n) / det. (psi, n) are kept divided by gamma = phi1_g
        # (sin th1 enters with weight 1); gamma goes into the coefficient rows:
        # 0 -gamma i2, 1 gamma (i2 - d2), 2 gamma d2, 3 gamma (d1 - d2).
        gamma = phi1_g
        i2, c = m2 * lc2**2 + moi, m1 * lc1**2 + m2 * (l1**2 + lc2**2) + moi + moi
        self._torque_table.div_(gamma)
        self._psi_n = buf(2, b)
        self._psi, self._n = self._psi_n.unbind(0)
        self._psi_n_w = col(1.0, -phi2_g / gamma)  # weights of sin th1, sin(th1 + th2)
        self._vel_sq_w = -mllc / gamma
        self._coef = coef = buf(4, b)
        coef[0] = -gamma * i2
        self._coef_d = coef[1:4]
        self._coef_psi, self._coef_n = coef[0::2], coef[1::2]
        self._d_c0 = col(0.0, gamma * i2, gamma * (c - i2))
        self._d_c1 = col(-gamma * mllc, gamma * mllc, gamma * mllc)
        self._det_c0 = torch.tensor(c * i2 - i2 * i2, dtype=_F64, device=dev)
        self._det_c2 = -(mllc**2)
        self._det = buf(b)
        self._numer = buf(2, b)
        self._turns = buf(2, b)
        self._max_vel = col(self.max_vel_1, self.max_vel_2).expand(2, b).contiguous()
        self._min_vel = -self._max_vel

    def _reset(self, seeds: list[int]) -> None:
        # Gymnasium stores the initial state as float32, then integrates in float64.
        init = gymnasium_uniform(seeds, -0.1, 0.1, 4).astype("float32").astype("float64")
        self._state.copy_(torch.from_numpy(init).to(self.device).T)
        self._write_obs()

    def _write_obs(self) -> None:
        torch.add(self._angles, math.pi / 2, out=self._obs_shifted)
        torch.add(self._th1_shifted, self._th2, out=self._obs_sum)
        torch.sin(self._obs_sin_in, out=self._obs_trig)
        self._obs_trig_dst.copy_(self._obs_trig_src)
        self._obs_vel.copy_(self._velocities)

    def _derivs(self, stage: tuple[torch.Tensor, ...]) -> None:
        """Fill rows 4, 5 (ddth1, ddth2) of a stage buffer from its input y (rows 0..3)."""
        _, sum_a, sum_b, sums, sin_in, vel_sums, ddth1_ddth2 = stage
        cos2, vel_sq, psi_n, numer = self._cos2, self._vel_sq, self._psi_n, self._numer
        torch.add(sum_a, sum_b, out=sums)
        torch.sin(sin_in, out=self._trig_out)
        torch.mul(vel_sums, vel_sums, out=vel_sq)
        torch.addcmul(self._torque_2, self._psi_n_w, self._sin1_sin12, out=psi_n)
        psi_n.addcmul_(self._sin2, vel_sq, value=self._vel_sq_w)
        torch.addcmul(self._d_c0, self._d_c1, cos2, out=self._coef_d)
        torch.addcmul(self._det_c0, cos2, cos2, value=self._det_c2, out=self._det)
        torch.mul(self._coef_psi, self._psi, out=numer)
        numer.addcmul_(self._coef_n, self._n)
        torch.div(numer, self._det, out=ddth1_ddth2)

    def _step(self, actions: torch.Tensor) -> None:
        state, (s1, s2, s3, s4), (k1, k2, k3, _) = self._state, self._stages, self._k
        torch.index_select(self._torque_table, 0, actions, out=self._torque)
        h = self.dt
        s1[0].copy_(state)
        self._derivs(s1)
        torch.add(state, k1, alpha=h / 2, out=s2[0])
        self._derivs(s2)
        torch.add(state, k2, alpha=h / 2, out=s3[0])
        self._derivs(s3)
        torch.add(state, k3, alpha=h, out=s4[0])
        self._derivs(s4)
        self._state_row.addmm_(self._rk4_weights, self._ks_rows)
        # wrap angles into [-pi, pi] as Gymnasium's `wrap` does (x -+ 2 pi; one turn at most
        # per step), clip velocities
        angles, turns = self._angles, self._turns
        torch.mul(angles, 1.0 / (2 * math.pi), out=turns).round_()
        angles.sub_(turns, alpha=2 * math.pi)
        torch.clamp(self._velocities, self._min_vel, self._max_vel, out=self._velocities)
        self._write_obs()
        # terminal: -cos(th1) - cos(th1 + th2) > 1; reward -1 per step, 0 on the last
        torch.add(self._cos_th1, self._cos_th12, out=self._tip)
        torch.lt(self._tip, -1.0, out=self.terminated)
        torch.where(self.terminated, self._reward_end, self._reward_step, out=self.reward)
