"""Theory-only sweeps (tsmeta.theory.sweeps) and the figures built from them.

The batched sweep must equal the members integrated one by one with `integrate` from the
same initial overlaps; learnability must follow the eta_w = 3K rule; crossings must be
ordered; divergence must be marked, not raised; the figures must draw.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import xarray as xr

from tsmeta.analysis import first_crossing, minimal_rate
from tsmeta.io import open_dataset, params_to_attrs, write_netcdf
from tsmeta.params import RunParams
from tsmeta.tasks import initial_state
from tsmeta.theory import integrate
from tsmeta.theory.sweeps import axis_values, run_sweep, searches

TIGHT = {"method": "RK45", "rtol": 1e-10, "atol": 1e-12}
FAST = {"method": "BDF", "rtol": 1e-6, "atol": 1e-8}


def _base(**kw) -> dict:
    return RunParams(**kw).to_dict()


# --- the grid -----------------------------------------------------------------------------


def test_axis_values_and_searches():
    assert axis_values([1, 2]) == [1, 2]
    np.testing.assert_allclose(
        axis_values({"start": 1, "stop": 100, "num": 3, "scale": "log"}), [1, 10, 100]
    )
    np.testing.assert_allclose(axis_values({"start": 0, "stop": 1, "num": 3}), [0, 0.5, 1])
    plan = searches({"grid": {"K": [3, 4.0], "eta_w": [1, 2]}, "search_eta_J": [0.1, 1]})
    assert plan["main"] == {"K": [3, 4], "eta_w": [1.0, 2.0]}
    assert isinstance(plan["main"]["K"][1], int)
    assert plan["eta_J"] == {"K": [3, 4], "eta_J": [0.1, 1.0]}
    with pytest.raises(ValueError, match="unknown theory_sweep key"):
        searches({"grid": {"K": [3]}, "searches": []})
    with pytest.raises(ValueError, match="without an eta_J axis"):
        searches({"grid": {"eta_J": [1]}, "search_eta_J": [1]})
    with pytest.raises(ValueError, match="repeated"):
        searches({"grid": {"K": [3, 3.0]}})
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match=r"theory_sweep.batch must be an integer >= 0"):
            searches({"grid": {"K": [3]}, "batch": bad})
    with pytest.raises(ValueError):
        searches({"grid": {"not_a_param": [1]}})


def test_first_crossing_is_interpolated():
    alpha = np.concatenate([[0.0], np.geomspace(0.01, 50, 400)])
    eps = np.exp(-alpha)
    for level in (0.5, 0.01, 1e-3):
        a = first_crossing(eps[None], alpha, level)[0]
        assert a == pytest.approx(math.log(1 / level), rel=1e-3)
    assert np.isnan(first_crossing(eps[None], alpha, 1e-30)[0])
    assert first_crossing(eps[None], alpha, 2.0)[0] == 0.0


# --- batched sweep == members one by one --------------------------------------------------


@pytest.fixture(scope="module", params=[0, 3], ids=["whole-groups", "batch-3"])
def small_sweep(request):
    """K in {2, 3} (two groups, NaN padding), two inits (different initial states); each
    group as one system, or cut into systems of 3 and 1 members."""
    base = _base(N=60, K=2, M=2, alpha_final=6.0, seed_offset=5)
    grid = {"K": [2, 3], "init": ["random", "symmetric"], "eta_w": [4.0, 7.0]}
    sweep = {"base": base, "grid": grid, "levels": [0.2, 0.1], "batch": request.param}
    return sweep, run_sweep(sweep, TIGHT, n_fine=80, n_coarse=12)


def test_sweep_equals_members_one_by_one(small_sweep):
    sweep, ds = small_sweep
    assert ds.attrs["stage"] == "theory_sweep"
    assert ds["eps_meta"].dims == ("K", "init", "eta_w", "alpha")
    assert ds["R"].dims == ("K", "init", "eta_w", "k", "n")
    systems = [(g["K"], g["members"]) for g in json.loads(ds.attrs["groups_json"])]
    if sweep["batch"] == 0:
        assert systems == [(2, 4), (3, 4)]  # one system per K
    else:
        assert systems == [(2, 3), (2, 1), (3, 3), (3, 1)]
    alphas = ds["alpha"].values
    for K in (2, 3):
        for init in ("random", "symmetric"):
            for eta_w in (4.0, 7.0):
                p = RunParams.from_dict({**sweep["base"], "K": K, "init": init, "eta_w": eta_w})
                ts = initial_state(dataclasses.replace(p, seeds=1))
                solo = integrate(*(ts[v].values for v in ("R0", "Q0", "T", "w0")), p, alphas, TIGHT)
                m = ds.sel(K=K, init=init, eta_w=eta_w)
                np.testing.assert_allclose(
                    m["eps_meta"].values, solo.eps_meta[0], rtol=1e-7, atol=1e-10
                )
                np.testing.assert_allclose(m["R"].values[:K, :2], solo.R[0, -1], atol=1e-8)
                np.testing.assert_allclose(m["Q"].values[:K, :K], solo.Q[0, -1], atol=1e-8)
                np.testing.assert_allclose(m["w0"].values[:K], solo.w0[0, -1], atol=1e-8)
                assert float(m["eps_final"]) == pytest.approx(solo.eps_meta[0, -1], rel=1e-7)
                if K == 2:  # padded to the largest K
                    assert np.isnan(m["R"].values[2:]).all() and np.isnan(m["w0"].values[2])
    assert not ds["diverged"].any()


def test_implicit_solver_agrees_with_reference(small_sweep):
    sweep, ref = small_sweep
    ds = run_sweep(sweep, FAST, n_fine=80, n_coarse=12)
    np.testing.assert_allclose(ds["eps_meta"].values, ref["eps_meta"].values, rtol=1e-4)
    np.testing.assert_allclose(ds["alpha_to_level"].values, ref["alpha_to_level"].values, rtol=1e-3)


def test_netcdf_round_trip(small_sweep, tmp_path):
    _, ds = small_sweep
    path = write_netcdf(ds, tmp_path / "sweep.nc")
    back = open_dataset(path, stage="theory_sweep")
    xr.testing.assert_allclose(back["eps_meta"], ds["eps_meta"])
    assert list(back["init"].values) == ["random", "symmetric"]


# --- physics ------------------------------------------------------------------------------


def test_fixed_point_eta_w_is_3K():
    """R = Q = T = I, w0 = 0: eps_meta = 0 and stays there iff eta_w = 3K (P = infinity: the
    finite-P term moves the fixed point to smaller norms, docs/theory.md section 7)."""
    K = 3
    eye = np.broadcast_to(np.eye(K), (2, K, K))
    params = [RunParams(K=K, M=K, eta_w=9.0), RunParams(K=K, M=K, eta_w=7.0)]
    settings = {**FAST, "finite_p": False}
    out = integrate(eye, eye, eye, np.zeros((2, K)), params, np.array([0.0, 1.0, 10.0]), settings)
    assert np.abs(out.eps_meta[0]).max() < 1e-12
    assert np.all(out.eps_meta[1] > 1e-3)


@pytest.fixture(scope="module")
def learnability():
    sweep = {
        "base": _base(K=3, M=3, N=200, eta_J=3.0),
        "grid": {"eta_w": [0.5, 9.0]},
        "levels": [0.05, 0.01, 0.001],
    }
    return run_sweep(sweep, FAST, n_fine=200, n_coarse=20)


def test_eta_w_9_learns_and_tiny_eta_w_does_not(learnability):
    ds = learnability
    good, bad = ds.sel(eta_w=9.0), ds.sel(eta_w=0.5)
    assert 0 < float(good["alpha_to_level"].sel(level=0.01)) < 450
    assert float(good["eps_final"]) < 1e-3
    assert np.isnan(float(bad["alpha_to_level"].sel(level=0.01)))
    assert float(bad["eps_final"]) > 0.01
    assert not ds["diverged"].any()


def test_alpha_to_level_monotone_in_level(learnability, small_sweep):
    for ds in (learnability, small_sweep[1]):
        a = ds["alpha_to_level"].sortby("level", ascending=False).values  # high level first
        flat = a.reshape(-1, a.shape[-1])
        for row in flat:
            finite = np.isfinite(row)
            assert np.all(finite[:-1] >= finite[1:])  # reached a low level => reached higher
            assert np.all(np.diff(row[finite]) >= 0)


@pytest.mark.parametrize("method", ["BDF", "RK45"])
def test_divergence_is_marked_not_raised(method):
    """One member blows up (eta_J = 1e4): it is marked, the other is unaffected. With BDF the
    blow-up stalls the implicit solver; the member is split off, not left to stall the batch."""
    base = _base(K=3, M=3, N=100, u_mean=1.0, alpha_final=1.0)
    settings = {"method": method, "rtol": 1e-6, "atol": 1e-8}
    ds = run_sweep({"base": base, "grid": {"eta_J": [3.0, 1e4]}}, settings, n_fine=40, n_coarse=8)
    assert ds["diverged"].values.tolist() == [0, 1]
    assert 0 < float(ds["alpha_diverged"].sel(eta_J=1e4)) < 1.0
    assert np.isnan(float(ds["eps_final"].sel(eta_J=1e4)))
    assert json.loads(ds.attrs["groups_json"])[0]["rhs_evaluations"] < 5000
    p = RunParams.from_dict(base)
    ts = initial_state(dataclasses.replace(p, seeds=1))
    solo = integrate(
        *(ts[v].values for v in ("R0", "Q0", "T", "w0")),
        p,
        [0.0, 1.0],
        {"method": method, "rtol": 1e-8, "atol": 1e-10},
    )
    assert float(ds["eps_final"].sel(eta_J=3.0)) == pytest.approx(solo.eps_meta[0, -1], rel=1e-4)


def test_minimal_rate_interpolates_between_grid_points():
    rates = np.array([1.0, 2.0, 4.0, 8.0])
    eps_min = np.array([[0.1, 0.02, 0.005, 0.001], [0.1, 0.1, 0.1, 0.1]])
    ds = xr.Dataset({"eps_min": (("K", "eta_w"), eps_min)}, coords={"K": [3, 4], "eta_w": rates})
    thr = minimal_rate(ds, "eta_w", 0.01)
    # log eps linear in log eta between (2, 0.02) and (4, 0.005): 0.01 at 2 * 2**0.5
    assert float(thr["rate"].sel(K=3)) == pytest.approx(2 * 2**0.5)
    assert float(thr["lower"].sel(K=3)) == 2.0 and float(thr["upper"].sel(K=3)) == 4.0
    assert np.isnan(float(thr["rate"].sel(K=4)))
    assert float(minimal_rate(ds, "eta_w", 0.5)["rate"].sel(K=3)) == 1.0


# --- figures ------------------------------------------------------------------------------


def _fake_sim(params: RunParams, eps_value: float) -> xr.Dataset:
    alpha = np.array([0.0, 1.0, params.alpha_final])
    eps = np.array([[0.5, 0.2, eps_value]] * 2)
    ds = xr.Dataset({"eps_meta": (("seed", "alpha"), eps)}, coords={"alpha": alpha})
    ds.attrs.update(params_to_attrs(params), stage="simulate")
    return ds


def _figure(kind, sims, sweep, **options):
    """The kind's figure drawn from a theory sweep and spot-check simulations."""
    from tsmeta.figure_data import FigureInputs
    from tsmeta.figures import figure_of

    return figure_of(FigureInputs(kind, sims, [], sweep=sweep), {"kind": kind, **options})


def test_rates_vs_K_draws():
    base = _base(N=40, M=2, eta_J=3.0, eta_w=6.0, alpha_final=10.0)
    sweep = {
        "base": base,
        "grid": {"K": [2, 3], "eta_w": [1.0, 6.0]},
        "search_eta_J": [0.5, 3.0],
        "levels": [0.05, 0.01],
    }
    ds = run_sweep(sweep, FAST, n_fine=60, n_coarse=10)
    assert ds["jsearch_eps_final"].dims == ("K", "eta_J")
    assert ds["eps_final"].dims == ("K", "eta_w")
    sims = [
        _fake_sim(RunParams.from_dict({**base, "K": 2, "eta_w": 6.0}), 1e-3),  # eta_w panel
        _fake_sim(RunParams.from_dict({**base, "K": 3, "eta_J": 0.5}), 0.1),  # eta_J panel
    ]
    fig = _figure("rates_vs_K", sims, ds, thresholds=[0.05, 0.01])
    assert len(fig.axes) == 4
    no_search = ds.drop_vars([v for v in ds.data_vars if v.startswith("jsearch_")])
    fig = _figure("rates_vs_K", [], no_search.drop_dims("eta_J"))
    assert len(fig.axes) == 4  # the panels that need the eta_J search say so (tests/test_laws.py)


def test_phase_diagram_draws():
    base = _base(N=40, K=2, M=2, alpha_final=5.0)
    sweep = {"base": base, "grid": {"eta_J": [1.0, 3.0], "eta_w": [3.0, 6.0, 9.0]}}
    ds = run_sweep(sweep, FAST, n_fine=50, n_coarse=10)
    sims = [_fake_sim(RunParams.from_dict({**base, "eta_J": 3.0, "eta_w": 6.0}), 1e-3)]
    fig = _figure("phase_diagram", sims, ds, thresholds=[0.01])
    assert len(fig.axes) == 4  # two heat maps and their colour bars
    sweep["grid"]["init"] = ["random", "symmetric"]
    ds = run_sweep(sweep, FAST, n_fine=50, n_coarse=10)
    fig = _figure("phase_diagram", [], ds)
    assert len(fig.axes) == 8  # one row per init
    with pytest.raises(ValueError, match="theory sweep"):
        _figure("phase_diagram", [], None)
