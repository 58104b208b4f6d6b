"""phase_diagram: what the figure draws (`figures.phase_diagram` paints it).

From a theory sweep with eta_J and eta_w axes, one row (dim `row`) per value of the further
grid axes: log10 eps_meta at alpha_final and the alpha at which eps_meta first falls below
the first level on the (eta_w, eta_J) grid, which members diverged and which did not
specialise, the cell edges, the exact head rate (3K for erf), the row's title; the
simulations of the experiment as spot checks (dim `spot`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from tsmeta.activations import DEFAULT_ACTIVATION, activation
from tsmeta.analysis import specialised
from tsmeta.figure_data import (
    TEX,
    combos,
    required_sweep,
    selection_label,
    sim_reached,
    sweep_levels,
)
from tsmeta.io import params_from_attrs


def edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around the grid values (midpoints, in log where the axis is log)."""
    v = np.log(values) if log else np.asarray(values, dtype=float)
    if len(v) == 1:
        mid = np.array([v[0] - 0.5, v[0] + 0.5]) if not log else np.array([v[0] - 0.1, v[0] + 0.1])
    else:
        inner = 0.5 * (v[1:] + v[:-1])
        mid = np.concatenate([[2 * v[0] - inner[0]], inner, [2 * v[-1] - inner[-1]]])
    return np.exp(mid) if log else mid


def is_log(values) -> bool:
    """Whether a positive grid spans more than a factor 5 (drawn on a log axis)."""
    v = np.asarray(values, dtype=float)
    return bool(np.all(v > 0) and v.max() / v.min() > 5)


def math_label(sel: dict) -> str:
    """`selection_label` with the Greek parameters (TEX) as mathtext symbols."""
    return ", ".join(
        (f"${TEX[k]}$" if k in TEX else k) + "=" + selection_label({k: v}).split("=", 1)[1]
        for k, v in sel.items()
    )


def _spot_checks(sims, rows, level) -> dict:
    """The simulations on each row's map: (row, eta_J, eta_w, reached)."""
    found = []
    for r, sel in enumerate(rows):
        for sim in sims or []:
            p = params_from_attrs(sim.attrs)
            if any(str(getattr(p, k, v)) != str(v) for k, v in sel.items()):
                continue
            found.append((r, p.eta_J, p.eta_w, int(sim_reached(sim, level))))
    row, eta_J, eta_w, reached = (list(c) for c in zip(*found)) if found else ([], [], [], [])
    return {
        "spot_row": ("spot", np.array(row, dtype=int)),
        "spot_eta_J": ("spot", np.array(eta_J, dtype=float)),
        "spot_eta_w": ("spot", np.array(eta_w, dtype=float)),
        "spot_reached": ("spot", np.array(reached, dtype=np.int8)),
    }


def _range(values) -> tuple[float, float]:
    """Smallest and largest finite value (NaN, NaN if none)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    return (float(v.min()), float(v.max())) if len(v) else (np.nan, np.nan)


def data(inputs, options) -> xr.Dataset:
    """Everything the phase_diagram figure draws, for `figures.phase_diagram.paint`."""
    ds = required_sweep(inputs.sweep)
    base = params_from_attrs(ds.attrs)
    for axis in ("eta_J", "eta_w"):
        if axis not in ds["eps_final"].dims:
            raise ValueError(f"phase_diagram needs a sweep grid with an {axis} axis")
    level = sweep_levels(ds, options.thresholds)[0]
    rows = combos(ds["eps_final"], skip=("eta_J", "eta_w"))
    xj, yw = ds["eta_J"].values.astype(float), ds["eta_w"].values.astype(float)
    xlog, ylog = is_log(xj), is_log(yw)
    base_g = getattr(base, "activation", DEFAULT_ACTIVATION)
    grids = {"log10_eps": [], "alpha_to_level": [], "diverged": [], "specialised": []}
    Ks, titles, exact = [], [], []
    for sel in rows:
        d = ds.sel(sel) if sel else ds
        K = int(sel.get("K", base.K))
        g = activation(str(sel.get("activation", base_g)))  # a grid may have an activation axis
        rate = g.exact_head_rate(K, 1)
        exact.append(np.nan if rate is None else rate)  # relu: no exact one-step head
        with np.errstate(all="ignore"):
            grids["log10_eps"].append(np.log10(d["eps_final"].transpose("eta_w", "eta_J").values))
        cross = d["alpha_to_level"].sel(level=level).transpose("eta_w", "eta_J").values
        grids["alpha_to_level"].append(cross)
        grids["diverged"].append(d["diverged"].transpose("eta_w", "eta_J").values.astype(bool))
        grids["specialised"].append(
            specialised(d["R"].transpose("eta_w", "eta_J", "k", "n").values, g.odd)
        )
        Ks.append(K)
        titles.append(math_label({"K": K, "M": base.M, "N": base.N, "init": base.init, **sel}))
    cross_all = ds["alpha_to_level"].sel(level=level).values
    cross_all = cross_all[np.isfinite(cross_all) & (cross_all > 0)]
    grid_dims = ("row", "eta_w", "eta_J")
    out = xr.Dataset(
        {
            "log10_eps": (grid_dims, np.array(grids["log10_eps"]),
                          {"long_name": "log10 eps_meta at alpha_final", "units": "1"}),
            "alpha_to_level": (grid_dims, np.array(grids["alpha_to_level"]),
                               {"long_name": f"first alpha with eps_meta < {level:g}",
                                "units": "1"}),
            "diverged": (grid_dims, np.array(grids["diverged"], dtype=np.int8)),
            "specialised": (grid_dims, np.array(grids["specialised"], dtype=np.int8),
                            {"long_name": "student units cover min(K, M) teacher units"}),
            "eta_J_edges": ("eta_J_edge", edges(xj, xlog)),
            "eta_w_edges": ("eta_w_edge", edges(yw, ylog)),
            "K": ("row", np.array(Ks, dtype=int)),
            "eta_w_exact": ("row", np.array(exact, dtype=float),
                            {"long_name": "head rate of an exact inner step (3K for erf)"}),
            "title": ("row", np.array(titles, dtype=str)),
            **_spot_checks(inputs.sims, rows, level),
        },
        coords={"eta_J": xj, "eta_w": yw},
    )  # fmt: skip
    out.attrs.update(
        experiment=inputs.experiment,
        level=level,
        alpha_final=base.alpha_final,
        eta_J_log=int(xlog),
        eta_w_log=int(ylog),
        log10_eps_range=list(_range(out["log10_eps"].values)),
        alpha_to_level_range=list(_range(cross_all)),
        note=f"theory (ODE) from seed {base.seed_offset}'s initial overlaps; stars: "
        r"simulation spot checks, filled if the mean $\varepsilon_\mathrm{meta}$ fell below "
        f"{level:g}",
    )
    return out
