"""few_shot: what the figure draws (`figures.few_shot` paints it).

eps_P = eps_meta + (eta_w^2 / (2 P K)) tr(Sigma_bar A) (docs/theory.md, section 7). Per run
(dim `run`, ordered by P): the theory's eps_P on its trajectory (seed mean, on the
simulation's records), the simulation's Monte Carlo (seed mean and standard error, NaN on
records without one) and the final values. Against P (dim `curve`): the theory's final eps_P
and eps_meta (from the experiment's sweep over P, else from the theory runs) and the closed
form at the P = infinity fixed point.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from tsmeta.analysis import last_finite
from tsmeta.figure_data import alpha_axis, described, diverged_suffix, matched, nanmean, params
from tsmeta.theory import eps_meta_p_closed_form


def mc_points(sim):
    """Per record: mean over seeds of the Monte-Carlo eps_P and its standard error, NaN on
    records without a Monte-Carlo value."""
    mean = sim["eps_meta_p_mc"].values
    err = sim["eps_meta_p_mc_err"].values
    have = np.isfinite(mean).any(axis=0)
    count = np.isfinite(mean[:, have]).sum(axis=0)
    out_mean, out_se = np.full(len(have), np.nan), np.full(len(have), np.nan)
    with np.errstate(all="ignore"):
        out_se[have] = np.sqrt(np.nansum(err[:, have] ** 2, axis=0)) / np.maximum(count, 1)
    out_mean[have] = nanmean(mean[:, have], 0)
    return out_mean, out_se


def fixed_point_excess(p_values, base):
    """eps_P at the P = infinity fixed point (R = Q = T = I, w0 = 0; K = M only): the few-shot
    excess without the shrinkage of the norms that the finite-P term causes."""
    I = np.eye(base.K)
    return np.array(
        [
            float(eps_meta_p_closed_form(I, I, I, np.zeros(base.K), dataclasses.replace(base, P=P)))
            for P in p_values
        ]
    )


def _runs(sims, theories, xscale) -> dict:
    """Panel (a) and the simulation points of panel (b), per run in order of P."""
    order = np.argsort([params(s).P for s in sims])
    A = max((s.sizes["alpha"] for s in sims), default=0)
    shape = (len(sims), A)
    curves = {k: np.full(shape, np.nan) for k in ("x", "theory", "mc_mean", "mc_se")}
    finals = {k: np.full(len(sims), np.nan) for k in ("mc_mean", "mc_se", "closed", "theory")}
    labels = []
    for rank, i in enumerate(order):
        sim, theory, P = sims[i], theories[i], params(sims[i]).P
        n = sim.sizes["alpha"]
        curves["x"][rank, :n] = alpha_axis(sim["alpha"].values, xscale)
        if theory is not None:
            curves["theory"][rank, :n] = nanmean(theory["eps_meta_p"].values, 0)
            finals["theory"][rank] = nanmean(
                last_finite(theory["eps_meta_p"].values[..., None])[..., 0]
            )
        mean, se = mc_points(sim)
        curves["mc_mean"][rank, :n], curves["mc_se"][rank, :n] = mean, se
        have = np.flatnonzero(np.isfinite(mean))
        if len(have):
            finals["mc_mean"][rank], finals["mc_se"][rank] = mean[have[-1]], se[have[-1]]
        finals["closed"][rank] = nanmean(last_finite(sim["eps_meta_p"].values[..., None])[..., 0])
        labels.append(f"P={P}{diverged_suffix(sim)}")
    rec = ("run", "record")
    return {
        "P": ("run", np.array([params(sims[i]).P for i in order], dtype=int)),
        "label": ("run", np.array(labels, dtype=str)),
        "x": (rec, curves["x"]),
        "theory_eps_p": (rec, curves["theory"]),
        "mc_eps_p": (rec, curves["mc_mean"]),
        "mc_eps_p_se": (rec, curves["mc_se"]),
        "final_mc_eps_p": ("run", finals["mc_mean"]),
        "final_mc_eps_p_se": ("run", finals["mc_se"]),
        "final_closed_eps_p": ("run", finals["closed"]),
        "final_theory_eps_p": ("run", finals["theory"]),
    }


def data(inputs, options) -> xr.Dataset:
    """Everything the few_shot figure draws, for `figures.few_shot.paint`."""
    sims = list(inputs.sims)
    values = _runs(sims, matched(sims, inputs.theories), options.xscale)
    sweep = inputs.sweep
    if sweep is not None and "P" in sweep.dims and "eps_p_final" in sweep:
        source = "sweep"
        values["curve_P"] = ("curve", sweep["P"].values)
        values["curve_eps_p"] = ("curve", sweep["eps_p_final"].values)
        values["curve_eps"] = ("curve", sweep["eps_final"].values)
    elif sims:
        source = "runs"
        values["curve_P"] = ("curve", values["P"][1])
        values["curve_eps_p"] = ("curve", values["final_theory_eps_p"][1])
    else:
        source = "none"
    if sims:
        base = params(sims[0])
        if base.K == base.M and "curve_P" in values and base.inner_steps == 1:
            values["fixed_point_eps_p"] = ("curve", fixed_point_excess(values["curve_P"][1], base))
    alpha_end = params(sims[0]).alpha_final if sims else np.nan
    ds = xr.Dataset(values)
    described(ds, LONG_NAMES)
    ds.attrs.update(
        experiment=inputs.experiment,
        curve_source=source,
        xscale=options.xscale,
        note=f"final = alpha {alpha_end:g}; theory curve from one seed's initial overlaps "
        "(sweep), points: mean over seeds",
    )
    return ds


LONG_NAMES = {
    "x": "alpha = t/N (NaN where the alpha axis cannot show it)",
    "theory_eps_p": "theory few-shot error eps_P, mean over seeds",
    "mc_eps_p": "simulated few-shot error eps_P (Monte Carlo), mean over seeds",
    "mc_eps_p_se": "its standard error",
    "final_closed_eps_p": "final closed-form eps_P on the simulation's overlaps, seed mean",
    "curve_eps_p": "theory final few-shot error eps_P",
    "curve_eps": "theory final eps_meta (head adapted with P = infinity)",
    "fixed_point_eps_p": "eps_P at the P = infinity fixed point (closed form)",
}
