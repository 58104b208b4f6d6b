"""The workflow's figures from Python: one function per figure kind, and `figure` for a figure's
data file.

    sim = tsmeta.simulate(params)
    fig = tsmeta.plot.dynamics([sim], [tsmeta.theory_of(sim)])
    fig = tsmeta.plot.figure("results/figures/fig2_dynamics.nc")

Each kind function is the workflow's two steps without files: the kind's data
(`tsmeta.figure_data.<kind>.data`) from the Datasets given, then its painting
(`tsmeta.figures.<kind>.paint`). The functions come from the registry
(`tsmeta.figure_kinds.KINDS`), so a new kind is here as soon as it is registered.
"""

from __future__ import annotations

import os
from pathlib import Path

import xarray as xr

from tsmeta.figure_kinds import KINDS, option_defaults
from tsmeta.params import FIRST_STAGE_LEVEL


def draw(
    kind: str,
    sims=(),
    theories=(),
    *,
    variants: dict | None = None,
    compare: xr.Dataset | None = None,
    sweep: xr.Dataset | None = None,
    level: float = FIRST_STAGE_LEVEL,
    alpha_end: float | None = None,
    experiment: str | None = None,
    **options,
):
    """The matplotlib Figure of figure kind `kind` drawn from simulation and theory Datasets.

    Parameters
    ----------
    kind : str
        A figure kind (`tsmeta.figure_kinds.KINDS`).
    sims, theories : sequence of xarray.Dataset
        Simulations (`tsmeta.simulate`) and their theories (`tsmeta.theory_of`), matched by
        run name.
    variants : dict, optional
        ``{label: [theory Datasets]}``: theory variants (e.g. without the finite-V term).
    compare : xarray.Dataset, optional
        The comparison stage's Dataset; computed from sims and theories where not given.
    sweep : xarray.Dataset, optional
        A theory sweep (`tsmeta.theory.sweeps.run_sweep`), for rates_vs_K and phase_diagram.
    level, alpha_end : float, optional
        The first-stage window of the computed comparison (the experiment key `compare`).
    experiment : str, optional
        The figure's title where no `title` option is given (default: the kind).
    **options
        The kind's figure options, as a config's `figure` entry writes them.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from tsmeta import analysis
    from tsmeta.figure_data import FigureInputs
    from tsmeta.figures import figure_of

    if kind not in KINDS:
        raise ValueError(f"figure kind must be one of {sorted(KINDS)}, got {kind!r}")
    sims, theories, variants = list(sims), list(theories or []), dict(variants or {})
    if compare is None and sims and theories:
        every = {analysis.FULL_THEORY: theories, **variants}
        compare = analysis.comparison(sims, every, level, alpha_end)
    inputs = FigureInputs(experiment or kind, sims, theories, variants, compare, sweep)
    return figure_of(inputs, {"kind": kind, **options})


def figure(data: str | os.PathLike | xr.Dataset, **options):
    """The Figure of a figure's data: a results/figures/<name>.nc path, its Dataset, or
    `tsmeta.open_experiment(...)` (its `figure`); `options` override the paint options."""
    import json

    from tsmeta.figures import paint
    from tsmeta.io import open_dataset

    if hasattr(data, "figure") and not isinstance(data, xr.Dataset):
        data = data.figure
    if data is None:
        raise FileNotFoundError("this experiment has no figure data yet (run the workflow)")
    ds = data if isinstance(data, xr.Dataset) else open_dataset(Path(data), stage="figure_data")
    return paint(ds, {"kind": ds.attrs["kind"]} | json.loads(ds.attrs["data_options"]) | options)


def _kind_function(kind: str):
    def plot_kind(sims=(), theories=(), **kwargs):
        return draw(kind, sims, theories, **kwargs)

    options = ", ".join(f"{k}={v!r}" for k, v in option_defaults(kind).items())
    plot_kind.__name__ = plot_kind.__qualname__ = kind
    plot_kind.__doc__ = (
        f"The {kind} figure: {KINDS[kind].caption}\n\n"
        f"Arguments as `tsmeta.plot.draw`; options (defaults): {options}."
    )
    return plot_kind


globals().update({kind: _kind_function(kind) for kind in KINDS})
__all__ = ["draw", "figure", *KINDS]
