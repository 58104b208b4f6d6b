"""Statistics of seeds and runs: mean with standard error, binomial proportions, correlation,
straight-line fits in log N (power laws and log slopes), all over the finite values only."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import NamedTuple

import numpy as np


class MeanError(NamedTuple):
    """Mean of the finite values with its standard error (std ddof=1 / sqrt(n)); n of total."""

    mean: float
    error: float
    std: float
    n: int
    total: int


def mean_error(values) -> MeanError:
    v = np.asarray(values, dtype=float).ravel()
    done = v[np.isfinite(v)]
    nan = float("nan")
    if not len(done):
        return MeanError(nan, nan, nan, 0, len(v))
    std = float(np.std(done, ddof=1)) if len(done) > 1 else nan
    return MeanError(float(done.mean()), std / math.sqrt(len(done)), std, len(done), len(v))


class Proportion(NamedTuple):
    """k successes of n trials: the fraction k / n, its standard error sqrt(p (1 - p) / n) and
    the Wilson score interval [lower, upper] at `confidence` (NaN for n = 0)."""

    fraction: float
    error: float
    lower: float
    upper: float
    k: int
    n: int
    confidence: float


def proportion(k: int, n: int, confidence: float = 0.95) -> Proportion:
    """The fraction k / n with its Wilson score interval, which stays inside [0, 1] and keeps
    its coverage at k = 0 or k = n, where the normal interval collapses to a point."""
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k!r}, n={n!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    nan = float("nan")
    if n == 0:
        return Proportion(nan, nan, nan, nan, 0, 0, confidence)
    p = k / n
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lower, upper = max(0.0, centre - half), min(1.0, centre + half)
    return Proportion(p, math.sqrt(p * (1 - p) / n), lower, upper, k, n, confidence)


class Correlation(NamedTuple):
    """Pearson r of n pairs, with the interval [lower, upper] at `confidence` from Fisher's
    z = artanh(r), whose standard error is 1 / sqrt(n - 3) for bivariate normal pairs."""

    r: float
    lower: float
    upper: float
    n: int
    confidence: float


def correlation(x, y, confidence: float = 0.68) -> Correlation:
    """Pearson correlation of the pairs where both x and y are finite, with its Fisher-z
    interval (NaN for fewer than four pairs)."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y need the same length, got {x.shape} and {y.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    ok = np.isfinite(x) & np.isfinite(y)
    n = int(ok.sum())
    nan = float("nan")
    if n < 4 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return Correlation(nan, nan, nan, n, confidence)
    r = float(np.corrcoef(x[ok], y[ok])[0, 1])
    z = math.atanh(min(max(r, -1 + 1e-15), 1 - 1e-15))
    half = NormalDist().inv_cdf(0.5 + confidence / 2) / math.sqrt(n - 3)
    return Correlation(r, math.tanh(z - half), math.tanh(z + half), n, confidence)


# --- straight lines in log N ---------------------------------------------------------------


def _line(x: np.ndarray, y: np.ndarray, w: np.ndarray, fit: str):
    """Weighted least-squares line y = intercept + slope x: (slope, intercept, sxx, resid),
    sxx the weighted spread of x about its mean; `fit` names the caller in the error for
    fewer than two distinct x."""
    if len(np.unique(x)) < 2:
        raise ValueError(f"{fit} needs at least two distinct N")
    xm, ym = np.sum(w * x) / w.sum(), np.sum(w * y) / w.sum()
    sxx = float(np.sum(w * (x - xm) ** 2))
    slope = float(np.sum(w * (x - xm) * (y - ym)) / sxx)
    intercept = float(ym - slope * xm)
    return slope, intercept, sxx, y - (intercept + slope * x)


def _residual_stderr(resid: np.ndarray, sxx: float) -> float:
    """Standard error of an unweighted slope from its residuals (n - 2 degrees of freedom;
    NaN for two points)."""
    n = len(resid)
    return math.sqrt(float(np.sum(resid**2)) / (n - 2) / sxx) if n > 2 else float("nan")


class PowerLaw(NamedTuple):
    """dev = prefactor * N**exponent; stderr: standard error of the exponent (NaN: 2 points)."""

    exponent: float
    stderr: float
    prefactor: float
    n_points: int


def fit_power_law(N, dev) -> PowerLaw:
    """Least-squares fit of log dev = log prefactor + exponent * log N.

    Points with non-finite or non-positive N or dev are left out; at least two distinct N are
    needed (ValueError otherwise). The standard error comes from the residuals (n - 2 degrees
    of freedom): exact data give 0, two points give NaN.
    """
    N = np.asarray(N, dtype=float).ravel()
    dev = np.asarray(dev, dtype=float).ravel()
    if N.shape != dev.shape:
        raise ValueError(f"N and dev need the same length, got {N.shape} and {dev.shape}")
    ok = np.isfinite(N) & np.isfinite(dev) & (N > 0) & (dev > 0)
    x, y = np.log(N[ok]), np.log(dev[ok])
    slope, intercept, sxx, resid = _line(x, y, np.ones_like(x), "fit_power_law")
    return PowerLaw(slope, _residual_stderr(resid, sxx), math.exp(intercept), len(x))


class LogSlope(NamedTuple):
    """value = intercept + slope * ln N; stderr: standard error of the slope; chi2: of the
    residuals in units of the given errors (n_points - 2 degrees of freedom), NaN without."""

    slope: float
    stderr: float
    intercept: float
    n_points: int
    chi2: float


def fit_log_slope(N, values, errors=None) -> LogSlope:
    """Weighted least-squares line of `values` against ln N (e.g. the mean escape alpha).

    With `errors` (one standard error per point) the weights are 1 / error^2 and the slope's
    standard error follows from them (valid for 2 points too); without, the fit is unweighted
    and the standard error comes from the residuals (NaN for 2 points). Points with a
    non-finite N, value or error, or N <= 0, are left out; at least two distinct N are needed.
    """
    N = np.asarray(N, dtype=float).ravel()
    y = np.asarray(values, dtype=float).ravel()
    err = None if errors is None else np.asarray(errors, dtype=float).ravel()
    if N.shape != y.shape or (err is not None and err.shape != y.shape):
        raise ValueError("N, values and errors need the same length")
    ok = np.isfinite(N) & np.isfinite(y) & (N > 0)
    if err is not None:
        ok &= np.isfinite(err) & (err > 0)
    x, y = np.log(N[ok]), y[ok]
    w = np.ones_like(x) if err is None else 1.0 / err[ok] ** 2
    slope, intercept, sxx, resid = _line(x, y, w, "fit_log_slope")
    if err is not None:
        stderr, chi2 = math.sqrt(1.0 / sxx), float(np.sum(w * resid**2))
    else:
        stderr, chi2 = _residual_stderr(resid, sxx), float("nan")
    return LogSlope(slope, stderr, intercept, len(x), chi2)
