"""Analysis functions (tsmeta.analysis) and the figure kinds of families of runs."""

from __future__ import annotations

import dataclasses
import functools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

from tsmeta import (
    analysis,  # noqa: E402
    figures,  # noqa: E402
)
from tsmeta.figure_data import FigureInputs  # noqa: E402
from tsmeta.figure_data.finite_size import finite_size_table  # noqa: E402
from tsmeta.figure_kinds import OverparameterizationOptions  # noqa: E402
from tsmeta.figures.overparameterization import overparameterization_families  # noqa: E402
from tsmeta.io import params_to_attrs  # noqa: E402
from tsmeta.params import RunParams  # noqa: E402

# --- arrangement --------------------------------------------------------------------------


def test_arrangement_one_to_one_with_permutation_and_signs():
    R = np.array([[0.02, -0.97, 0.1], [0.95, 0.05, -0.03], [0.0, 0.1, 0.9]])
    arr = analysis.arrangement(R, threshold=0.5)
    assert arr.counts == (1, 1, 1)
    assert arr.off == 0
    assert arr.assignment == (1, 0, 2)
    assert arr.label == "1-1-1"


def test_arrangement_two_on_one_and_shared_pairs():
    R = np.array([[0.9, 0.1, 0.0], [0.7, -0.1, 0.1], [0.0, 0.95, 0.0], [0.1, 0.0, -0.9]])
    arr = analysis.arrangement(R, 0.5)
    assert arr.counts == (2, 1, 1)
    assert arr.label == "2-1-1"
    R6 = np.repeat(np.eye(3), 2, axis=0) * 0.8  # K = 6: every teacher unit carried twice
    assert analysis.arrangement(R6, 0.5).label == "2-2-2"


def test_arrangement_unit_off_by_overlap_or_by_norm():
    R = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.1, 0.05, 0.2]])
    arr = analysis.arrangement(R, 0.5)
    assert arr.off == 1 and arr.assignment[3] == -1
    assert arr.counts == (1, 1, 1)
    assert arr.label == "1-1-1, one unit off"
    # with Q: a small R that is all of a small unit's norm is "on" (cosine 1) unless the norm
    # itself is below the threshold
    R2 = np.array([[1.0, 0.0], [0.0, 0.3]])
    Q2 = np.diag([1.0, 0.09])
    assert analysis.arrangement(R2, 0.5).label == "1-0, one unit off"
    assert analysis.arrangement(R2, 0.2, Q2).label == "1-1"
    assert analysis.arrangement(R2, 0.5, Q2).off == 1  # norm 0.3 < 0.5
    # a large unit with a modest raw overlap is off once its norm is taken into account
    R3 = np.array([[0.6, 0.0], [0.0, 1.0]])
    Q3 = np.diag([9.0, 1.0])
    assert analysis.arrangement(R3, 0.5).off == 0
    assert analysis.arrangement(R3, 0.5, Q3).off == 1


def test_arrangement_rejects_bad_shapes_and_handles_nan():
    with pytest.raises(ValueError, match="K, M"):
        analysis.arrangement(np.zeros(3))
    with pytest.raises(ValueError, match="Q_final"):
        analysis.arrangement(np.eye(2), 0.5, np.eye(3))
    arr = analysis.arrangement(np.array([[np.nan, 1.0], [0.0, 1.0]]), 0.5)
    assert arr.assignment == (-1, 1)


# --- error floor, crossings -----------------------------------------------------------------


def test_error_floor_mean_over_last_window_and_nan():
    alpha = np.linspace(0, 100, 11)
    eps = np.r_[np.linspace(1, 0.1, 8), [0.02, 0.04, 0.06]]
    assert analysis.error_floor(eps, alpha, window=0.2) == pytest.approx(0.04)  # alpha 80..100
    assert analysis.error_floor(eps, alpha, window=1.0) == pytest.approx(eps.mean())
    two = np.stack([eps, np.r_[eps[:-1], np.nan]])
    floors = analysis.error_floor(two, alpha, 0.2)
    assert floors.shape == (2,)
    assert floors[1] == pytest.approx(0.03)
    assert np.isnan(analysis.error_floor(np.full(11, np.nan), alpha, 0.2))
    with pytest.raises(ValueError):
        analysis.error_floor(eps, alpha, 0.0)


def test_first_stage_end_and_crossings():
    alpha = np.array([0.0, 1, 2, 3, 4])
    eps = np.array([[0.2, 0.1, 0.005, 0.001, 0.001], [0.2, 0.1, 0.05, 0.009, 0.001]])
    assert analysis.first_stage_end(eps[1], alpha, 0.01) == 3.0
    assert analysis.first_stage_end(eps, alpha, 0.01) == 2.0  # the earliest trajectory
    assert np.isnan(analysis.first_stage_end(eps, alpha, 1e-4))
    np.testing.assert_array_equal(
        analysis.first_crossing(eps, alpha, 0.01, interpolate=False), [2.0, 3.0]
    )


# --- relabelling -----------------------------------------------------------------------------


def _fake_activation(monkeypatch, **changes) -> str:
    """A table line "fake": erf's with `changes` (e.g. odd=False), for the length of a test."""
    from tsmeta import activations

    line = dataclasses.replace(activations.ACTIVATIONS["erf"], name="fake", **changes)
    monkeypatch.setitem(activations.ACTIVATIONS, "fake", line)
    return "fake"


def _trajectory(R: np.ndarray, **attrs):
    """A one-seed, two-record Dataset whose last record is R (K, M), first record zeros."""
    import xarray as xr

    K, M = R.shape
    R2 = np.stack([np.zeros_like(R), R])[None]
    return xr.Dataset(
        {
            "R": (("seed", "alpha", "k", "n"), R2),
            "Q": (("seed", "alpha", "k", "l"), np.tile(np.eye(K), (1, 2, 1, 1))),
            "w0": (("seed", "alpha", "k"), np.ones((1, 2, K))),
        },
        coords={"seed": [0], "alpha": [0.0, 1.0]},
        attrs=attrs,
    )


R_SIGNED = np.array([[0.0, -0.9], [0.8, 0.1]])  # unit 1 on teacher 0, unit 0 on -teacher 1


def test_alignment_flips_signs_only_for_an_odd_activation():
    order, signs = analysis.alignment(R_SIGNED)
    assert list(order) == [1, 0] and list(signs) == [1.0, -1.0]
    # not odd (relu): -B_1 is another feature, so units are matched by the signed R
    order_even, signs_even = analysis.alignment(R_SIGNED, odd=False)
    assert list(order_even) == [0, 1] and list(signs_even) == [1.0, 1.0]


def test_align_pair_takes_the_sign_rule_from_the_run_activation(monkeypatch):
    aligned, _ = analysis.align_pair(_trajectory(R_SIGNED), None)  # no attribute: erf, odd
    np.testing.assert_array_equal(aligned["R"].values[0, -1], [[0.8, 0.1], [-0.0, 0.9]])
    assert list(aligned["w0"].values[0, -1]) == [1.0, -1.0]
    even = _fake_activation(monkeypatch, odd=False)
    aligned, _ = analysis.align_pair(_trajectory(R_SIGNED, param_activation=even), None)
    np.testing.assert_array_equal(aligned["R"].values[0, -1], R_SIGNED)  # signed: unchanged
    assert list(aligned["w0"].values[0, -1]) == [1.0, 1.0]


def test_last_finite_records_and_values():
    values = np.arange(12.0).reshape(3, 4)
    values[1, 2:] = np.nan
    values[2] = np.nan
    other = np.zeros((3, 4, 2))
    other[0, 3, 1] = np.inf
    assert list(analysis.last_finite_records(values)) == [3, 1, -1]
    assert list(analysis.last_finite_records(values, other)) == [2, 1, -1]
    np.testing.assert_array_equal(analysis.last_finite(values), [3.0, 5.0, np.nan])


def test_specialised_alignment_needs_every_matched_unit_on_its_teacher():
    assert analysis.specialised_alignment(R_SIGNED) == ((1, 0), (1.0, -1.0))
    assert analysis.specialised_alignment(0.1 * R_SIGNED) is None  # still on the plateau
    assert analysis.specialised_alignment(np.full((2, 2), np.nan)) is None


# --- power law ------------------------------------------------------------------------------


def test_fit_power_law_exact():
    N = np.array([250, 500, 1000, 2000])
    fit = analysis.fit_power_law(N, 3.0 * N**-0.5)
    assert fit.exponent == pytest.approx(-0.5, abs=1e-12)
    assert fit.prefactor == pytest.approx(3.0, rel=1e-10)
    assert fit.stderr == pytest.approx(0.0, abs=1e-10)
    two = analysis.fit_power_law([100, 400], [1.0, 0.5])
    assert two.exponent == pytest.approx(-0.5) and np.isnan(two.stderr)


def test_fit_power_law_noisy_within_error():
    rng = np.random.default_rng(3)
    N = np.geomspace(100, 10000, 12)
    hits = 0
    for _ in range(40):
        dev = 0.7 * N**-0.5 * np.exp(0.1 * rng.standard_normal(N.size))
        fit = analysis.fit_power_law(N, dev)
        assert 0 < fit.stderr < 0.1
        hits += abs(fit.exponent + 0.5) < 2 * fit.stderr
    assert hits >= 34  # about 95 % of the fits lie within two standard errors


def test_fit_power_law_ignores_bad_points_and_needs_two():
    fit = analysis.fit_power_law([100, 200, 400, 800], [1.0, np.nan, 0.5, 0.0])
    assert fit.n_points == 2 and fit.exponent == pytest.approx(-0.5)
    with pytest.raises(ValueError):
        analysis.fit_power_law([100, 100], [1.0, 2.0])


# --- tiny real runs -------------------------------------------------------------------------

TINY = dict(N=40, P=40, V=40, seeds=2, alpha_final=3.0, n_records=6)


@functools.cache
def _run(finite_v: bool = True, **overrides):
    """(sim, theory) of a tiny real run; the theory is FO-ANIL at the run's parameters."""
    from tsmeta.settings import SimSettings
    from tsmeta.simulation import simulate
    from tsmeta.tasks import initial_state
    from tsmeta.theory import theory_dataset

    params = RunParams(**{**TINY, **overrides})
    tasks = initial_state(params)
    sim = simulate(tasks, params, SimSettings(mc_tasks=10, mc_adapt=200, mc_test=200, mc_every=3))
    theory = theory_dataset(
        tasks, dataclasses.replace(params, algorithm="fo-anil"), {"finite_v": finite_v}
    )
    theory.attrs.update(params_to_attrs(params), theory_algorithm="fo-anil")
    return sim, theory


def _diverged_copy(sim, seed_index=0, from_record=3):
    """A simulation whose seed `seed_index` is marked diverged (NaN records), as the simulator
    leaves it."""
    sim = sim.copy(deep=True)
    for name in ("R", "Q", "w0", "eps_meta", "eps_meta_mc", "eps_meta_mc_err"):
        sim[name].values[seed_index, from_record:] = np.nan
    sim["diverged"].values[seed_index] = 1
    sim["alpha_diverged"].values[seed_index] = sim["alpha"].values[from_record]
    return sim


def test_stage_deviation_zero_for_identical_and_shrinking_with_perturbation():
    sim, theory = _run()
    same = theory.copy(deep=True)
    dev0 = analysis.stage_deviation(same, theory, level=1e-6)
    assert dev0["R"] == 0 and dev0["Q"] == 0 and dev0["log_eps"] == 0
    devs = []
    rng = np.random.default_rng(0)
    noise_R = rng.standard_normal(theory["R"].shape)
    noise_Q = rng.standard_normal(theory["Q"].shape)
    for scale in (1e-1, 1e-2, 1e-3):
        pert = theory.copy(deep=True)
        pert["R"].values = pert["R"].values + scale * noise_R
        pert["Q"].values = pert["Q"].values + scale * noise_Q
        pert["eps_meta"].values = pert["eps_meta"].values * (1 + scale)
        devs.append(analysis.stage_deviation(pert, theory, level=1e-6))
    for key in ("R", "Q", "log_eps"):
        values = [d[key] for d in devs]
        assert all(v > 0 for v in values)
        assert values[0] > values[1] > values[2]
        assert values[0] / values[2] == pytest.approx(100, rel=0.05)  # linear in the scale
    real = analysis.stage_deviation(sim, theory, level=1e-6)
    assert real["n_records"] >= 1 and real["R"] > 0 and np.isfinite(real["log_eps"])


def test_stage_deviation_window_and_diverged_seed():
    sim, theory = _run()
    alpha = theory["alpha"].values
    eps = theory["eps_meta"].values.copy()
    th = theory.copy(deep=True)
    eps[:, 3:] = 1e-4  # the theory "reaches" the level at record 3
    th["eps_meta"].values = eps
    dev = analysis.stage_deviation(sim, th, level=1e-3)
    assert dev["alpha_end"] == alpha[3] and dev["n_records"] == 3  # records 1, 2, 3
    broken = _diverged_copy(sim)
    dev = analysis.stage_deviation(broken, theory, level=1e-6)
    assert np.isfinite(dev["R"]) and np.isfinite(dev["Q"])


def test_escape_spread():
    sim, _ = _run()
    sim = sim.copy(deep=True)
    alpha = sim["alpha"].values
    eps = np.full(sim["eps_meta"].shape, 0.1)
    eps[0, 4:] = 1e-4
    eps[1, 2:] = 1e-4
    sim["eps_meta"].values = eps
    (spread,) = analysis.escape_spread([sim], 1e-3)
    assert spread.n_escaped == 2 and spread.n_seeds == 2
    assert spread.min == alpha[2] and spread.max == alpha[4]
    assert spread.mean == pytest.approx((alpha[2] + alpha[4]) / 2)
    assert spread.std == pytest.approx(np.std([alpha[2], alpha[4]], ddof=1))
    eps[1] = 0.1
    sim["eps_meta"].values = eps
    (one,) = analysis.escape_spread([sim], 1e-3)
    assert one.n_escaped == 1 and np.isnan(one.std) and one.mean == alpha[4]


def test_escape_deviation_is_the_rms_of_the_escape_pairs():
    sim, theory = _run()
    sim, theory = sim.copy(deep=True), theory.copy(deep=True)
    alpha = sim["alpha"].values
    eps = np.full(sim["eps_meta"].shape, 0.1)
    eps[0, 4:], eps[1, 2:] = 1e-4, 1e-4
    sim["eps_meta"].values = eps.copy()
    eps[0, 3:] = 1e-4  # the ODE escapes one record earlier on seed 0, on time on seed 1
    theory["eps_meta"].values = eps
    pairs = analysis.escape_pairs(sim, theory, 1e-3)
    rms, n = analysis.escape_deviation(sim, theory, 1e-3)
    assert n == 2 and rms == pytest.approx(abs(pairs["sim"][0] - pairs["ode"][0]) / np.sqrt(2))
    assert alpha[3] < pairs["sim"].values[0] <= alpha[4]
    assert analysis.escape_deviation(sim, None, 1e-3)[1] == 0
    assert np.isnan(analysis.escape_deviation(sim, theory, 1e-9)[0])  # nobody escapes


def test_comparison_row_without_a_comparison_is_nan():
    row = analysis.comparison_row(None, "any run")
    assert set(row) == set(analysis.STAGE_KEYS) and all(np.isnan(v) for v in row.values())


def test_run_arrangements_counts_seeds():
    sim, _ = _run()
    labels = analysis.run_arrangements(_diverged_copy(sim), 0.1)
    assert sum(labels.values()) == 2 and labels["diverged"] == 1


def test_overparameterization_families_come_from_the_options():
    options = OverparameterizationOptions(families={"(a)": [0, 1], "(b)": [0, 2], "empty": [7]})
    fam = overparameterization_families(options, 3)
    assert fam == {"(a)": [0, 1], "(b)": [0, 2]}  # a run may be in two panels
    default = OverparameterizationOptions()
    assert overparameterization_families(default, 3) == {"all runs": [0, 1, 2]}


def test_a_family_naming_a_missing_run_is_a_config_error():
    from tsmeta import config as tsconfig

    config = tsconfig.load(figures_root() / "config" / "test.yaml")
    config["experiments"]["overparameterization"]["figure"]["families"] = {"(a)": [0, 5]}
    with pytest.raises(tsconfig.ConfigError, match=r"figure.families.*\[5\].*0\.\.1"):
        tsconfig.validate(config)


def figures_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]


# --- figures ----------------------------------------------------------------------------------


def _draw(kind, sims, theories, extra=None, level=0.01, alpha_end=None, **options):
    """Draw as the workflow does: the comparison stage's compare.nc (the experiment's
    `compare` window: level, alpha_end), the figure's data, then the figure."""
    extra = dict(extra or {})
    if theories:
        every = {analysis.FULL_THEORY: theories, **extra.get("variants", {})}
        extra["compare"] = analysis.comparison(sims, every, level, alpha_end)
    inputs = FigureInputs("test", sims, theories, **extra)
    fig = figures.figure_of(inputs, {"kind": kind, **options})
    fig.canvas.draw()  # layout and rendering errors surface here
    n_axes = len(fig.axes)
    plt.close(fig)
    return n_axes


def test_draw_overparameterization():
    runs = [_run(K=3, eta_J=3.0, eta_w=9.0), _run(K=4, eta_J=3.0, eta_w=12.0)]
    runs.append(_run(K=4, eta_J=3 * np.sqrt(4 / 3), eta_w=9 * np.sqrt(4 / 3)))
    runs.append(_run(K=4, eta_J=60.0, eta_w=12.0))  # diverges: family (b)
    sims, theories = [r[0] for r in runs], [r[1] for r in runs]
    assert int(sims[-1]["diverged"].sum()) >= 1
    # two family panels, one heat map per run, one colour bar
    families = {"(a) both rates scaled": [0, 2], "(b) eta_w = 3K": [0, 1, 3]}
    assert _draw("overparameterization", sims, theories, families=families) == 2 + 4 + 1
    both = {"(a)": [0], "(b)": [0]}  # K = 3 is in both
    assert _draw("overparameterization", sims[:1], [], families=both) == 2 + 1 + 1


def test_draw_variability():
    runs = [_run(gamma=g) for g in (1.0, 0.9)]
    sims, theories = [r[0] for r in runs], [r[1] for r in runs]
    sims[1] = _diverged_copy(sims[1])
    assert _draw("variability", sims, theories) == 3
    assert _draw("variability", sims, []) == 3


def test_draw_algorithms():
    """One eps_meta and one rms R panel per eta_w, and the escape-factor panel; every run
    against its own theory (ANIL's ODE for ANIL and MAML)."""
    from tsmeta.io import params_from_attrs
    from tsmeta.tasks import initial_state
    from tsmeta.theory import theory_dataset

    algorithms = ("fo-anil", "anil", "maml", "fo-maml")
    sims = [_run(algorithm=a, alpha_final=1.0, eta_w=w)[0] for w in (4.5, 20.0) for a in algorithms]
    theories = []
    for sim in sims:
        p = params_from_attrs(sim.attrs)
        theories.append(theory_dataset(initial_state(p), p, {"finite_p": False}))
    own = [t.attrs["theory_algorithm"] for t in theories[:4]]
    assert own == ["fo-anil", "anil", "anil", "fo-anil"]
    assert _draw("algorithms", sims, theories) == 2 * 2 + 1
    assert _draw("algorithms", [_diverged_copy(sims[2])], theories[2:3]) == 3


def test_draw_finite_size():
    runs = [_run(N=n, P=n, V=n) for n in (20, 40, 80)]
    sims, theories = [r[0] for r in runs], [r[1] for r in runs]
    sims[0] = _diverged_copy(sims[0], from_record=5)
    assert _draw("finite_size", sims, theories, level=1e-6, escape_level=0.15) == 3
    assert _draw("finite_size", sims[:1], [], escape_level=1e-9) == 3  # no theory, no escape
    compare = analysis.comparison(sims, {analysis.FULL_THEORY: theories}, 1e-6)
    table = finite_size_table(compare, sims, 0.15)
    assert list(table["N"]) == [20, 40, 80]
    assert np.all(table["R"] > 0)
    compare = analysis.comparison(sims, {analysis.FULL_THEORY: theories}, 1e-6, alpha_end=1.0)
    fixed = finite_size_table(compare, sims, 0.15)
    assert np.all(fixed["alpha_end"] == 1.0) and np.all(fixed["R"] < table["R"])
    assert _draw("finite_size", sims, theories, alpha_end=1.0) == 3


def test_draw_finite_data():
    pv = [(40, 40), (40, 10), (10, 40), (10, 10)]
    runs = [_run(P=p, V=v) for p, v in pv]
    nofv = [_run(False, P=p, V=v)[1] for p, v in pv]
    sims, theories = [r[0] for r in runs], [r[1] for r in runs]
    sims[3] = _diverged_copy(sims[3])
    extra = {"variants": {"nofv": nofv}}
    assert _draw("finite_data", sims, theories, extra, level=1e-6) == 4 + 1
    assert _draw("finite_data", sims[:2], theories[:2]) == 2 + 1  # without the no-V variant
    assert _draw("finite_data", sims, theories, extra, alpha_end=1.0) == 4 + 1


def test_escape_deviation_of_shifted_escapes():
    escape_deviation = analysis.escape_deviation
    alpha = np.linspace(0, 10, 101)
    escape = np.array([3.0, 4.0, 5.0, np.inf])  # the last seed never escapes

    def ds(shift):
        eps = np.exp(-(alpha[None] / (escape[:, None] + shift)))  # crosses 1/e at escape+shift
        return xr.Dataset({"eps_meta": (("seed", "alpha"), eps)},
                          coords={"seed": [0, 1, 2, 3], "alpha": alpha})  # fmt: skip

    level = float(np.exp(-1))
    assert escape_deviation(ds(0.0), ds(0.0), level) == (pytest.approx(0.0, abs=1e-9), 3)
    # a shift of 0.5 of every seed's escape: RMS 0.5 (log-interpolated crossings, 1e-2 grid)
    dev, n = escape_deviation(ds(0.5), ds(0.0), level)
    assert n == 3 and dev == pytest.approx(0.5, abs=0.02)
    assert escape_deviation(ds(0.0), None, level)[1] == 0
