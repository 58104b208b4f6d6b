"""What the simulation measures: order parameters, and the error after adaptation by plain
Monte Carlo (on mc_adapt examples, and on P examples: the few-shot error).

The closed forms of the measured order parameters (`tsmeta.theory.eps_meta_closed_form`,
`eps_meta_p_closed_form`, the functions the theory uses) are computed once the run ends;
the Monte Carlo here uses no formula, so that the closed forms themselves are checked.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tsmeta import model
from tsmeta.params import RunParams
from tsmeta.settings import SimSettings
from tsmeta.simulation import streams
from tsmeta.simulation.samplers import Sampler


def order_parameters(sampler: Sampler) -> dict[str, np.ndarray]:
    """R (S, K, M), Q (S, K, K) and w0 (S, K) of the current state, as NumPy arrays (copies)."""
    R, Q = sampler.overlaps()
    return {name: x.cpu().numpy().copy() for name, x in (("R", R), ("Q", Q), ("w0", sampler.w0))}


@torch.no_grad()
def monte_carlo_errors(
    sampler: Sampler, gens, params: RunParams, settings: SimSettings
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Plain Monte Carlo of the error after adaptation, per seed: (mean, standard error over
    tasks) for `eps_meta_mc` and `eps_meta_p_mc`.

    `mc_tasks` fresh tasks with max(mc_adapt, P) noisy adaptation examples and `mc_test`
    test examples each. `eps_meta_mc`: the head adapted from w0 by the inner rule on the first
    `mc_adapt` examples; it estimates the few-shot error at P = mc_adapt, i.e. eps_meta plus
    the finite-set excess (eta_w^2 / (2 mc_adapt K)) tr(Sigma_bar A) (docs/simulation.md).
    `eps_meta_p_mc`: the head adapted on the first P examples, exactly as in training: an
    unbiased estimate of the few-shot error eps_meta_p. Both are the mean of (1/2)(s - y)^2
    on the same test examples against the noiseless task teacher. The fields come from the
    run's sampler, drawn from the measurement stream `gens` of each seed.
    """
    p, st = params, settings
    K, M = p.K, p.M
    n_adapt = max(st.mc_adapt, p.P)  # = mc_adapt (the stream of earlier versions) if P <= it
    n_ex = n_adapt + st.mc_test
    batch = sampler.mc_batch()
    heads = {"eps_meta_mc": st.mc_adapt, "eps_meta_p_mc": p.P}
    out = {name: ([], []) for name in heads}

    def randn(gen, shape):
        return streams.randn(gen, shape, sampler.dtype, sampler.device, sampler.normals)

    for s, gen in enumerate(gens):
        per_task = {name: [] for name in heads}
        for start in range(0, st.mc_tasks, batch):
            n = min(batch, st.mc_tasks - start)
            u = p.u_mean + p.u_std * randn(gen, (n, M))
            lam, nu_t = sampler.measurement_fields(s, gen, n, n_ex)
            y = model.network_output(nu_t, u, sampler.act)
            y_adapt = y[:, :n_adapt]
            if p.noise_std > 0:
                y_adapt = y_adapt + p.noise_std * randn(gen, (n, n_adapt))
            for name, size in heads.items():
                w = model.adapt_head(
                    lam[:, :size], y_adapt[:, :size], sampler.w0[s].expand(n, K),
                    p.eta_w, p.inner_steps, sampler.act,
                )  # fmt: skip
                pred = model.network_output(lam[:, n_adapt:], w, sampler.act)
                per_task[name].append(model.half_mse(pred, y[:, n_adapt:]))
        for name, values in per_task.items():
            values = torch.cat(values).cpu().numpy()
            out[name][0].append(values.mean())
            out[name][1].append(
                values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else np.nan
            )
    return {name: (np.array(m), np.array(e)) for name, (m, e) in out.items()}


def eps_meta_monte_carlo(
    sampler: Sampler, gens, params: RunParams, settings: SimSettings
) -> tuple[np.ndarray, np.ndarray]:
    """`eps_meta_mc` of `monte_carlo_errors` (adapted on mc_adapt examples), per seed."""
    return monte_carlo_errors(sampler, gens, params, settings)["eps_meta_mc"]
