"""What the simulation measures: order parameters and eps_meta by plain Monte Carlo.

The closed-form eps_meta of the measured order parameters is computed once the run ends
(`tsmeta.theory.eps_meta_closed_form`, the function the theory uses); the Monte Carlo here
uses no formula, so that the closed form itself is checked.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tsmeta import model
from tsmeta.params import RunParams
from tsmeta.settings import SimSettings
from tsmeta.simulation.samplers import Sampler


def order_parameters(sampler: Sampler) -> dict[str, np.ndarray]:
    """R (S, K, M), Q (S, K, K) and w0 (S, K) of the current state, as NumPy arrays (copies)."""
    R, Q = sampler.overlaps()
    return {name: x.cpu().numpy().copy() for name, x in (("R", R), ("Q", Q), ("w0", sampler.w0))}


@torch.no_grad()
def eps_meta_monte_carlo(
    sampler: Sampler, gens, params: RunParams, settings: SimSettings
) -> tuple[np.ndarray, np.ndarray]:
    """eps_meta by plain Monte Carlo, per seed (mean, standard error over tasks).

    `mc_tasks` fresh tasks; the head is adapted from w0 with the inner rule on `mc_adapt`
    noisy examples; the error is the mean of (1/2)(s - y)^2 over `mc_test` examples against
    the noiseless task teacher. The fields come from the run's sampler, drawn from the
    measurement stream `gens` of each seed.
    """
    p, st = params, settings
    K, M = p.K, p.M
    n_ex = st.mc_adapt + st.mc_test
    batch = sampler.mc_batch(n_ex)
    means, errs = [], []
    for s, gen in enumerate(gens):
        per_task = []
        for start in range(0, st.mc_tasks, batch):
            n = min(batch, st.mc_tasks - start)
            u = p.u_mean + p.u_std * torch.randn(
                n, M, generator=gen, dtype=sampler.dtype, device=sampler.device
            )
            lam, nu_t = sampler.measurement_fields(s, gen, n, n_ex)
            y = model.network_output(nu_t, u)
            y_adapt = y[:, : st.mc_adapt]
            if p.noise_std > 0:
                y_adapt = y_adapt + p.noise_std * torch.randn(
                    n, st.mc_adapt, generator=gen, dtype=sampler.dtype, device=sampler.device
                )
            w = model.adapt_head(
                lam[:, : st.mc_adapt],
                y_adapt,
                sampler.w0[s].expand(n, K),
                p.eta_w,
                p.inner_steps,
            )
            pred = model.network_output(lam[:, st.mc_adapt :], w)
            per_task.append(model.half_mse(pred, y[:, st.mc_adapt :]))
        per_task = torch.cat(per_task).cpu().numpy()
        means.append(per_task.mean())
        errs.append(
            per_task.std(ddof=1) / math.sqrt(len(per_task)) if len(per_task) > 1 else np.nan
        )
    return np.array(means), np.array(errs)
