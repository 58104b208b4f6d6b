"""Finite training sets in the theory: F4, the exact 1/P term of the drift, the few-shot error.

Checked against Monte Carlo that uses no formula of the theory: F4 against sampled fields;
the one-task drift against the simulator's own field gradients (`model.field_gradients`) on
P = 10 sampled training examples; the few-shot error against heads adapted by
`model.adapt_head`. Each drift test also shows that the P = infinity theory is rejected.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import erf

from tsmeta import model
from tsmeta.activations import activation
from tsmeta.params import RunParams
from tsmeta.settings import TheorySettings
from tsmeta.theory import (
    eps_meta_closed_form,
    eps_meta_p_closed_form,
    field_covariance,
    integrate,
    term_drifts,
    terms_for,
)
from tsmeta.theory.closed_form import Physics, head_noise_covariance
from tsmeta.theory.gaussian.erf import F4, I2, I3, F4_block

N_SIGMA = 5.0
ERF = activation("erf").torch()


def g(z):
    return erf(z / math.sqrt(2.0))


# --- F4 ---------------------------------------------------------------------------------


def test_fourth_power_of_g_is_one_fifth():
    # g(z) = 2 Phi(z) - 1 is uniform on [-1, 1] for z ~ N(0, 1): <g^4> = 1/5 exactly
    assert F4(np.array([[1.0]]), [[0, 0, 0, 0]])[0] == pytest.approx(0.2, abs=1e-10)
    assert F4(np.array([[1.0]]), [[0, 0, 0, 0]], nodes=40)[0] == pytest.approx(0.2, abs=1e-14)
    # independent unit fields: <g_a^2 g_b^2> = (1/3)^2, <g_a^3 g_b> = 0
    C = np.eye(2)
    np.testing.assert_allclose(F4(C, [[0, 0, 1, 1], [0, 0, 0, 1]]), [1 / 9, 0.0], atol=1e-12)


def _covariances():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(4, 4))
    generic = X @ X.T / 4 + 0.1 * np.eye(4)
    W = rng.normal(size=(3, 3)) * 0.9
    degenerate = np.vstack([W, W[0]]) @ np.vstack([W, W[0]]).T  # z_3 = z_0, as nu_t = nu
    return [generic, degenerate]


TUPLES = np.array(
    [[0, 1, 2, 3], [0, 0, 1, 2], [0, 0, 1, 1], [1, 1, 1, 2], [2, 2, 2, 2], [0, 3, 1, 3]]
)


@pytest.mark.parametrize("which", [0, 1])
def test_f4_against_monte_carlo(which):
    C = _covariances()[which]
    rng = np.random.default_rng(11 + which)
    vals, vecs = np.linalg.eigh(C)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    s1 = s2 = 0.0
    n, chunk = 1_000_000, 200_000
    for _ in range(n // chunk):
        gz = g(rng.standard_normal((chunk, 4)) @ root.T)
        prod = gz[:, TUPLES].prod(-1)
        s1, s2 = s1 + prod.sum(0), s2 + (prod**2).sum(0)
    mean = s1 / n
    se = np.sqrt((s2 / n - mean**2) / n)
    z_score = np.abs(F4(C, TUPLES) - mean) / se
    assert np.all(z_score < N_SIGMA), z_score
    assert np.abs(mean).max() > 40 * se.max()  # the check is sharp


def test_f4_quadrature_converged_and_symmetric():
    """8 Gauss-Legendre nodes against 64: < 1e-7 on field covariances like the ODE's (unit
    variances, overlaps up to 1, including the singular fixed point), < 1e-5 on random
    covariances with variances up to ~2; and F4 is symmetric in its indices."""
    rng = np.random.default_rng(3)
    tup = np.array(list(np.ndindex(5, 5, 5, 5)))
    for scale in (0.3, 1.0, 2.0):
        X = rng.normal(size=(5, 5)) * math.sqrt(scale)
        C = X @ X.T / 5
        err = np.abs(F4(C, tup) - F4(C, tup, nodes=64)).max()
        assert err < 1e-5, (scale, err)
    all9 = np.unique(np.sort(np.array(list(np.ndindex(9, 9, 9, 9))), axis=1), axis=0)
    I = np.eye(3)
    R = np.linalg.qr(rng.normal(size=(3, 3)))[0] * 0.9
    for R_, Q_ in ((0.1 * rng.normal(size=(3, 3)), I), (R, I), (I, I)):
        C9 = field_covariance(R_, Q_, I, 1.0)
        err = np.abs(F4(C9, all9) - F4(C9, all9, nodes=64)).max()
        assert err < 1e-7, err
    full = F4(C, tup).reshape(5, 5, 5, 5)
    for perm in ((1, 0, 2, 3), (2, 3, 0, 1), (0, 2, 1, 3), (3, 1, 2, 0)):
        np.testing.assert_allclose(full, full.transpose(perm), rtol=0, atol=1e-12)
    block = F4_block(C, [0, 3, 4], [3], [1, 2], [1, 2])
    np.testing.assert_allclose(block, full[np.ix_([0, 3, 4], [3], [1, 2], [1, 2])], atol=1e-14)


# --- the fixed point: every number by hand -------------------------------------------------


def test_fixed_point_values():
    """K = M = 3, R = Q = T = I, eta_w = 9, w0 = 0, u ~ N(0, I): lambda = nu_t, c0 = -u/sqrt 3.

    K Sigma_bar = (1/3) sum_m <g_m^2 g_k g_l> - E[m m^T] = (1/3)(1/5 + 2/9) - 1/27 on the
    diagonal (m_k = -u_k / (3 sqrt 3)), so Sigma_bar = (1/9)(1/5 + 1/9) I; eps_P - eps =
    (81 / 6P) tr(Sigma_bar) / 3 = 7 / (15 P); dR_kk = -(eta_J 81 / 3P) Sigma_kk I3(k, k, k)
    with I3 = (2/pi) / (2 sqrt 3); dQ_kk twice that.
    """
    K, P = 3, 10
    p = RunParams(K=K, M=K, eta_J=3.0, eta_w=9.0, P=P)
    I, w0 = np.eye(K), np.zeros(K)
    sigma_kk = (1 / 9) * (1 / 5 + 1 / 9)
    C = field_covariance(I, I, I, 1.0)
    sigma = head_noise_covariance(C, I2(C), w0, Physics.from_params(p))
    np.testing.assert_allclose(sigma, sigma_kk * I, atol=1e-12)
    assert eps_meta_closed_form(I, I, I, w0, p) == pytest.approx(0.0, abs=1e-13)
    assert eps_meta_p_closed_form(I, I, I, w0, p) == pytest.approx(7 / (15 * P), rel=1e-10)
    d = term_drifts(I, I, I, w0, p, ("first_order", "finite_p"))
    i3 = (2 / math.pi) / (2 * math.sqrt(3))
    expected = -(3.0 * 81 / (K * P)) * sigma_kk * i3
    np.testing.assert_allclose(np.diag(d["finite_p"]["dR"]), expected, rtol=1e-10)
    np.testing.assert_allclose(np.diag(d["finite_p"]["dQ"]), 2 * expected, rtol=1e-10)
    np.testing.assert_allclose(d["first_order"]["dQ"], 0.0, atol=1e-12)  # P = inf: at rest
    assert I3(C, first=K)[0, 0, 0] == pytest.approx(i3, rel=1e-14)


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_shift_of_the_linear_escape_rate(noise):
    """At R -> 0, Q = T = I, w0 = 0: lambda is independent of nu_t, F4 factorises and
    Sigma_bar = (u_std^2/9 + noise^2/3) I / K, so the term is linear in R with the rate
    -eta_J eta_w^2 (u_std^2/9 + noise^2/3) / (sqrt 3 pi K^2 P) (docs/theory.md, section 7)."""
    K = M = 3
    p = RunParams(K=K, M=M, P=10, eta_J=3.0, eta_w=9.0, noise_std=noise, gamma=0.8)
    R = 1e-5 * np.random.default_rng(1).normal(size=(K, M))
    I = np.eye(K)
    dR = term_drifts(R, I, I, np.zeros(K), p, ("finite_p",))["finite_p"]["dR"]
    rate = -p.eta_J * p.eta_w**2 * (1 / 9 + noise**2 / 3) / (math.sqrt(3) * math.pi * K**2 * p.P)
    np.testing.assert_allclose(dR, rate * R, rtol=1e-8)


def test_which_runs_get_the_term():
    on, off = TheorySettings(), TheorySettings(finite_p=False)
    assert "finite_p" in terms_for(on, "fo-anil") and "finite_p" in terms_for(on, "fo-maml")
    assert "finite_p" not in terms_for(off, "fo-anil")
    assert "finite_p" in terms_for(on, "anil")  # its first-order part; the rest: 9a
    I = np.eye(3)
    two = term_drifts(I, I, I, np.zeros(3), RunParams(inner_steps=2, P=10), ("finite_p",))
    assert two["finite_p"] == {}  # inner_steps >= 2: not derived, not applied
    assert np.isnan(eps_meta_p_closed_form(I, I, I, np.zeros(3), RunParams(inner_steps=2)))


# --- one task at P = 10 against the simulator's field gradients -----------------------------


def _vectors(K, M, gamma, seed, aligned=False):
    """Weight vectors in d = K + 2M dimensions with x ~ N(0, I_d): the field covariance of
    docs/theory.md holds exactly. `aligned`: J = B orthonormal (R = Q = T = I)."""
    rng = np.random.default_rng(seed)
    d = K + 2 * M
    J, B, dB = np.zeros((K, d)), np.zeros((M, d)), np.zeros((M, d))
    if aligned:
        B[:, :M] = np.eye(M)
        J[:, :K] = np.eye(K)
    else:
        J[:, : K + M] = 0.5 * rng.normal(size=(K, K + M))
        B[:, : K + M] = 0.5 * rng.normal(size=(M, K + M))
    dB[:, K + M :] = np.eye(M)
    Bt = gamma * B + math.sqrt(1 - gamma**2) * dB
    return J, B, Bt


def one_task_drifts(J, B, Bt, w0, p: RunParams, n_tasks, seed, chunk=20_000):
    """Means and standard errors over tasks of one FO-ANIL update per unit alpha, from the
    simulator's field-space gradients with P training and V validation examples."""
    rng = np.random.default_rng(seed)
    K, M, d = J.shape[0], B.shape[0], J.shape[1]
    W = np.vstack([J, B, Bt])
    sums, sqs = {}, {}
    for _ in range(n_tasks // chunk):
        x = rng.standard_normal((chunk, p.P + p.V, d))
        z = torch.from_numpy(x @ W.T)
        lam, nu, nut = z[..., :K], z[..., K : K + M], z[..., K + M :]
        u = torch.from_numpy(p.u_mean + p.u_std * rng.standard_normal((chunk, M)))
        clean = model.network_output(nut, u, ERF)
        y = clean + p.noise_std * torch.from_numpy(rng.standard_normal(clean.shape))
        P = p.P
        w0s = torch.from_numpy(np.broadcast_to(w0, (chunk, K)).copy())
        _, d_val, d_w = model.field_gradients(
            lam[:, :P], y[:, :P], lam[:, P:], y[:, P:], w0s, act=ERF,
            eta_w=p.eta_w, inner_steps=p.inner_steps, second_order=False,
        )  # fmt: skip
        w = model.adapt_head(lam[:, :P], y[:, :P], w0s, p.eta_w, p.inner_steps, ERF)
        samples = {
            "dR": -p.eta_J * torch.einsum("svk,svn->skn", d_val, nu[:, P:]),
            "dQ": -p.eta_J
            * (
                torch.einsum("svk,svl->skl", d_val, lam[:, P:])
                + torch.einsum("svl,svk->skl", d_val, lam[:, P:])
            ),
            "dw0": -p.eta_w0_eff * d_w,
            "eps_p": model.half_mse(model.network_output(lam[:, P:], w, ERF), clean[:, P:]),
        }
        for key, val in samples.items():
            val = val.numpy()
            sums[key] = sums.get(key, 0.0) + val.sum(0)
            sqs[key] = sqs.get(key, 0.0) + (val**2).sum(0)
    out = {}
    for key in sums:
        mean = sums[key] / n_tasks
        out[key] = (mean, np.sqrt(np.maximum(sqs[key] / n_tasks - mean**2, 0) / n_tasks))
    return out


DRIFT_CASES = [
    # K, M, gamma, u_mean, noise_std, eta_w, aligned
    (3, 3, 1.0, 0.3, 0.3, 3.0, False),
    (4, 2, 0.8, 0.0, 0.0, 4.0, False),
    (3, 3, 1.0, 0.0, 0.0, 9.0, True),  # the P = infinity fixed point: drift entirely 1/P
]


@pytest.mark.parametrize("K,M,gamma,u_mean,noise,eta_w,aligned", DRIFT_CASES)
def test_one_task_drift_at_p10(K, M, gamma, u_mean, noise, eta_w, aligned):
    """The first-order drift and the few-shot error at P = V = 10: the P = infinity theory
    plus the finite-P term agrees within 5 standard errors of 2e5 tasks (the term is exact:
    no allowance for O(1/P^2)); without the term the same check fails by far."""
    J, B, Bt = _vectors(K, M, gamma, seed=K + M, aligned=aligned)
    w0 = np.zeros(K) if aligned else 0.4 * np.random.default_rng(K).normal(size=K)
    p = RunParams(
        K=K, M=M, P=10, V=10, eta_J=1.0, eta_w=eta_w, eta_w0=0.7, gamma=gamma,
        u_mean=u_mean, u_std=1.1 if not aligned else 1.0, noise_std=noise,
    )  # fmt: skip
    R, Q, T = J @ B.T, J @ J.T, B @ B.T
    d = term_drifts(R, Q, T, w0, p, ("first_order", "finite_p"))
    full = {key: d["first_order"][key] + d["finite_p"].get(key, 0.0) for key in ("dR", "dQ")}
    full["dw0"] = d["first_order"]["dw0"]
    full["eps_p"] = eps_meta_p_closed_form(R, Q, T, w0, p)
    infinite_p = {key: d["first_order"][key] for key in ("dR", "dQ", "dw0")}
    infinite_p["eps_p"] = eps_meta_closed_form(R, Q, T, w0, p)
    mc = one_task_drifts(J, B, Bt, w0, p, n_tasks=200_000, seed=17)
    worst_without = 0.0
    for key, (mean, se) in mc.items():
        z_full = np.abs(full[key] - mean) / (se + 1e-15)
        assert np.all(z_full < N_SIGMA), (key, float(z_full.max()))
        z_inf = np.abs(infinite_p[key] - mean) / (se + 1e-15)
        worst_without = max(worst_without, float(z_inf.max()))
    assert worst_without > 4 * N_SIGMA, worst_without


# --- the integrated ODE ----------------------------------------------------------------------


def test_term_lowers_the_norms_and_vanishes_as_p_grows():
    """At P = 25 the term lowers Q_kk on the first stage (an implicit ridge); the change falls
    like 1/P (P = 25 against P = 2500)."""
    rng = np.random.default_rng(0)
    R0 = 0.1 * rng.standard_normal((1, 3, 3))
    Q0 = np.eye(3)[None] + 0.0
    T, w0 = np.eye(3)[None], np.zeros((1, 3))
    alphas = np.linspace(0, 7, 8)
    change = {}
    for P in (25, 2500):
        p = RunParams(P=P)
        on = integrate(R0, Q0, T, w0, p, alphas)
        off = integrate(R0, Q0, T, w0, p, alphas, {"finite_p": False})
        assert "finite_p" in on.terms and "finite_p" not in off.terms
        change[P] = np.diagonal(on.Q[0, -1] - off.Q[0, -1])
    assert np.all(change[25] < -0.05)
    np.testing.assert_allclose(change[2500] * 100, change[25], rtol=0.3)


# --- the few_shot figure ---------------------------------------------------------------------


def test_draw_few_shot():
    import matplotlib.pyplot as plt

    from tsmeta import figures
    from tsmeta.figure_data import FigureInputs
    from tsmeta.settings import SimSettings
    from tsmeta.simulation import simulate
    from tsmeta.tasks import initial_state
    from tsmeta.theory import theory_dataset
    from tsmeta.theory.sweeps import run_sweep

    base = dict(N=20, K=2, M=2, V=10, seeds=2, alpha_final=1.0, n_records=6)
    sims, theories = [], []
    for P in (5, 40):
        params = RunParams(**base, P=P)
        tasks = initial_state(params)
        settings = SimSettings(mc_tasks=10, mc_adapt=50, mc_test=50, mc_every=2)
        sims.append(simulate(tasks, params, settings, progress=False))
        theories.append(theory_dataset(tasks, params))
    assert np.isfinite(sims[0]["eps_meta_p_mc"].values[:, -1]).all()
    sweep = run_sweep({"base": {**base, "P": 5}, "grid": {"P": [5, 10, 40]}})
    assert sweep["eps_p_final"].dims == ("P",) and np.all(sweep["eps_p_final"] > sweep["eps_final"])
    for extra in ({"sweep": sweep}, {}):
        inputs = FigureInputs("test", sims, theories, sweep=extra.get("sweep"))
        fig = figures.figure_of(inputs, {"kind": "few_shot"})
        fig.canvas.draw()
        assert len(fig.axes) == 2
        plt.close(fig)
