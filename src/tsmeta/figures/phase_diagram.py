"""phase_diagram: heat maps over (eta_J, eta_w) of log10 eps_meta at alpha_final and of the
alpha at which eps_meta first falls below the first level (hatched where it never does), from
a theory sweep; diverged members and members whose units did not specialise marked, the line
eta_w = 3K drawn, simulations as spot checks. Further grid axes give one row per value."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.patches import Rectangle

from tsmeta.figures.style import (
    TEX,
    combos,
    finish,
    selection_label,
    sim_reached,
    spot_check,
    sweep_levels,
    sweep_of,
)
from tsmeta.io import params_from_attrs


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    v = np.log(values) if log else np.asarray(values, dtype=float)
    if len(v) == 1:
        mid = np.array([v[0] - 0.5, v[0] + 0.5]) if not log else np.array([v[0] - 0.1, v[0] + 0.1])
    else:
        inner = 0.5 * (v[1:] + v[:-1])
        mid = np.concatenate([[2 * v[0] - inner[0]], inner, [2 * v[-1] - inner[-1]]])
    return np.exp(mid) if log else mid


def _is_log(values) -> bool:
    v = np.asarray(values, dtype=float)
    return bool(np.all(v > 0) and v.max() / v.min() > 5)


def specialised(R: np.ndarray) -> np.ndarray:
    """Whether the student units cover min(K, M) distinct teachers: R (..., K, M), NaN-padded."""
    R = np.asarray(R, dtype=float)
    out = np.zeros(R.shape[:-2], dtype=bool)
    for pos in np.ndindex(out.shape):
        r = R[pos]
        r = r[np.isfinite(r).any(axis=1)][:, np.isfinite(r).any(axis=0)]
        if r.size == 0 or not np.isfinite(r).all():
            continue
        out[pos] = len(set(np.abs(r).argmax(axis=1))) == min(r.shape)
    return out


def _math_label(sel: dict) -> str:
    """`selection_label` with the Greek parameters (TEX) as mathtext symbols."""
    return ", ".join(
        (f"${TEX[k]}$" if k in TEX else k) + "=" + selection_label({k: v}).split("=", 1)[1]
        for k, v in sel.items()
    )


def draw_phase_diagram(experiment, options, sims, theories, extra=None):
    ds = sweep_of(extra)
    base = params_from_attrs(ds.attrs)
    for axis in ("eta_J", "eta_w"):
        if axis not in ds["eps_final"].dims:
            raise ValueError(f"phase_diagram needs a sweep grid with an {axis} axis")
    level = sweep_levels(ds, options)[0]
    rows = combos(ds["eps_final"], skip=("eta_J", "eta_w"))
    fig, axes = plt.subplots(
        len(rows), 2, figsize=(11.5, 4.3 * len(rows)), squeeze=False, layout="constrained"
    )
    xj, yw = ds["eta_J"].values.astype(float), ds["eta_w"].values.astype(float)
    xlog, ylog = _is_log(xj), _is_log(yw)
    xe, ye = _edges(xj, xlog), _edges(yw, ylog)
    XJ, YW = np.meshgrid(xj, yw)
    # colour scales shared by all rows
    with np.errstate(all="ignore"):
        all_log_eps = np.log10(ds["eps_final"].values)
    all_cross = ds["alpha_to_level"].sel(level=level).values
    all_cross = all_cross[np.isfinite(all_cross) & (all_cross > 0)]
    finite_eps = all_log_eps[np.isfinite(all_log_eps)]
    eps_range = (finite_eps.min(), finite_eps.max()) if len(finite_eps) else (None, None)
    norm = LogNorm(all_cross.min(), all_cross.max()) if len(all_cross) else None
    for row, sel in zip(axes, rows):
        d = ds.sel(sel) if sel else ds
        K = int(sel.get("K", base.K))
        eps = d["eps_final"].transpose("eta_w", "eta_J").values
        cross = d["alpha_to_level"].sel(level=level).transpose("eta_w", "eta_J").values
        div = d["diverged"].transpose("eta_w", "eta_J").values.astype(bool)
        spec = specialised(d["R"].transpose("eta_w", "eta_J", "k", "n").values)
        with np.errstate(all="ignore"):
            log_eps = np.log10(eps)
        ax_e, ax_a = row
        m = ax_e.pcolormesh(
            xe,
            ye,
            np.ma.masked_invalid(log_eps),
            cmap="viridis",
            shading="flat",
            vmin=eps_range[0],
            vmax=eps_range[1],
        )
        fig.colorbar(m, ax=ax_e, label=r"$\log_{10}\varepsilon_{\rm meta}$ at $\alpha_{\rm final}$")
        m = ax_a.pcolormesh(
            xe, ye, np.ma.masked_invalid(cross), cmap="magma_r", norm=norm, shading="flat"
        )
        fig.colorbar(
            m, ax=ax_a, label=rf"first $\alpha$ with $\varepsilon_{{\rm meta}} < {level:g}$"
        )
        ax_a.add_patch(
            Rectangle(
                (xe[0], ye[0]),
                xe[-1] - xe[0],
                ye[-1] - ye[0],
                fill=False,
                hatch="///",
                color="lightgrey",
                lw=0,
                zorder=0,
            )
        )
        ax_a.text(
            0.01,
            0.01,
            rf"hatched: never below {level:g} by $\alpha$ = {base.alpha_final:g}",
            transform=ax_a.transAxes,
            fontsize=7,
            color="dimgrey",
        )
        for ax in row:
            if div.any():
                ax.plot(
                    XJ[div], YW[div], "x", color="red", ms=6, mew=1.5, ls="none", label="diverged"
                )
            ok = ~spec & ~div
            if ok.any() and ax is ax_e:
                ax.plot(
                    XJ[ok],
                    YW[ok],
                    "o",
                    mfc="none",
                    mec="white",
                    ms=5,
                    ls="none",
                    label="units not specialised",
                )
            ax.axhline(
                3 * K,
                color="white" if ax is ax_e else "black",
                ls="--",
                lw=1,
                label=rf"$\eta_w = 3K = {3 * K}$",
            )
            _phase_spot_checks(ax, sims, sel, level)
            ax.set_xscale("log" if xlog else "linear")
            ax.set_yscale("log" if ylog else "linear")
            ax.set_xlim(xe[0], xe[-1])
            ax.set_ylim(ye[0], ye[-1])
            ax.set_xlabel(r"$\eta_J$")
            ax.set_ylabel(r"$\eta_w$")
            ax.legend(fontsize=7, loc="upper left", framealpha=0.6)
        shown = {"K": K, "M": base.M, "N": base.N, "init": base.init, **sel}
        ax_e.set_title(_math_label(shown), fontsize=9, loc="left")
    return finish(
        fig,
        experiment,
        options,
        f"theory (ODE) from seed {base.seed_offset}'s initial overlaps; stars: "
        r"simulation spot checks, filled if the mean $\varepsilon_\mathrm{meta}$ fell below "
        f"{level:g}",
    )


def _phase_spot_checks(ax, sims, sel, level):
    for sim in sims or []:
        p = params_from_attrs(sim.attrs)
        if any(str(getattr(p, k, v)) != str(v) for k, v in sel.items()):
            continue
        spot_check(ax, p.eta_J, p.eta_w, sim_reached(sim, level))
