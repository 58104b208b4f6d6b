"""The test kinds of a claim (`claims.<name>.test.kind`): each takes the Results, the
claim's experiments and its ClaimTest and returns an Outcome.

- fraction: the fraction of seeds with a 0/1 quantity (e.g. eps_meta below a level by an
  alpha), Wilson interval, against a least or a most;
- difference: a quantity per group of runs (e.g. K = 3, 4, 6), the last group minus the
  first with its standard error, against a sign;
- power_law: the exponent of a minimal rate of a theory sweep against an axis (K), fitted
  with its standard error, against a value;
- region: the area of the (eta_J, eta_w) region of a theory sweep that succeeds (or
  diverges), per value of an axis: that it grows, shrinks or exists.

A new kind: a function (Results, experiments, ClaimTest) -> Outcome here and in TEST_KINDS,
its parameters in `spec.KIND_PARAMETERS` (and in `spec.READS_RUNS` if it reads runs rather
than a theory sweep; new parameters as ClaimTest fields with their
defaults), the kind and any new parameter in the schema's `claim_test` (`tsmeta schema-doc
--write config/README.md`), and a test on synthetic results with a known answer
(tests/physics/test_claims.py). A new per-seed quantity: a function in `quantities`.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import xarray as xr

from tsmeta.analysis import fit_power_law, mean_error, minimal_rate, proportion
from tsmeta.claims.inputs import Results
from tsmeta.claims.outcome import (
    CONTRADICTED,
    HOLDS,
    NOT_SEEN,
    Group,
    Outcome,
    interval_verdict,
    signed_verdict,
)
from tsmeta.claims.quantities import QUANTITIES, censored
from tsmeta.claims.spec import ClaimTest

PLANE = ("eta_J", "eta_w")  # the region of a sweep lies in the plane of the two rates


def seed_values(runs: list[xr.Dataset], test: ClaimTest) -> np.ndarray:
    quantity = QUANTITIES[test.quantity].values
    values = [quantity(ds, test) for ds in runs]
    return np.concatenate(values) if values else np.array([])


def run_names(runs) -> list[str]:
    return [ds.attrs["run_name"] for ds in runs]


def describe(test: ClaimTest) -> str:
    by = "the run's end" if test.alpha is None else f"{test.alpha:g}"
    return QUANTITIES[test.quantity].description.format(level=f"{test.level:g}", by=by)


def fraction(results: Results, experiments, test: ClaimTest) -> Outcome:
    runs = results.runs(experiments, test.source, test.runs)
    values = seed_values(runs, test)
    done = values[np.isfinite(values)]
    p = proportion(int(done.sum()), len(done), test.confidence)
    cut = test.quantity == "reached" and any(censored(ds, test) for ds in runs)
    verdict = interval_verdict(p.lower, p.upper, test.min_fraction, test.max_fraction, cut)
    target = (
        f">= {test.min_fraction}" if test.min_fraction is not None else f"<= {test.max_fraction}"
    )
    note = f"{p.k} of {p.n} seeds; claim {target}"
    note += "; runs end before the claim's alpha" if cut else ""
    note += "" if runs else "; no run matches"
    return Outcome(
        describe(test), p.fraction, p.error, p.lower, p.upper, p.n, run_names(runs), verdict, note
    )


def group_label(chosen: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in chosen.items()) or "all runs"


def group_of(label: str, values: np.ndarray, binary: bool, confidence: float) -> Group:
    if binary:
        done = values[np.isfinite(values)]
        p = proportion(int(done.sum()), len(done), confidence)
        return Group(label, p.fraction, p.error, p.lower, p.upper, p.n)
    m = mean_error(values)
    half = NormalDist().inv_cdf(0.5 + confidence / 2) * m.error
    return Group(label, m.mean, m.error, m.mean - half, m.mean + half, m.n)


def fraction_difference_error(a: Group, b: Group) -> float:
    """Standard error of a difference of two fractions with one success and one failure
    added to each group (Agresti and Caffo 2000): unlike the plain one, it is not 0 when
    both fractions are 0 or 1, and its interval keeps its coverage for small groups."""
    parts = [(g.value * g.n + 1) / (g.n + 2) for g in (a, b)]
    return math.sqrt(sum(p * (1 - p) / (g.n + 2) for p, g in zip(parts, (a, b))))


def welch_z(a: Group, b: Group, z: float) -> float:
    """The multiple of the standard error of a difference of two means that has the same
    two-sided probability under Student's t with the Welch-Satterthwaite degrees of freedom
    as `z` has under the normal: a few seeds per group need more than z standard errors
    (2 becomes 4.5 at 2 + 2 seeds of equal spread, 2.05 at 25 + 25)."""
    from scipy.stats import t

    parts = [g.error**2 for g in (a, b)]
    dof = [g.n - 1 for g in (a, b)]
    if min(dof) < 1 or sum(parts) == 0:
        return z
    df = sum(parts) ** 2 / sum(p**2 / d for p, d in zip(parts, dof))
    tail = 2 * NormalDist().cdf(-z)
    return float(t.ppf(1 - tail / 2, df))


def difference(results: Results, experiments, test: ClaimTest) -> Outcome:
    binary = QUANTITIES[test.quantity].binary
    groups, sources = [], []
    for chosen in test.choices():
        runs = results.runs(experiments, test.source, chosen)
        groups.append(
            group_of(group_label(chosen), seed_values(runs, test), binary, test.confidence)
        )
        sources += run_names(runs)
    first, last = groups[0], groups[-1]
    value = last.value - first.value
    if binary:
        error, z = fraction_difference_error(first, last), test.z
    else:
        error, z = math.sqrt(first.error**2 + last.error**2), welch_z(first, last, test.z)
    sign = 1 if test.expect == "greater" else -1
    verdict = signed_verdict(value, error, z, sign)
    if min(first.n, last.n) == 0:
        verdict = NOT_SEEN
    half = z * error
    note = f"({last.label}) - ({first.label}), claim {test.expect} than 0 at {z:.3g} s.e."
    return Outcome(
        f"difference of the {describe(test)}", value, error, value - half, value + half,
        first.n + last.n, list(dict.fromkeys(sources)), verdict, note, groups,
    )  # fmt: skip


def pick(ds: xr.Dataset, select: dict) -> xr.Dataset:
    """The sweep at the `select` coordinates (the nearest grid value for numbers)."""
    for key, value in select.items():
        if key not in ds.coords:
            raise ValueError(f"select: the sweep has no axis {key!r}; axes: {list(ds.dims)}")
        numeric = np.issubdtype(ds[key].dtype, np.number)
        ds = ds.sel({key: value}, method="nearest") if numeric else ds.sel({key: value})
    return ds


def power_law(results: Results, experiments, test: ClaimTest) -> Outcome:
    name, ds = results.sweep(experiments)
    ds = pick(ds, test.select)
    prefix = "jsearch_" if test.rate == "eta_J" and "jsearch_eps_min" in ds else ""
    found = minimal_rate(ds, test.rate, test.level, prefix)
    rate, x = xr.broadcast(found["rate"], found[test.x])
    ok = np.isfinite(rate.values)
    statistic = (
        f"exponent of the minimal {test.rate} for eps_meta < {test.level:g} against {test.x}"
    )
    if len(np.unique(x.values[ok])) < 2:
        note = "fewer than two values of the axis have a threshold in the sweep"
        return Outcome(statistic, math.nan, math.nan, math.nan, math.nan, int(ok.sum()),
                       [name], NOT_SEEN, note)  # fmt: skip
    fit = fit_power_law(x.values[ok], rate.values[ok])
    error = fit.stderr if math.isfinite(fit.stderr) else 0.0
    # the tolerance allows for the claimed law's known slow deviations; the alternative must
    # be more than z standard errors away for the fit to tell the two apart
    allowed = test.z * error + test.tolerance
    verdict = HOLDS if abs(fit.exponent - test.value) <= allowed else CONTRADICTED
    note = f"claim {test.value:g} within {test.z:g} s.e. + {test.tolerance:g}"
    if test.alternative is not None:
        gap = abs(fit.exponent - test.alternative)
        note += f"; {test.alternative:g} is {gap / error:.1f} s.e. away" if error > 0 else ""
        if verdict == HOLDS and gap <= test.z * error:
            verdict, note = NOT_SEEN, note + ", not excluded"
    at_edge = int((ok & ~np.isfinite(xr.broadcast(found["lower"], x)[0].values)).sum())
    note += f"; {at_edge} threshold(s) at the first grid value (upper bounds)" if at_edge else ""
    half = test.z * error
    return Outcome(statistic, fit.exponent, error, fit.exponent - half, fit.exponent + half,
                   fit.n_points, [name], verdict, note)  # fmt: skip


def region_mask(ds: xr.Dataset, test: ClaimTest) -> xr.DataArray:
    """Members that reach test.level by test.alpha (measure success; by alpha_final where
    null) or that diverge (measure diverged)."""
    if test.measure == "diverged":
        return ds["diverged"] == 1
    if not np.isclose(ds["level"].values, test.level).any():
        raise ValueError(f"level: the sweep records the levels {list(ds['level'].values)}")
    reach = ds["alpha_to_level"].sel(level=test.level, method="nearest")
    return reach <= (test.alpha if test.alpha is not None else np.inf)


def cell_area(ds: xr.Dataset) -> float:
    """Area of one grid cell of the rate plane in decades squared (the grids are log-spaced)."""
    steps = [np.mean(np.diff(np.log10(np.sort(ds[axis].values)))) for axis in PLANE]
    return float(np.prod([s if np.isfinite(s) else 1.0 for s in steps]))


def plane_area(mask: np.ndarray, cell: float) -> tuple[float, float]:
    """Area of a boolean (eta_J, eta_w) mask and its uncertainty: half a cell for every
    cell of the region on its edge (a 4-neighbour outside it), where the true boundary
    lies somewhere inside the cell."""
    padded = np.pad(mask, 1, constant_values=True)
    inner = np.ones_like(mask)
    for axis in (0, 1):
        for shift in (1, -1):
            inner &= np.roll(padded, shift, axis=axis)[1:-1, 1:-1]
    edge = mask & ~inner
    return float(mask.sum()) * cell, 0.5 * float(edge.sum()) * cell


def where_text(ds: xr.Dataset, mask: xr.DataArray) -> str:
    """The member of the region with the smallest eta_J eta_w."""
    product = (ds["eta_J"] * ds["eta_w"]).broadcast_like(mask).where(mask)
    at = product.argmin(...)
    eta_J, eta_w = float(ds["eta_J"][at["eta_J"]]), float(ds["eta_w"][at["eta_w"]])
    return f"from eta_J eta_w = {eta_J * eta_w:.3g} (eta_J = {eta_J:.3g}, eta_w = {eta_w:.3g})"


def sweep_extent(ds: xr.Dataset) -> str:
    return ", ".join(
        f"{axis} {float(ds[axis].min()):.3g}-{float(ds[axis].max()):.3g}" for axis in PLANE
    )


def region(results: Results, experiments, test: ClaimTest) -> Outcome:
    name, ds = results.sweep(experiments)
    ds = pick(ds, test.select)
    mask = region_mask(ds, test)
    along = test.x if test.x in mask.dims else None
    extra = set(mask.dims) - set(PLANE) - {along}
    if extra:
        raise ValueError(f"select: choose a value of the sweep axes {sorted(extra)}")
    cell = cell_area(ds)
    planes = [mask.sel({along: v}) for v in mask[along].values] if along else [mask]
    groups = []
    for i, plane in enumerate(planes):
        area, error = plane_area(plane.transpose(*PLANE).values, cell)
        label = f"{along}={mask[along].values[i]}" if along else "plane"
        groups.append(Group(label, area, error, area - error, area + error, int(plane.sum())))
    what = "diverge" if test.measure == "diverged" else f"reach eps_meta < {test.level:g}"
    statistic = f"area [decades^2] of the rates that {what}"
    # a region cut by the grid's border is larger than counted: say so
    border = mask.isel(eta_J=[0, -1]).any() | mask.isel(eta_w=[0, -1]).any()
    clipped = f"; it reaches the sweep's border ({sweep_extent(ds)})" if bool(border) else ""
    if test.expect == "exists" or len(groups) < 2:
        total = sum(g.value for g in groups)
        found = bool(mask.any())
        note = where_text(ds, mask) if found else f"no member of the sweep ({sweep_extent(ds)})"
        error = math.sqrt(sum(g.error**2 for g in groups))
        verdict = HOLDS if found else NOT_SEEN
        if test.expect != "exists":
            verdict, note = NOT_SEEN, f"one value of {test.x} in the sweep; " + note
        return Outcome(statistic, total, error, total - error, total + error,
                       int(mask.sum()), [name], verdict, note + clipped, groups)  # fmt: skip
    first, last = groups[0], groups[-1]
    value, error = last.value - first.value, math.hypot(first.error, last.error)
    sign = 1 if test.expect == "grows" else -1
    note = f"({last.label}) - ({first.label}), claim {test.expect} at {test.z:g} edge errors"
    note += clipped
    return Outcome(
        f"change of the {statistic}", value, error, value - test.z * error,
        value + test.z * error, int(mask.sum()), [name],
        signed_verdict(value, error, test.z, sign), note, groups,
    )  # fmt: skip


TEST_KINDS = {
    "fraction": fraction,
    "difference": difference,
    "power_law": power_law,
    "region": region,
}
