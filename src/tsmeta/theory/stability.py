"""Linear stability of the unspecialised state: the rate at which R escapes from R = 0.

At R = 0, Q = T = I, w0 = 0 and u_mean = 0 the adapted head is zero (it is proportional to
C~ = I2(lambda, nu~), which vanishes with R), so the state is a fixed point of the ODE; the
overlaps R grow or decay from it as exp(rate * alpha), with the rate the largest eigenvalue
of the Jacobian d(dR/dalpha)/dR there (the dQ and dw0 rows do not feed back at linear order).
docs/theory.md, section 10: for FO-ANIL the rate is c eta_J eta_w u_std^2 / (K M), c the
activation's `escape_factor` (1 / pi^2 for erf), for ANIL and MAML with erf that times
(2 - eta_w / (3K)).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tsmeta.params import RunParams
from tsmeta.settings import TheorySettings
from tsmeta.theory.closed_form import Physics
from tsmeta.theory.rhs import drift, terms_for

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
    for (K, M, algorithm, _), members in groups.items():
        jac = _dR_jacobian(K, M, [plist[i] for i in members], terms_for(st, algorithm), step)
        rates[members] = np.linalg.eigvals(jac).real.max(axis=-1)
    return float(rates[0]) if single else rates


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
