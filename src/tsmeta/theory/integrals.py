"""Gaussian averages of g(z) = erf(z / sqrt 2) and g'(z) (docs/theory.md, section 2).

Every function takes a covariance array `C` of shape (..., D, D) and returns the integral
for all index combinations at once. `first` (default: all D) restricts the indices that
carry g' to the first `first` fields (the students), which is all the ODE needs.
Invalid covariances give NaN rather than an error: the integrator treats NaN as divergence.
"""

from __future__ import annotations

import numpy as np

TWO_OVER_PI = 2.0 / np.pi
FOUR_OVER_PI2 = 4.0 / np.pi**2


def _diag1(C: np.ndarray) -> np.ndarray:
    """1 + C_aa, shape (..., D)."""
    return 1.0 + np.diagonal(C, axis1=-2, axis2=-1)


def I2(C: np.ndarray) -> np.ndarray:
    """<g(z_a) g(z_b)>, shape (..., D, D)."""
    C = np.asarray(C, dtype=float)
    e = _diag1(C)
    return TWO_OVER_PI * np.arcsin(C / np.sqrt(e[..., :, None] * e[..., None, :]))


def J2(C: np.ndarray, first: int | None = None) -> np.ndarray:
    """<g'(z_a) g'(z_b)> for a, b < first, shape (..., F, F)."""
    C = np.asarray(C, dtype=float)
    F = C.shape[-1] if first is None else first
    e = _diag1(C)[..., :F]
    Cff = C[..., :F, :F]
    return TWO_OVER_PI / np.sqrt(e[..., :, None] * e[..., None, :] - Cff**2)


def I3(C: np.ndarray, first: int | None = None) -> np.ndarray:
    """<g'(z_a) z_b g(z_c)> for a < first, shape (..., F, D, D) indexed [a, b, c]."""
    C = np.asarray(C, dtype=float)
    F = C.shape[-1] if first is None else first
    e = _diag1(C)
    ea = e[..., :F]
    Cf = C[..., :F, :]  # C_a., (..., F, D)
    num = C[..., None, :, :] * ea[..., :, None, None] - Cf[..., :, :, None] * Cf[..., :, None, :]
    lam3 = ea[..., :, None] * e[..., None, :] - Cf**2  # [a, c]
    den = ea[..., :, None, None] * np.sqrt(lam3)[..., :, None, :]
    return TWO_OVER_PI * num / den


def I4(C: np.ndarray, first: int | None = None) -> np.ndarray:
    """<g'(z_a) g'(z_b) g(z_c) g(z_d)> for a, b < first, shape (..., F, F, D, D).

    Saad and Solla (1995): the g' factors tilt the Gaussian; (z_c, z_d) stay Gaussian with
    the Schur-complement covariance, so I4 = J2(a, b) * I2'(c, d) (docs/theory.md).
    """
    C = np.asarray(C, dtype=float)
    F = C.shape[-1] if first is None else first
    e = _diag1(C)
    Cff = C[..., :F, :F]
    Cfd = C[..., :F, :]
    # axes (..., a, b, c, d)
    e1 = e[..., :F][..., :, None, None, None]
    e2 = e[..., :F][..., None, :, None, None]
    C12 = Cff[..., :, :, None, None]
    C13 = Cfd[..., :, None, :, None]
    C14 = Cfd[..., :, None, None, :]
    C23 = Cfd[..., None, :, :, None]
    C24 = Cfd[..., None, :, None, :]
    C34 = C[..., None, None, :, :]
    lam4 = e1 * e2 - C12**2
    lam0 = lam4 * C34 - C23 * C24 * e1 - C13 * C14 * e2 + C12 * C13 * C24 + C12 * C14 * C23
    # Lambda_1 on (a, b, c), Lambda_2 is the same array on (a, b, d)
    lam4_3 = lam4[..., 0]
    e1_3, e2_3 = e1[..., 0], e2[..., 0]
    C12_3, C13_3, C23_3 = C12[..., 0], C13[..., 0], C23[..., 0]
    ec = e[..., None, None, :]
    lam1 = lam4_3 * ec - C23_3**2 * e1_3 - C13_3**2 * e2_3 + 2.0 * C12_3 * C13_3 * C23_3
    ratio = lam0 / np.sqrt(lam1[..., :, None] * lam1[..., None, :])
    return FOUR_OVER_PI2 / np.sqrt(lam4) * np.arcsin(ratio)
