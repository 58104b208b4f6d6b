"""The theory stage's Dataset: one ODE trajectory per seed from that seed's initial overlaps."""

from __future__ import annotations

import logging
import time

import numpy as np
import xarray as xr

from tsmeta.io import order_parameter_dataset, params_to_attrs
from tsmeta.params import RunParams
from tsmeta.progress import Progress
from tsmeta.settings import TheorySettings, attrs_of
from tsmeta.theory.closed_form import eps_meta_p_closed_form
from tsmeta.theory.finite_p import finite_p_description
from tsmeta.theory.integrator import integrate
from tsmeta.theory.rhs import TERMS
from tsmeta.theory.second_order import theory_algorithm

log = logging.getLogger(__name__)

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
    "eps_meta_p": (
        "few-shot error: the head adapted on P noisy examples, eps_meta + (eta_w^2 / (2 P K)) "
        "tr(Sigma_bar A) (exact for inner_steps = 1; NaN for inner_steps >= 2)"
    ),
    "diverged": (
        "non-finite, |entry| > 1e6, or the (J, B) Gram matrix not positive semidefinite, "
        "its right-hand side not finite (a rate not finite), or the solver failed or ran "
        "out of its work bound (attribute stalled_seeds); attribute stop_reasons says which; "
        "later records are NaN"
    ),
    "alpha_diverged": "time of the exit from the valid domain",
}


def terms_description(terms) -> str:
    """What the right-hand side includes, and what it leaves out, in words."""
    parts = [TERMS[name].doc + ": included" for name in terms]
    parts += [TERMS[name].doc + ": not included" for name in TERMS if name not in terms]
    parts.append("finite-N fluctuations: not included")
    return "; ".join(parts)


def log_early_stops(what: str, members, out) -> None:
    """A warning per member that stopped before the last record: where and why (the
    log file and, in a Snakemake job, the terminal)."""
    for name, alpha, reason in zip(members, out.alpha_diverged, out.reason, strict=True):
        if reason:
            log.warning("%s, %s: stopped at alpha = %.6g: %s", what, name, alpha, reason)


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
    seeds = tasks["seed"].values
    bar = Progress(params.alpha_final, f"theory {params.name()}", unit="alpha", eta=False)
    out = integrate(R0, Q0, T, w0, params, alphas, st,
                    progress=lambda a, n, s: bar.update(a, right_hand_sides=n))  # fmt: skip
    wall = time.perf_counter() - start
    reached = np.where(out.diverged, out.alpha_diverged, alphas[-1])
    bar.close(float(np.nanmax(reached)), right_hand_sides=int(out.nfev),
              stopped_early=int(out.diverged.sum()))  # fmt: skip
    log_early_stops(f"theory of run {params.name()}", [f"seed {s}" for s in seeds], out)
    values = {
        "R": out.R,
        "Q": out.Q,
        "w0": out.w0,
        "T": T,
        "eps_meta": out.eps_meta,
        "eps_meta_p": eps_meta_p_closed_form(out.R, out.Q, T[:, None], out.w0, params),
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
        theory=f"{theory_algorithm(params.algorithm).upper()} order-parameter ODEs, "
        "N -> infinity (docs/theory.md)",
        theory_algorithm=theory_algorithm(params.algorithm),
        method=st.method if st.fixed_step is None else "RK4-fixed-step",
        terms=",".join(out.terms),
        terms_included=terms_description(out.terms),
        finite_P_corrections=finite_p_description(out.terms, params),
        stalled_seeds=",".join(str(s) for s in seeds[out.stalled]) or "none",
        stop_reasons="; ".join(
            f"seed {s}: alpha = {a:.6g}, {r}"
            for s, a, r in zip(seeds, out.alpha_diverged, out.reason, strict=True)
            if r
        )
        or "none",
        rhs_evaluations=int(out.nfev),
        wall_time_s=float(wall),
    )
    return ds
