"""The trajectory bookkeeping (theory.trajectory), the steppers and the one loop that drives
them (theory.steppers, integrator.drive), the theory kinds and the diffusion of rhs."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.integrate import RK45

from tsmeta.params import RunParams
from tsmeta.settings import THEORY_KINDS, TheoryKind, TheorySettings
from tsmeta.tasks import initial_state
from tsmeta.theory import integrate, rhs, steppers
from tsmeta.theory.closed_form import Physics
from tsmeta.theory.integrator import drive
from tsmeta.theory.trajectory import (
    BOUND,
    LEFT_DOMAIN,
    NON_FINITE_DRIFT,
    OutOfWork,
    Records,
    StateLayout,
    WorkBudget,
    domain_margins,
)


def _state(K=3, M=3, seeds=2, **kw):
    p = RunParams(K=K, M=M, N=100, u_mean=1.0, alpha_final=1.0, seeds=seeds, n_records=15, **kw)
    ts = initial_state(p)
    return p, [ts[v].values for v in ("R0", "Q0", "T", "w0")]


# --- bookkeeping --------------------------------------------------------------------------


def test_layout_round_trip():
    rng = np.random.default_rng(0)
    R, Q, w0 = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 2, 2)), rng.normal(size=(4, 2))
    layout = StateLayout(2, 3)
    y = layout.pack(R, Q, w0)
    assert y.shape == (4, layout.size) and layout.size == 2 * 3 + 2 * 2 + 2
    for a, b in zip(layout.unpack(y), (R, Q, w0), strict=True):
        np.testing.assert_array_equal(a, b)


def test_domain_margins():
    layout = StateLayout(2, 2)
    T = np.broadcast_to(np.eye(2), (5, 2, 2)).copy()
    R = np.zeros((5, 2, 2))
    Q = np.broadcast_to(np.eye(2), (5, 2, 2)).copy()
    w0 = np.zeros((5, 2))
    Q[1] = [[1.0, 2.0], [2.0, 1.0]]  # not PSD
    w0[2, 0] = 2 * BOUND  # beyond the bound
    w0[3, 1] = np.nan
    T[4, 0, 0] = np.inf
    margins = domain_margins(layout.pack(R, Q, w0), T, layout)
    assert margins[0] > 0.0
    assert margins[1] <= 0.0 and margins[2] <= 0.0
    assert margins[3] == -1.0 and margins[4] == -1.0


def test_records_stop_with_reason_and_take_records():
    layout = StateLayout(1, 1)
    y0 = np.array([[0.1, 1.0, 0.0], [2.0, 1.0, 0.0]])  # the second: R^2 > Q T, not PSD
    T = np.ones((2, 1, 1))
    alphas = np.array([0.0, 1.0, 2.0, 3.0])
    rec = Records(y0, T, alphas, layout)
    assert rec.active.tolist() == [True, False]
    assert rec.diverged[1] and rec.reason[1] == LEFT_DOMAIN and rec.alpha_div[1] == 0.0
    assert np.isnan(rec.records[1]).all() and (rec.records[0, 0] == y0[0]).all()
    # records at alphas <= t_end: interpolated before it, y_end at it
    rec.record_until(np.array([0]), 2.0, np.full((1, 3), 7.0), lambda a: np.full((1, 3), a))
    assert rec.next == 3
    assert rec.records[0, 1].tolist() == [1.0] * 3 and rec.records[0, 2].tolist() == [7.0] * 3
    rec.stop([0], 2.5, stalled=True, reason="why")
    assert rec.stalled[0] and rec.reason[0] == "why" and rec.alpha_div[0] == 2.5
    assert not rec.active.any() and np.isnan(rec.records[0, 3]).all()


def test_work_budget_names_the_bound_and_reports_progress():
    calls = []
    work = WorkBudget(10, None, progress=lambda *a: calls.append(a))
    work.spend(10)
    work.next_report = 0.0
    work.report(0.5)
    assert calls and calls[0][:2] == (0.5, 10)
    with pytest.raises(OutOfWork, match="max_rhs_evals = 10"):
        work.spend(1)
    with pytest.raises(OutOfWork, match="max_wall_s = 1e-09 s"):
        WorkBudget(100, 1e-9).spend(1)


# --- the steppers through the one loop ----------------------------------------------------


def _drive(p, state, stepper, terms=("first_order", "finite_v")):
    R0, Q0, T, w0 = state
    layout = StateLayout(p.K, p.M)
    records = Records(layout.pack(R0, Q0, w0), T, p.alphas(), layout)
    phys = Physics.from_params([p] * len(R0))
    drive(records, stepper, phys, terms, WorkBudget(10**6, None))
    return records, layout, phys


def test_scipy_stepper_through_drive_is_scipy_stepped_by_hand():
    p, state = _state(seeds=1)
    rtol, atol = 1e-6, 1e-8
    records, layout, phys = _drive(p, state, steppers.ScipyStepper("RK45", 1.0, rtol, atol))
    assert not records.diverged.any()
    alphas = p.alphas()
    y0 = layout.pack(*[state[j] for j in (0, 1, 3)])
    work = WorkBudget(10**6, None)
    system = steppers.BatchSystem(state[2], phys, layout, ("first_order", "finite_v"), work)
    solver = RK45(system.fun, 0.0, y0.ravel(), 1.0, rtol=rtol, atol=atol)
    want = [y0[0]]
    while len(want) < len(alphas):
        solver.step()
        dense = solver.dense_output()
        while len(want) < len(alphas) and alphas[len(want)] <= solver.t:
            a = alphas[len(want)]
            want.append(solver.y if a == solver.t else dense(a))
    np.testing.assert_array_equal(records.records[0], np.array(want))
    assert records.nfev == system.nfev + 1  # and the check of the start


def test_rk4_stepper_through_drive_is_rk4_by_hand():
    p, state = _state(seeds=1)
    records, layout, phys = _drive(p, state, steppers.FixedRK4Stepper(p.alphas(), 0.03))
    work = WorkBudget(10**6, None)
    system = steppers.BatchSystem(state[2], phys, layout, ("first_order", "finite_v"), work)
    alphas = p.alphas()
    y = layout.pack(*[state[j] for j in (0, 1, 3)])
    for i in range(1, len(alphas)):
        n = max(1, math.ceil((alphas[i] - alphas[i - 1]) / 0.03 - 1e-9))
        dt = (alphas[i] - alphas[i - 1]) / n
        for _ in range(n):
            k1 = system.deriv(y)
            k2 = system.deriv(y + 0.5 * dt * k1)
            k3 = system.deriv(y + 0.5 * dt * k2)
            k4 = system.deriv(y + dt * k3)
            y = y + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        np.testing.assert_array_equal(records.records[0, i], y[0])
    assert records.nfev == 4 * sum(
        max(1, math.ceil((b - a) / 0.03 - 1e-9)) for a, b in zip(alphas[:-1], alphas[1:])
    )


# one member learns, the other (eta_J = 1e4) leaves the domain; with BDF it stalls the batch
# and is split off; with a small budget both stop, stalled
SETTINGS = {
    "RK45": {"method": "RK45", "rtol": 1e-6, "atol": 1e-8},
    "BDF": {"method": "BDF", "rtol": 1e-6, "atol": 1e-8},
    "RK4": {"fixed_step": 0.01},
    "BDF-budget": {"method": "BDF", "rtol": 1e-6, "atol": 1e-8, "max_rhs_evals": 400},
}


def test_the_steppers_agree_and_stop_the_member_that_leaves_the_domain():
    """The adaptive steppers (rtol 1e-6) and fixed RK4 (h = 0.01, error O(h^4)) reach the same
    final eps_meta to 1e-5; the diverging member stops within one record interval in each
    (BDF splits it off the batch); a budget of 400 evaluations stops both members, stalled."""
    p, state = _state()
    plist = [dataclasses.replace(p, eta_J=e) for e in (3.0, 1e4)]
    out = {case: integrate(*state, plist, p.alphas(), SETTINGS[case]) for case in SETTINGS}
    reference = out["RK45"]
    spacing = np.max(np.diff(p.alphas()))
    for case in ("BDF", "RK4"):
        np.testing.assert_allclose(out[case].eps_meta[0, -1], reference.eps_meta[0, -1], rtol=1e-5)
        assert np.isnan(out[case].alpha_diverged[0])
        assert abs(out[case].alpha_diverged[1] - reference.alpha_diverged[1]) <= spacing
        assert out[case].reason[1] and not out[case].stalled[1]
    assert (out["BDF"].split_off, out["RK45"].split_off) == (1, 0)
    budget = out["BDF-budget"]
    assert budget.stalled[1] and budget.nfev <= 400 + 10
    assert np.isfinite(budget.alpha_diverged).all()


def test_a_non_finite_rate_stops_with_its_reason_in_the_adaptive_stepper():
    p, state = _state()
    bad = dataclasses.replace(p)
    object.__setattr__(bad, "eta_w", math.nan)
    out = integrate(*state, [bad, p], p.alphas(), SETTINGS["RK45"])
    assert out.reason.tolist() == [NON_FINITE_DRIFT, ""] and out.alpha_diverged[0] == 0.0


class ExplicitEuler:
    """A third peer, as an Euler-Maruyama stepper would plug in: no dense output, lands on
    every record, draws nothing here."""

    def __init__(self, alphas):
        self.alphas, self.i = alphas, 1

    def start(self, system, t, y):
        self.system, self.t, self.y = system, t, y
        return np.zeros(len(y), dtype=bool)

    def advance(self):
        self.system.work.spend(1)
        t_new = self.alphas[self.i]
        y_new = self.y + (t_new - self.t) * self.system.deriv(self.y)
        self.system.nfev += 1
        self.i += 1
        t_old, self.t, self.y = self.t, t_new, y_new
        return steppers.Step(steppers.OK, t_old, t_new, y_new)


def test_a_third_stepper_plugs_in_with_a_registry_line(monkeypatch):
    ode = THEORY_KINDS["ode"]
    kind = TheoryKind(fields=ode.fields, stepper=lambda st: "euler", doc="test")
    monkeypatch.setitem(THEORY_KINDS, "euler-test", kind)
    monkeypatch.setitem(steppers.STEPPERS, "euler", lambda st, alphas: ExplicitEuler(alphas))
    p, state = _state()
    plist = [dataclasses.replace(p, eta_J=e) for e in (3.0, 1e4)]
    out = integrate(*state, plist, p.alphas(), {"kind": "euler-test"})
    assert out.nfev == len(p.alphas()) - 1
    assert out.diverged.tolist() == [False, True] and out.reason[1] == LEFT_DOMAIN
    # frozen at the first step end outside, recorded up to the step before
    k = int(np.flatnonzero(p.alphas() == out.alpha_diverged[1])[0])
    assert np.isfinite(out.R[1, :k]).all() and np.isnan(out.R[1, k:]).all()
    assert np.isfinite(out.R[0]).all()


# --- theory kinds and the diffusion -------------------------------------------------------


def test_theory_kind_is_checked():
    assert TheorySettings().kind == "ode"
    with pytest.raises(ValueError, match=r"kind must be one of \['ode', 'sde'\], got 'levy'"):
        TheorySettings(kind="levy")


def test_settings_of_another_kind_are_refused(monkeypatch):
    monkeypatch.setitem(THEORY_KINDS, "lean", TheoryKind(("max_rhs_evals",), str, "test"))
    TheorySettings(kind="lean", max_rhs_evals=10)
    with pytest.raises(ValueError, match=r"\['method'\] do not belong to theory kind 'lean'"):
        TheorySettings(kind="lean", method="BDF")


def test_no_term_has_a_diffusion_today():
    p, (R0, Q0, T, w0) = _state()
    assert all(term.diffusion is None for term in rhs.TERMS.values())
    assert rhs.diffusion(R0, Q0, T, w0, p, tuple(rhs.TERMS)) is None


def test_diffusion_concatenates_the_noises_of_the_terms(monkeypatch):
    def noise(width, keys):
        return lambda f: {k: np.ones(getattr(f, k[1:]).shape + (width,)) for k in keys}

    for name, width, keys in (("a", 2, ("dR", "dQ", "dw0")), ("b", 3, ("dQ",))):
        term = rhs.Term(rhs.first_order_term, lambda st, alg: True, name, noise(width, keys))
        monkeypatch.setitem(rhs.TERMS, name, term)
    p, (R0, Q0, T, w0) = _state()
    G = rhs.diffusion(R0, Q0, T, w0, p, ("first_order", "a", "b"))
    assert G["dR"].shape == R0.shape + (5,) and G["dQ"].shape == Q0.shape + (5,)
    assert (G["dQ"] == 1.0).all()
    assert (G["dR"][..., :2] == 1.0).all() and (G["dR"][..., 2:] == 0.0).all()
    assert G["dw0"].shape == w0.shape + (5,)
