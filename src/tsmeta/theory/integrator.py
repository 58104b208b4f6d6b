"""Integration of the order-parameter theory: batched, with the valid domain and stall protection.

The physics is `theory.rhs.drift`; the bookkeeping of a trajectory (state layout, valid
domain, records and stops, work budget) is `theory.trajectory`; how a step is taken is a
stepper of `theory.steppers` (scipy's adaptive solvers, fixed-step RK4), picked by the
theory kind of the settings. This module holds the one loop that drives any stepper
(`drive`) and the public entry point `integrate`. The state of one trajectory is (R, Q, w0);
T and the run parameters are constants. A batch (seeds, or a sweep with different
parameters) is integrated as one system, so the right-hand side is vectorised over the batch.

The implicit methods get the block-diagonal structure of the batch: BDF and Radau get
`jac_sparsity` (one dense block per member) and a vectorised right-hand side, so a Jacobian
costs one batched evaluation of (state size) columns; LSODA gets the band width of the
blocks. At large rates the ODE is stiff near the fixed point and an explicit batched step
follows the stiffest member (one member at eta_J = 30, eta_w = 40: RK45 ~50k evaluations to
alpha = 450, BDF ~1k). A member that stalls an implicit solver, or makes any solver fail, is
split off and integrated alone with RK45 (`split_off`), so the batch goes on.

No integration can spin: a member whose right-hand side is not finite at a valid state (a
rate or an input that is not finite) stops at once; every evaluation counts against
`max_rhs_evals` and the clock against `max_wall_s` (TheorySettings), checked inside the
right-hand side itself, so that even a solver whose step size became NaN comes back. Stopped
members are marked diverged (and stalled, where the solver or the bound stopped them) with
the alpha and the reason (`Trajectory.reason`); `integrate` never raises on them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import brentq

from tsmeta.params import RunParams
from tsmeta.settings import TheorySettings
from tsmeta.theory.closed_form import Physics, eps_meta_closed_form
from tsmeta.theory.rhs import terms_for
from tsmeta.theory.steppers import (
    FAILED,
    SPLIT,
    BatchSystem,
    Stepper,
    StepperFailed,
    make_stepper,
)
from tsmeta.theory.trajectory import (
    NON_FINITE_DRIFT,
    SOLVER_FAILED,
    OutOfWork,
    Records,
    StateLayout,
    Trajectory,
    WorkBudget,
)

__all__ = ["Trajectory", "drive", "integrate", "split_off"]


# --- the one loop -------------------------------------------------------------------------


def drive(records: Records, stepper: Stepper, phys: Physics, terms, work: WorkBudget) -> None:
    """Step the running members of `records` to the last record with `stepper`.

    The running members are (re)started as one system; they are stepped until all records
    are taken or one of them stops (it left the domain, its right-hand side is not finite,
    the stepper failed or split it off), and then the batch restarts without it. When the
    work bound is spent, every member still running stops there, marked stalled.
    """
    while records.active.any() and records.next < len(records.alphas):
        idx = np.flatnonzero(records.active)
        system = BatchSystem(records.T[idx], phys.take(idx), records.layout, terms, work)
        try:
            unsteppable = stepper.start(system, records.t, records.state[idx])
        except (OutOfWork, StepperFailed) as exc:
            records.nfev += system.nfev
            reason = str(exc) if isinstance(exc, OutOfWork) else SOLVER_FAILED
            records.stop(idx, records.t, stalled=True, reason=reason)
            break
        if unsteppable.any():
            records.nfev += system.nfev
            records.stop(idx[unsteppable], records.t, reason=NON_FINITE_DRIFT)
            continue
        _steps(records, stepper, system, idx, phys, terms, work)
        records.nfev += system.nfev


def _steps(records: Records, stepper: Stepper, system: BatchSystem, idx, phys, terms, work) -> None:
    """Steps of the members idx, recorded, until the last record or until one stops."""
    while records.next < len(records.alphas):
        try:
            step = stepper.advance()
        except OutOfWork as exc:
            records.state[idx] = stepper.y
            records.stop(idx, stepper.t, stalled=True, reason=str(exc))
            return
        if step.outcome == SPLIT:
            records.nfev += system.nfev
            system.nfev = 0
            split_off(records, idx, system, stepper, phys, terms, work)
            return
        if step.outcome == FAILED:
            records.stop(idx, stepper.t, stalled=True, reason=SOLVER_FAILED)
            return
        margins = system.margins(step.y)
        if np.all(margins > 0.0):
            records.record_until(idx, step.t, step.y, step.dense)
            records.state[idx], records.t = step.y, step.t
            work.report(step.t)
            continue
        if step.dense is None:  # frozen at the first step end outside; the others recorded
            records.state[idx], records.t = step.y, step.t
            out = margins <= 0.0
            records.stop(idx[out], step.t)
            records.record_until(idx[~out], step.t, step.y[~out], None)
            work.report(step.t)
            return
        # locate the exit on the step's interpolant, record up to it, restart without it
        try:
            t_exit = brentq(_edge(system, step.dense), step.t_old, step.t, xtol=1e-13)
        except ValueError:  # no clean sign change (NaN on the interpolant): the step end
            t_exit = step.t
        y_exit = step.dense(t_exit)
        records.record_until(idx, t_exit, y_exit, step.dense)
        records.leave(idx, t_exit, y_exit, system.margins(y_exit))
        return


def _edge(system: BatchSystem, interp):
    """Smallest margin in the batch along a step: continuous, > 0 at the step's start."""
    return lambda a: float(system.margins(interp(a)).min())


def split_off(records: Records, idx, system: BatchSystem, stepper, phys, terms, work) -> None:
    """Integrate the member of idx that stalls the batch alone (`stepper.alone()`), from
    records.t on, and take its records and stop over."""
    m = idx[stepper.stalling_member(system, records.state[idx])]
    alphas = np.concatenate([[records.t], records.alphas[records.next :]])
    alone = Records(records.state[m : m + 1], records.T[m : m + 1], alphas, records.layout)
    drive(alone, stepper.alone(), phys.take([m]), terms, work)
    records.take_over(m, alone)


# --- the public entry point ---------------------------------------------------------------


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
    streams=None,
) -> Trajectory:
    """Integrate a batch (axis 0, e.g. seeds) as one system and record on `alphas`.

    R0 (B, K, M), Q0 (B, K, K), T (B, M, M) or (M, M), w0 (B, K); `params` is one RunParams
    (shared by the batch) or one per member (a sweep: the parameters become (B,) arrays of
    the right-hand side). The right-hand side is `rhs.drift` with the terms that `settings`
    and the algorithm call for (`rhs.terms_for`). Never raises on divergence, on non-finite
    inputs or on a spent work bound (`max_rhs_evals`, `max_wall_s`): such members stop,
    marked diverged, with `reason`. `progress(alpha, evaluations, seconds)`, if given, is
    called every trajectory.PROGRESS_EVERY_S seconds of a long integration. `streams` (B,)
    ints name each member's random stream (a stochastic theory kind; default 0).
    """
    st = TheorySettings.coerce(settings)
    terms = terms_for(st, _algorithm(params))
    phys = Physics.from_params(params)
    R0, Q0, w0 = _as_batch(R0, 3), _as_batch(Q0, 3), _as_batch(w0, 2)
    B, K, M = R0.shape
    T = np.broadcast_to(np.asarray(T, dtype=float), (B, M, M)).copy()
    phys = phys.broadcast(B)
    if streams is not None:
        phys = dataclasses.replace(phys, stream=np.asarray(streams, dtype=np.int64))
    alphas = np.asarray(alphas, dtype=float)
    if alphas.ndim != 1 or np.any(np.diff(alphas) <= 0):
        raise ValueError("alphas must be a strictly increasing 1-d array")
    layout = StateLayout(K, M)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        records = Records(layout.pack(R0, Q0, w0), T, alphas, layout)
        work = WorkBudget(st.max_rhs_evals, st.max_wall_s, progress)
        drive(records, make_stepper(st, alphas), phys, terms, work)
        A = len(alphas)
        R, Q, w = layout.unpack(records.records.reshape(B * A, layout.size))
        R, Q, w = R.reshape(B, A, K, M), Q.reshape(B, A, K, K), w.reshape(B, A, K)
        phys_ba = Physics(**{k: v[:, None] for k, v in vars(phys).items()})
        eps = eps_meta_closed_form(R, Q, T[:, None], w, phys_ba)
    return Trajectory(
        R=R,
        Q=Q,
        w0=w,
        eps_meta=eps,
        diverged=records.diverged,
        alpha_diverged=records.alpha_div,
        stalled=records.stalled,
        alpha=alphas,
        nfev=records.nfev,
        split_off=records.split_off,
        terms=terms,
        reason=records.reason,
    )
