"""Issue 21: the figure kinds algorithms, few_shot, rates_vs_K, phase_diagram and
second_stage split into `figure_data.<kind>.data` (every number drawn, theory included) and
`figures.<kind>.paint` (reads the Dataset only, no tsmeta.theory)."""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import json
import math
from pathlib import Path
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tsmeta import analysis  # noqa: E402
from tsmeta.io import params_to_attrs  # noqa: E402
from tsmeta.params import RunParams  # noqa: E402

KINDS = ("algorithms", "few_shot", "rates_vs_K", "phase_diagram", "second_stage")
SRC = Path(__file__).parents[2] / "src" / "tsmeta"
OPTIONS = dict(xscale="log", thresholds=[], title="", escape_level=1e-3, first_stage_level=0.01)
FAST = {"method": "BDF", "rtol": 1e-6, "atol": 1e-8}


def _options(**changes):
    return SimpleNamespace(**{**OPTIONS, **changes})


def _inputs(sims=(), theories=(), sweep=None, experiment="x"):
    return SimpleNamespace(experiment=experiment, sims=list(sims), theories=list(theories),
                           variants={}, compare=None, sweep=sweep)  # fmt: skip


def _roundtrip_and_paint(kind, ds, options, tmp_path) -> xr.Dataset:
    """The Dataset survives netCDF (as the framework writes it) and paint draws from the
    file alone; returns the Dataset read back."""
    path = tmp_path / f"{kind}_{len(list(tmp_path.iterdir()))}.nc"
    ds.to_netcdf(path)
    with xr.open_dataset(path) as written:
        back = written.load()
    fig = importlib.import_module(f"tsmeta.figures.{kind}").paint(back, options)
    assert isinstance(fig, Figure)
    fig.canvas.draw()
    plt.close(fig)
    return back


def _imports(path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module)
    return names


@pytest.mark.parametrize("kind", KINDS)
def test_paint_modules_import_no_theory(kind):
    """paint: matplotlib, seaborn, numpy and figures.style only; tsmeta.theory nowhere."""
    path = SRC / "figures" / f"{kind}.py"
    assert not any(n.startswith("tsmeta.theory") for n in _imports(path, top_level_only=False))
    allowed = ("__future__", "matplotlib", "seaborn", "numpy", "tsmeta.figures.style")
    top = _imports(path, top_level_only=True)
    assert all(n.startswith(allowed) for n in top), top
    assert "paint" in {f.name for f in ast.parse(path.read_text()).body
                       if isinstance(f, ast.FunctionDef)}  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_data_modules_import_no_matplotlib(kind):
    names = _imports(SRC / "figure_data" / f"{kind}.py", top_level_only=False)
    assert not any(n.startswith(("matplotlib", "seaborn")) for n in names)


# --- algorithms -------------------------------------------------------------------------------


@functools.cache
def _tiny_run(P=40, **overrides):
    """(sim, theory) of a tiny real run; the theory is the run's own algorithm's ODE."""
    from tsmeta.settings import SimSettings
    from tsmeta.simulation import simulate
    from tsmeta.tasks import initial_state
    from tsmeta.theory import theory_dataset

    p = RunParams(**{**dict(N=20, K=2, M=2, V=10, seeds=2, alpha_final=1.0, n_records=6),
                     "P": P, **overrides})  # fmt: skip
    tasks = initial_state(p)
    settings = SimSettings(mc_tasks=10, mc_adapt=50, mc_test=50, mc_every=2)
    return simulate(tasks, p, settings, progress=False), theory_dataset(tasks, p)


def test_algorithms_data_holds_the_escape_factor_of_the_theory(tmp_path):
    from tsmeta.figure_data.algorithms import rms_R
    from tsmeta.theory.stability import escape_rate

    runs = [_tiny_run(algorithm=a, eta_w=w) for w in (3.0, 14.0) for a in ("fo-anil", "anil")]
    sims, theories = [r[0] for r in runs], [r[1] for r in runs]
    ds = figure_data("algorithms").data(_inputs(sims, theories), _options())
    assert ds.sizes["run"] == 4 and list(ds["line_algorithm"].values) == ["fo-anil", "anil"]
    np.testing.assert_array_equal(ds["eta_w_exact"].values, 6.0)  # 3K, K = 2
    # the escape factor of ANIL at a grid point: its linear rate over FO-ANIL's
    p = dataclasses.replace(_params(sims[0]), eta_w=float(ds["escape_x"][7]) * 6.0)
    anil, fo = (escape_rate(dataclasses.replace(p, algorithm=a), {"finite_p": False})
                for a in ("anil", "fo-anil"))  # fmt: skip
    np.testing.assert_allclose(ds["escape_theory"].sel(line=1).values[7], anil / fo, rtol=1e-12)
    np.testing.assert_allclose(ds["escape_theory"].sel(line=0).values, 1.0)  # FO-ANIL / itself
    np.testing.assert_allclose(ds["rms_R_mean"].values[0], rms_R(sims[0]).mean(axis=0))
    np.testing.assert_allclose(ds["eps_theory"].values[1], theories[1]["eps_meta"].mean("seed"))
    assert str(ds["label"].values[1]).startswith("ANIL: sim ")
    back = _roundtrip_and_paint("algorithms", ds, _options(), tmp_path)
    assert list(back["marker"].values) == ["o", "s", "o", "s"]


def _params(ds):
    from tsmeta.io import params_from_attrs

    return params_from_attrs(ds.attrs)


def figure_data(kind):
    return importlib.import_module(f"tsmeta.figure_data.{kind}")


# --- few_shot ---------------------------------------------------------------------------------


def test_few_shot_data_holds_the_closed_form(tmp_path):
    from tsmeta.theory import eps_meta_p_closed_form
    from tsmeta.theory.sweeps import run_sweep

    runs = [_tiny_run(P=P) for P in (40, 5)]  # out of order: the figure sorts by P
    sims, theories = [r[0] for r in runs], [r[1] for r in runs]
    base = dict(N=20, K=2, M=2, V=10, seeds=2, alpha_final=1.0, n_records=6)
    sweep = run_sweep({"base": {**base, "P": 5}, "grid": {"P": [5, 10, 40]}})
    ds = figure_data("few_shot").data(_inputs(sims, theories, sweep), _options())
    assert list(ds["P"].values) == [5, 40] and ds.attrs["curve_source"] == "sweep"
    I = np.eye(2)
    expected = [
        float(
            eps_meta_p_closed_form(I, I, I, np.zeros(2), dataclasses.replace(_params(sims[0]), P=P))
        )
        for P in (5, 10, 40)
    ]
    np.testing.assert_allclose(ds["fixed_point_eps_p"].values, expected, rtol=1e-12)
    np.testing.assert_array_equal(ds["curve_eps_p"].values, sweep["eps_p_final"].values)
    np.testing.assert_allclose(ds["theory_eps_p"].values[1],
                               theories[0]["eps_meta_p"].mean("seed").values)  # fmt: skip
    mc = sims[1]["eps_meta_p_mc"].values  # P = 5
    np.testing.assert_allclose(ds["final_mc_eps_p"].values[0], np.nanmean(mc[:, -1]))
    _roundtrip_and_paint("few_shot", ds, _options(), tmp_path)
    runs_only = figure_data("few_shot").data(_inputs(sims, theories), _options())
    assert runs_only.attrs["curve_source"] == "runs"
    np.testing.assert_array_equal(runs_only["curve_P"].values, [5, 40])
    _roundtrip_and_paint("few_shot", runs_only, _options(), tmp_path)


# --- rates_vs_K -------------------------------------------------------------------------------


def test_rates_vs_K_data_holds_the_jacobian_and_the_laws(tmp_path):
    from tsmeta.theory.stability import escape_rate
    from tsmeta.theory.sweeps import run_sweep

    base = RunParams(N=40, M=2, eta_J=3.0, eta_w=6.0, alpha_final=10.0, seeds=1).to_dict()
    sweep = {"base": base, "grid": {"K": [2, 3], "eta_w": [1.0, 6.0], "N": [40, 400]},
             "search_eta_J": [0.5, 3.0], "levels": [0.05, 0.01]}  # fmt: skip
    sw = run_sweep(sweep, FAST, n_fine=60, n_coarse=10)
    ds = figure_data("rates_vs_K").data(_inputs(sweep=sw), _options(thresholds=[0.05]))
    assert ds.sizes["point"] == 2 * 2 + 2 * 2  # (K, eta_w) and (K, eta_J)
    K, x = int(ds["point_K"][1]), float(ds["point_x"][1])  # K = 2, eta_w = 6
    member = RunParams.from_dict({**base, "K": K, "eta_w": 6.0, "seeds": 1})
    settings = json.loads(sw.attrs.get("settings_json", "{}"))
    np.testing.assert_allclose(ds["jacobian_rate"].values[1], escape_rate(member, settings))
    np.testing.assert_allclose(ds["law_rate"].values[1], x / math.pi**2, rtol=1e-12)
    np.testing.assert_allclose(ds["law_line"].values, ds["law_x"].values / math.pi**2, rtol=1e-12)
    thr = analysis.minimal_rate(sw, "eta_w", 0.05)["rate"]
    np.testing.assert_array_equal(ds["precision_eta_w"].isel(seed_offset=0).values,
                                  thr.transpose("K", "N").values)  # fmt: skip
    for k, m, rate in zip(*(ds[v].values for v in ("mark_K", "mark_m", "mark_rate"))):
        assert rate == pytest.approx(3 * k / m)
    np.testing.assert_allclose(ds["one_to_one_rate"].values, 3 * ds["even_K"].values)
    np.testing.assert_allclose(ds["even_rate"].values, 6.0)  # 3M
    assert "(b) " in ds.attrs["note"] and "Jacobian/law − 1 at most" in ds.attrs["note"]
    _roundtrip_and_paint("rates_vs_K", ds, _options(thresholds=[0.05]), tmp_path)


# --- phase_diagram ----------------------------------------------------------------------------


def test_phase_diagram_data_holds_the_maps_and_the_exact_rate(tmp_path):
    from tsmeta.theory.sweeps import run_sweep

    base = RunParams(N=40, K=2, M=2, alpha_final=5.0).to_dict()
    grid = {"eta_J": [1.0, 3.0], "eta_w": [3.0, 6.0, 9.0], "K": [2, 3]}
    sw = run_sweep({"base": base, "grid": grid}, FAST, n_fine=50, n_coarse=10)
    eps = np.array([[0.5, 0.2, 1e-3]] * 2)
    sim = xr.Dataset({"eps_meta": (("seed", "alpha"), eps)}, coords={"alpha": [0.0, 1.0, 5.0]})
    sim.attrs.update(params_to_attrs(RunParams.from_dict({**base, "eta_J": 3.0, "eta_w": 6.0})))
    ds = figure_data("phase_diagram").data(_inputs([sim], sweep=sw), _options(thresholds=[0.01]))
    assert ds.sizes["row"] == 2 and list(ds["K"].values) == [2, 3]
    np.testing.assert_allclose(ds["eta_w_exact"].values, [6.0, 9.0])  # 3K
    expected = np.log10(sw["eps_final"].sel(K=3).transpose("eta_w", "eta_J").values)
    np.testing.assert_array_equal(ds["log10_eps"].sel(row=1).values, expected)
    assert list(ds["spot_row"].values) == [0]  # K = 2: the base K's row only
    assert int(ds["spot_reached"][0]) == 1
    assert ds["title"].values[1].startswith("K=3, M=2")
    _roundtrip_and_paint("phase_diagram", ds, _options(thresholds=[0.01]), tmp_path)


# --- second_stage -----------------------------------------------------------------------------


def _escape_run(escape, N, stage="simulate", alpha_final=100.0):
    """eps_meta falling through 1e-3 at alpha = escape per seed (NaN: never)."""
    p = RunParams(K=3, M=3, N=N, seeds=len(escape), alpha_final=alpha_final)
    alpha = np.linspace(0.0, alpha_final, 201)
    esc = np.nan_to_num(np.asarray(escape, dtype=float), nan=10 * alpha_final)
    eps = 1e-3 * np.exp(-(alpha[None, :] - esc[:, None]) / 5.0)
    ds = xr.Dataset({"eps_meta": (("seed", "alpha"), np.minimum(eps, 0.5))},
                    coords={"seed": np.arange(len(escape)), "alpha": alpha})  # fmt: skip
    ds.attrs.update(params_to_attrs(p), stage=stage)
    return ds


def test_second_stage_data_holds_the_escape_statistics(tmp_path):
    rng = np.random.default_rng(0)
    sims, theories = [], []
    for N in (50, 200):
        ode = 30 + 3 * np.log(N) + 15 * rng.random(12)
        sim = ode + 2 * rng.standard_normal(12)
        sim[0] = np.nan  # one seed never escapes
        sims.append(_escape_run(sim, N))
        theories.append(_escape_run(ode, N, stage="theory"))
    ds = figure_data("second_stage").data(_inputs(sims, theories), _options())
    pairs = analysis.escape_pairs(sims[1], theories[1], 1e-3)
    np.testing.assert_array_equal(ds["escape_sim"].values[1], pairs["sim"].values)
    corr = analysis.correlation(pairs["sim"].values, pairs["ode"].values)
    assert float(ds["corr_r"][1]) == corr.r and int(ds["corr_n"][0]) == 11
    assert list(ds["escaped_sim"].values) == [11, 11]
    steps = ds["ecdf_ode_y"].values[0]
    assert steps[np.isfinite(steps)][-1] == 1.0  # every ODE seed escapes
    mean = np.array([analysis.mean_error(ds["escape_sim"].values[i]).mean for i in range(2)])
    err = np.array([analysis.mean_error(ds["escape_sim"].values[i]).error for i in range(2)])
    fit = analysis.fit_log_slope(np.array([50.0, 200.0]), mean, err)
    assert float(ds["fit_slope"][0]) == fit.slope
    assert "r = " in ds.attrs["note"] and "left out" in ds.attrs["note"]
    _roundtrip_and_paint("second_stage", ds, _options(), tmp_path)
    flat = [_escape_run([np.nan] * 4, N) for N in (50, 200)]  # nothing escapes: no fits
    ds = figure_data("second_stage").data(_inputs(flat, [f.copy() for f in flat]), _options())
    assert list(ds["series_label"].values) == [""] * 4
    _roundtrip_and_paint("second_stage", ds, _options(), tmp_path)
    with pytest.raises(ValueError, match="no theory"):
        figure_data("second_stage").data(_inputs(sims, []), _options())
