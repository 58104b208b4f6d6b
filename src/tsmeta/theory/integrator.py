"""Integration of the order-parameter ODE: batched, with the valid domain and stall protection.

The physics is `theory.rhs.drift`; this module only steps it. The state of one trajectory is
(R, Q, w0); T and the run parameters are constants. A batch (seeds, or a sweep with
different parameters) is integrated as one system, so the right-hand side is vectorised
over the batch.

The implicit methods get the block-diagonal structure of the batch: BDF and Radau get
`jac_sparsity` (one dense block per member) and a vectorised right-hand side, so a Jacobian
costs one batched evaluation of (state size) columns; LSODA gets the band width of the
blocks. At large rates the ODE is stiff near the fixed point and an explicit batched step
follows the stiffest member (one member at eta_J = 30, eta_w = 40: RK45 ~50k evaluations to
alpha = 450, BDF ~1k). A member that stalls an implicit solver, or makes any solver fail, is
split off and integrated alone with RK45 (`_adaptive`), so the batch goes on.

No integration can spin: a member whose right-hand side is not finite at a valid state (a
rate or an input that is not finite) stops at once; every evaluation counts against
`max_rhs_evals` and the clock against `max_wall_s` (TheorySettings), checked inside the
right-hand side itself, so that even a solver whose step size became NaN comes back. Stopped
members are marked diverged (and stalled, where the solver or the bound stopped them) with
the alpha and the reason (`Trajectory.reason`); `integrate` never raises on them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.integrate import BDF, DOP853, LSODA, RK23, RK45, Radau
from scipy.optimize import brentq
from scipy.sparse import block_diag

from tsmeta.params import RunParams
from tsmeta.settings import TheorySettings
from tsmeta.theory.closed_form import Physics, eps_meta_closed_form
from tsmeta.theory.rhs import drift, terms_for

BOUND = 1e6  # a state entry beyond this is divergence
PSD_TOL = 1e-6  # relative tolerance on the smallest eigenvalue of the (J, B) Gram matrix
_IMPLICIT_SPARSE = ("BDF", "Radau")
STALL_H = 1e-9  # a step shorter than this times max(alpha, 1e-3) counts as stalled
STALL_STEPS = 3  # ... and this many such steps split the stalling member off the batch
STALL_WINDOW, STALL_PROGRESS = 50, 5e-3  # or: log(alpha) advanced < 5e-3 in 50 steps
CHUNK_ELEMENTS = 4e6  # bound on members * K^2 * D^2 (the I4 tensor) per evaluation
PROGRESS_EVERY_S = 10.0  # seconds between calls of integrate's `progress`

LEFT_DOMAIN = "left the valid domain (non-finite, |entry| > 1e6 or overlaps not PSD)"
NON_FINITE_DRIFT = "right-hand side not finite at a valid state (a rate or an input not finite?)"
SOLVER_FAILED = "the ODE solver failed (step size too small)"


class _OutOfWork(Exception):
    """The bound on the work of one `integrate` call is spent (the message says which)."""


class _Work:
    """Right-hand-side evaluations and wall time of one `integrate` call, split-off members
    included; `spend` raises _OutOfWork once either bound is passed."""

    def __init__(self, max_evals: int, max_wall_s: float | None, progress=None):
        self.max_evals, self.max_wall_s = max_evals, max_wall_s
        self.start = time.monotonic()
        self.evals = 0
        self.progress = progress
        self.next_report = self.start + PROGRESS_EVERY_S

    def spend(self, n: int) -> None:
        self.evals += n
        if self.evals > self.max_evals:
            raise _OutOfWork(
                f"ran out of its work bound, max_rhs_evals = {self.max_evals} right-hand sides"
            )
        if self.max_wall_s is not None and time.monotonic() - self.start > self.max_wall_s:
            raise _OutOfWork(f"ran out of its work bound, max_wall_s = {self.max_wall_s:g} s")

    def report(self, alpha: float) -> None:
        """Call `progress(alpha, evaluations, seconds)` at most every PROGRESS_EVERY_S."""
        now = time.monotonic()
        if self.progress is not None and now >= self.next_report:
            self.next_report = now + PROGRESS_EVERY_S
            self.progress(float(alpha), self.evals, now - self.start)


# --- state packing and the valid domain ---------------------------------------------------


class _Layout:
    """Flat state (R, Q, w0) of one member: K*M + K*K + K numbers."""

    def __init__(self, K: int, M: int):
        self.K, self.M = K, M
        self.nR, self.nQ = K * M, K * K
        self.size = self.nR + self.nQ + K

    def pack(self, R, Q, w0) -> np.ndarray:
        b = R.shape[0]
        return np.concatenate([R.reshape(b, -1), Q.reshape(b, -1), w0.reshape(b, -1)], axis=1)

    def unpack(self, y):
        b = y.shape[0]
        R = y[:, : self.nR].reshape(b, self.K, self.M)
        Q = y[:, self.nR : self.nR + self.nQ].reshape(b, self.K, self.K)
        return R, Q, y[:, self.nR + self.nQ :]


def _margins(y, T, lay: _Layout) -> np.ndarray:
    """Per member: > 0 inside the valid domain, <= 0 outside (non-finite state or T: -1)."""
    finite = np.all(np.isfinite(y), axis=1) & np.all(np.isfinite(T), axis=(1, 2))
    y = np.where(finite[:, None], y, 0.0)
    T = np.where(finite[:, None, None], T, np.eye(T.shape[-1]))  # eigvalsh fails on NaN
    R, Q, _ = lay.unpack(y)
    gram = np.concatenate(
        [np.concatenate([Q, R], axis=2), np.concatenate([np.swapaxes(R, 1, 2), T], axis=2)],
        axis=1,
    )
    gram = 0.5 * (gram + np.swapaxes(gram, 1, 2))
    scale = np.maximum(1.0, np.abs(gram).max(axis=(1, 2)))
    psd = np.linalg.eigvalsh(gram)[:, 0] / scale + PSD_TOL
    size = 1.0 - np.abs(y).max(axis=1) / BOUND
    return np.where(finite, np.minimum(psd, size), -1.0)


# --- integration --------------------------------------------------------------------------

_SOLVERS = {
    "RK23": RK23,
    "RK45": RK45,
    "DOP853": DOP853,
    "Radau": Radau,
    "BDF": BDF,
    "LSODA": LSODA,
}


class _System:
    """The active members as one flat ODE system; `fun` also takes (n, k) arrays (vectorised),
    and counts the right-hand sides of the whole batch (a column of a vectorised call: 1)."""

    def __init__(self, T, phys: Physics, lay: _Layout, terms: tuple[str, ...], work: _Work):
        self.T, self.phys, self.lay, self.terms = T, phys, lay, terms
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
        K, D = self.lay.K, self.lay.K + 2 * self.lay.M
        step = max(1, int(CHUNK_ELEMENTS // (K * K * D * D)))
        out = np.empty_like(y)
        for c in range(0, y.shape[0], step):
            part = slice(c, c + step)
            R, Q, w0 = self.lay.unpack(y[part])
            ph = phys if y.shape[0] <= step else phys.take(np.arange(y.shape[0])[part])
            d = drift(R, Q, T[part], w0, ph, self.terms)
            out[part] = self.lay.pack(d["dR"], d["dQ"], d["dw0"])
        return out

    def fun(self, t, y):
        if y.ndim == 1:
            self.nfev += 1
            self.work.spend(1)
            return self.deriv(y.reshape(self.B, -1)).ravel()
        k = y.shape[1]  # columns: k states of the whole batch (numerical Jacobian)
        self.nfev += k
        self.work.spend(k)
        return self.deriv(y.T.reshape(k * self.B, self.lay.size), k).reshape(k, -1).T

    def margins(self, y):
        return _margins(y, self.T, self.lay)


class _Run:
    """Records, divergence flags and the frozen state of a whole batch."""

    def __init__(self, y0, T, alphas, lay):
        B, A = y0.shape[0], len(alphas)
        self.alphas, self.T, self.lay = alphas, T, lay
        self.records = np.full((B, A, lay.size), np.nan)
        self.diverged = np.zeros(B, dtype=bool)
        self.stalled = np.zeros(B, dtype=bool)
        self.alpha_div = np.full(B, np.nan)
        self.reason = np.full(B, "", dtype=object)
        self.state = y0.copy()
        self.t = alphas[0]
        self.next = 1  # index of the next record
        self.nfev = 0
        self.split_off = 0  # members that stalled an implicit solver, integrated alone
        bad = _margins(y0, T, lay) <= 0.0
        self.active = ~bad
        self.records[self.active, 0] = y0[self.active]
        self.stop(np.flatnonzero(bad), alphas[0])

    def stop(self, members, t, stalled=False, reason=LEFT_DOMAIN):
        """Freeze members at alpha t: marked diverged, no later records."""
        self.diverged[members] = True
        self.stalled[members] |= stalled
        self.alpha_div[members] = t
        self.reason[members] = reason
        self.active[members] = False

    def record_until(self, idx, t_end, y_end, interp):
        """Records of members idx at the requested alphas up to t_end (interp: alpha -> y)."""
        while self.next < len(self.alphas) and self.alphas[self.next] <= t_end:
            a = self.alphas[self.next]
            self.records[idx, self.next] = y_end if a == t_end else interp(a)
            self.next += 1

    def leave(self, idx, t_new, y_new, margins):
        """Members of idx whose margin is used up at t_new stop there; the others go on."""
        left = margins <= 1e-9
        if not left.any():  # a root found right at the tolerance
            left = margins <= margins.min()
        self.state[idx] = y_new
        self.stop(idx[left], t_new)
        self.t = t_new


def _reshaped(dense, shape):
    return lambda a: dense(a).reshape(shape)


def _edge(system: _System, interp):
    """Smallest margin in the batch along a step: continuous, > 0 at the step's start."""
    return lambda a: float(system.margins(interp(a)).min())


def _solver(method, system: _System, t0, y0, t_final, st: TheorySettings):
    """A scipy OdeSolver; the implicit ones get the block-diagonal structure of the batch."""
    size = system.lay.size
    kwargs = {}
    if method in _IMPLICIT_SPARSE:  # a Jacobian costs one vectorised call of `size` columns
        block = np.ones((size, size))
        kwargs = {"jac_sparsity": block_diag([block] * system.B, format="csc"), "vectorized": True}
    elif method == "LSODA":
        kwargs = {"lband": size - 1, "uband": size - 1}
    return _SOLVERS[method](system.fun, t0, y0, t_final, rtol=st.rtol, atol=st.atol, **kwargs)


def _adaptive(run: _Run, phys, terms, method: str, st: TheorySettings, work: _Work):
    """scipy OdeSolver stepping with a terminal event on the smallest margin in the batch:
    members that leave the valid domain are frozen there and the others restart.

    A member whose right-hand side is not finite where the batch (re)starts stops there.
    An implicit solver can stall on a member that runs into the singular edge of the domain
    (Newton fails, the step shrinks to ~1e-13): on a stall (STALL_STEPS steps shorter than
    STALL_H * max(alpha, 1e-3), or log max(alpha, 1e-3) advancing by less than STALL_PROGRESS
    in STALL_WINDOW steps) or a solver failure (any method, more than one member), the member
    with the largest right-hand side relative to the tolerance leaves the batch and is
    integrated alone with RK45 (same divergence handling), and the batch goes on without it.
    When the work bound is spent, every member still running stops, marked stalled.
    """
    t_final = run.alphas[-1]
    implicit = method in _IMPLICIT_SPARSE or method == "LSODA"
    while run.active.any() and run.next < len(run.alphas):
        idx = np.flatnonzero(run.active)
        system = _System(run.T[idx], phys.take(idx), run.lay, terms, work)
        shape = (len(idx), run.lay.size)
        try:
            work.spend(1)
            f0 = system.deriv(run.state[idx])
        except _OutOfWork as exc:
            run.stop(idx, run.t, stalled=True, reason=str(exc))
            break
        run.nfev += 1
        bad = ~np.all(np.isfinite(f0), axis=1)
        if bad.any():  # NaN or inf rates: no solver can step this member (it would spin)
            run.stop(idx[bad], run.t, reason=NON_FINITE_DRIFT)
            continue
        try:
            solver = _solver(method, system, run.t, run.state[idx].ravel(), t_final, st)
        except _OutOfWork as exc:
            run.nfev += system.nfev
            run.stop(idx, run.t, stalled=True, reason=str(exc))
            break
        except (ArithmeticError, ValueError, np.linalg.LinAlgError):
            run.nfev += system.nfev
            run.stop(idx, run.t, stalled=True, reason=SOLVER_FAILED)
            break
        small_steps, times = 0, []
        while run.next < len(run.alphas):
            try:
                solver.step()
            except _OutOfWork as exc:
                run.state[idx] = solver.y.reshape(shape)
                run.stop(idx, solver.t, stalled=True, reason=str(exc))
                break
            except (ArithmeticError, ValueError, RuntimeError, np.linalg.LinAlgError):
                solver.status = "failed"
            if solver.status != "failed" and solver.t_old is not None:
                small_steps += solver.t - solver.t_old < STALL_H * max(abs(solver.t), 1e-3)
                times.append(max(abs(solver.t), 1e-3))
            crawling = len(times) > STALL_WINDOW and (
                math.log(times[-1] / times[-1 - STALL_WINDOW]) < STALL_PROGRESS
            )
            failed = solver.status == "failed"
            stalling = implicit and (small_steps >= STALL_STEPS or crawling)
            if (failed and (implicit or len(idx) > 1)) or stalling:
                run.nfev += system.nfev
                system.nfev = 0
                _split_off(run, idx, system, phys, terms, st, work)
                break
            if failed:
                run.stop(idx, solver.t, stalled=True, reason=SOLVER_FAILED)
                break
            interp = _reshaped(solver.dense_output(), shape)
            y_new = solver.y.reshape(shape)
            margins = system.margins(y_new)
            if np.all(margins > 0.0):
                run.record_until(idx, solver.t, y_new, interp)
                run.state[idx], run.t = y_new, solver.t
                work.report(solver.t)
                continue
            # locate the exit on the step's interpolant, record up to it, restart without it
            try:
                t_exit = brentq(_edge(system, interp), solver.t_old, solver.t, xtol=1e-13)
            except ValueError:  # no clean sign change (NaN on the interpolant): the step end
                t_exit = solver.t
            y_exit = interp(t_exit)
            run.record_until(idx, t_exit, y_exit, interp)
            run.leave(idx, t_exit, y_exit, system.margins(y_exit))
            break
        run.nfev += system.nfev


def _split_off(run: _Run, idx, system: _System, phys, terms, st: TheorySettings, work: _Work):
    """Integrate the member of idx that stalls the batch alone with RK45, from run.t on."""
    y = run.state[idx]
    with np.errstate(all="ignore"):
        f = system.deriv(y)
        score = np.nanmax(np.abs(f) / (st.atol + st.rtol * np.abs(y)), axis=1)
    score = np.where(np.isfinite(score), score, np.inf)
    m = idx[int(np.argmax(score))]
    alphas = np.concatenate([[run.t], run.alphas[run.next :]])
    sub = _Run(run.state[m : m + 1], run.T[m : m + 1], alphas, run.lay)
    _adaptive(sub, phys.take([m]), terms, "RK45", st, work)
    run.records[m, run.next :] = sub.records[0, 1:]
    run.state[m] = sub.state[0]
    run.diverged[m], run.stalled[m] = sub.diverged[0], sub.stalled[0]
    run.alpha_div[m], run.reason[m] = sub.alpha_div[0], sub.reason[0]
    run.active[m] = False
    run.nfev += sub.nfev
    run.split_off += 1


def _fixed_rk4(run: _Run, phys, terms, h: float, work: _Work):
    """Classical RK4 with steps of at most h, landing on every record."""
    for i in range(1, len(run.alphas)):
        t1 = run.alphas[i]
        n = max(1, math.ceil((t1 - run.alphas[i - 1]) / h - 1e-9))
        dt = (t1 - run.alphas[i - 1]) / n
        for j in range(n):
            if not run.active.any():
                return
            idx = np.flatnonzero(run.active)
            system = _System(run.T[idx], phys.take(idx), run.lay, terms, work)
            try:
                work.spend(4)
            except _OutOfWork as exc:
                run.stop(idx, run.t, stalled=True, reason=str(exc))
                return
            y = run.state[idx]
            k1 = system.deriv(y)
            k2 = system.deriv(y + 0.5 * dt * k1)
            k3 = system.deriv(y + 0.5 * dt * k2)
            k4 = system.deriv(y + dt * k3)
            y_new = y + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
            t_new = t1 if j == n - 1 else run.alphas[i - 1] + (j + 1) * dt
            run.nfev += 4
            margins = system.margins(y_new)
            run.state[idx], run.t = y_new, t_new
            out = margins <= 0.0
            run.stop(idx[out], t_new)  # frozen at the first step outside
            work.report(t_new)
        run.records[run.active, i] = run.state[run.active]
        run.next = i + 1


# --- the public entry point ---------------------------------------------------------------


@dataclass(frozen=True)
class Trajectory:
    """An integrated batch on the records `alpha`: R (B, A, K, M), Q (B, A, K, K),
    w0 (B, A, K), eps_meta (B, A); diverged (B,), alpha_diverged (B,) (NaN if not), stalled
    (B,) (diverged because the solver failed or ran out of its evaluation budget); nfev
    (right-hand sides of the whole batch, a Jacobian column as one), split_off (members that
    stalled a solver and were integrated alone), terms (the right-hand side), reason (why
    each member stopped early, "" where it reached the last record)."""

    R: np.ndarray
    Q: np.ndarray
    w0: np.ndarray
    eps_meta: np.ndarray
    diverged: np.ndarray
    alpha_diverged: np.ndarray
    stalled: np.ndarray
    alpha: np.ndarray
    nfev: int
    split_off: int
    terms: tuple[str, ...]
    reason: np.ndarray | None = None  # (B,) why a member stopped early ("" if it did not)


def _as_batch(x, ndim: int) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[None] if x.ndim == ndim - 1 else x


def _algorithm(params) -> str:
    plist = [params] if isinstance(params, RunParams) else list(params)
    algorithms = {p.algorithm for p in plist}
    if len(algorithms) != 1:
        raise ValueError(f"one batch, one algorithm (one right-hand side); got {algorithms}")
    return algorithms.pop()


def integrate(
    R0,
    Q0,
    T,
    w0,
    params: RunParams | Sequence[RunParams],
    alphas,
    settings: TheorySettings | dict | None = None,
    *,
    progress: Callable[[float, int, float], None] | None = None,
) -> Trajectory:
    """Integrate a batch (axis 0, e.g. seeds) as one system and record on `alphas`.

    R0 (B, K, M), Q0 (B, K, K), T (B, M, M) or (M, M), w0 (B, K); `params` is one RunParams
    (shared by the batch) or one per member (a sweep: the parameters become (B,) arrays of
    the right-hand side). The right-hand side is `rhs.drift` with the terms that `settings`
    and the algorithm call for (`rhs.terms_for`). Never raises on divergence, on non-finite
    inputs or on a spent work bound (`max_rhs_evals`, `max_wall_s`): such members stop,
    marked diverged, with `reason`. `progress(alpha, evaluations, seconds)`, if given, is
    called every PROGRESS_EVERY_S seconds of a long integration.
    """
    st = TheorySettings.coerce(settings)
    terms = terms_for(st, _algorithm(params))
    phys = Physics.from_params(params)
    R0, Q0, w0 = _as_batch(R0, 3), _as_batch(Q0, 3), _as_batch(w0, 2)
    B, K, M = R0.shape
    T = np.broadcast_to(np.asarray(T, dtype=float), (B, M, M)).copy()
    phys = Physics(**{k: np.broadcast_to(v, (B,)).copy() for k, v in vars(phys).items()})
    alphas = np.asarray(alphas, dtype=float)
    if alphas.ndim != 1 or np.any(np.diff(alphas) <= 0):
        raise ValueError("alphas must be a strictly increasing 1-d array")
    lay = _Layout(K, M)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        run = _Run(lay.pack(R0, Q0, w0), T, alphas, lay)
        work = _Work(st.max_rhs_evals, st.max_wall_s, progress)
        if st.fixed_step is None:
            _adaptive(run, phys, terms, st.method, st, work)
        else:
            _fixed_rk4(run, phys, terms, st.fixed_step, work)
        A = len(alphas)
        R, Q, w = lay.unpack(run.records.reshape(B * A, lay.size))
        R, Q, w = R.reshape(B, A, K, M), Q.reshape(B, A, K, K), w.reshape(B, A, K)
        phys_ba = Physics(**{k: v[:, None] for k, v in vars(phys).items()})
        eps = eps_meta_closed_form(R, Q, T[:, None], w, phys_ba)
    return Trajectory(
        R=R,
        Q=Q,
        w0=w,
        eps_meta=eps,
        diverged=run.diverged,
        alpha_diverged=run.alpha_div,
        stalled=run.stalled,
        alpha=alphas,
        nfev=run.nfev,
        split_off=run.split_off,
        terms=terms,
        reason=run.reason,
    )
