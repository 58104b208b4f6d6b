"""Steppers of the batched theory, peers behind one small interface (after scipy.integrate's
OdeSolver: an object that steps and offers dense output), driven by `integrator.drive`.

A stepper is started on the running members of a batch as one system (`BatchSystem`: the
right-hand side of `theory.rhs`, vectorised over the members, its evaluations counted and
spent from the work budget) and then advanced step by step:

- `start(system, t, y)` (re)starts it at alpha t from the states y (members, size); it
  returns a boolean mask of the members it cannot step (their right-hand side is not finite
  there: they stop, and the batch restarts without them), and raises `StepperFailed` when it
  cannot start at all, `trajectory.OutOfWork` when the work budget is spent;
- `advance()` takes one step and returns a `Step`: OK with the new alpha and states and,
  where the stepper has one, the step's interpolant (`dense`: alpha -> states), or SPLIT
  (a member stalls the batch: `stalling_member` says which, `alone()` gives the stepper that
  integrates it alone), or FAILED; `t` and `y` are the last accepted alpha and states;
- a stepper without dense output must land on every record (the records are taken at step
  ends), and a member that leaves the valid domain is frozen at the first step end outside;
  with dense output, the exit is located on the interpolant.

What is written once, in `integrator.drive`, is everything else: spending work, records,
stops with their reasons, restarts without the stopped members, splitting a stalling member
off. `STEPPERS` names the steppers; `make_stepper` picks one through the theory kind
(`settings.THEORY_KINDS`).

The stochastic theory (kind sde) is the third peer, `EulerMaruyamaStepper`: it holds one
`numpy.random.Generator` per member stream (Physics.stream), and `advance()` draws the
Wiener increments itself and steps y + f dt + sqrt(dt / N) F zeta, with f from
`system.deriv` and F F^T the diffusion matrix of `theory.diffusion` for the same terms; it
has no dense output (a noise path has no interpolant), so it lands on every record like the
fixed-step RK4, and it never reports SPLIT. Draws happen only inside `advance()`, so the
driver stays the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.integrate import BDF, DOP853, LSODA, RK23, RK45, Radau
from scipy.sparse import block_diag

from tsmeta.settings import SDE_STEP, THEORY_KINDS, TheorySettings
from tsmeta.theory import diffusion
from tsmeta.theory.closed_form import Physics
from tsmeta.theory.rhs import drift
from tsmeta.theory.trajectory import StateLayout, WorkBudget, domain_margins

IMPLICIT_SPARSE = ("BDF", "Radau")
STALL_H = 1e-9  # a step shorter than this times max(alpha, 1e-3) counts as stalled
STALL_STEPS = 3  # ... and this many such steps split the stalling member off the batch
STALL_WINDOW, STALL_PROGRESS = 50, 5e-3  # or: log(alpha) advanced < 5e-3 in 50 steps
CHUNK_ELEMENTS = 4e6  # bound on members * K^2 * D^2 (the I4 tensor) per evaluation

OK, SPLIT, FAILED = "ok", "split", "failed"  # outcomes of Stepper.advance


class StepperFailed(Exception):
    """A stepper could not start on the batch (the members stop, marked stalled)."""


@dataclass(frozen=True)
class Step:
    """One step: `outcome` OK (then t_old -> t, the states y (members, size) at t and, for a
    stepper with dense output, the interpolant `dense`: alpha -> states), SPLIT or FAILED."""

    outcome: str
    t_old: float = math.nan
    t: float = math.nan
    y: np.ndarray | None = None
    dense: Callable[[float], np.ndarray] | None = None


class Stepper(Protocol):
    """The interface `integrator.drive` steps with (module doc). A stepper that never
    returns SPLIT needs no `stalling_member` and `alone`."""

    t: float
    y: np.ndarray

    def start(self, system: BatchSystem, t: float, y: np.ndarray) -> np.ndarray: ...

    def advance(self) -> Step: ...


class BatchSystem:
    """The running members as one flat ODE system; `fun` also takes (n, k) arrays (vectorised),
    and counts the right-hand sides of the whole batch (a column of a vectorised call: 1)."""

    def __init__(self, T, phys: Physics, layout: StateLayout, terms, work: WorkBudget):
        self.T, self.phys, self.layout, self.terms = T, phys, layout, terms
        self.B = T.shape[0]
        self.nfev = 0
        self.work = work
        self._tiled = {1: (T, phys)}

    def deriv(self, y, copies: int = 1):
        """Right-hand side of `copies` stacked copies of the batch, y (copies * B, size), in
        chunks that bound the memory of the (K, K, D, D) tensors. Not counted in nfev."""
        if copies not in self._tiled:
            idx = np.tile(np.arange(self.B), copies)
            self._tiled[copies] = (self.T[idx], self.phys.take(idx))
        T, phys = self._tiled[copies]
        K, D = self.layout.K, self.layout.K + 2 * self.layout.M
        step = max(1, int(CHUNK_ELEMENTS // (K * K * D * D)))
        out = np.empty_like(y)
        for c in range(0, y.shape[0], step):
            part = slice(c, c + step)
            R, Q, w0 = self.layout.unpack(y[part])
            ph = phys if y.shape[0] <= step else phys.take(np.arange(y.shape[0])[part])
            d = drift(R, Q, T[part], w0, ph, self.terms)
            out[part] = self.layout.pack(d["dR"], d["dQ"], d["dw0"])
        return out

    def fun(self, t, y):
        if y.ndim == 1:
            self.nfev += 1
            self.work.spend(1)
            return self.deriv(y.reshape(self.B, -1)).ravel()
        k = y.shape[1]  # columns: k states of the whole batch (numerical Jacobian)
        self.nfev += k
        self.work.spend(k)
        return self.deriv(y.T.reshape(k * self.B, self.layout.size), k).reshape(k, -1).T

    def margins(self, y):
        return domain_margins(y, self.T, self.layout)


# --- scipy's adaptive solvers -------------------------------------------------------------

SCIPY_SOLVERS = {
    "RK23": RK23,
    "RK45": RK45,
    "DOP853": DOP853,
    "Radau": Radau,
    "BDF": BDF,
    "LSODA": LSODA,
}


def scipy_solver(method, system: BatchSystem, t0, y0, t_final, rtol, atol):
    """A scipy OdeSolver; the implicit ones get the block-diagonal structure of the batch."""
    size = system.layout.size
    kwargs = {}
    if method in IMPLICIT_SPARSE:  # a Jacobian costs one vectorised call of `size` columns
        block = np.ones((size, size))
        kwargs = {"jac_sparsity": block_diag([block] * system.B, format="csc"), "vectorized": True}
    elif method == "LSODA":
        kwargs = {"lband": size - 1, "uband": size - 1}
    return SCIPY_SOLVERS[method](system.fun, t0, y0, t_final, rtol=rtol, atol=atol, **kwargs)


def _reshaped(dense, shape):
    return lambda a: dense(a).reshape(shape)


class ScipyStepper:
    """A scipy OdeSolver (`method`) stepping the batch to t_final, with dense output.

    A member whose right-hand side is not finite where the batch (re)starts cannot be
    stepped. An implicit solver can stall on a member that runs into the singular edge of
    the domain (Newton fails, the step shrinks to ~1e-13): a stall (STALL_STEPS steps
    shorter than STALL_H * max(alpha, 1e-3), or log max(alpha, 1e-3) advancing by less than
    STALL_PROGRESS in STALL_WINDOW steps) or a solver failure (any method, more than one
    member) is SPLIT: the member with the largest right-hand side relative to the tolerance
    is integrated alone with RK45. A failure of an explicit solver on one member is FAILED.
    """

    def __init__(self, method: str, t_final: float, rtol: float, atol: float):
        self.method, self.t_final, self.rtol, self.atol = method, t_final, rtol, atol
        self.implicit = method in IMPLICIT_SPARSE or method == "LSODA"

    @classmethod
    def from_settings(cls, settings: TheorySettings, alphas) -> ScipyStepper:
        return cls(settings.method, alphas[-1], settings.rtol, settings.atol)

    @property
    def t(self) -> float:
        return self.solver.t

    @property
    def y(self) -> np.ndarray:
        return self.solver.y.reshape(self.shape)

    def start(self, system: BatchSystem, t, y) -> np.ndarray:
        system.work.spend(1)
        f0 = system.deriv(y)
        system.nfev += 1
        bad = ~np.all(np.isfinite(f0), axis=1)
        if bad.any():  # NaN or inf rates: no solver can step this member (it would spin)
            return bad
        self.shape = y.shape
        try:
            self.solver = scipy_solver(
                self.method, system, t, y.ravel(), self.t_final, self.rtol, self.atol
            )
        except (ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
            raise StepperFailed(str(exc)) from exc
        self.small_steps, self.times = 0, []
        return bad

    def advance(self) -> Step:
        solver = self.solver
        try:
            solver.step()
        except (ArithmeticError, ValueError, RuntimeError, np.linalg.LinAlgError):
            solver.status = "failed"
        if solver.status != "failed" and solver.t_old is not None:
            self.small_steps += solver.t - solver.t_old < STALL_H * max(abs(solver.t), 1e-3)
            self.times.append(max(abs(solver.t), 1e-3))
        times = self.times
        crawling = len(times) > STALL_WINDOW and (
            math.log(times[-1] / times[-1 - STALL_WINDOW]) < STALL_PROGRESS
        )
        failed = solver.status == "failed"
        stalling = self.implicit and (self.small_steps >= STALL_STEPS or crawling)
        if (failed and (self.implicit or self.shape[0] > 1)) or stalling:
            return Step(SPLIT)
        if failed:
            return Step(FAILED)
        dense = _reshaped(solver.dense_output(), self.shape)
        return Step(OK, solver.t_old, solver.t, self.y, dense)

    def stalling_member(self, system: BatchSystem, y) -> int:
        """Position (in y) of the member with the largest right-hand side relative to the
        tolerance: the one that stalls the batch."""
        with np.errstate(all="ignore"):
            f = system.deriv(y)
            score = np.nanmax(np.abs(f) / (self.atol + self.rtol * np.abs(y)), axis=1)
        score = np.where(np.isfinite(score), score, np.inf)
        return int(np.argmax(score))

    def alone(self) -> ScipyStepper:
        """The stepper of a member split off the batch: RK45, same tolerances."""
        return ScipyStepper("RK45", self.t_final, self.rtol, self.atol)


# --- fixed-step RK4 -----------------------------------------------------------------------


class FixedRK4Stepper:
    """Classical RK4 with steps of at most h, landing on every record (no dense output)."""

    def __init__(self, alphas, h: float):
        self.alphas, self.h = alphas, h
        self.i, self.j = 1, 0  # the next step: step j of the interval alphas[i-1] .. alphas[i]

    @classmethod
    def from_settings(cls, settings: TheorySettings, alphas) -> FixedRK4Stepper:
        return cls(alphas, settings.fixed_step)

    def start(self, system: BatchSystem, t, y) -> np.ndarray:
        """No check of the right-hand side: a non-finite one makes the state non-finite, and
        the member leaves the domain at its first step."""
        self.system, self.t, self.y = system, t, y
        return np.zeros(len(y), dtype=bool)

    def advance(self) -> Step:
        t_prev, t_next = self.alphas[self.i - 1], self.alphas[self.i]
        n = max(1, math.ceil((t_next - t_prev) / self.h - 1e-9))
        dt = (t_next - t_prev) / n
        self.system.work.spend(4)
        deriv, y = self.system.deriv, self.y
        k1 = deriv(y)
        k2 = deriv(y + 0.5 * dt * k1)
        k3 = deriv(y + 0.5 * dt * k2)
        k4 = deriv(y + dt * k3)
        y_new = y + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        t_new = t_next if self.j == n - 1 else t_prev + (self.j + 1) * dt
        self.system.nfev += 4
        self.i, self.j = (self.i + 1, 0) if self.j == n - 1 else (self.i, self.j + 1)
        t_old, self.t, self.y = self.t, t_new, y_new
        return Step(OK, t_old, t_new, y_new)


# --- Euler-Maruyama (the stochastic theory) ------------------------------------------------

SDE_REFRESH = 1.0  # alpha between evaluations of the finite-P and finite-V parts of D
SDE_STREAM = 5  # the random streams' tag (simulation.streams uses 0-2)


def clipped_orthogonal_part(R, Q, T) -> np.ndarray:
    """Q with the Gram matrix of the student parts orthogonal to the teachers,
    S = Q - R T^-1 R^T, made symmetric and clipped to PSD: S is a Gram matrix in the exact
    chain, but a Gaussian kick can make it indefinite where it is O(1/N) (near a fixed
    point where the students lie in the teachers' span)."""
    fit = R @ np.linalg.solve(T, np.swapaxes(R, -1, -2))
    S = Q - fit
    S = 0.5 * (S + np.swapaxes(S, -1, -2))
    vals, vecs = np.linalg.eigh(np.where(np.isfinite(S), S, 0.0))
    clipped = (vecs * np.clip(vals, 0.0, None)[..., None, :]) @ np.swapaxes(vecs, -1, -2)
    fixed = fit + 0.5 * (clipped + np.swapaxes(clipped, -1, -2))
    return np.where(np.isfinite(S).all(axis=(-2, -1))[..., None, None], fixed, Q)


class EulerMaruyamaStepper:
    """X' = X + f h + sqrt(h / N) F zeta, F F^T = D(X) (`theory.diffusion`, the parts that
    go with the drift's terms), landing on every record (no dense output).

    The task-head part D_inf is evaluated at every step; the finite-P and finite-V parts,
    which cost an F4 integral, every SDE_REFRESH in alpha (they vary on the scale of the
    drift, not of the noise). Each member draws zeta from its own generator, seeded by its
    `stream` (Physics.stream: seed and realisation), kept across restarts of the batch: a
    member's path does not depend on the other members.
    """

    def __init__(self, alphas, h: float):
        self.alphas, self.h = alphas, h
        self.i, self.j = 1, 0
        self.generators: dict[int, np.random.Generator] = {}

    @classmethod
    def from_settings(cls, settings: TheorySettings, alphas) -> EulerMaruyamaStepper:
        return cls(alphas, settings.fixed_step or SDE_STEP)

    def start(self, system: BatchSystem, t, y) -> np.ndarray:
        self.system, self.t, self.y = system, t, y
        self.parts = diffusion.parts_for(system.terms)
        self.second_order = "second_order" in system.terms
        self.finite, self.refreshed = None, -math.inf
        return np.zeros(len(y), dtype=bool)

    def generator(self, stream: int) -> np.random.Generator:
        if stream not in self.generators:
            self.generators[stream] = np.random.default_rng([SDE_STREAM, stream])
        return self.generators[stream]

    def noise(self, y) -> np.ndarray:
        """F (B, n, n) at the states y."""
        system = self.system
        R, Q, w0 = system.layout.unpack(y)
        finite_parts = [p for p in self.parts if p != "task_head"]
        if finite_parts and self.t - self.refreshed >= SDE_REFRESH - 1e-12:
            with np.errstate(all="ignore"):
                parts = diffusion.diffusion_parts(R, Q, system.T, w0, system.phys, finite_parts,
                                                  second_order=self.second_order)  # fmt: skip
            self.finite, self.refreshed = sum(parts.values()), self.t
        with np.errstate(all="ignore"):
            D = diffusion.diffusion_parts(R, Q, system.T, w0, system.phys, ("task_head",),
                                          second_order=self.second_order)  # fmt: skip
        D = D["task_head"] + (0.0 if self.finite is None else self.finite)
        D = np.where(np.isfinite(D), 0.5 * (D + np.swapaxes(D, -1, -2)), 0.0)
        return diffusion.noise_factor(D)

    def advance(self) -> Step:
        t_prev, t_next = self.alphas[self.i - 1], self.alphas[self.i]
        n = max(1, math.ceil((t_next - t_prev) / self.h - 1e-9))
        dt = (t_next - t_prev) / n
        system, y = self.system, self.y
        system.work.spend(1)
        system.nfev += 1
        zeta = np.stack([self.generator(int(s)).standard_normal(y.shape[1])
                         for s in system.phys.stream])  # fmt: skip
        scale = np.sqrt(dt / np.asarray(system.phys.N, float))[:, None]
        kick = scale * np.einsum("bij,bj->bi", self.noise(y), zeta)
        y_new = y + dt * system.deriv(y) + kick
        R, Q, _ = system.layout.unpack(y_new)  # views
        Q[...] = clipped_orthogonal_part(R, Q, system.T)
        t_new = t_next if self.j == n - 1 else t_prev + (self.j + 1) * dt
        self.i, self.j = (self.i + 1, 0) if self.j == n - 1 else (self.i, self.j + 1)
        t_old, self.t, self.y = self.t, t_new, y_new
        return Step(OK, t_old, t_new, y_new)


# One line per stepper: name -> (settings, record alphas) -> a stepper.
STEPPERS: dict[str, Callable[[TheorySettings, np.ndarray], Stepper]] = {
    "scipy": ScipyStepper.from_settings,
    "rk4": FixedRK4Stepper.from_settings,
    "euler-maruyama": EulerMaruyamaStepper.from_settings,
}


def make_stepper(settings: TheorySettings, alphas) -> Stepper:
    """The stepper that runs the theory kind of `settings` (settings.THEORY_KINDS)."""
    return STEPPERS[THEORY_KINDS[settings.kind].stepper(settings)](settings, alphas)
