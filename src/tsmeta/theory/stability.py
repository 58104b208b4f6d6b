"""Linear stability of the unspecialised state: the rate at which R escapes from it.

Where <g> = 0 (erf, linear) the unspecialised state is R = 0. At R = 0, Q = T = I, w0 = 0
and u_mean = 0 the adapted head is zero (it is proportional to C~ = I2(lambda, nu~), which
vanishes with R), so the state is a fixed point of the ODE; the
overlaps R grow or decay from it as exp(rate * alpha), with the rate the largest eigenvalue
of the Jacobian d(dR/dalpha)/dR there (the dQ and dw0 rows do not feed back at linear order).
docs/theory.md, section 10: for FO-ANIL the rate is c eta_J eta_w u_std^2 / (K M), c the
activation's `escape_factor` (1 / pi^2 for erf), for ANIL and MAML with erf that times
(2 - eta_w / (3K)), with linear (1 - d^S)/(1 - d) (1 + d^S), d = 1 - eta_w / K.

Where <g> != 0 (relu) R = 0 is no fixed point: the units first move together to the
permutation-symmetric plateau R = r 11^T, Q = (q - p) I + p 11^T (`symmetric_fixed_point`),
and the escape rate is the largest real eigenvalue of the Jacobian of the whole (R, Q) drift
there (R and Q do not decouple; docs/theory.md, section 12).

Any state (`growth_rate`): the largest real part of the eigenvalues of the whole drift's
Jacobian; the theory stage records it at each seed's last record (`growth_rate_end`), where a
positive value marks an end state that finite-N fluctuations leave (docs/theory.md, 13).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import integrate, optimize

from tsmeta.activations import activation
from tsmeta.params import RunParams
from tsmeta.settings import TheorySettings
from tsmeta.theory.closed_form import Physics, eps_meta_closed_form
from tsmeta.theory.lna import PathNoise
from tsmeta.theory.rhs import drift, terms_for
from tsmeta.theory.trajectory import StateLayout

FIXED_POINT_TOL = 1e-9  # |drift| / eta_J accepted at a fixed point
STEP = 1e-4  # central-difference step in R; dR is odd in R, so the error is O(STEP^2)


def escape_rate(
    params: RunParams | Sequence[RunParams],
    settings: TheorySettings | dict | None = None,
    *,
    step: float = STEP,
) -> np.ndarray:
    """Linear escape rate from the unspecialised state, one per run, shape (len(params),)
    (a float for a single RunParams).

    The Jacobian of dR/dalpha with respect to R (K M x K M) is taken by central differences
    of `rhs.drift` at R = 0, Q = T = I, w0 = 0, with the terms the run's theory includes
    (`rhs.terms_for(settings, algorithm)`, so ANIL and MAML get the second-order term), and
    u_mean set to 0 (with u_mean != 0, w0 moves first and R = 0 is no fixed point). The rate
    is the largest real part of its eigenvalues: positive, the unspecialised state is left
    exponentially; negative, it is linearly stable. All runs of the same (K, M, algorithm,
    activation) are evaluated in one batched call.
    """
    single = isinstance(params, RunParams)
    plist = [params] if single else list(params)
    st = TheorySettings.coerce(settings)
    rates = np.full(len(plist), np.nan)
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(plist):
        groups.setdefault((p.K, p.M, p.algorithm, p.activation), []).append(i)
    for (K, M, algorithm, name), members in groups.items():
        terms = terms_for(st, algorithm)
        if activation(name).mean != 0.0:  # R = 0 is no fixed point: the plateau's Jacobian
            for i in members:
                point = symmetric_fixed_point(plist[i], st)
                if np.isfinite(point["r"]):
                    jac = plateau_jacobian(plist[i], point, terms, step)
                    rates[i] = np.linalg.eigvals(jac).real.max()
            continue
        jac = _dR_jacobian(K, M, [plist[i] for i in members], terms, step)
        rates[members] = np.linalg.eigvals(jac).real.max(axis=-1)
    return float(rates[0]) if single else rates


def _symmetric_state(K: int, M: int, r: float, q: float, p: float):
    """R = r 11^T (K, M), Q = (q - p) I + p 11^T (K, K)."""
    return np.full((K, M), r), (q - p) * np.eye(K) + p * np.ones((K, K))


def _symmetric_drift(x, K, M, phys, terms):
    """(dr, dq, dp) of the drift at the symmetric state x = (r, q, p): the means of dR, of
    diag dQ and of the off-diagonal dQ (the symmetric subspace is invariant)."""
    R, Q = _symmetric_state(K, M, *x)
    d = drift(R, Q, np.eye(M), np.zeros(K), phys, terms)
    off = ~np.eye(K, dtype=bool)
    dp = d["dQ"][off].mean() if K > 1 else 0.0
    return np.array([d["dR"].mean(), np.diagonal(d["dQ"]).mean(), dp])


def symmetric_fixed_point(
    params: RunParams, settings: TheorySettings | dict | None = None, alpha: float = 400.0
) -> dict:
    """The permutation-symmetric fixed point reached from R = 0, Q = T = I, w0 = 0 (u_mean set
    to 0): integrated inside the symmetric subspace (three unknowns r, q, p) to `alpha`, then
    polished by a root find. {"r", "q", "p", "eps"}; NaN where the integration diverges or the
    root find fails."""
    st = TheorySettings.coerce(settings)
    K, M = params.K, params.M
    phys = Physics.from_params(params)
    phys = Physics(**{**phys.__dict__, "u_mean": np.zeros(())})
    terms = terms_for(st, params.algorithm)
    flow = lambda _, x: _symmetric_drift(x, K, M, phys, terms)  # noqa: E731
    path = integrate.solve_ivp(flow, (0.0, alpha), [0.0, 1.0, 0.0], rtol=1e-9, atol=1e-12)
    nan = {"r": np.nan, "q": np.nan, "p": np.nan, "eps": np.nan}
    if not path.success or not np.all(np.isfinite(path.y[:, -1])):
        return nan
    root = optimize.root(lambda x: flow(0.0, x), path.y[:, -1], tol=1e-13)
    x = root.x if root.success else path.y[:, -1]  # the root find stalls if already there
    if not np.abs(flow(0.0, x)).max() < FIXED_POINT_TOL * float(params.eta_J):
        return nan
    r, q, p = x
    R, Q = _symmetric_state(K, M, r, q, p)
    eps = float(eps_meta_closed_form(R, Q, np.eye(M), np.zeros(K), phys))
    return {"r": float(r), "q": float(q), "p": float(p), "eps": eps}


def plateau_jacobian(params: RunParams, point: dict, terms, step: float = STEP) -> np.ndarray:
    """The Jacobian of the (R, Q) drift at a symmetric fixed point `point`, by central
    differences: variables the K M entries of R and the K (K + 1) / 2 entries of Q on and
    above the diagonal (a Q perturbation is symmetric), (n, n)."""
    K, M = params.K, params.M
    phys = Physics.from_params(params)
    phys = Physics(**{**phys.__dict__, "u_mean": np.zeros(())})
    R0, Q0 = _symmetric_state(K, M, point["r"], point["q"], point["p"])
    upper = np.triu_indices(K)
    n = K * M + len(upper[0])
    R = np.broadcast_to(R0, (n, 2, K, M)).copy()
    Q = np.broadcast_to(Q0, (n, 2, K, K)).copy()
    for j in range(n):
        for side, sign in enumerate((1.0, -1.0)):
            if j < K * M:
                R[j, side].flat[j] += sign * step
            else:
                k, l = upper[0][j - K * M], upper[1][j - K * M]
                Q[j, side, k, l] += sign * step
                if k != l:
                    Q[j, side, l, k] += sign * step
    batch = n * 2
    d = drift(
        R.reshape(batch, K, M), Q.reshape(batch, K, K),
        np.broadcast_to(np.eye(M), (batch, M, M)), np.zeros((batch, K)), phys, terms,
    )  # fmt: skip
    out = np.concatenate(
        [d["dR"].reshape(n, 2, -1), d["dQ"][:, upper[0], upper[1]].reshape(n, 2, -1)], -1
    )
    return ((out[:, 0] - out[:, 1]) / (2.0 * step)).T


def _dR_jacobian(K: int, M: int, plist, terms, step: float) -> np.ndarray:
    """d(dR)/dR at the unspecialised state, (members, K M, K M), by central differences."""
    n, KM = len(plist), K * M
    phys = Physics.from_params(plist)
    phys = Physics(**{**phys.__dict__, "u_mean": np.zeros(n)})
    # batch (member, column j, sign): R = +-step e_j
    R = np.zeros((n, KM, 2, KM))
    cols = np.arange(KM)
    R[:, cols, 0, cols] = step
    R[:, cols, 1, cols] = -step
    R = R.reshape(n * KM * 2, K, M)
    batch = R.shape[0]
    idx = np.repeat(np.arange(n), KM * 2)
    out = drift(
        R,
        np.broadcast_to(np.eye(K), (batch, K, K)),
        np.broadcast_to(np.eye(M), (batch, M, M)),
        np.zeros((batch, K)),
        phys.take(idx),
        terms,
    )
    dR = out["dR"].reshape(n, KM, 2, KM)
    # column j of the Jacobian: (dR(+step e_j) - dR(-step e_j)) / (2 step)
    return np.swapaxes((dR[:, :, 0] - dR[:, :, 1]) / (2.0 * step), -1, -2)


def growth_rate(R, Q, T, w0, phys: Physics, terms, chunk: int = 4096) -> np.ndarray:
    """The local growth rate of perturbations at the states (R, Q, T, w0) of a batch (B
    members, `phys` per member): the largest real part of the eigenvalues of the drift's
    Jacobian in the independent coordinates R, Q_kl (k <= l), w0 (`lna.PathNoise.jacobian`),
    (B,), NaN where the state or the Jacobian is not finite. At a fixed point it is the
    point's linear stability: positive, the ODE rests on a state that finite-N fluctuations
    leave (docs/theory.md, section 13)."""
    B, K, M = R.shape
    states = StateLayout(K, M).pack(R, Q, w0)
    phys = phys.broadcast(B)
    rate = np.full(B, np.nan)
    ok = np.flatnonzero(np.all(np.isfinite(states), axis=1))
    per_call = max(1, chunk // (states.shape[1] + 1))  # (r + 1) states per member a call
    with np.errstate(all="ignore"):
        for start in range(0, len(ok), per_call):
            idx = ok[start : start + per_call]
            jac = PathNoise(T[idx], phys.take(idx), terms, K, M).jacobian(states[idx])
            good = np.all(np.isfinite(jac), axis=(1, 2))
            rate[idx[good]] = np.linalg.eigvals(jac[good]).real.max(-1)
    return rate
