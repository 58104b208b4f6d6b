"""The paper's claims as laws (docs/theory.md, section 11): the rate law, the exact head rate
3K/m, the escape statistics of the second stage, and the figures that show them."""

from __future__ import annotations

import math
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from tsmeta import analysis  # noqa: E402
from tsmeta.io import params_to_attrs  # noqa: E402
from tsmeta.params import RunParams  # noqa: E402

# --- the rate law ---------------------------------------------------------------------------

RATES = [(3.0, 9.0), (1.0, 4.0), (0.2, 9.0), (3.0, 18.0)]


@pytest.mark.parametrize("finite_p", [False, True])
def test_jacobian_escape_rate_collapses_on_the_rate_law(finite_p):
    """Every K and pair of rates on one line, rate = eta_J eta_w / (pi^2 K M) (u_std = 1).

    Without the finite-P term the law is exact at R -> 0 and the Jacobian's only error is the
    central difference, O(step^2) = 1e-8: tolerance 1e-5. With it (P = 200) the 1/P term lowers
    the rate by O(eta_w^2 / (K^2 P)), at most 1 % here: tolerance 2 %, and never above the law.
    """
    from tsmeta.theory.stability import escape_rate

    points = [(K, j, w) for K in (3, 4, 5, 6, 8) for j, w in RATES]
    plist = [RunParams(K=K, M=3, eta_J=j, eta_w=w, P=200, V=200) for K, j, w in points]
    rates = escape_rate(plist, {"finite_p": finite_p})
    law = np.array([analysis.rate_law(j, w, K, 3) for K, j, w in points])
    ratio = rates / law
    if finite_p:
        assert np.all(ratio <= 1 + 1e-6) and np.all(ratio > 0.98)
    else:
        np.testing.assert_allclose(ratio, 1.0, rtol=1e-5)
    # the law's content: only eta_J eta_w / K matters (at fixed M) ...
    x = np.array([j * w / K for K, j, w in points])
    order = np.argsort(x)
    assert np.all(np.diff(rates[order]) >= -0.02 * rates[order][1:])
    # ... so scaling both rates by sqrt(K / 3) leaves the rate unchanged, one rate alone not
    scaled = [RunParams(K=K, M=3, eta_J=3 * math.sqrt(K / 3), eta_w=9 * math.sqrt(K / 3))
              for K in (3, 6, 8)]  # fmt: skip
    one = [RunParams(K=K, M=3, eta_J=3 * math.sqrt(K / 3), eta_w=9.0) for K in (3, 6, 8)]
    both = escape_rate(scaled, {"finite_p": False})
    np.testing.assert_allclose(both, both[0], rtol=1e-5)
    assert escape_rate(one, {"finite_p": False})[-1] < 0.7 * both[0]


def test_rate_law_and_efolds_broadcast_over_dataarrays():
    eta = xr.DataArray([[0.1, 0.2], [0.3, 0.4]], dims=("K", "N"), coords={"K": [3, 6]})
    rate = analysis.rate_law(eta, 9.0, eta["K"], 3)
    assert rate.dims == ("K", "N")
    assert float(rate.sel(K=6)[1]) == pytest.approx(0.4 * 9 / (math.pi**2 * 18))
    ef = analysis.speed_efolds(eta, 9.0, eta["K"], 3, 450.0)
    assert float(ef.sel(K=3)[0]) == pytest.approx(450 * 0.1 * 9 / (math.pi**2 * 9))
    assert analysis.rate_law(3.0, 9.0, 3, 3, u_std=2.0, gamma=0.5) == pytest.approx(
        27 * 4 * 0.25 / (9 * math.pi**2)
    )


def _fake_activation(monkeypatch, **changes) -> str:
    """A table line "fake": erf's with `changes`, for the length of a test."""
    import dataclasses

    from tsmeta import activations

    line = dataclasses.replace(activations.ACTIVATIONS["erf"], name="fake", **changes)
    monkeypatch.setitem(activations.ACTIVATIONS, "fake", line)
    return "fake"


def test_rate_law_takes_its_factor_from_the_activation_table(monkeypatch):
    assert analysis.rate_law(3.0, 9.0, 3, 3) == analysis.rate_law(3.0, 9.0, 3, 3, activation="erf")
    fake = _fake_activation(monkeypatch, escape_factor=0.5)
    assert analysis.rate_law(3.0, 9.0, 3, 3, activation=fake) == pytest.approx(3 * 9 * 0.5 / 9)
    ef = analysis.speed_efolds(3.0, 9.0, 3, 3, 10.0, activation=fake)
    assert ef == pytest.approx(10 * 3 * 9 * 0.5 / 9)
    none = _fake_activation(monkeypatch, escape_factor=None)
    with pytest.raises(ValueError, match="no linear escape rate"):
        analysis.rate_law(3.0, 9.0, 3, 3, activation=none)


def test_exact_head_rates_come_from_the_activation_table(monkeypatch):
    arr = analysis.arrangement(np.array([[0.9, 0.0], [0.8, 0.1], [0.0, 0.9]]), 0.5)
    assert analysis.exact_head_rates(arr) == pytest.approx({1: 9.0, 2: 4.5})
    fake = _fake_activation(monkeypatch, second_moment=0.5)
    assert analysis.exact_head_rates(arr, fake) == pytest.approx({1: 6.0, 2: 3.0})
    biased = _fake_activation(monkeypatch, mean=0.2)
    assert analysis.exact_head_rates(arr, biased) == {}


# --- the exact head rate 3K/m -----------------------------------------------------------------


def _eps(R, eta_w):
    from tsmeta.theory.closed_form import eps_meta_closed_form

    R = np.asarray(R, dtype=float)
    K, M = R.shape
    return float(eps_meta_closed_form(R, R @ R.T, np.eye(M), np.zeros(K),
                                      RunParams(K=K, M=M, eta_w=eta_w)))  # fmt: skip


def test_one_inner_step_is_exact_at_3K_over_m():
    """The closed-form eps_meta of a perfectly specialised state vanishes at eta_w = 3K/m and
    not elsewhere: duplicated (m = 2 at K = 6) at 9 = 3M, one to one with three units off at
    18 = 3K, one to one at K = M = 3 at 9. A 2-1-1 arrangement has no exact rate."""
    dup = np.repeat(np.eye(3), 2, axis=0)  # 2-2-2
    off = np.vstack([np.eye(3), np.zeros((3, 3))])  # 1-1-1, three units off
    assert analysis.exact_head_rates(analysis.arrangement(dup)) == {2: 9.0}
    assert analysis.exact_head_rates(analysis.arrangement(off)) == {1: 18.0}
    assert _eps(dup, 9.0) < 1e-12 and _eps(dup, 18.0) > 0.1
    assert _eps(off, 18.0) < 1e-12 and _eps(off, 9.0) > 0.01
    assert _eps(np.eye(3), 9.0) < 1e-12 and _eps(np.eye(3), 6.0) > 1e-3
    mixed = np.array([[1.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])  # 2-1-1, K = 4
    assert analysis.exact_head_rates(analysis.arrangement(mixed)) == {1: 12.0, 2: 6.0}
    floors = [_eps(mixed, w) for w in np.linspace(4.0, 14.0, 41)]
    assert min(floors) > 1e-3  # no single rate is exact for both kinds of teacher unit
    assert analysis.arrangement_counts("2-2-1, one unit off") == (2, 2, 1)
    assert analysis.arrangement_counts("") == ()


def test_threshold_arrangements_reads_the_member_at_the_threshold():
    eta_w = np.array([2.0, 4.0, 8.0])
    eps_min = np.array([[0.5, 0.005, 0.001], [0.5, 0.5, 0.5]])  # K = 3 passes at 4, K = 4 never
    R = np.full((2, 3, 4, 3), np.nan)
    Q = np.full((2, 3, 4, 4), np.nan)
    R[0, 1, :3] = np.eye(3)
    Q[0, 1, :3, :3] = np.eye(3)
    R[0, 2, :3] = [[1, 0, 0], [1, 0, 0], [0, 1, 0]]  # a different arrangement above it
    Q[0, 2, :3, :3] = np.eye(3)
    ds = xr.Dataset(
        {"eps_min": (("K", "eta_w"), eps_min), "R": (("K", "eta_w", "k", "n"), R),
         "Q": (("K", "eta_w", "k", "l"), Q)},
        coords={"K": [3, 4], "eta_w": eta_w},
    )  # fmt: skip
    ds.attrs.update(params_to_attrs(RunParams(M=3)))
    labels = analysis.threshold_arrangements(ds, "eta_w", 0.01)
    assert list(labels.values) == ["1-1-1", ""]


# --- escape statistics --------------------------------------------------------------------------


def _eps_curves(escape, alpha):
    """eps_meta (seed, alpha) falling log-linearly from 1e-2 at alpha = 0 through 1e-3 at each
    seed's escape alpha (NaN escape: stays at 1e-2)."""
    escape = np.asarray(escape, dtype=float)
    slope = np.where(np.isfinite(escape), np.log(10.0) / np.where(np.isfinite(escape), escape, 1),
                     0.0)  # fmt: skip
    return 1e-2 * np.exp(-slope[:, None] * alpha[None, :])


def _stage_run(escape, N=100, stage="simulate", alpha_final=100.0):
    p = RunParams(K=3, M=3, N=N, seeds=len(escape), alpha_final=alpha_final)
    alpha = np.linspace(0.0, alpha_final, 201)
    ds = xr.Dataset(
        {"eps_meta": (("seed", "alpha"), _eps_curves(escape, alpha))},
        coords={"seed": np.arange(len(escape)), "alpha": alpha},
    )
    ds.attrs.update(params_to_attrs(p), stage=stage)
    return ds


def test_escape_pairs_find_the_crossings_of_both():
    sim = _stage_run([20.3, 55.7, np.nan, 80.0])  # records every 0.5: between records
    ode = _stage_run([25.1, 50.2, 70.4], stage="theory")  # one seed fewer
    pairs = analysis.escape_pairs(sim, ode, 1e-3)
    assert list(pairs["seed"].values) == [0, 1, 2]
    # log eps is linear in alpha, interpolated linearly in log alpha: the error is
    # O((step / alpha)^2) ~ 1e-4 relative, against up to 1e-2 for the next record
    np.testing.assert_allclose(pairs["sim"].values[:2], [20.3, 55.7], rtol=1e-3)
    assert np.isnan(pairs["sim"].values[2])
    np.testing.assert_allclose(pairs["ode"].values, [25.1, 50.2, 70.4], rtol=1e-3)
    with pytest.raises(ValueError, match="share no seed"):
        analysis.escape_pairs(sim, ode.assign_coords(seed=[7, 8, 9]), 1e-3)


def test_mean_error_ignores_non_finite():
    m = analysis.mean_error([1.0, 2.0, 3.0, np.nan])
    assert m.mean == 2.0 and m.n == 3 and m.total == 4
    assert m.error == pytest.approx(1.0 / math.sqrt(3))
    assert np.isnan(analysis.mean_error([np.nan]).mean)


def test_correlation_fisher_interval_has_its_coverage():
    """200 samples of n = 64 bivariate normal pairs with rho = 0.6: the 68 % Fisher-z interval
    covers rho in 68 % of them (binomial sd 3.3 %: bounds at three sd), the mean r is rho up to
    its bias -rho (1 - rho^2) / (2n) = -0.003 and its error 0.1 / sqrt(200) = 0.007."""
    rng = np.random.default_rng(13)
    rho, n = 0.6, 64
    cov = [[1.0, rho], [rho, 1.0]]
    results = [analysis.correlation(*rng.multivariate_normal([0, 0], cov, n).T)
               for _ in range(200)]  # fmt: skip
    covered = np.mean([c.lower < rho < c.upper for c in results])
    assert 0.58 < covered < 0.78
    assert np.mean([c.r for c in results]) == pytest.approx(rho, abs=0.03)
    assert all(c.n == n for c in results)


def test_correlation_edge_cases():
    x = np.arange(10.0)
    assert analysis.correlation(x, 2 * x + 1).r == pytest.approx(1.0)
    noisy = analysis.correlation(x, -x + np.r_[0.3, -0.2].repeat(5))
    assert noisy.r < -0.9 and noisy.lower < noisy.r < noisy.upper
    with_nan = analysis.correlation(np.r_[x, np.nan], np.r_[x, 5.0])
    assert with_nan.n == 10
    assert np.isnan(analysis.correlation([1.0, 2.0, 3.0], [1.0, 2.0, 4.0]).r)  # n < 4
    with pytest.raises(ValueError, match="same length"):
        analysis.correlation([1.0, 2.0], [1.0])


def test_fit_log_slope_exact_and_coverage():
    N = np.array([50.0, 100.0, 200.0, 400.0])
    fit = analysis.fit_log_slope(N, 10 + 4 * np.log(N), np.full(4, 1.0))
    assert fit.slope == pytest.approx(4.0) and fit.intercept == pytest.approx(10.0)
    assert fit.chi2 == pytest.approx(0.0, abs=1e-18) and fit.n_points == 4
    # known errors: the slope lies within one standard error in 68 % of 300 noisy samples
    # (binomial sd 2.7 %: bounds at about 3.5 sd)
    rng = np.random.default_rng(5)
    err = np.array([1.0, 2.0, 1.5, 3.0])
    hits = [abs(analysis.fit_log_slope(N, 10 + 4 * np.log(N) + err * rng.standard_normal(4),
                                       err).slope - 4.0)
            < analysis.fit_log_slope(N, np.zeros(4), err).stderr for _ in range(300)]  # fmt: skip
    assert 0.58 < np.mean(hits) < 0.78
    # unweighted: standard error from the residuals, NaN for two points
    two = analysis.fit_log_slope([100, 200], [1.0, 2.0])
    assert two.slope == pytest.approx(1 / math.log(2)) and math.isnan(two.stderr)
    with pytest.raises(ValueError, match="two distinct N"):
        analysis.fit_log_slope([100, 100], [1.0, 2.0])


# --- figures ----------------------------------------------------------------------------------


def _figure(kind, sims, theories, sweep=None, **options):
    """The kind's figure as the workflow draws it: its data, then its painting."""
    from tsmeta.figure_data import FigureInputs
    from tsmeta.figures import figure_of

    return figure_of(FigureInputs(kind, sims, theories, sweep=sweep), {"kind": kind, **options})


def _n_axes(fig) -> int:
    fig.canvas.draw()  # layout and rendering errors surface here
    n = len(fig.axes)
    plt.close(fig)
    return n


def test_second_stage_draws_and_states_the_correlation():
    from tsmeta.figure_data.second_stage import second_stage_table

    rng = np.random.default_rng(0)
    sims, theories = [], []
    for N in (50, 200):
        ode = 30 + 3 * np.log(N) + 15 * rng.random(12)
        sim = ode + 2 * rng.standard_normal(12)
        sim[0] = np.nan  # one seed never escapes
        sims.append(_stage_run(sim, N=N))
        theories.append(_stage_run(ode, N=N, stage="theory"))
    table = second_stage_table(sims, theories, 1e-3)
    assert [row["N"] for row in table] == [50, 200]
    assert table[0]["corr"].n == 11 and table[0]["corr"].r > 0.8
    fig = _figure("second_stage", sims, theories, escape_level=1e-3)
    note = fig.get_supxlabel()
    assert "r = " in note and "slope" in note and "left out" in note
    assert _n_axes(fig) == 3
    # nothing escapes: still a figure, without fits
    flat = [_stage_run([np.nan] * 4, N=N) for N in (50, 200)]
    assert _n_axes(_figure("second_stage", flat, [f.copy() for f in flat])) == 3
    with pytest.raises(ValueError, match="no theory"):
        _figure("second_stage", sims, [])


def _growth_run(K, eta_J, eta_w, rate, seeds=4, stage="simulate"):
    """R (seed, alpha, k, n) growing exactly as exp(rate_s alpha) from N^-1/2 entries, with
    per-seed rates spread by +-7.5 % around `rate` (their mean is `rate`)."""
    p = RunParams(K=K, M=3, eta_J=eta_J, eta_w=eta_w, seeds=seeds, alpha_final=3.0)
    alpha = np.linspace(0.0, 3.0, 31)
    R0 = np.random.default_rng(K).standard_normal((seeds, 1, K, 3)) / math.sqrt(200)
    rates = rate * (1 + 0.05 * (np.arange(seeds) - (seeds - 1) / 2))
    R = R0 * np.exp(rates[:, None] * alpha[None, :])[:, :, None, None]
    eps = np.full((seeds, len(alpha)), 0.2)
    ds = xr.Dataset(
        {"R": (("seed", "alpha", "k", "n"), R), "eps_meta": (("seed", "alpha"), eps)},
        coords={"seed": np.arange(seeds), "alpha": alpha},
    )
    ds.attrs.update(params_to_attrs(p), stage=stage)
    return ds


def test_rates_vs_K_draws_the_laws():
    from tsmeta.theory.sweeps import run_sweep

    base = RunParams(N=40, M=2, eta_J=3.0, eta_w=6.0, alpha_final=10.0, seeds=1).to_dict()
    sweep = {
        "base": base,
        "grid": {"K": [2, 3], "eta_w": [1.0, 6.0], "seed_offset": [0, 1], "N": [40, 400]},
        "search_eta_J": [0.5, 3.0],
        "levels": [0.05, 0.01],
    }
    settings = {"method": "BDF", "rtol": 1e-5, "atol": 1e-7}
    ds = run_sweep(sweep, settings, n_fine=60, n_coarse=10)
    assert ds["jsearch_eps_min"].dims == ("K", "seed_offset", "N", "eta_J")
    law = analysis.rate_law(3.0, 6.0, 2, 3)
    sims = [_growth_run(2, 3.0, 6.0, law)]
    theories = [_growth_run(2, 3.0, 6.0, law, stage="theory")]
    fig = _figure("rates_vs_K", sims, theories, sweep=ds, thresholds=[0.05])
    note = " ".join(fig.get_supxlabel().split())
    # the Jacobian is the law up to the finite-P term (P = 200: below 2 %)
    worst = float(re.search(r"Jacobian/law − 1 at most ([0-9.]+)%", note).group(1))
    assert worst < 2.0
    # R grows exactly at the law's rate, in the "simulation" and in its "ODE" alike
    assert "early growth of R / law 1.00-1.00 over 1 runs, at most 0.0 standard errors" in note
    assert "the law and 0.0 off the same estimator" in note
    assert _n_axes(fig) == 4
    # a sweep without the eta_J search and without seed or N axes: the other panels say so
    plain = run_sweep({"base": base, "grid": {"K": [2, 3], "eta_w": [1.0, 6.0]}}, settings,
                      n_fine=60, n_coarse=10)  # fmt: skip
    fig = _figure("rates_vs_K", [], [], sweep=plain)
    assert "no eta_J search" in fig.get_supxlabel()
    assert _n_axes(fig) == 4


def test_dynamics_row_notes_title_each_row():
    from tsmeta.figure_data import FigureInputs
    from tsmeta.figures import figure_of
    from tsmeta.settings import SimSettings
    from tsmeta.simulation import simulate
    from tsmeta.tasks import initial_state
    from tsmeta.theory import theory_dataset

    sims, theories = [], []
    for init in ("random", "symmetric"):
        p = RunParams(N=30, P=20, V=20, K=2, M=2, eta_w=6.0, seeds=2, alpha_final=0.5,
                      n_records=4, init=init)  # fmt: skip
        tasks = initial_state(p)
        sims.append(simulate(tasks, p, SimSettings(mc_tasks=4, mc_adapt=50, mc_test=50)))
        theories.append(theory_dataset(tasks, p, {}))
    notes = ["first row: perturbation-dominated", ""]
    fig = figure_of(FigureInputs("trapped", sims, theories), {"row_notes": notes})
    titles = [ax.get_title(loc="left") for ax in fig.axes[:6]]
    assert titles[0] == notes[0] and titles[3] == ""  # eps_meta panels of rows 1 and 2
    assert _n_axes(fig) == 6


def test_more_row_notes_than_runs_is_a_config_error():
    from pathlib import Path

    from tsmeta import config as tsconfig

    config = tsconfig.load(Path(__file__).resolve().parents[2] / "config" / "test.yaml")
    config["experiments"]["dynamics"]["figure"]["row_notes"] = ["a", "b", "c"]
    with pytest.raises(tsconfig.ConfigError, match=r"row_notes.*3 notes for 2 run"):
        tsconfig.validate(config)
