"""Where eps_meta crosses a level: escapes, first-stage ends, thresholds of a sweep, floors.

Every function ignores NaN records (a diverged seed is NaN from its divergence on).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import xarray as xr

from tsmeta.analysis.stats import mean_error
from tsmeta.params import ESCAPE_LEVEL, FIRST_STAGE_LEVEL


def error_floor(eps, alpha, window: float = 0.2) -> np.ndarray | float:
    """Mean of eps over the last part of the trajectory: alpha >= (1 - window) * alpha_max.

    eps (..., A) on the grid alpha (A,); NaN records (diverged) are ignored. Returns the
    mean over the window along the last axis (a float for 1-d eps; NaN where a trajectory
    has no finite record in the window). window is a fraction of the alpha range, in (0, 1].
    """
    if not 0 < window <= 1:
        raise ValueError(f"window must be in (0, 1], got {window!r}")
    eps = np.asarray(eps, dtype=float)
    alpha = np.asarray(alpha, dtype=float)
    if eps.shape[-1] != alpha.shape[0]:
        raise ValueError(f"eps has {eps.shape[-1]} records but alpha has {alpha.shape[0]}")
    start = alpha[0] + (1.0 - window) * (alpha[-1] - alpha[0])
    inside = alpha >= start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        floor = np.nanmean(eps[..., inside], axis=-1)
    return float(floor) if np.ndim(floor) == 0 else floor


def log_interpolate(x0: float, x1: float, e0: float, e1: float, level: float) -> float:
    """Where log e crosses log level between (x0, e0) and (x1, e1), linear in log x (in x if
    x0 <= 0); x1 where the bracket cannot be interpolated (non-finite or non-positive e)."""
    if not (np.isfinite(e0) and e0 > 0 and e1 > 0 and e0 != e1):
        return x1
    f = (math.log(e0) - math.log(level)) / (math.log(e0) - math.log(e1))
    f = min(max(f, 0.0), 1.0)
    if x0 > 0:
        return math.exp(math.log(x0) + f * (math.log(x1) - math.log(x0)))
    return x0 + f * (x1 - x0)


def first_crossing(eps, alpha, level: float, interpolate: bool = True) -> np.ndarray:
    """Per trajectory (eps (..., A) on the grid alpha (A,)), the first alpha where eps falls
    below level, shape (...); NaN if never (a NaN record, e.g. after divergence, never counts).

    interpolate: log eps interpolated linearly in log alpha between the last record above
    and the first below the level (`log_interpolate`); False: the first record below.
    """
    eps = np.asarray(eps, dtype=float)
    alpha = np.asarray(alpha, dtype=float)
    flat = eps.reshape(-1, eps.shape[-1])
    below = flat < level
    hit = below.any(axis=-1)
    first = np.argmax(below, axis=-1)
    out = np.where(hit, alpha[first], np.nan)
    if interpolate:
        for i in np.flatnonzero(hit & (first > 0)):
            j, e = first[i], flat[i]
            out[i] = log_interpolate(alpha[j - 1], alpha[j], e[j - 1], e[j], level)
    return out.reshape(eps.shape[:-1])


def minimal_rate(ds: xr.Dataset, axis: str, level: float, prefix: str = "") -> xr.Dataset:
    """Smallest value of the grid axis `axis` of a theory sweep (`theory.sweeps.run_sweep`) at
    which eps_meta falls below `level` by alpha_final.

    Along `axis` (for every value of the other grid axes): `upper` is the smallest grid value
    that passes (eps_meta < level on the fine records, i.e. eps_min < level), `lower` the grid
    value just below it (NaN if `upper` is the first grid value), and `rate` the threshold
    by `log_interpolate` of log eps_min between them (upper if no lower). All three are NaN
    where no grid value passes. `prefix` selects the search ('jsearch_').
    """
    eps_min = ds[prefix + "eps_min"]
    other = [d for d in eps_min.dims if d != axis]
    em = eps_min.transpose(*other, axis)
    values = np.asarray(ds[axis].values, dtype=float)
    order = np.argsort(values)
    values, em_vals = values[order], em.values[..., order]
    shape = em_vals.shape[:-1]
    rate, lower, upper = (np.full(shape, np.nan) for _ in range(3))
    for pos in np.ndindex(shape):
        e = em_vals[pos]
        passed = np.flatnonzero(e < level)
        if not len(passed):
            continue
        j = int(passed[0])
        upper[pos] = rate[pos] = values[j]
        if j > 0:
            lower[pos] = values[j - 1]
            rate[pos] = log_interpolate(values[j - 1], values[j], e[j - 1], e[j], level)
    out = xr.Dataset(
        {
            "rate": (tuple(other), rate),
            "lower": (tuple(other), lower),
            "upper": (tuple(other), upper),
        },
        coords={d: ds[d].values for d in other},
    )
    out.attrs.update(axis=axis, level=float(level))
    return out


def first_stage_end(theory_eps, alpha, level: float = FIRST_STAGE_LEVEL) -> float:
    """Alpha where the theory's eps_meta first falls below level: the end of the first stage.

    theory_eps is one trajectory (A,) or several (..., A) (e.g. one per seed); for several,
    the earliest crossing is returned, so that the window it defines is in the first stage
    for every trajectory. NaN if no trajectory reaches the level.
    """
    crossings = first_crossing(theory_eps, alpha, level, interpolate=False)
    if np.all(np.isnan(crossings)):
        return float("nan")
    return float(np.nanmin(crossings))


# --- the escape from the plateau ---------------------------------------------------------


def escape_alphas(ds: xr.Dataset, level: float = ESCAPE_LEVEL, interpolate: bool = False):
    """Per seed, the first alpha where eps_meta (simulation or theory) falls below level
    (`first_crossing`; NaN: never)."""
    eps = ds["eps_meta"].transpose("seed", "alpha").values
    return first_crossing(eps, ds["alpha"].values, level, interpolate)


class EscapeSpread(NamedTuple):
    """Seed-to-seed statistics of the escape alpha (first alpha with eps_meta < level).

    Computed over the seeds that escape within the run (n_escaped of n_seeds); std uses
    ddof = 1 (NaN for fewer than two escaped seeds).
    """

    mean: float
    std: float
    min: float
    max: float
    n_escaped: int
    n_seeds: int


def escape_spread(sims: Iterable[xr.Dataset], level: float = ESCAPE_LEVEL) -> list[EscapeSpread]:
    """For each simulation, the seed-to-seed spread of its escape alpha to `level`."""
    spreads = []
    for sim in sims:
        values = escape_alphas(sim, level)
        stats, done = mean_error(values), values[np.isfinite(values)]
        low, high = (float(done.min()), float(done.max())) if stats.n else (math.nan, math.nan)
        spreads.append(EscapeSpread(stats.mean, stats.std, low, high, stats.n, stats.total))
    return spreads


def escape_pairs(sim: xr.Dataset, theory: xr.Dataset, level: float = ESCAPE_LEVEL) -> xr.Dataset:
    """Per seed, the escape alpha (first alpha with eps_meta < level, log-interpolated
    between records; `first_crossing`) of the simulation and of its ODE integrated from the
    same seed's initial overlaps, on the seeds both have. NaN: no escape by alpha_final (or
    diverged). Returns a Dataset with `sim` and `ode` (seed)."""
    seeds = np.intersect1d(sim["seed"].values, theory["seed"].values)
    if not len(seeds):
        raise ValueError("escape_pairs: the simulation and the theory share no seed")
    out = {
        name: ("seed", escape_alphas(ds.sel(seed=seeds), level, interpolate=True))
        for name, ds in (("sim", sim), ("ode", theory))
    }
    pairs = xr.Dataset(out, coords={"seed": seeds})
    pairs.attrs.update(level=float(level), alpha_final=float(sim["alpha"].values[-1]))
    return pairs


def escape_deviation(sim: xr.Dataset, theory: xr.Dataset | None, level: float) -> tuple:
    """RMS over seeds of the simulation's escape alpha minus its ODE's (`escape_pairs`), over
    the seeds where both escape within the run; and how many they are. (NaN, 0) without a
    theory or where no seed escapes in both."""
    if theory is None:
        return math.nan, 0
    pairs = escape_pairs(sim, theory, level)
    a, b = pairs["sim"].values, pairs["ode"].values
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        return math.nan, 0
    return float(np.sqrt(np.mean((a[both] - b[both]) ** 2))), int(both.sum())
