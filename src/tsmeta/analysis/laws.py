"""The paper's claims as laws (docs/theory.md, sections 10 and 11): the linear escape rate
from the unspecialised state, the e-folds at the speed threshold, the exact head rates and
the arrangement at the threshold, and the early growth rate of R measured on a run."""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from tsmeta.activations import DEFAULT_ACTIVATION
from tsmeta.activations import activation as activation_line
from tsmeta.analysis.crossings import minimal_rate
from tsmeta.analysis.relabel import Arrangement, arrangement, run_activation


def rate_law(eta_J, eta_w, K, M, u_std=1.0, gamma=1.0, activation: str = DEFAULT_ACTIVATION):
    """The linear escape rate of FO-ANIL (one inner step) from the unspecialised state,
    c eta_J eta_w u_std^2 gamma^2 / (K M), c the activation's `escape_factor` (1 / pi^2 for
    erf; docs/theory.md, sections 10 and 11): the learning rates enter only through the
    product eta_J eta_w / K. `theory.stability.escape_rate` is the same rate from the ODE's
    Jacobian. Numbers, numpy arrays and xarray DataArrays (broadcast by dimension name)
    alike. ValueError for an activation without such a rate (R = 0 no fixed point)."""
    factor = activation_line(activation).escape_factor
    if factor is None:
        raise ValueError(
            f"activation {activation!r} has no linear escape rate from R = 0 (<g> != 0: R = 0 "
            "is no fixed point); theory.stability.escape_rate takes it at the plateau"
        )
    return eta_J * eta_w * (u_std**2 * gamma**2 * factor) / (K * M)


def speed_efolds(
    eta_J, eta_w, K, M, alpha_final, u_std=1.0, gamma=1.0, activation: str = DEFAULT_ACTIVATION
):
    """e-folds of the linear escape within alpha_final, alpha_final * rate_law(...).

    At the speed threshold (the smallest rates that bring eps_meta below a level by
    alpha_final) this is the number of e-folds the overlaps need, ln(1 / R0) + c with
    R0 ~ N^(-1/2) at a random initial state: the law is ln sqrt(N) + c for every K
    (docs/theory.md, section 11)."""
    return alpha_final * rate_law(eta_J, eta_w, K, M, u_std, gamma, activation)


def exact_head_rates(arr: Arrangement, activation: str = DEFAULT_ACTIVATION) -> dict:
    """{m: eta_w} for every number m > 0 of student units sharing one teacher unit in the
    arrangement: the head rate at which one inner step is exact for the teacher units carried
    by m units (Q = R = 1 on them; `Activation.exact_head_rate`, 3K / m for erf;
    docs/theory.md, section 11). Empty where the activation has no such rate."""
    K = len(arr.assignment)
    line = activation_line(activation)
    rates = {m: line.exact_head_rate(K, m) for m in sorted({c for c in arr.counts if c > 0})}
    return {m: rate for m, rate in rates.items() if rate is not None}


def threshold_arrangements(
    ds: xr.Dataset, axis: str, level: float, prefix: str = "", threshold: float = 0.5
) -> xr.DataArray:
    """The arrangement label (`arrangement` of the final R, Q) of the sweep member at the
    smallest grid value of `axis` that brings eps_meta below `level` (the upper bracket of
    `minimal_rate`), for every value of the other grid axes; "" where none does."""
    upper = minimal_rate(ds, axis, level, prefix)["upper"]
    R, Q = ds[prefix + "R"], ds[prefix + "Q"]
    odd = activation_line(run_activation(ds)).odd
    labels = np.full(upper.shape, "", dtype=object)
    for pos in np.ndindex(upper.shape):
        value = float(upper.values[pos])
        if not np.isfinite(value):
            continue
        sel = {d: upper[d].values[i] for d, i in zip(upper.dims, pos)}
        sel[axis] = value
        K = int(sel.get("K", ds.attrs.get("param_K", R.sizes["k"])))
        M = int(sel.get("M", ds.attrs.get("param_M", R.sizes["n"])))
        r = R.sel(sel).values[:K, :M]
        q = Q.sel(sel).values[:K, :K]
        if np.isfinite(r).all() and np.isfinite(q).all():
            labels[pos] = arrangement(r, threshold, q, odd).label
    return xr.DataArray(labels, dims=upper.dims, coords=upper.coords)


def early_growth_rate(
    ds: xr.Dataset, alpha_max: float = 2.0, max_growth: float = 1.5, min_records: int = 3
) -> xr.DataArray:
    """Per seed, the early exponential growth rate of R: the slope of a least-squares line
    through log rms(R)(alpha), rms over the K x M entries, on the records with
    alpha <= alpha_max that come before rms(R) first exceeds max_growth times its value at
    alpha = 0 (the linear regime around R = 0; docs/theory.md, section 10).

    Works on a simulation or a theory Dataset alike (R (seed, alpha, k, n)), so that the
    estimator is the same on both sides; to compare with `theory.stability.escape_rate`, which
    is the rate at Q = T = I, keep in mind that finite-N initial overlaps (Q0, T != I) shift
    each seed's rate. Negative: R decays at first. NaN for a seed with fewer than
    `min_records` finite records in the window.
    """
    if alpha_max <= 0 or max_growth <= 1:
        raise ValueError(
            f"need alpha_max > 0 and max_growth > 1, got alpha_max={alpha_max!r}, "
            f"max_growth={max_growth!r}"
        )
    R = ds["R"].transpose("seed", "alpha", ...)
    alpha = ds["alpha"].values.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_rms = 0.5 * np.log(np.mean(R.values.reshape(R.shape[0], R.shape[1], -1) ** 2, -1))
    rates = np.array([
        _slope_until_growth(alpha, series, alpha <= alpha_max, series[0], max_growth, min_records)
        for series in log_rms
    ])  # fmt: skip
    out = xr.DataArray(rates, dims=("seed",), coords={"seed": ds["seed"].values})
    out.attrs.update(
        long_name="early growth rate of rms R", units="1/alpha", alpha_max=alpha_max,
        max_growth=max_growth,
    )  # fmt: skip
    return out


def _slope_until_growth(alpha, series, window, reference, max_growth, min_records) -> float:
    """Slope of a least-squares line through `series` (log rms) against alpha on the finite
    records of `window` before the series first exceeds `reference` + log(max_growth); NaN
    with fewer than `min_records` records there."""
    inside = window.copy()
    above = np.flatnonzero(window & (series > reference + math.log(max_growth)))
    if len(above):
        inside &= np.arange(len(alpha)) < above[0]
    inside &= np.isfinite(series)
    if inside.sum() >= min_records and np.ptp(alpha[inside]) > 0:
        return float(np.polyfit(alpha[inside], series[inside], 1)[0])
    return math.nan


def plateau_growth_rate(
    ds: xr.Dataset, start: float, max_growth: float = 3.0, min_records: int = 3
) -> xr.DataArray:
    """Per seed, the growth rate of the part of R that breaks the permutation symmetry: the
    slope of a least-squares line through log rms(R - mean R)(alpha), rms and mean over the
    K x M entries, on the records from alpha >= `start` (on the symmetric plateau) until
    that rms first exceeds `max_growth` times its value there. The escape from the plateau of
    an activation with <g> != 0 (relu; docs/theory.md, section 12), where R = 0 is no fixed
    point and `early_growth_rate` would measure the approach to the plateau instead. NaN for
    a seed with fewer than `min_records` records in the window."""
    R = ds["R"].transpose("seed", "alpha", ...).values
    flat = R.reshape(R.shape[0], R.shape[1], -1)
    alpha = ds["alpha"].values.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = flat - flat.mean(-1, keepdims=True)
        log_rms = 0.5 * np.log(np.mean(spread**2, -1))
    rates = np.full(R.shape[0], np.nan)
    first = np.searchsorted(alpha, start)
    after = np.arange(len(alpha)) >= first
    for s, series in enumerate(log_rms):
        if first < len(alpha) and np.isfinite(series[first]):
            rates[s] = _slope_until_growth(
                alpha, series, after, series[first], max_growth, min_records
            )
    out = xr.DataArray(rates, dims=("seed",), coords={"seed": ds["seed"].values})
    out.attrs.update(long_name="growth rate of rms(R - mean R) on the plateau", units="1/alpha",
                     start=start, max_growth=max_growth)  # fmt: skip
    return out
