"""The theory stage's Dataset: one ODE trajectory per seed from that seed's initial overlaps."""

from __future__ import annotations

import time

import numpy as np
import xarray as xr

from tsmeta.io import order_parameter_dataset, params_to_attrs
from tsmeta.params import RunParams
from tsmeta.settings import TheorySettings, attrs_of
from tsmeta.theory.integrator import integrate
from tsmeta.theory.rhs import TERMS

# long names and units come from tsmeta.io (shared with the simulation)
_DESCRIPTIONS = {
    "R": "ODE solution",
    "Q": "ODE solution",
    "w0": "ODE solution",
    "T": "constant; from the tasks file",
    "eps_meta": (
        "head adapted with the exact expected gradient (P -> infinity), error against the "
        "noiseless task teacher, averaged exactly over the task head u"
    ),
    "diverged": (
        "non-finite, |entry| > 1e6, or the (J, B) Gram matrix not positive semidefinite, "
        "or the solver failed or ran out of evaluations (attribute stalled_seeds); "
        "later records are NaN"
    ),
    "alpha_diverged": "time of the exit from the valid domain",
}


def terms_description(terms) -> str:
    """What the right-hand side includes, and what it leaves out, in words."""
    parts = [TERMS[name].doc + ": included" for name in terms]
    parts += [TERMS[name].doc + ": not included" for name in TERMS if name not in terms]
    parts.append("finite-P corrections: not included; finite-N fluctuations: not included")
    return "; ".join(parts)


def theory_dataset(
    tasks: xr.Dataset, params: RunParams, settings: TheorySettings | dict | None = None
) -> xr.Dataset:
    """Integrate one trajectory per seed from that seed's initial overlaps, on params.alphas()."""
    st = TheorySettings.coerce(settings)
    R0 = tasks["R0"].transpose("seed", "k", "n").values
    Q0 = tasks["Q0"].transpose("seed", "k", "l").values
    T = tasks["T"].transpose("seed", "n", "m").values
    w0 = tasks["w0"].transpose("seed", "k").values
    alphas = params.alphas()
    start = time.perf_counter()
    out = integrate(R0, Q0, T, w0, params, alphas, st)
    wall = time.perf_counter() - start
    seeds = tasks["seed"].values
    values = {
        "R": out.R,
        "Q": out.Q,
        "w0": out.w0,
        "T": T,
        "eps_meta": out.eps_meta,
        "diverged": out.diverged.astype(np.int8),
        "alpha_diverged": out.alpha_diverged,
    }
    K, M = R0.shape[1:]
    ds = order_parameter_dataset(values, seeds, K, M, alpha=alphas)
    for name, description in _DESCRIPTIONS.items():
        ds[name].attrs["description"] = description
    ds.attrs.update(params_to_attrs(params))
    ds.attrs.update(attrs_of(st, ""))
    ds.attrs.update(
        stage="theory",
        theory="FO-ANIL order-parameter ODEs, N -> infinity, P -> infinity (docs/theory.md)",
        method=st.method if st.fixed_step is None else "RK4-fixed-step",
        terms=",".join(out.terms),
        terms_included=terms_description(out.terms),
        finite_P_corrections="not included",
        stalled_seeds=",".join(str(s) for s in seeds[out.stalled]) or "none",
        rhs_evaluations=int(out.nfev),
        wall_time_s=float(wall),
    )
    return ds
