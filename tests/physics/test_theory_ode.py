"""FO-ANIL ODE: every RHS term and eps_meta against an independent Monte Carlo, the fixed
point, and the integrator (batching, RK4 vs solve_ivp, divergence, dynamics, Dataset)."""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import types

import numpy as np
import pytest
import xarray as xr
from conftest import random_vectors
from scipy.special import erf

from tsmeta.activations import ACTIVATIONS, activation
from tsmeta.algorithms import ALGORITHM_TABLE
from tsmeta.params import RunParams
from tsmeta.settings import TheorySettings
from tsmeta.tasks import initial_state
from tsmeta.theory import (
    Physics,
    adapted_head,
    eps_meta_closed_form,
    eps_meta_p_closed_form,
    field_covariance,
    integrate,
    second_order,
    term_drifts,
    terms_for,
    theory_dataset,
)

N_SIGMA = 5.0


def rhs_terms(R, Q, T, w0, p):
    """The FO-ANIL right-hand side term by term, in the names of the Monte Carlo below."""
    d = term_drifts(R, Q, T, w0, p, ("first_order", "finite_v"))
    first = d["first_order"]
    return {
        "dR": first["dR"],
        "dQ_first": first["dQ"],
        "dQ_finite_v": d["finite_v"]["dQ"],
        "dw0": first["dw0"],
    }


def integrate_batched(members, alphas, **settings):
    """Members (R0, Q0, T, w0, params) with different parameters as one batched system."""
    stack = [np.stack([np.asarray(m[j], dtype=float) for m in members]) for j in range(4)]
    return integrate(*stack, [m[4] for m in members], alphas, TheorySettings(**settings))


def g(z):
    return erf(z / math.sqrt(2.0))


def gp(z):
    return math.sqrt(2.0 / math.pi) * np.exp(-(z**2) / 2.0)


# --- independent Monte Carlo of the outer updates ------------------------------------------


def monte_carlo_rhs(J, B, Bt, w0, p: RunParams, n_inner, n_outer, seed, chunk=200_000):
    """Sample means and standard errors of the per-example outer updates, no formula used.

    The adapted head comes from the inner rule w <- w - eta_w grad_w L_train with the
    training loss averaged over a large sample of fields (P -> infinity by brute force).
    """
    rng = np.random.default_rng(seed)
    K, M, d = J.shape[0], B.shape[0], J.shape[1]
    sK, sM = math.sqrt(K), math.sqrt(M)
    gg = np.zeros((K, K))
    gy = np.zeros((K, M))
    for _ in range(n_inner // chunk):
        x = rng.standard_normal((chunk, d))
        gl, gt = g(x @ J.T), g(x @ Bt.T)
        gg += gl.T @ gl
        gy += gl.T @ gt
    A_hat, C_hat = gg / n_inner, gy / n_inner

    sums, sqs = {}, {}
    for _ in range(n_outer // chunk):
        u = p.u_mean + p.u_std * rng.standard_normal((chunk, M))
        w = np.repeat(w0[None], chunk, axis=0)
        for _ in range(p.inner_steps):
            # grad_w of mean (1/2)(s - y)^2 = mean (s - y) g(lambda) / sqrt(K)
            grad = (w @ A_hat.T / sK - u @ C_hat.T / sM) / sK
            w = w - p.eta_w * grad
        x = rng.standard_normal((chunk, d))
        lam, nu, nut = x @ J.T, x @ B.T, x @ Bt.T
        s = (w * g(lam)).sum(1) / sK
        y_clean = (u * g(nut)).sum(1) / sM
        delta = s - (y_clean + p.noise_std * rng.standard_normal(chunk))
        e = delta[:, None] * w * gp(lam) / sK
        samples = {
            "dR": -p.eta_J * e[:, :, None] * nu[:, None, :],
            "dQ_first": -p.eta_J
            * (lam[:, :, None] * e[:, None, :] + e[:, :, None] * lam[:, None, :]),
            "dQ_finite_v": p.eta_J**2 / p.V * e[:, :, None] * e[:, None, :],
            "dw0": -p.eta_w0_eff * delta[:, None] * g(lam) / sK,
            "eps_meta": 0.5 * (s - y_clean) ** 2,
        }
        for key, val in samples.items():
            sums[key] = sums.get(key, 0.0) + val.sum(0)
            sqs[key] = sqs.get(key, 0.0) + (val**2).sum(0)
    out = {}
    for key in sums:
        mean = sums[key] / n_outer
        se = np.sqrt(np.maximum(sqs[key] / n_outer - mean**2, 0.0) / n_outer)
        out[key] = (mean, se)
    return out


MC_CASES = [
    # K, M, gamma, inner_steps, u_mean, noise_std
    (3, 3, 1.0, 1, 0.5, 0.3),
    (3, 3, 0.8, 2, -0.4, 0.3),
    (4, 2, 1.0, 2, 0.7, 0.5),
    (4, 2, 0.8, 1, 0.3, 0.0),
]


@pytest.mark.parametrize("K,M,gamma,steps,u_mean,noise", MC_CASES)
def test_rhs_terms_and_eps_against_monte_carlo(K, M, gamma, steps, u_mean, noise):
    J, B, Bt, w0 = random_vectors(K, M, gamma, seed=K * 10 + steps)
    p = RunParams(
        K=K,
        M=M,
        eta_J=0.7,
        eta_w=2.0,
        eta_w0=1.3,
        V=7,
        inner_steps=steps,
        gamma=gamma,
        u_mean=u_mean,
        u_std=1.2,
        noise_std=noise,
    )
    R, Q, T = J @ B.T, J @ J.T, B @ B.T
    theory = rhs_terms(R, Q, T, w0, p)
    theory["eps_meta"] = eps_meta_closed_form(R, Q, T, w0, p)
    mc = monte_carlo_rhs(J, B, Bt, w0, p, n_inner=2_000_000, n_outer=600_000, seed=7)
    for key, value in theory.items():
        mean, se = mc[key]
        z_score = np.abs(value - mean) / (se + 1e-14)
        assert np.all(z_score < N_SIGMA), (key, float(np.max(z_score)), value, mean)
        # the check must be sharp: a 10% error in a term would be many standard errors
        big = np.abs(mean) > 20 * se
        assert np.any(big) or key == "dQ_finite_v" and noise == 0.0, key


def test_field_covariance_matches_vectors():
    K, M, gamma = 3, 2, 0.7
    J, B, Bt, _ = random_vectors(K, M, gamma, seed=3)
    W = np.vstack([J, B, Bt])
    C = field_covariance(J @ B.T, J @ J.T, B @ B.T, gamma)
    np.testing.assert_allclose(C, W @ W.T, rtol=0, atol=1e-14)


# --- the fixed point of docs/model.md ------------------------------------------------------------


@pytest.mark.parametrize("K,eta_w", [(3, 9.0), (2, 6.0)])
@pytest.mark.parametrize("steps,u_mean", [(1, 0.0), (2, 0.6)])
def test_fixed_point(K, eta_w, steps, u_mean):
    p = RunParams(K=K, M=K, eta_w=eta_w, inner_steps=steps, u_mean=u_mean, V=3)
    I = np.eye(K)
    w0 = np.zeros(K)
    for key, value in rhs_terms(I, I, I, w0, p).items():
        np.testing.assert_allclose(value, 0.0, rtol=0, atol=1e-12, err_msg=key)
    np.testing.assert_allclose(eps_meta_closed_form(I, I, I, w0, p), 0.0, rtol=0, atol=1e-12)
    a, G = adapted_head(I, I, I, w0, K=K, M=K, eta_w=eta_w, inner_steps=steps, gamma=1.0,
                        activation="erf")  # fmt: skip
    np.testing.assert_allclose(a, 0.0, atol=1e-12)
    np.testing.assert_allclose(G, I, atol=1e-12)  # adapted student = task teacher


def test_eps_meta_positive_off_the_fixed_point():
    p = RunParams(K=3, M=3, eta_w=8.0)
    I = np.eye(3)
    assert eps_meta_closed_form(I, I, I, np.zeros(3), p) > 1e-4


# --- integration ---------------------------------------------------------------------------


def initial_overlaps(K, M, seeds, N=500, R_scale=1.0):
    """Overlaps of Gaussian J, B in N dimensions, as the task-generation stage draws them."""
    R0, Q0, T = [], [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        B = rng.standard_normal((M, N))
        J = rng.standard_normal((K, N))
        R0.append(R_scale * J @ B.T / N)
        Q0.append(J @ J.T / N)
        T.append(B @ B.T / N)
    return np.stack(R0), np.stack(Q0), np.stack(T), np.zeros((len(seeds), K))


def test_batched_equals_one_by_one():
    p = RunParams(alpha_final=20.0, n_records=12, u_mean=0.2)
    R0, Q0, T, w0 = initial_overlaps(3, 3, seeds=[0, 1, 2])
    w0 = w0 + 0.1
    alphas = p.alphas()
    batch = integrate(R0, Q0, T, w0, p, alphas)
    for i in range(3):
        one = integrate(R0[i : i + 1], Q0[i : i + 1], T[i : i + 1], w0[i : i + 1], p, alphas)
        for key in ("R", "Q", "w0", "eps_meta"):
            np.testing.assert_allclose(
                getattr(batch, key)[i], getattr(one, key)[0], rtol=0, atol=2e-7
            )
    assert not batch.diverged.any()
    np.testing.assert_allclose(batch.Q, np.swapaxes(batch.Q, -1, -2), atol=1e-12)


def test_integrate_batched_different_params():
    R0, Q0, T, w0 = initial_overlaps(3, 3, seeds=[0, 1])
    ps = [
        RunParams(eta_J=3.0, alpha_final=10.0),
        RunParams(eta_J=1.0, eta_w=7.0, inner_steps=2, gamma=0.9, u_mean=0.3, noise_std=0.2),
    ]
    alphas = ps[0].alphas()
    both = integrate_batched([(R0[i], Q0[i], T[i], w0[i], ps[i]) for i in range(2)], alphas)
    for i in range(2):
        one = integrate(R0[i], Q0[i], T[i], w0[i], ps[i], alphas)
        for key in ("R", "Q", "w0", "eps_meta"):
            np.testing.assert_allclose(
                getattr(both, key)[i], getattr(one, key)[0], rtol=0, atol=2e-7
            )


def test_fixed_step_rk4_agrees_with_solve_ivp():
    p = RunParams(alpha_final=5.0, n_records=8, noise_std=0.3, u_mean=0.4)
    R0, Q0, T, w0 = initial_overlaps(3, 3, seeds=[4, 5], R_scale=5.0)
    alphas = p.alphas()
    ref = integrate(R0, Q0, T, w0, p, alphas)
    rk4 = integrate(R0, Q0, T, w0, p, alphas, {"fixed_step": 0.01})
    for key in ("R", "Q", "w0", "eps_meta"):
        np.testing.assert_allclose(getattr(rk4, key), getattr(ref, key), rtol=0, atol=1e-7)
    assert np.abs(ref.R[:, -1] - ref.R[:, 0]).max() > 1e-2  # it did move


@pytest.mark.parametrize("fixed_step", [None, 0.001])
def test_divergence_is_marked_not_raised(fixed_step):
    R0, Q0, T, w0 = initial_overlaps(3, 3, seeds=[0, 1])
    bad = RunParams(eta_J=1e4, u_mean=1.0, alpha_final=1.0, n_records=20)
    good = RunParams(alpha_final=1.0, n_records=20)
    alphas = bad.alphas()
    out = integrate_batched(
        [(R0[0], Q0[0], T[0], w0[0], bad), (R0[1], Q0[1], T[1], w0[1], good)],
        alphas,
        fixed_step=fixed_step,
    )
    assert out.diverged.tolist() == [True, False]
    a_div = out.alpha_diverged[0]
    assert 0 < a_div < alphas[-1] and np.isnan(out.alpha_diverged[1])
    later = alphas > a_div
    assert np.all(np.isnan(out.Q[0, later])) and np.all(np.isnan(out.eps_meta[0, later]))
    assert np.all(np.isfinite(out.Q[0, ~later]))
    # the healthy member is unaffected by its diverging neighbour
    solo = integrate(R0[1], Q0[1], T[1], w0[1], good, alphas, {"fixed_step": fixed_step})
    np.testing.assert_allclose(out.Q[1], solo.Q[0], rtol=0, atol=1e-7)


def test_invalid_initial_state_is_diverged_at_start():
    p = RunParams(alpha_final=1.0, n_records=5)
    Q0 = np.array([[[1.0, 2.0, 0], [2.0, 1.0, 0], [0, 0, 1.0]]])  # not PSD
    out = integrate(np.zeros((1, 3, 3)), Q0, np.eye(3), np.zeros((1, 3)), p, p.alphas())
    assert out.diverged[0] and out.alpha_diverged[0] == 0.0
    assert np.all(np.isnan(out.Q))


def test_dynamics_learn_the_task():
    """Small random R, Q ~ I, K = M = 3, eta_J = 3, eta_w = 9: eps_meta < 1e-2 before 450."""
    p = RunParams(K=3, M=3, eta_J=3.0, eta_w=9.0, alpha_final=450.0, n_records=200)
    R0, Q0, T, w0 = initial_overlaps(3, 3, seeds=[0, 1, 2, 3])
    start = time.perf_counter()
    out = integrate(R0, Q0, T, w0, p, p.alphas())
    wall = time.perf_counter() - start
    eps = out.eps_meta
    assert not out.diverged.any()
    below = eps < 1e-2
    assert below[:, -1].all()
    first = [float(p.alphas()[np.argmax(b)]) for b in below]
    assert max(first) < 450.0
    assert np.all(eps[:, 0] > 0.1)
    print(f"eps_meta < 1e-2 first at alpha = {first}; 4 seeds to 450 in {wall:.2f} s")


def tasks_dataset(K, M, seeds):
    R0, Q0, T, w0 = initial_overlaps(K, M, seeds)
    return xr.Dataset(
        {
            "R0": (("seed", "k", "n"), R0),
            "Q0": (("seed", "k", "l"), Q0),
            "T": (("seed", "n", "m"), T),
            "w0": (("seed", "k"), w0),
            "J": (("seed", "k", "i"), np.zeros((len(seeds), K, 2))),  # big arrays: ignored
        },
        coords={
            "seed": seeds,
            "k": np.arange(K),
            "l": np.arange(K),
            "n": np.arange(M),
            "m": np.arange(M),
        },
    )


def test_theory_dataset():
    K, M = 3, 2
    p = RunParams(K=K, M=M, eta_w=6.0, alpha_final=5.0, n_records=10, seeds=2, seed_offset=3)
    tasks = tasks_dataset(K, M, seeds=[3, 4])
    ds = theory_dataset(tasks, p, {"finite_v": False})
    assert ds.attrs["stage"] == "theory" and ds.attrs["finite_v"] == 0
    assert "finite-V term (eta_J^2/V)<e_k e_l> in dQ: not included" in ds.attrs["terms_included"]
    assert ds.attrs["finite_P_corrections"].startswith("exact 1/P term included")
    assert ds.attrs["wall_time_s"] > 0
    assert dict(ds.sizes) == {"seed": 2, "alpha": len(p.alphas()), "k": K, "l": K, "n": M, "m": M}
    assert ds["R"].dims == ("seed", "alpha", "k", "n")
    assert ds["Q"].dims == ("seed", "alpha", "k", "l")
    assert ds["w0"].dims == ("seed", "alpha", "k")
    assert ds["T"].dims == ("seed", "n", "m")
    assert ds["eps_meta"].dims == ("seed", "alpha")
    assert ds["diverged"].dtype == np.int8 and ds["alpha_diverged"].dims == ("seed",)
    for name in ds.data_vars:
        assert {"long_name", "units", "description"} <= set(ds[name].attrs), name
    np.testing.assert_array_equal(ds["alpha"].values, p.alphas())
    ref = integrate(
        tasks.R0.values,
        tasks.Q0.values,
        tasks.T.values,
        tasks.w0.values,
        p,
        p.alphas(),
        {"finite_v": False},
    )
    np.testing.assert_allclose(ds["Q"].values, ref.Q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds["R"].isel(alpha=0).values, tasks.R0.values, atol=0)
    with pytest.raises(ValueError):
        theory_dataset(tasks, p, {"bogus": 1})


def test_exhausted_budget_marks_stalled_without_raising():
    p = RunParams(alpha_final=50.0, n_records=20)
    R0, Q0, T, w0 = initial_overlaps(3, 3, seeds=[0, 1])
    alphas = p.alphas()
    out = integrate(R0, Q0, T, w0, p, alphas, {"max_rhs_evals": 200})
    assert out.stalled.all() and out.diverged.all()
    a_div = out.alpha_diverged
    assert np.all((a_div > 0) & (a_div < alphas[-1]))
    assert np.all(np.isnan(out.Q[:, -1])) and np.all(np.isfinite(out.Q[:, 0]))


# --- the activation table drives the theory ----------------------------------------------------


def _fake_gaussian(monkeypatch, scale_i2=1.0):
    """A table line "fake" whose integrals are erf's, with I2 scaled by `scale_i2`; returns
    the names of the integrals called through it."""
    erf_line = activation("erf")
    erf_module = erf_line.gaussian()
    called = []
    module = types.ModuleType("fake_gaussian")
    for name in ("I2", "J2", "I3", "I4", "F4", "F4_block"):

        def counted(*args, _name=name, **kw):
            called.append(_name)
            value = getattr(erf_module, _name)(*args, **kw)
            return scale_i2 * value if _name == "I2" else value

        setattr(module, name, counted)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    line = dataclasses.replace(erf_line, name="fake", integrals=module.__name__)
    monkeypatch.setitem(ACTIVATIONS, "fake", line)
    return called


@pytest.mark.parametrize("algorithm", ["fo-anil", "anil"])
def test_the_run_activation_reaches_the_theory(algorithm, monkeypatch):
    """eps_meta, the few-shot error and every term of the drift take their integrals from the
    run's table line: erf's through the table give erf's numbers, other ones other numbers."""
    rng = np.random.default_rng(3)
    J, B = rng.standard_normal((2, 50)), rng.standard_normal((2, 50))
    R, Q, T, w0 = J @ B.T / 50, J @ J.T / 50, B @ B.T / 50, np.array([0.3, -0.2])
    base = RunParams(K=2, M=2, P=10, V=20, algorithm=algorithm, u_mean=0.2)
    terms = terms_for(TheorySettings(), algorithm)

    def everything(params):
        drifts = term_drifts(R, Q, T, w0, params, terms)
        values = [eps_meta_closed_form(R, Q, T, w0, params)]
        values.append(eps_meta_p_closed_form(R, Q, T, w0, params))
        return values + [v for d in drifts.values() for v in d.values()]

    reference = everything(base)
    called = _fake_gaussian(monkeypatch)
    fake = dataclasses.replace(base, activation="fake")
    for got, want in zip(everything(fake), reference, strict=True):
        np.testing.assert_array_equal(got, want)
    assert {"I2", "I3", "I4", "J2", "F4_block"} <= set(called)
    _fake_gaussian(monkeypatch, scale_i2=1.1)
    changed = everything(fake)
    assert abs(changed[0] - reference[0]) > 1e-6
    assert np.abs(changed[2] - reference[2]).max() > 1e-6  # first-order dR


def test_one_activation_per_theory_batch(monkeypatch):
    _fake_gaussian(monkeypatch)
    phys = Physics.from_params([RunParams(), RunParams(activation="fake")])
    with pytest.raises(ValueError, match="one activation per theory batch"):
        phys.gaussian()
    assert Physics.from_params([RunParams()] * 2).gaussian() is activation("erf").gaussian()


@pytest.mark.parametrize("name", list(ALGORITHM_TABLE))
def test_the_theory_of_an_algorithm_follows_the_table(name):
    """The ODE, the second-order term and the finite-P term of a run come from the table."""
    line = ALGORITHM_TABLE[name]
    ode = ALGORITHM_TABLE[line.theory]
    assert second_order.theory_algorithm(name) == line.theory
    terms = terms_for(TheorySettings(finite_p=True), name)
    assert ("second_order" in terms) == ode.second_order
    assert "finite_p" in terms  # every algorithm: the first-order part's correction
    assert ("second_order_finite_p" in terms) == ode.second_order
    assert "finite_p" not in terms_for(TheorySettings(finite_p=False), name)


def test_growth_rate_end_on_the_unspecialised_plateau_is_the_escape_rate():
    """erf FO-ANIL after alpha = 0.01 from a random start: the state is R ~ N^-1/2, Q and T
    within ~N^-1/2 of I, where the largest eigenvalue of the whole drift's Jacobian
    (growth_rate_end) is the escape rate of R from R = 0 (`stability.escape_rate`, the
    Q and w0 blocks decay). The distance to that point is O(N^-1/2), and so is the
    rate's relative deviation (about 3 N^-1/2 here): within 10 N^-1/2 at every seed, and
    closer at the larger N."""
    from tsmeta.theory.stability import escape_rate

    base = dict(K=2, M=2, eta_J=3.0, eta_w=6.0, alpha_final=0.01, n_records=2, seeds=3)
    deviation = {}
    for N in (10_000, 1_000_000):
        p = RunParams(N=N, **base)
        rate = theory_dataset(initial_state(p), p)["growth_rate_end"].values
        deviation[N] = np.abs(rate / escape_rate(p) - 1.0)
        assert deviation[N].max() < 10 / np.sqrt(N), (N, rate, escape_rate(p))
    assert deviation[1_000_000].max() < deviation[10_000].max()
