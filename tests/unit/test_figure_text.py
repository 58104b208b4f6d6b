"""Figure texts and layout of issue 16: mathtext symbols, a legend that covers no panel, a
colour key for the teacher units, and the theory relabelled by its own end in `dynamics`."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from tsmeta import figures  # noqa: E402
from tsmeta.figure_data import FigureInputs, compute  # noqa: E402
from tsmeta.figure_data.dynamics import assignments_differ  # noqa: E402
from tsmeta.io import (  # noqa: E402
    open_dataset,
    order_parameter_dataset,
    params_to_attrs,
    write_netcdf,  # noqa: E402
)
from tsmeta.params import RunParams  # noqa: E402


def draw(kind, sims, theories, figure=None, **extra):
    """The figure of `kind` as the workflow makes it: its data through a netCDF file, painted."""
    import tempfile
    from pathlib import Path

    figure = {"kind": kind, **(figure or {})}
    ds = compute(kind, FigureInputs("x", sims, theories, **extra), figure)
    with tempfile.TemporaryDirectory() as tmp:
        ds = open_dataset(write_netcdf(ds, Path(tmp) / "x.nc"), stage="figure_data")
    return figures.paint(ds, figure)


ALPHA = np.array([0.0, 1.0, 2.0, 4.0])


def _dataset(params: RunParams, R_end: np.ndarray, stage: str):
    """Seeds go linearly from R = 0.05 to R_end (Q = I, w0 = 0); eps_meta from 0.2 down."""
    S, A = params.seeds, len(ALPHA)
    ramp = (ALPHA / ALPHA[-1])[None, :, None, None]
    R = 0.05 + ramp * (np.broadcast_to(R_end, (S, params.K, params.M))[:, None] - 0.05)
    Q = np.broadcast_to(np.eye(params.K), (S, A, params.K, params.K)).copy()
    eps = np.broadcast_to(0.2 * np.exp(-ALPHA), (S, A)).copy()
    values = {"R": R, "Q": Q, "w0": np.zeros((S, A, params.K)),
              "T": np.broadcast_to(np.eye(params.M), (S, params.M, params.M)).copy(),
              "eps_meta": eps, "diverged": np.zeros(S, np.int8),
              "alpha_diverged": np.full(S, np.nan)}  # fmt: skip
    if stage == "simulate":
        values.update(eps_meta_mc=eps * 1.1, eps_meta_mc_err=eps * 0.01)
    ds = order_parameter_dataset(values, list(range(S)), params.K, params.M, alpha=ALPHA)
    ds.attrs.update(params_to_attrs(params), stage=stage)
    return ds


SWAP = np.array([[0.0, 1.0], [1.0, 0.0]])


def _symmetric_pair():
    p = RunParams(K=2, M=2, seeds=3, init="symmetric")
    sim = _dataset(p, np.eye(2), "simulate")
    theory = _dataset(p, np.stack([SWAP, np.eye(2), -SWAP]), "theory")  # seeds 0, 2 differ
    return sim, theory


def test_assignments_differ_counts_specialised_seeds_only():
    sim, theory = _symmetric_pair()
    assert assignments_differ(sim, theory) == 2
    assert assignments_differ(sim, sim) == 0
    flat = _dataset(RunParams(K=2, M=2, seeds=3), np.full((2, 2), 0.1), "theory")
    assert assignments_differ(sim, flat) == 0  # on the plateau: no assignment to compare


def test_dynamics_relabels_the_theory_by_its_own_end():
    """With the simulation's labels the theory's R_kk would end at 1/3 (two seeds of three
    swapped); relabelled by its own end every seed's R_kk ends at 1."""
    sim, theory = _symmetric_pair()
    fig = draw("dynamics", [sim], [theory])
    ax_r = fig.axes[1]
    dashed = [line for line in ax_r.get_lines() if line.get_linestyle() == "--"]
    ends = sorted(float(line.get_ydata()[-1]) for line in dashed)
    np.testing.assert_allclose(ends, [0.0, 0.0, 1.0, 1.0], atol=1e-12)
    assert "specialised onto different teacher units in 2 of 3 seeds" in ax_r.get_title("left")
    plt.close(fig)


def test_dynamics_legend_keys_the_teacher_units_and_covers_no_panel():
    sim, theory = _symmetric_pair()
    fig = draw("dynamics", [sim, sim], [theory])
    fig.canvas.draw()
    (legend,) = fig.legends
    labels = [t.get_text() for t in legend.get_texts()]
    assert {r"teacher unit $n = 0$", r"teacher unit $n = 1$", "theory (ODE)"} <= set(labels)
    renderer = fig.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    assert box.x1 <= fig.bbox.x1  # inside the figure
    for ax in fig.axes:
        assert not box.overlaps(ax.get_window_extent(renderer)), ax
        assert ax.get_legend() is None  # no legend inside a panel
    plt.close(fig)


# ---------------------------------------------------------------- mathtext in every text
MATH = re.compile(r"\$[^$]*\$")
PLAIN_SYMBOL = re.compile(r"[A-Za-z]_[A-Za-z{]|[ηεγα]")  # eta_J, eps_meta, R_kn, Greek letters


def _plain_texts(fig):
    fig.canvas.draw()
    for text in fig.findobj(Text):
        plain = MATH.sub("", text.get_text())
        if text.get_visible() and PLAIN_SYMBOL.search(plain):
            yield text.get_text()


def _runs(**changes):
    base = dict(K=2, M=2, seeds=2, eta_J=3.0, eta_w=6.0)
    return [RunParams(**{**base, **c}) for c in changes.get("runs", [{}])]


@pytest.mark.parametrize(
    "kind,runs",
    [
        ("dynamics", [{}, {"init": "symmetric"}]),
        ("overparameterization", [{}, {"K": 3, "eta_w": 9.0}]),
        ("variability", [{}, {"gamma": 0.9}]),
    ],
)
def test_figure_texts_write_symbols_in_mathtext(kind, runs):
    plist = _runs(runs=runs)
    sims = [_dataset(p, np.eye(p.K, p.M), "simulate") for p in plist]
    theories = [_dataset(p, np.eye(p.K, p.M), "theory") for p in plist]
    fig = draw(kind, sims, theories)
    assert list(_plain_texts(fig)) == []
    plt.close(fig)


def test_phase_diagram_texts_write_symbols_in_mathtext():
    from tsmeta.theory.sweeps import run_sweep

    base = RunParams(K=2, M=2, N=40, P=40, V=40, seeds=1, alpha_final=2.0).to_dict()
    sweep = run_sweep({"base": base, "grid": {"eta_J": [1.0, 3.0], "eta_w": [3.0, 6.0],
                                              "gamma": [1.0, 0.9]}},
                      {"rtol": 1e-6, "atol": 1e-8}, n_fine=20, n_coarse=5)  # fmt: skip
    from tsmeta.figure_data import FigureInputs
    from tsmeta.figures import figure_of

    fig = figure_of(FigureInputs("x", [], [], sweep=sweep), {"kind": "phase_diagram"})
    texts = list(_plain_texts(fig))
    assert texts == []
    titles = [ax.get_title("left") for ax in fig.axes if ax.get_title("left")]
    assert any(r"$\gamma$=0.9" in t for t in titles)
    plt.close(fig)


def _displayed_strings(value):
    """Texts a config hands a figure to draw (panel titles, row notes): the strings with a
    space in them; option names and choices such as `xscale: linear` have none."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _displayed_strings(key)
            yield from _displayed_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _displayed_strings(item)
    elif isinstance(value, str) and " " in value:
        yield value


@pytest.mark.parametrize("name", ["config.yaml", "paper.yaml"])
def test_shipped_config_figure_texts_write_symbols_in_mathtext(name):
    """Texts from the config reach the figures as they are written: a plain `η_J` there shows
    an underscore (overparameterization's panel title did)."""
    from pathlib import Path

    from tsmeta.config import load

    config = load(Path(__file__).parents[2] / "config" / name)
    texts = [
        (exp, text)
        for exp, entry in config["experiments"].items()
        for text in _displayed_strings(entry.get("figure", {}))
    ]
    assert texts, "no figure text found: the walk is broken"
    assert [(exp, t) for exp, t in texts if PLAIN_SYMBOL.search(MATH.sub("", t))] == []


def test_finite_size_draws_the_window_of_its_comparison():
    """The deviation window is the experiment's `compare` key, read from compare.nc (it was a
    figure option): the panel title and the window line follow it."""
    from tsmeta.analysis import FULL_THEORY, comparison

    plist = _runs(runs=[{}, {"N": 400}])
    sims = [_dataset(p, np.eye(2) * 0.9, "simulate") for p in plist]
    theories = [_dataset(p, np.eye(2), "theory") for p in plist]
    compare = comparison(sims, {FULL_THEORY: theories}, 0.01, 2.0)
    fig = draw("finite_size", sims, theories, compare=compare)
    ax_e, ax_d, _ = fig.axes[:3]
    assert ax_d.get_title("left") == "0 < α ≤ 2"
    window = [line for line in ax_e.get_lines() if line.get_linestyle() == "-."]
    assert [float(line.get_xdata()[0]) for line in window] == [2.0]
    plt.close(fig)


def test_finite_data_draws_every_theory_of_its_comparison():
    """A variant's curve is named by the terms it lacks; one bar per run, theory and quantity."""
    from tsmeta.analysis import FULL_THEORY, comparison

    plist = _runs(runs=[{}, {"P": 10}])
    sims = [_dataset(p, np.eye(2) * 0.9, "simulate") for p in plist]
    full = [_dataset(p, np.eye(2), "theory") for p in plist]
    nofv = [_dataset(p, np.eye(2) * 0.8, "theory") for p in plist]
    for ds in full:
        ds.attrs["terms"] = "base,finite_v"
    for ds in nofv:
        ds.attrs["terms"] = "base"
    compare = comparison(sims, {FULL_THEORY: full, "nofv": nofv}, 0.01, None)
    fig = draw("finite_data", sims, full, variants={"nofv": nofv}, compare=compare)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels[1:] == ["theory (all terms)", "theory without finite-V term"]
    bars = fig.axes[-1].patches
    assert len(bars) == 2 * 2 * 3
    plt.close(fig)


@pytest.mark.parametrize("rates,shown", [((0.5, 0.6, 0.4), "+0.5"), ((0.1, 0.2, 0.1), None),
                                         ((-0.5, -0.6, -0.4), None)])  # fmt: skip
def test_dynamics_marks_a_theory_that_ends_on_an_unstable_state(rates, shown):
    """The eps panel names the median growth rate of the theory's end state where it
    amplifies a deviation by more than e over the run (lambda * alpha_final > 1, alpha_final
    = 4 here); the note explains it, in mathtext."""
    sim, theory = _symmetric_pair()
    theory["growth_rate_end"] = ("seed", np.array(rates))
    fig = draw("dynamics", [sim], [theory])
    texts = [t.get_text() for t in fig.axes[0].texts]
    marked = [t for t in texts if t.startswith("theory ends unstable")]
    if shown is None:
        assert not marked
    else:
        assert marked == [f"theory ends unstable:\n$\\lambda$ = {shown}"]
        assert any("drift Jacobian" in t.get_text() for t in fig.texts)
        assert not list(_plain_texts(fig))
    plt.close(fig)


def test_activations_names_a_theory_that_ends_on_an_unstable_state():
    """The activations figure puts the same mark in the run's legend entry, and the note."""
    p = RunParams(K=2, M=2, seeds=3)
    sim, theory = _dataset(p, np.eye(2), "simulate"), _dataset(p, np.eye(2), "theory")
    theory["growth_rate_end"] = ("seed", np.array([0.5, 0.6, 0.4]))
    fig = draw("activations", [sim], [theory])
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["erf, theory ends unstable: $\\lambda$ = +0.5"]
    assert any("drift Jacobian" in t.get_text() for t in fig.texts)
    plt.close(fig)
    theory["growth_rate_end"] = ("seed", np.array([0.1, 0.1, 0.1]))  # 0.1 * alpha_final < 1
    fig = draw("activations", [sim], [theory])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["erf"]
    assert not any("drift Jacobian" in t.get_text() for t in fig.texts)
    plt.close(fig)
