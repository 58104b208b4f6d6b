"""relu and linear in the simulation: one outer step of every algorithm, as the dense sampler
computes it, against an independent autograd implementation of docs/model.md on the weights
(its own g, its own loss, its own inner loop); the projected and gram samplers against dense
in distribution (tests/physics/test_gram.py, test_simulation.py do the same for erf)."""

import math

import pytest
import torch
from conftest import one_step, replicated_state
from scipy import stats

from tsmeta.params import RunParams
from tsmeta.settings import SimSettings
from tsmeta.simulation import Simulation
from tsmeta.tasks import initial_state

# g written here, not taken from tsmeta.nonlinearities: the reference must not share code
REFERENCE_G = {"relu": lambda z: torch.clamp(z, min=0.0), "linear": lambda z: z}
ALGORITHMS = ["fo-anil", "anil", "maml", "fo-maml"]
AGREEMENT = 1e-10  # the bound on |reference - sampler| per weight entry


def reference_step(p: RunParams, J, w0, B, task):
    """J and w0 after one outer step, written from docs/model.md with autograd throughout."""
    g = REFERENCE_G[p.activation]
    N, K, M, P = p.N, p.K, p.M, p.P
    X, u = task["X"], task["u"]
    B_t = p.gamma * B + math.sqrt(1 - p.gamma**2) * task["dB"] if p.gamma < 1 else B
    y = (g(X @ B_t.transpose(-1, -2) / math.sqrt(N)) @ u.unsqueeze(-1)).squeeze(-1) / math.sqrt(M)
    if p.noise_std > 0:
        y = y + p.noise_std * task["zeta"]

    def loss(Jx, wx, Xs, ys):  # sum over seeds of the mean half squared error
        s = (g(Xs @ Jx.transpose(-1, -2) / math.sqrt(N)) @ wx.unsqueeze(-1)).squeeze(-1)
        return (0.5 * (s / math.sqrt(K) - ys) ** 2).mean(-1).sum()

    Jv, wv = J.clone().requires_grad_(True), w0.clone().requires_grad_(True)
    second_order = p.algorithm in ("anil", "maml")
    adapts_J = p.algorithm in ("maml", "fo-maml")
    Jt, wt = Jv, wv
    for _ in range(p.inner_steps):
        gJ, gw = torch.autograd.grad(loss(Jt, wt, X[:, :P], y[:, :P]), (Jt, wt), create_graph=True)
        wt = wt - p.eta_w * gw
        if adapts_J:
            Jt = Jt - p.eta_J_inner_eff * gJ
    if not second_order:  # first order: gradient at the adapted parameters, held fixed
        Jt = Jt.detach().requires_grad_(True) if adapts_J else Jv
        wt = wt.detach().requires_grad_(True)
        grad_J, grad_w = torch.autograd.grad(loss(Jt, wt, X[:, P:], y[:, P:]), (Jt, wt))
    else:
        grad_J, grad_w = torch.autograd.grad(loss(Jt, wt, X[:, P:], y[:, P:]), (Jv, wv))
    return J - p.eta_J * grad_J, w0 - (p.eta_w0_eff / N) * grad_w


@pytest.mark.parametrize("activation", ["relu", "linear"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_one_outer_step_equals_an_independent_autograd_step(activation, algorithm):
    """Label noise, gamma < 1, two inner steps and separate inner rates: every input of the
    update is exercised; w0 != 0 so that the head gradient is not trivially zero."""
    p = RunParams(
        N=24, K=3, M=2, P=7, V=5, seeds=3, algorithm=algorithm, activation=activation,
        eta_J=1.3, eta_w=2.1, eta_w0=0.7, eta_J_inner=0.9, inner_steps=2, gamma=0.8,
        noise_std=0.3, u_mean=0.2, w0_std=0.6,
    )  # fmt: skip
    sim = Simulation(initial_state(p), p, SimSettings(sampler="dense", dtype="float64"))
    state = sim.sampler
    J0, w00, B = state.J.clone(), state.w0.clone(), state.B.clone()
    gen = torch.Generator().manual_seed(7)
    r = lambda *shape: torch.randn(p.seeds, *shape, generator=gen, dtype=torch.float64)  # noqa: E731
    task = {
        "u": p.u_mean + p.u_std * r(p.M),
        "dB": r(p.M, p.N),
        "X": r(p.P + p.V, p.N),
        "zeta": r(p.P + p.V),
    }
    state.advance(task)
    J1, w01 = reference_step(p, J0, w00, B, task)
    assert (state.J - J0).abs().max() > 1e-3  # the step moved J
    assert (state.J - J1).abs().max() <= AGREEMENT
    assert (state.w0 - w01).abs().max() <= AGREEMENT


def one_update(params, sampler, copies=3000):
    """dR, dQ, dw0 of one outer update from one state, over `copies` task draws."""
    sim = Simulation(
        replicated_state(params, copies), params,
        SimSettings(mc_tasks=20, mc_adapt=100, mc_test=100, draw_chunk=1, sampler=sampler),
    )  # fmt: skip
    dR, dQ, dw0 = one_step(sim)
    return {
        "dQ00": dQ[:, 0, 0], "dQ01": dQ[:, 0, 1], "dR00": dR[:, 0, 0], "dR10": dR[:, 1, 0],
        "dw0": dw0[:, 0],
    }  # fmt: skip


SAMPLER_BASE = dict(N=30, K=2, M=2, P=8, V=6, seeds=1, w0_std=0.5)
SAMPLER_CASES = {
    "relu-fo-anil": dict(activation="relu", gamma=0.7),
    "relu-anil": dict(activation="relu", algorithm="anil", eta_J=4.0),
    "linear-fo-anil": dict(activation="linear", gamma=0.7),
    "linear-anil": dict(activation="linear", algorithm="anil", eta_J=4.0),
}


@pytest.mark.parametrize("case", list(SAMPLER_CASES))
def test_projected_and_gram_updates_have_the_distribution_of_the_dense_one(case):
    """The samplers need g only through the fields, so they are exact for any g: 3000 draws
    each, KS p > 1e-4 per statistic (5 statistics, 2 samplers, 4 cases: a false alarm of a
    correct sampler below 1 %, Bonferroni; KS at this size resolves ~0.1 sd)."""
    params = RunParams(**{**SAMPLER_BASE, **SAMPLER_CASES[case]})
    dense = one_update(params, "dense")
    for sampler in ("projected", "gram"):
        other = one_update(params, sampler)
        p_values = {k: stats.ks_2samp(dense[k], other[k]).pvalue for k in dense}
        assert min(p_values.values()) > 1e-4, (sampler, p_values)
