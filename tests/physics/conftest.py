"""Helpers of the physics tests: states to sample one update from, explicit weight vectors."""

import math

import numpy as np
import xarray as xr

from tsmeta.params import RunParams
from tsmeta.tasks import initial_state


def replicated_state(params: RunParams, copies: int, seed: int = 0) -> xr.Dataset:
    """A tasks Dataset whose `copies` seeds all start from the state of `seed`.

    Each copy gets its own task stream (seed coordinate 1000 + i), so a single outer step
    over the batch samples the distribution of one update from one state.
    """
    one = initial_state(RunParams(**{**params.to_dict(), "seeds": 1, "seed_offset": seed}))
    ds = xr.concat([one.isel(seed=[0])] * copies, dim="seed")
    return ds.assign_coords(seed=np.arange(1000, 1000 + copies))


def random_vectors(K, M, gamma, seed):
    """Explicit weight vectors in d = K + 2M dimensions (x ~ N(0, I_d), fields = W x).

    The task-teacher perturbation dB lives in M extra orthonormal directions, so the field
    covariance of docs/model.md holds exactly; R, Q, T are read off the vectors.
    """
    rng = np.random.default_rng(seed)
    d = K + 2 * M
    J = np.zeros((K, d))
    B = np.zeros((M, d))
    J[:, : K + M] = 0.45 * rng.normal(size=(K, K + M))
    B[:, : K + M] = 0.45 * rng.normal(size=(M, K + M))
    dB = np.zeros((M, d))
    dB[:, K + M :] = np.eye(M)
    Bt = gamma * B + math.sqrt(1.0 - gamma**2) * dB
    w0 = 0.5 * rng.normal(size=K)
    return J, B, Bt, w0


def sampled_tasks(J, B, Bt, params: RunParams, n_tasks, generator):
    """Fields and labels of n_tasks tasks with P + V examples each, x ~ N(0, I_d):
    (lambda, nu, y) of shapes (n, P + V, K), (n, P + V, M), (n, P + V), training examples
    first; labels from the task teacher with head u ~ N(u_mean, u_std^2) and label noise."""
    import torch

    from tsmeta import model
    from tsmeta.activations import activation

    K, M, d = J.shape[0], B.shape[0], J.shape[1]
    W = torch.as_tensor(np.vstack([J, B, Bt]), dtype=torch.float64)
    shape = (n_tasks, params.P + params.V)
    z = torch.randn(shape + (d,), generator=generator, dtype=torch.float64) @ W.T
    u = params.u_mean + params.u_std * torch.randn(
        n_tasks, M, generator=generator, dtype=torch.float64
    )
    y = model.network_output(z[..., K + M :], u, activation(params.activation).torch())
    y = y + params.noise_std * torch.randn(shape, generator=generator, dtype=torch.float64)
    return z[..., :K], z[..., K : K + M], y


def field_gradient_update(lam, nu, y, w0, params: RunParams, act, second_order: bool):
    """One FO-ANIL (second_order False) or ANIL update of each task, per unit alpha, from the
    simulator's own `model.field_gradients`: ({"dR", "dQ" (its part along the fields), "dw0"},
    dL/dlambda (n, P + V, K) over the training and then the validation examples).

    A task moves R_kn by -eta_J sum_mu dL/dlambda_k^mu nu_n^mu (the J update is -eta_J
    sum_mu dL/dlambda^mu x^mu / sqrt N, and N tasks make one unit of alpha), Q_kl by
    -eta_J sum_mu (dL/dlambda_l^mu lambda_k^mu + (k <-> l)) along the fields, w0 by
    -eta_w0 dL/dw0."""
    import torch

    from tsmeta import model

    p = params
    d_tr, d_val, d_w0 = model.field_gradients(
        lam[:, : p.P], y[:, : p.P], lam[:, p.P :], y[:, p.P :], w0, act=act,
        eta_w=p.eta_w, inner_steps=p.inner_steps, second_order=second_order,
    )  # fmt: skip
    d_lam = torch.zeros_like(lam)
    d_lam[:, p.P :] = d_val
    if d_tr is not None:
        d_lam[:, : p.P] = d_tr
    X = d_lam.transpose(-1, -2) @ lam  # [l, k] = sum_mu dL/dlambda_l lambda_k
    update = {
        "dR": -p.eta_J * d_lam.transpose(-1, -2) @ nu,
        "dQ": -p.eta_J * (X + X.transpose(-1, -2)),
        "dw0": -p.eta_w0_eff * d_w0,
    }
    return update, d_lam


def one_step(sim):
    """(dR, dQ, dw0) of one task applied to every seed of the Simulation `sim`, as arrays
    (seeds, ...): the increments the one-update tests compare with the theory."""
    R0, Q0 = (x.clone() for x in sim.sampler.overlaps())
    w0 = sim.sampler.w0.clone()
    sim.step(sim.draw(1), 0)
    R1, Q1 = sim.sampler.overlaps()
    return (R1 - R0).numpy(), (Q1 - Q0).numpy(), (sim.sampler.w0 - w0).numpy()
