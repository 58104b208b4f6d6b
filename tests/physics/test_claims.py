"""The claims' test kinds (tsmeta.claims) on synthetic results with known answers, and the
flip of a verdict when a result is broken."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from tsmeta import analysis, claims
from tsmeta.claims import Results, evaluate
from tsmeta.io import open_dataset, params_to_attrs, write_netcdf
from tsmeta.params import RunParams
from tsmeta.stages import make_claims

ALPHA = np.linspace(0.0, 100.0, 101)


def sim(crossings, K=3, M=3, specialised=True, **params) -> xr.Dataset:
    """A simulation whose seed s has eps_meta = 0.01 exp(-(alpha - c_s) / 10), falling
    through 0.01 at alpha = c_s = crossings[s] (NaN: 0.05 throughout), and R one to one (all
    units on teacher 0 where not `specialised`)."""
    crossings = np.asarray(crossings, dtype=float)
    eps = np.full((len(crossings), len(ALPHA)), 0.05)
    for s, c in enumerate(crossings):
        if np.isfinite(c):
            eps[s] = 0.01 * np.exp(-(ALPHA - c) / 10.0)
    R = np.zeros((len(crossings), len(ALPHA), K, M))
    for k in range(K):
        R[:, :, k, k % M if specialised else 0] = 0.9
    attrs = params_to_attrs(
        RunParams.from_dict({"K": K, "M": M, "seeds": len(crossings), **params})
    )
    return xr.Dataset(
        {
            "eps_meta": (("seed", "alpha"), eps),
            "R": (("seed", "alpha", "k", "n"), R),
            "diverged": (("seed",), np.zeros(len(crossings), dtype=np.int8)),
        },
        coords={"seed": np.arange(len(crossings)), "alpha": ALPHA},
        attrs=attrs,
    )


def claim(test, experiments=("exp",), **extra) -> dict:
    return {"statement": "a claim", "experiments": list(experiments), "test": test} | extra


# --- proportions -------------------------------------------------------------------------


def test_wilson_interval_matches_the_textbook_values():
    # 8 of 8: [0.676, 1] at 95 % (Wilson 1927; Newcombe 1998, table I gives 0.6756)
    p = analysis.proportion(8, 8)
    assert p.fraction == 1 and p.lower == pytest.approx(0.67559, abs=1e-4) and p.upper == 1
    p = analysis.proportion(15, 148)  # Newcombe 1998, example (c): 0.0624-0.1605
    assert (p.lower, p.upper) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    assert math.isnan(analysis.proportion(0, 0).lower)


# --- fraction ----------------------------------------------------------------------------


def test_fraction_counts_the_seeds_that_reach_the_level_by_alpha():
    results = Results(sims={"exp": [sim([10, 20, 30, 40, 50, 60, 70, 80])]})
    test = {"kind": "fraction", "level": 0.01, "alpha": 45, "min_fraction": 0.2}
    out = evaluate(claim(test), results)
    assert out.value == 0.5 and out.n == 8  # 10, 20, 30, 40 of 8 (crossings at the records)
    p = analysis.proportion(4, 8)  # Wilson 95 %: [0.215, 0.785]
    assert (out.lower, out.upper) == (p.lower, p.upper)
    assert out.verdict == claims.HOLDS  # the whole interval above 0.2
    for least, verdict in ((0.3, claims.NOT_SEEN), (0.9, claims.CONTRADICTED)):
        assert evaluate(claim(test | {"min_fraction": least}), results).verdict == verdict


def test_breaking_the_runs_flips_a_fraction_from_holds_to_contradicted():
    test = {"kind": "fraction", "level": 0.01, "alpha": 90, "min_fraction": 0.5}
    good = Results(sims={"exp": [sim([20.0] * 10)]})
    broken = Results(sims={"exp": [sim([math.nan] * 10)]})  # no seed ever reaches the level
    assert evaluate(claim(test), good).verdict == claims.HOLDS
    assert evaluate(claim(test), broken).verdict == claims.CONTRADICTED
    # stated conditions turn "holds" into "holds under stated conditions"
    conditional = claim(test, conditions="theory only")
    assert evaluate(conditional, good).verdict == claims.HOLDS_UNDER_CONDITIONS


def test_a_run_that_ends_before_the_claims_alpha_never_contradicts_it():
    test = {"kind": "fraction", "level": 0.01, "alpha": 450, "min_fraction": 0.5}
    out = evaluate(claim(test), Results(sims={"exp": [sim([math.nan] * 10)]}))
    assert out.value == 0 and out.verdict == claims.NOT_SEEN
    trap = {"kind": "fraction", "level": 0.01, "alpha": 450, "max_fraction": 0.5}
    assert evaluate(claim(trap), Results(sims={"exp": [sim([math.nan] * 10)]})).verdict == (
        claims.NOT_SEEN
    )  # unreached by 100 says nothing about 450


def test_specialised_at_level_checks_the_units_when_the_error_gets_there():
    test = {"kind": "fraction", "quantity": "specialised_at_level", "level": 0.01,
            "min_fraction": 0.5}  # fmt: skip
    yes = Results(sims={"exp": [sim([20.0] * 10)]})
    no = Results(sims={"exp": [sim([20.0] * 10, specialised=False)]})
    assert evaluate(claim(test), yes).value == 1 and evaluate(claim(test), yes).verdict == "holds"
    assert evaluate(claim(test), no).value == 0
    assert evaluate(claim(test), no).verdict == claims.CONTRADICTED


# --- difference --------------------------------------------------------------------------


def test_difference_of_escape_alphas_has_the_standard_error_of_two_means():
    rng = np.random.default_rng(0)
    a, b = 20 + rng.normal(0, 3, 16), 30 + rng.normal(0, 3, 16)
    results = Results(sims={"exp": [sim(a, init="random"), sim(b, init="symmetric")]})
    test = {"kind": "difference", "quantity": "escape_alpha", "level": 0.01,
            "groups": [{"init": "random"}, {"init": "symmetric"}], "expect": "greater"}  # fmt: skip
    out = evaluate(claim(test), results)
    # crossings log-interpolated between records 1 apart, where log eps is linear in alpha:
    # each within ~1e-2 of the synthetic one (measured: the mean difference within 1.3e-3,
    # its error within 1e-4 relative)
    assert out.value == pytest.approx(b.mean() - a.mean(), abs=0.01)
    expected = math.hypot(a.std(ddof=1), b.std(ddof=1)) / 4
    assert out.error == pytest.approx(expected, rel=0.01)
    assert out.verdict == claims.HOLDS  # 10 against an error of ~1.1
    assert [g.n for g in out.groups] == [16, 16]
    flipped = evaluate(claim(test | {"expect": "less"}), results)
    assert flipped.verdict == claims.CONTRADICTED


def test_a_difference_of_few_seeds_needs_students_t():
    # two seeds per group, means 3 standard errors apart: enough for z = 2 under the normal,
    # not under Student's t with 2 degrees of freedom (4.5 standard errors)
    test = {"kind": "difference", "quantity": "escape_alpha", "level": 0.01,
            "groups": [{"init": "random"}, {"init": "symmetric"}]}  # fmt: skip
    few = Results(
        sims={"exp": [sim([20, 22], init="random"), sim([24.24, 26.24], init="symmetric")]}
    )
    out = evaluate(claim(test), few)
    assert out.value / out.error == pytest.approx(3.0, rel=0.05)
    assert out.verdict == claims.NOT_SEEN and "at 4.5" in out.note


def test_difference_of_fractions_per_K_and_its_flip():
    runs = [sim([20.0] * 25, K=3), sim([20.0] * 12 + [math.nan] * 13, K=6)]
    test = {"kind": "difference", "level": 0.01, "alpha": 90,
            "groups": [{"K": 3}, {"K": 6}], "expect": "greater"}  # fmt: skip
    out = evaluate(claim(test), Results(sims={"exp": runs}))
    assert [g.value for g in out.groups] == [1.0, 0.48]
    assert out.value == pytest.approx(-0.52)
    # Agresti-Caffo: (26/27, 13/27) with n + 2 = 27: error 0.102
    assert out.error == pytest.approx(0.1022, abs=1e-3)
    assert out.verdict == claims.CONTRADICTED
    assert out.groups[1].lower == analysis.proportion(12, 25).lower


# --- power law ---------------------------------------------------------------------------


def threshold_sweep(exponent: float, noise: float = 0.0) -> xr.Dataset:
    """A sweep whose minimal eta_J (eps_min falls through 0.01 at eta_J = c K^exponent)."""
    K = np.array([3, 4, 5, 6, 8])
    eta_J = np.geomspace(0.05, 20.0, 200)
    rng = np.random.default_rng(1)
    threshold = 0.3 * K**exponent * np.exp(noise * rng.normal(size=len(K)))
    eps = 0.01 * (threshold[:, None] / eta_J[None, :]) ** 2
    return xr.Dataset({"jsearch_eps_min": (("K", "eta_J"), eps)}, coords={"K": K, "eta_J": eta_J})


def test_power_law_recovers_a_known_exponent():
    test = {"kind": "power_law", "rate": "eta_J", "x": "K", "value": 1.0, "alternative": 0.5}
    out = evaluate(claim(test), Results(sweeps={"exp": threshold_sweep(1.0)}))
    # the grid step is 3 %; log-interpolated thresholds are exact for a power law in eta_J
    assert out.value == pytest.approx(1.0, abs=1e-6)
    assert out.verdict == claims.HOLDS
    out = evaluate(claim(test), Results(sweeps={"exp": threshold_sweep(0.5, noise=0.02)}))
    assert out.value == pytest.approx(0.5, abs=0.1)  # 2 % scatter on 5 points: s.e. ~0.04
    assert out.verdict == claims.CONTRADICTED
    # scatter that cannot tell 1 from 0.5 (s.e. ~0.4) decides nothing
    noisy = evaluate(claim(test), Results(sweeps={"exp": threshold_sweep(1.0, noise=0.3)}))
    assert noisy.error > 0.25 and noisy.verdict == claims.NOT_SEEN, noisy


# --- region ------------------------------------------------------------------------------


def region_sweep() -> xr.Dataset:
    """Members reach 0.01 where K eta_J eta_w >= 90 (a region that grows with K) and diverge
    where K eta_J eta_w > 1500."""
    K = np.array([3, 6])
    eta_J = np.geomspace(0.1, 10.0, 21)  # 0.1 decade per cell
    eta_w = np.geomspace(1.0, 100.0, 21)
    product = eta_J[None, :, None] * eta_w[None, None, :] * K[:, None, None]
    reach = np.where(product >= 90.0, 50.0, np.nan)
    diverged = (product > 1.5e3).astype(np.int8)
    return xr.Dataset(
        {
            "alpha_to_level": (("K", "eta_J", "eta_w", "level"), reach[..., None]),
            "diverged": (("K", "eta_J", "eta_w"), diverged),
        },
        coords={"K": K, "eta_J": eta_J, "eta_w": eta_w, "level": [0.01]},
    )


def test_region_area_grows_with_K_as_the_grid_counts_it():
    test = {"kind": "region", "level": 0.01, "alpha": 100, "x": "K", "expect": "grows"}
    ds = region_sweep()
    out = evaluate(claim(test), Results(sweeps={"exp": ds}))
    cells = (ds["alpha_to_level"] <= 100).sum(("eta_J", "eta_w", "level")).values
    assert [g.value for g in out.groups] == pytest.approx(list(cells * 0.01))
    # the region x + y >= c = log10(90 / K) of the box [-1, 1] x [0, 2] (x, y: log10 of the
    # rates) has the area (3 - c)^2 / 2: 1.160 at K = 3, 1.664 at K = 6, a growth of 0.504;
    # the grid (0.1 decades) counts whole cells along a boundary 2.2-2.6 decades long
    assert out.value == pytest.approx(0.504, abs=0.1)
    assert out.verdict == claims.HOLDS
    shrinks = evaluate(claim(test | {"expect": "shrinks"}), Results(sweeps={"exp": ds}))
    assert shrinks.verdict == claims.CONTRADICTED


def test_region_exists_says_where_it_starts():
    test = {"kind": "region", "measure": "diverged", "select": {"K": 3}, "expect": "exists"}
    out = evaluate(claim(test), Results(sweeps={"exp": region_sweep()}))
    assert out.verdict == claims.HOLDS and "eta_J eta_w = " in out.note
    quiet = region_sweep().assign(diverged=lambda d: 0 * d["diverged"])
    assert evaluate(claim(test), Results(sweeps={"exp": quiet})).verdict == claims.NOT_SEEN


# --- files -------------------------------------------------------------------------------


def test_make_claims_writes_the_table_and_every_statistic(tmp_path):
    run = sim([20.0] * 10).assign_attrs(stage="simulate")
    path = write_netcdf(run, tmp_path / "s.nc")
    table = {
        "reach": claim({"kind": "fraction", "level": 0.01, "alpha": 90, "min_fraction": 0.5}),
        "per_K": claim({"kind": "difference", "groups": [{"K": 3}, {"K": 3}], "level": 0.01}),
    }
    inputs = {"exp": {"sims": [path], "theories": [], "sweeps": []}}
    nc, md = make_claims(table, inputs, tmp_path / "claims.nc", tmp_path / "claims.md")
    ds = open_dataset(nc, stage="claims")
    assert list(ds["claim"].values) == ["reach", "per_K"]
    assert ds["verdict"].values[0] == claims.HOLDS and ds["value"].values[0] == 1.0
    assert ds["runs"].values[0] == run.attrs["run_name"]
    assert ds["group_n"].values[1].tolist() == [10, 10]
    text = md.read_text()
    assert "| reach |" in text and "**holds**" in text and "## Per group" in text
    # the same run broken (its seeds never reach the level): the claim that reads it flips
    write_netcdf(sim([math.nan] * 10).assign_attrs(stage="simulate"), path)
    make_claims(table, inputs, tmp_path / "claims.nc", tmp_path / "claims.md")
    broken = open_dataset(tmp_path / "claims.nc", stage="claims")
    assert broken["verdict"].values[0] == claims.CONTRADICTED and broken["value"].values[0] == 0
