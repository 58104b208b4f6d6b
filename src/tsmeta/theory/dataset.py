"""The theory stage's Dataset: one ODE trajectory per seed from that seed's initial overlaps."""

from __future__ import annotations

import logging
import time

import numpy as np
import xarray as xr

from tsmeta.activations import activation
from tsmeta.io import order_parameter_dataset, params_to_attrs
from tsmeta.params import RunParams
from tsmeta.progress import Progress
from tsmeta.settings import TheorySettings, attrs_of
from tsmeta.theory.closed_form import Physics, eps_meta_p_closed_form
from tsmeta.theory.diffusion import LEFT_OUT, parts_for
from tsmeta.theory.finite_p import finite_p_description
from tsmeta.theory.integrator import integrate
from tsmeta.theory.lna import noise_sd
from tsmeta.theory.rhs import TERMS
from tsmeta.theory.second_order import theory_algorithm
from tsmeta.theory.stability import growth_rate
from tsmeta.theory.trajectory import StateLayout

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
    "R_sd": (
        "linear-noise approximation around this seed's ODE path, Sigma(0) = 0 "
        "(docs/theory.md, section 12): sqrt(Sigma_ii / N) at the run's N"
    ),
    "Q_sd": "as R_sd",
    "w0_sd": "as R_sd",
    "eps_meta_sd": "as R_sd, through the gradient of eps_meta (delta method)",
    "growth_rate_end": (
        "Jacobian of the drift (the theory's terms) in the independent coordinates R, "
        "Q_kl (k <= l), w0 by forward differences at the seed's last record; NaN if the "
        "seed stopped early. Positive at a fixed point: the ODE rests on a state that the "
        "finite-N simulation leaves, its deviation growing as exp(rate * alpha) "
        "(docs/theory.md, section 13)"
    ),
}


def terms_description(terms) -> str:
    """What the right-hand side includes, and what it leaves out, in words."""
    parts = [TERMS[name].doc + ": included" for name in terms]
    parts += [TERMS[name].doc + ": not included" for name in TERMS if name not in terms]
    parts.append(
        "finite-N fluctuations: not in R, Q, w0 (the N -> infinity path); their linear-noise "
        "sd in R_sd, Q_sd, w0_sd, eps_meta_sd"
    )
    return "; ".join(parts)


def log_early_stops(what: str, members, out) -> None:
    """A warning per member that stopped before the last record: where and why (the
    log file and, in a Snakemake job, the terminal)."""
    for name, alpha, reason in zip(members, out.alpha_diverged, out.reason, strict=True):
        if reason:
            log.warning("%s, %s: stopped at alpha = %.6g: %s", what, name, alpha, reason)


def noise_supported(params: RunParams) -> bool:
    """Whether the activation's integrals give the diffusion matrix (the activation table)."""
    return activation(params.activation).diffusion


def path_noise(out, T, params: RunParams, alphas) -> dict:
    """The predicted noise sd around each seed's ODE path at the run's N (`theory.lna`);
    none where the activation has no I6 (`noise_supported`)."""
    if not noise_supported(params):
        return {}
    K, M = out.R.shape[-2:]
    layout = StateLayout(K, M)
    B, A = out.R.shape[:2]
    flat = layout.pack(out.R.reshape(B * A, K, M), out.Q.reshape(B * A, K, K),
                       out.w0.reshape(B * A, K))  # fmt: skip
    records = flat.reshape(B, A, layout.size)
    return noise_sd(records, alphas, T, Physics.from_params(params), out.terms, params.N)


def theory_dataset(
    tasks: xr.Dataset, params: RunParams, settings: TheorySettings | dict | None = None
) -> xr.Dataset:
    """Integrate one trajectory per seed from that seed's initial overlaps, on params.alphas()."""
    st = TheorySettings.coerce(settings)
    if st.kind == "sde":
        return sde_dataset(tasks, params, st)
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
    start = time.perf_counter()
    noise = path_noise(out, T, params, alphas)
    noise_wall = time.perf_counter() - start
    end_rate = growth_rate(out.R[:, -1], out.Q[:, -1], T, out.w0[:, -1],
                           Physics.from_params(params), out.terms)  # fmt: skip
    values = {
        "R": out.R,
        "Q": out.Q,
        "w0": out.w0,
        "T": T,
        "eps_meta": out.eps_meta,
        "eps_meta_p": eps_meta_p_closed_form(out.R, out.Q, T[:, None], out.w0, params),
        "diverged": out.diverged.astype(np.int8),
        "alpha_diverged": out.alpha_diverged,
        "growth_rate_end": end_rate,
        **noise,
    }
    K, M = R0.shape[1:]
    ds = order_parameter_dataset(values, seeds, K, M, alpha=alphas)
    for name, description in _DESCRIPTIONS.items():
        if name in ds:  # no *_sd where the activation has no diffusion matrix
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
        noise_parts=",".join(parts_for(out.terms)) if noise else "none",
        noise_left_out=LEFT_OUT if noise else f"all: no I6 integral for {params.activation}",
        rhs_evaluations=int(out.nfev),
        wall_time_s=float(wall),
        noise_wall_time_s=float(noise_wall),
    )
    return ds


STREAMS_PER_SEED = 4096  # member stream = seed * STREAMS_PER_SEED + realisation


def sde_dataset(tasks: xr.Dataset, params: RunParams, st: TheorySettings) -> xr.Dataset:
    """The stochastic theory (kind sde): `st.realisations` Euler-Maruyama paths per seed from
    the seed's own initial overlaps, dims (realisation, seed, alpha, ...); each path has its
    own random stream (seed, realisation), so it does not depend on the other members."""
    seeds = tasks["seed"].values
    reps, S = st.realisations, len(seeds)
    init = [tasks[v].transpose("seed", *tasks[v].dims[1:]).values for v in ("R0", "Q0", "T", "w0")]
    R0, Q0, T, w0 = (np.concatenate([x] * reps) for x in init)
    streams = np.concatenate([seeds.astype(np.int64) * STREAMS_PER_SEED + r for r in range(reps)])
    alphas = params.alphas()
    start = time.perf_counter()
    bar = Progress(params.alpha_final, f"sde theory {params.name()}", unit="alpha", eta=False)
    out = integrate(R0, Q0, T, w0, params, alphas, st, streams=streams,
                    progress=lambda a, n, s: bar.update(a, right_hand_sides=n))  # fmt: skip
    wall = time.perf_counter() - start
    bar.close(float(alphas[-1]), right_hand_sides=int(out.nfev),
              stopped_early=int(out.diverged.sum()))  # fmt: skip
    eps_p = eps_meta_p_closed_form(out.R, out.Q, T[:, None], out.w0, params)
    K, M = R0.shape[1:]
    parts = []
    for r in range(reps):
        m = slice(r * S, (r + 1) * S)
        values = {"R": out.R[m], "Q": out.Q[m], "w0": out.w0[m], "T": T[m],
                  "eps_meta": out.eps_meta[m], "eps_meta_p": eps_p[m],
                  "diverged": out.diverged[m].astype(np.int8),
                  "alpha_diverged": out.alpha_diverged[m]}  # fmt: skip
        parts.append(order_parameter_dataset(values, seeds, K, M, alpha=alphas))
    ds = xr.concat(parts, dim="realisation").assign_coords(realisation=np.arange(reps))
    for name in ("R", "Q", "w0", "eps_meta", "eps_meta_p", "diverged", "alpha_diverged"):
        ds[name].attrs["description"] = (
            "stochastic theory at the run's N: Euler-Maruyama path of "
            "dX = f dalpha + sqrt(D / N) dW (docs/theory.md, section 12)"
        )
    ds.attrs.update(params_to_attrs(params))
    ds.attrs.update(attrs_of(st, ""))
    ds.attrs.update(
        stage="theory",
        theory=f"{theory_algorithm(params.algorithm).upper()} order-parameter SDE at "
        f"N = {params.N} (docs/theory.md, section 12)",
        theory_algorithm=theory_algorithm(params.algorithm),
        method="Euler-Maruyama",
        terms=",".join(out.terms),
        terms_included=terms_description(out.terms),
        finite_P_corrections=finite_p_description(out.terms, params),
        noise_parts=",".join(parts_for(out.terms)),
        noise_left_out=LEFT_OUT,
        random_streams=f"numpy default_rng([5, seed * {STREAMS_PER_SEED} + realisation])",
        diverged_paths=int(out.diverged.sum()),
        rhs_evaluations=int(out.nfev),
        wall_time_s=float(wall),
    )
    return ds
