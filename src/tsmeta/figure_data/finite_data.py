"""Data of the finite-data figure: simulations at a few P and V (bands) against the theory
and its variants (means), and the first-stage deviation of each theory per run (compare.nc)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from tsmeta import analysis
from tsmeta.figure_data import (
    FigureInputs,
    compare_window,
    diverged_count,
    matched,
    nanmean,
    padded,
    params,
    seed_band,
)

# how a right-hand-side term is named in a legend (rhs.TERMS); others: the name, "-" for "_"
TERM_NAMES = {"finite_v": "finite-V term", "finite_p": "1/P term", "second_order": "2nd order"}
QUANTITIES = ("R", "Q", "log_eps")


def term_name(term: str) -> str:
    return TERM_NAMES.get(term, term.replace("_", "-"))


def variant_label(variant, full) -> str:
    """'theory without <its missing terms>' from the `terms` attributes of both theories."""
    missing = [t for t in full.attrs.get("terms", "").split(",") if t]
    missing = [t for t in missing if t not in variant.attrs.get("terms", "").split(",")]
    return "theory without " + (" and ".join(map(term_name, missing)) or "changes")


def compare_label(label: str, variants: dict, full) -> str:
    """Legend name of a theory of compare.nc: 'full', or 'w/o <missing terms>' of a variant."""
    ts = [t for t in variants.get(label, []) if t is not None]
    f = next((t for t in full if t is not None), None)
    if not ts or f is None:
        return label
    return variant_label(ts[0], f).replace("theory without ", "w/o ")


def theory_mean(theory, n_records: int) -> np.ndarray:
    return np.full(n_records, np.nan) if theory is None else nanmean(theory["eps_meta"].values, 0)


def curves(sims, full, variants: dict) -> xr.Dataset:
    """Per run: the simulation's band, the full theory's and every variant's mean (a variant
    only where the run has both it and the full theory)."""
    runs = [sim.attrs["run_name"] for sim in sims]
    bands = [seed_band(sim["eps_meta"].values) for sim in sims]
    n_records = [sim.sizes["alpha"] for sim in sims]
    ds = xr.Dataset(coords={"run": runs, "variant": list(variants)})
    for name, arrays in (
        ("alpha", [sim["alpha"].values for sim in sims]),
        *((f"eps_{part}", [b[j] for b in bands]) for j, part in enumerate(("mean", "lo", "hi"))),
        ("eps_theory", [theory_mean(t, n) for t, n in zip(full, n_records)]),
    ):
        ds[name] = (("run", "record"), padded(arrays))
    both = [[ts[i] is not None and full[i] is not None for ts in variants.values()]
            for i in range(len(sims))]  # fmt: skip
    variant_eps = []
    for i, n in enumerate(n_records):
        means = np.full((len(variants), n), np.nan)
        for v, (ts, ok) in enumerate(zip(variants.values(), both[i])):
            if ok:
                means[v] = theory_mean(ts[i], n)
        variant_eps.append(means)
    ds["variant_eps"] = (("run", "variant", "record"), padded(variant_eps))
    ds["variant_label"] = (("run", "variant"), np.array([
        [variant_label(ts[i], full[i]) if ok else "" for ts, ok in zip(variants.values(), row)]
        for i, row in enumerate(both)
    ], dtype=object).reshape(len(sims), len(variants)))  # fmt: skip
    ds["has_theory"] = ("run", [t is not None for t in full])
    ds["n_records"] = ("run", n_records)
    ds["diverged"] = ("run", [diverged_count(sim) for sim in sims])
    ds["seeds"] = ("run", [sim.sizes["seed"] for sim in sims])
    ds["P"] = ("run", [params(sim).P for sim in sims])
    ds["V"] = ("run", [params(sim).V for sim in sims])
    return ds


def deviations(sims, compare, names: dict) -> xr.Dataset:
    """First-stage RMS of every run against every theory of compare.nc (`comparison_row`)."""
    labels = list(names)
    dev = np.full((len(sims), len(labels), len(QUANTITIES)), np.nan)
    for i, sim in enumerate(sims):
        for v, label in enumerate(labels):
            row = analysis.comparison_row(compare, sim.attrs["run_name"], label)
            dev[i, v] = [row[key] for key in QUANTITIES]
    ds = xr.Dataset(coords={"theory": labels, "quantity": list(QUANTITIES)})
    ds["deviation"] = (("run", "theory", "quantity"), dev)
    ds["theory_name"] = ("theory", np.array([names[label] for label in labels], dtype=object))
    return ds


def data(inputs: FigureInputs, options) -> xr.Dataset:
    sims = inputs.sims
    full = matched(sims, inputs.theories)
    variants = {label: matched(sims, ts) for label, ts in inputs.variants.items()}
    compare = inputs.compare
    labels = [] if compare is None else [str(t) for t in compare["theory"].values]
    names = {label: compare_label(label, inputs.variants, full) for label in labels}
    ds = curves(sims, full, variants)
    ds = ds.merge(deviations(sims, compare, names).assign_coords(run=ds["run"]))
    level, alpha_end = compare_window(compare)
    terms = full[0].attrs.get("terms_included", "") if sims and full[0] is not None else ""
    ds.attrs.update(first_stage_level=level, terms_included=terms)
    ds.attrs["first_stage_alpha"] = "none" if alpha_end is None else alpha_end
    return ds
