"""Analysis behind the paper figures: small named functions of arrays and Datasets, no plotting.

Conventions (shared with `tsmeta.figures`): a simulation or theory Dataset has R (seed, alpha,
k, n), Q (seed, alpha, k, l), eps_meta (seed, alpha) and diverged (seed); records of a
diverged seed are NaN from its divergence on, so every reduction here ignores NaN.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import xarray as xr
from scipy.optimize import linear_sum_assignment

# --- relabelling student units ---------------------------------------------------------------


def alignment(R_final: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Permutation and signs of the K student units that put student k on teacher k.

    R_final (K, M). Returns (order, signs): new unit i is old unit order[i] times signs[i].
    With K > M the unmatched units follow the matched ones.
    """
    K, M = R_final.shape
    R = np.nan_to_num(R_final)
    rows, cols = linear_sum_assignment(-np.abs(R))
    matched = [int(r) for _, r in sorted(zip(cols, rows))]
    order = np.array(matched + [k for k in range(K) if k not in matched])
    best = R[order, np.argmax(np.abs(R[order]), axis=1)]
    signs = np.where(best < 0, -1.0, 1.0)
    return order, signs


def align(ds: xr.Dataset, orders: dict, signs: dict) -> xr.Dataset:
    """Apply per-seed relabelling (from `alignment`) to R, Q and w0."""
    ds = ds.copy()
    R, Q, w0 = ds["R"].values.copy(), ds["Q"].values.copy(), ds["w0"].values.copy()
    for i, seed in enumerate(ds["seed"].values):
        o, s = orders[int(seed)], signs[int(seed)]
        R[i] = R[i][:, o, :] * s[None, :, None]
        Q[i] = Q[i][:, o][:, :, o] * s[None, :, None] * s[None, None, :]
        w0[i] = w0[i][:, o] * s[None, :]
    ds["R"].values, ds["Q"].values, ds["w0"].values = R, Q, w0
    return ds


def align_pair(sim: xr.Dataset, theory: xr.Dataset | None):
    orders, signs = {}, {}
    for i, seed in enumerate(sim["seed"].values):
        R = sim["R"].values[i]
        finite = np.flatnonzero(np.isfinite(R).all(axis=(1, 2)))
        last = finite[-1] if len(finite) else 0
        orders[int(seed)], signs[int(seed)] = alignment(R[last])
    return align(sim, orders, signs), (align(theory, orders, signs) if theory is not None else None)


# --- arrangement of the student units on the teacher units --------------------------------


class Arrangement(NamedTuple):
    """Which student units sit on which teacher units.

    counts: number of student units on each teacher unit n (length M, in teacher order);
    off: number of student units switched off (on no teacher unit);
    assignment: per student unit k, the teacher unit it sits on, or -1 when off;
    label: readable summary, e.g. "1-1-1", "2-1-1", "2-2-2", "1-1-0, one unit off".
    """

    counts: tuple[int, ...]
    off: int
    assignment: tuple[int, ...]
    label: str


_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}


def arrangement(
    R_final: np.ndarray, threshold: float = 0.5, Q_final: np.ndarray | None = None
) -> Arrangement:
    """Classify the final state: which student units share or own which teacher units.

    R_final (K, M) is the student-teacher overlap at the end of a trajectory; Q_final (K, K),
    if given, is the student-student overlap. The overlap of unit k with teacher n is
    |R_kn| / sqrt(Q_kk) when Q_final is given (the cosine of the angle between J_k and B_n
    for T = I, blind to the norm of J_k), |R_kn| otherwise. Unit k sits on the teacher unit
    of its largest overlap if that overlap is >= threshold; otherwise (or if its norm
    sqrt(Q_kk) is below threshold, or it is not finite) the unit is switched off.

    The label lists the counts per teacher unit in decreasing order ("2-1-1": one teacher
    unit carried by two student units, the others by one each), followed by the number of
    units switched off if any ("1-1-1, one unit off").
    """
    R = np.asarray(R_final, dtype=float)
    if R.ndim != 2:
        raise ValueError(f"R_final must be a (K, M) matrix, got shape {R.shape}")
    K, M = R.shape
    overlap = np.abs(R)
    norm_ok = np.ones(K, dtype=bool)
    if Q_final is not None:
        Q = np.asarray(Q_final, dtype=float)
        if Q.shape != (K, K):
            raise ValueError(f"Q_final must be ({K}, {K}) to match R_final, got {Q.shape}")
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = np.sqrt(np.diag(Q))
            overlap = overlap / norm[:, None]
        norm_ok = np.isfinite(norm) & (norm >= threshold)
    assignment = []
    for k in range(K):
        row = overlap[k]
        if not norm_ok[k] or not np.all(np.isfinite(row)) or row.max() < threshold:
            assignment.append(-1)
        else:
            assignment.append(int(np.argmax(row)))
    counts = tuple(int(sum(1 for a in assignment if a == n)) for n in range(M))
    off = int(sum(1 for a in assignment if a < 0))
    label = "-".join(str(c) for c in sorted(counts, reverse=True))
    if off:
        label += f", {_WORDS.get(off, str(off))} unit{'s' if off > 1 else ''} off"
    return Arrangement(counts, off, tuple(assignment), label)


def run_arrangements(sim: xr.Dataset, threshold: float = 0.5) -> Counter:
    """Arrangement label of each seed at its last finite record (diverged seeds: "diverged")."""
    labels = Counter()
    for i in range(sim.sizes["seed"]):
        R, Q = sim["R"].values[i], sim["Q"].values[i]
        finite = np.flatnonzero(np.isfinite(R).all(axis=(1, 2)) & np.isfinite(Q).all(axis=(1, 2)))
        diverged = "diverged" in sim and bool(sim["diverged"].values[i])
        if diverged or not len(finite):
            labels["diverged"] += 1
            continue
        last = finite[-1]
        labels[arrangement(R[last], threshold, Q[last]).label] += 1
    return labels


# --- error floor and stages ----------------------------------------------------------------


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


def first_stage_end(theory_eps, alpha, level: float = 0.01) -> float:
    """Alpha where the theory's eps_meta first falls below level: the end of the first stage.

    theory_eps is one trajectory (A,) or several (..., A) (e.g. one per seed); for several,
    the earliest crossing is returned, so that the window it defines is in the first stage
    for every trajectory. NaN if no trajectory reaches the level.
    """
    crossings = first_crossing(theory_eps, alpha, level, interpolate=False)
    if np.all(np.isnan(crossings)):
        return float("nan")
    return float(np.nanmin(crossings))


# --- simulation against theory --------------------------------------------------------------


def _common(sim: xr.Dataset, theory: xr.Dataset) -> tuple[xr.Dataset, xr.Dataset]:
    seeds = np.intersect1d(sim["seed"].values, theory["seed"].values)
    alphas = np.intersect1d(sim["alpha"].values, theory["alpha"].values)
    if not len(seeds) or not len(alphas):
        raise ValueError("simulation and theory share no seed or no alpha record")
    sel = {"seed": seeds, "alpha": alphas}
    return sim.sel(sel), theory.sel(sel)


def _rms(diff: np.ndarray) -> float:
    diff = np.asarray(diff, dtype=float)
    finite = np.isfinite(diff)
    if not finite.any():
        return float("nan")
    return float(np.sqrt(np.mean(diff[finite] ** 2)))


def stage_deviation(
    sim: xr.Dataset, theory: xr.Dataset, level: float = 0.01, alpha_end: float | None = None
) -> dict:
    """RMS of simulation minus theory on the first stage, for R, Q and log10 eps_meta.

    The first stage is 0 < alpha <= first_stage_end(theory eps_meta, level) (the whole run
    if the theory never reaches the level; alpha = 0 is left out, where both start from the
    same overlaps); `alpha_end`, if given, replaces that end (e.g. to compare two theory
    variants on the same window). Student units are relabelled per seed
    (align_pair, the same permutation and signs for the simulation and its
    theory; the RMS does not depend on it). The RMS runs over seeds,
    alphas and matrix entries; non-finite entries (diverged seeds) are left out.
    Returns {"R", "Q", "log_eps", "alpha_end", "n_records"}.
    """
    sim, theory = _common(sim, theory)
    sim, theory = align_pair(sim, theory)
    alpha = sim["alpha"].values
    if alpha_end is None:
        alpha_end = first_stage_end(theory["eps_meta"].values, alpha, level)
    end = float(alpha_end)
    window = (alpha > 0) & (alpha <= (end if np.isfinite(end) else alpha[-1]))
    out = {"alpha_end": end, "n_records": int(window.sum())}
    for name in ("R", "Q"):
        out[name] = _rms(sim[name].values[:, window] - theory[name].values[:, window])
    with np.errstate(divide="ignore", invalid="ignore"):
        log_diff = np.log10(sim["eps_meta"].values[:, window]) - np.log10(
            theory["eps_meta"].values[:, window]
        )
    out["log_eps"] = _rms(log_diff)
    return out


COMPARED = ("eps_meta", "R", "Q", "w0")
FULL_THEORY = "full"  # the label of the run's own theory in a comparison


def deviations(sim: xr.Dataset, theory: xr.Dataset) -> xr.Dataset:
    """Simulation minus theory per seed and record, units relabelled per seed (`align_pair`)
    on the common seeds and alphas, for eps_meta, R, Q, w0 and log10 eps_meta."""
    sim, theory = align_pair(*_common(sim, theory))
    out = xr.Dataset()
    for name in COMPARED:
        out[f"dev_{name}"] = sim[name] - theory[name]
        out[f"dev_{name}"].attrs["long_name"] = f"{name}: simulation minus theory"
    with np.errstate(divide="ignore", invalid="ignore"):
        out["dev_log_eps_meta"] = np.log10(sim["eps_meta"]) - np.log10(theory["eps_meta"])
    out["dev_log_eps_meta"].attrs["long_name"] = "log10 eps_meta: simulation minus theory"
    return out


def comparison(
    sims, theories: dict[str, list], level: float = 0.01, alpha_end: float | None = None
) -> xr.Dataset:
    """The comparison stage: every run's simulation against its theory and theory variants.

    sims: simulation Datasets; theories: {label: theory Datasets}, the run's own theory under
    FULL_THEORY, variants (e.g. without the finite-V term) under their labels; each list is
    matched to the sims by run_name. Returns, with dims run and theory (the labels):
    dev_<name> (run, theory, seed, alpha, ...) and their means over seeds, relabelled
    (`deviations`), and the first-stage RMS rms_R, rms_Q, rms_log_eps with the window
    alpha_end and n_records (run, theory) (`stage_deviation`). Every variant of a run is
    measured on the window of its full theory (or up to `alpha_end` if given).
    """
    runs = []
    for sim in sims:
        name = sim.attrs["run_name"]
        own = {
            label: next((t for t in ts if t.attrs.get("run_name") == name), None)
            for label, ts in theories.items()
        }
        full = own.get(FULL_THEORY)
        if full is None:
            raise ValueError(f"comparison: no {FULL_THEORY!r} theory for run {name}")
        end = alpha_end
        if end is None:
            end = first_stage_end(full["eps_meta"].values, full["alpha"].values, level)
        parts = []
        for label, theory in own.items():
            if theory is None:
                continue
            dev = deviations(sim, theory)
            stage = stage_deviation(sim, theory, level, alpha_end=end)
            for key in ("R", "Q", "log_eps"):
                dev[f"rms_{key}"] = stage[key]
            dev["alpha_end"], dev["n_records"] = stage["alpha_end"], stage["n_records"]
            parts.append(dev.expand_dims(theory=[label]))
        runs.append(xr.concat(parts, dim="theory").expand_dims(run=[name]))
    ds = xr.concat(runs, dim="run", join="outer", combine_attrs="drop")
    for name in COMPARED + ("log_eps_meta",):
        ds[f"dev_{name}_mean"] = ds[f"dev_{name}"].mean("seed")
    ds["rms_R"].attrs["long_name"] = "RMS of R: simulation minus theory on the first stage"
    ds["rms_Q"].attrs["long_name"] = "RMS of Q: simulation minus theory on the first stage"
    ds["rms_log_eps"].attrs["long_name"] = "RMS of log10 eps_meta on the first stage"
    ds["alpha_end"].attrs["long_name"] = "end of the first-stage window"
    ds.attrs.update(
        first_stage_level=float(level),
        first_stage_alpha="none" if alpha_end is None else float(alpha_end),
        description=(
            "simulation minus theory on the common alpha grid, per run, theory variant and "
            "seed, student units relabelled per seed; first-stage RMS per run and variant"
        ),
    )
    return ds


def comparison_row(compare: xr.Dataset, run: str, theory: str = FULL_THEORY) -> dict:
    """First-stage RMS of one run against one theory from a comparison, as stage_deviation
    returns it (NaN where the run has no such theory)."""
    if run not in compare["run"].values or theory not in compare["theory"].values:
        return dict.fromkeys(("R", "Q", "log_eps", "alpha_end"), np.nan)
    row = compare.sel(run=run, theory=theory)
    out = {key: float(row[f"rms_{key}"]) for key in ("R", "Q", "log_eps")}
    out["alpha_end"] = float(row["alpha_end"])
    return out


# --- finite-size scaling ---------------------------------------------------------------------


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
    if len(np.unique(x)) < 2:
        raise ValueError("fit_power_law needs at least two distinct N with a positive deviation")
    xm, ym = x.mean(), y.mean()
    sxx = float(np.sum((x - xm) ** 2))
    slope = float(np.sum((x - xm) * (y - ym)) / sxx)
    intercept = ym - slope * xm
    n = len(x)
    if n > 2:
        resid = y - (intercept + slope * x)
        stderr = math.sqrt(float(np.sum(resid**2)) / (n - 2) / sxx)
    else:
        stderr = float("nan")
    return PowerLaw(slope, stderr, float(math.exp(intercept)), n)


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


def escape_alphas(sim: xr.Dataset, level: float = 1e-3) -> np.ndarray:
    """Per seed, the first alpha where the simulation's eps_meta falls below level (NaN: never)."""
    return first_crossing(sim["eps_meta"].values, sim["alpha"].values, level, interpolate=False)


def _spread(values: np.ndarray) -> EscapeSpread:
    done = values[np.isfinite(values)]
    if not len(done):
        nan = float("nan")
        return EscapeSpread(nan, nan, nan, nan, 0, len(values))
    std = float(np.std(done, ddof=1)) if len(done) > 1 else float("nan")
    return EscapeSpread(
        float(done.mean()), std, float(done.min()), float(done.max()), len(done), len(values)
    )


def escape_spread(sims: Iterable[xr.Dataset], level: float = 1e-3) -> list[EscapeSpread]:
    """For each simulation, the seed-to-seed spread of its escape alpha to `level`."""
    return [_spread(escape_alphas(sim, level)) for sim in sims]


# --- early growth of R (escape from the unspecialised state) ---------------------------------


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
    rates = np.full(R.shape[0], np.nan)
    for s, series in enumerate(log_rms):
        inside = alpha <= alpha_max
        above = np.flatnonzero(series > series[0] + math.log(max_growth))
        if len(above):
            inside &= np.arange(len(alpha)) < above[0]
        inside &= np.isfinite(series)
        if inside.sum() >= min_records and np.ptp(alpha[inside]) > 0:
            rates[s] = np.polyfit(alpha[inside], series[inside], 1)[0]
    out = xr.DataArray(rates, dims=("seed",), coords={"seed": ds["seed"].values})
    out.attrs.update(
        long_name="early growth rate of rms R", units="1/alpha", alpha_max=alpha_max,
        max_growth=max_growth,
    )  # fmt: skip
    return out


# --- the paper's claims as laws (docs/theory.md, section 11) --------------------------------


def rate_law(eta_J, eta_w, K, M, u_std=1.0, gamma=1.0):
    """FO-ANIL's linear escape rate from the unspecialised state (one inner step),
    eta_J eta_w u_std^2 gamma^2 / (pi^2 K M) (docs/theory.md, sections 10 and 11): the
    learning rates enter only through the product eta_J eta_w / K.
    `theory.stability.escape_rate` is the same rate from the ODE's Jacobian. Numbers, numpy
    arrays and xarray DataArrays (broadcast by dimension name) alike."""
    return eta_J * eta_w * (u_std**2 * gamma**2 / math.pi**2) / (K * M)


def speed_efolds(eta_J, eta_w, K, M, alpha_final, u_std=1.0, gamma=1.0):
    """e-folds of the linear escape within alpha_final, alpha_final * rate_law(...).

    At the speed threshold (the smallest rates that bring eps_meta below a level by
    alpha_final) this is the number of e-folds the overlaps need, ln(1 / R0) + c with
    R0 ~ N^(-1/2) at a random initial state: the law is ln sqrt(N) + c for every K
    (docs/theory.md, section 11)."""
    return alpha_final * rate_law(eta_J, eta_w, K, M, u_std, gamma)


def exact_head_rates(arr: Arrangement) -> dict[int, float]:
    """{m: 3K / m} for every number m > 0 of student units sharing one teacher unit in the
    arrangement: the head rate at which one inner step is exact for the teacher units carried
    by m units (Q = R = 1 on them; docs/theory.md, section 11)."""
    K = len(arr.assignment)
    return {m: 3.0 * K / m for m in sorted({c for c in arr.counts if c > 0})}


def threshold_arrangements(
    ds: xr.Dataset, axis: str, level: float, prefix: str = "", threshold: float = 0.5
) -> xr.DataArray:
    """The arrangement label (`arrangement` of the final R, Q) of the sweep member at the
    smallest grid value of `axis` that brings eps_meta below `level` (the upper bracket of
    `minimal_rate`), for every value of the other grid axes; "" where none does."""
    upper = minimal_rate(ds, axis, level, prefix)["upper"]
    R, Q = ds[prefix + "R"], ds[prefix + "Q"]
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
            labels[pos] = arrangement(r, threshold, q).label
    return xr.DataArray(labels, dims=upper.dims, coords=upper.coords)


def arrangement_counts(label: str) -> tuple[int, ...]:
    """The per-teacher counts of an arrangement label ("2-1-1, one unit off" -> (2, 1, 1))."""
    head = label.split(",")[0].strip()
    return tuple(int(c) for c in head.split("-")) if head else ()


# --- the second stage: escape statistics -----------------------------------------------------


def escape_pairs(sim: xr.Dataset, theory: xr.Dataset, level: float = 1e-3) -> xr.Dataset:
    """Per seed, the escape alpha (first alpha with eps_meta < level, log-interpolated
    between records; `first_crossing`) of the simulation and of its ODE integrated from the
    same seed's initial overlaps, on the seeds both have. NaN: no escape by alpha_final (or
    diverged). Returns a Dataset with `sim` and `ode` (seed)."""
    seeds = np.intersect1d(sim["seed"].values, theory["seed"].values)
    if not len(seeds):
        raise ValueError("escape_pairs: the simulation and the theory share no seed")
    out = {}
    for name, ds in (("sim", sim), ("ode", theory)):
        ds = ds.sel(seed=seeds)
        eps = ds["eps_meta"].transpose("seed", "alpha").values
        out[name] = ("seed", first_crossing(eps, ds["alpha"].values, level))
    pairs = xr.Dataset(out, coords={"seed": seeds})
    pairs.attrs.update(level=float(level), alpha_final=float(sim["alpha"].values[-1]))
    return pairs


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


def bootstrap_correlation(x, y, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Pearson r of the finite pairs and the standard deviation of r over `n_boot` bootstrap
    resamples of the pairs (numpy default_rng(seed)): an error bar that does not assume
    normal pairs. (NaN, NaN) for fewer than four pairs."""
    x, y = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 4:
        return float("nan"), float("nan")
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    xs, ys = x[idx], y[idx]
    xs = xs - xs.mean(1, keepdims=True)
    ys = ys - ys.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        rs = (xs * ys).sum(1) / np.sqrt((xs**2).sum(1) * (ys**2).sum(1))
    return float(np.corrcoef(x, y)[0, 1]), float(np.nanstd(rs, ddof=1))


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
    if len(np.unique(x)) < 2:
        raise ValueError("fit_log_slope needs at least two distinct N with a finite value")
    w = np.ones_like(x) if err is None else 1.0 / err[ok] ** 2
    xm, ym = np.sum(w * x) / w.sum(), np.sum(w * y) / w.sum()
    sxx = float(np.sum(w * (x - xm) ** 2))
    slope = float(np.sum(w * (x - xm) * (y - ym)) / sxx)
    intercept = float(ym - slope * xm)
    resid = y - (intercept + slope * x)
    n = len(x)
    if err is not None:
        stderr, chi2 = math.sqrt(1.0 / sxx), float(np.sum(w * resid**2))
    else:
        stderr = math.sqrt(float(np.sum(resid**2)) / (n - 2) / sxx) if n > 2 else float("nan")
        chi2 = float("nan")
    return LogSlope(slope, stderr, intercept, n, chi2)
