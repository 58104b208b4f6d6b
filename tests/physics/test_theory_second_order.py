"""The ANIL (second-order) theory: each new term against a Monte Carlo of the simulator's own
second-order field gradients, the exact cases (D = 0), the linear escape factor from the
Jacobian of the right-hand side, and MAML against ANIL at leading order in N.

Derivations: docs/theory.md, sections 9 and 10.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import xarray as xr
from conftest import field_gradient_update, random_vectors, sampled_tasks

from tsmeta import model
from tsmeta.activations import activation
from tsmeta.algorithms import ALGORITHM_TABLE
from tsmeta.analysis import early_growth_rate
from tsmeta.params import RunParams
from tsmeta.settings import TheorySettings
from tsmeta.theory import drift, term_drifts, terms_for
from tsmeta.theory.closed_form import Physics
from tsmeta.theory.stability import escape_rate

N_SIGMA = 4.5  # bound on every |theory - MC| / SE; ~100 z-values per run: false alarm < 1e-3
SHARP = 10.0  # the new term must be this many SE away from zero somewhere (a dropped term fails)
OUTPUTS = ("dR", "dQ", "dw0")
ERF = activation("erf").torch()


def field_gradient_drifts(J, B, Bt, w0, p: RunParams, n_tasks, seed, chunk=2000):
    """Per-task drift samples of FO-ANIL and ANIL from `model.field_gradients` on the SAME
    tasks (common random numbers): {"fo"|"anil"|"diff": {"dR", "dQ", "dw0": (mean, SE)}}.

    One task's contribution to dR_kn / dalpha is -eta_J sum_mu dL/dlambda_k^mu nu_n^mu over
    the training and validation examples (the J update is -eta_J sum_mu dL/dlambda^mu x^mu /
    sqrt N and N tasks make one unit of alpha), to the first-order part of dQ_kl
    -eta_J sum_mu (dL/dlambda_l^mu lambda_k^mu + (k <-> l)), and to dw0 -eta_w0 dL/dw0.
    """
    gen = torch.Generator().manual_seed(seed)
    K = J.shape[0]
    w0_t = torch.as_tensor(w0, dtype=torch.float64)
    samples = {key: {out: [] for out in OUTPUTS} for key in ("fo", "anil", "diff")}
    for start in range(0, n_tasks, chunk):
        n = min(chunk, n_tasks - start)
        lam, nu, y = sampled_tasks(J, B, Bt, p, n, gen)
        w0_b = w0_t.expand(n, K)
        per = {
            key: field_gradient_update(lam, nu, y, w0_b, p, ERF, second)[0]
            for key, second in (("fo", False), ("anil", True))
        }
        per["diff"] = {out: per["anil"][out] - per["fo"][out] for out in OUTPUTS}
        for key in samples:
            for out in OUTPUTS:
                samples[key][out].append(per[key][out].numpy())
    result = {}
    for key, by_out in samples.items():
        result[key] = {}
        for out, parts in by_out.items():
            values = np.concatenate(parts)
            result[key][out] = (values.mean(0), values.std(0, ddof=1) / math.sqrt(len(values)))
    return result


# K, M, gamma, inner_steps, u_mean, noise_std, eta_w
MC_CASES = [
    (2, 2, 0.8, 1, 0.5, 0.3, 2.0),
    (3, 2, 0.9, 2, -0.4, 0.3, 3.0),
    (2, 3, 0.8, 2, 0.6, 0.0, 2.5),
    (3, 3, 1.0, 1, 0.3, 0.5, 4.0),
]


@pytest.mark.parametrize("K,M,gamma,steps,u_mean,noise,eta_w", MC_CASES)
def test_second_order_term_against_field_gradients(K, M, gamma, steps, u_mean, noise, eta_w):
    """Theory first-order term vs MC FO-ANIL, second-order term vs MC (ANIL - FO-ANIL) on the
    same tasks, and their sum vs MC ANIL, at random order parameters.

    Expected deviations: Monte Carlo (n_tasks = 1.2e4, SE ~ 1-2% of the drifts) and the finite
    training set, O(eta_w^2 / (K^2 P)) relative ~ 2e-3 at P = 500, well below one SE.
    """
    J, B, Bt, w0 = random_vectors(K, M, gamma, seed=100 + 10 * K + M)
    p = RunParams(
        K=K, M=M, P=500, V=20, eta_J=0.7, eta_w=eta_w, eta_w0=1.3, inner_steps=steps,
        gamma=gamma, u_mean=u_mean, u_std=1.2, noise_std=noise,
    )  # fmt: skip
    R, Q, T = J @ B.T, J @ J.T, B @ B.T
    theory = term_drifts(R, Q, T, w0, p, ("first_order", "second_order"))
    expected = {
        "fo": theory["first_order"],
        "diff": theory["second_order"],
        "anil": {out: theory["first_order"][out] + theory["second_order"][out] for out in OUTPUTS},
    }
    mc = field_gradient_drifts(J, B, Bt, w0, p, n_tasks=12_000, seed=K * 7 + steps)
    for key, by_out in expected.items():
        for out, value in by_out.items():
            mean, se = mc[key][out]
            z = np.abs(value - mean) / se
            assert np.all(z < N_SIGMA), (key, out, float(z.max()), value, mean, se)
    for out in OUTPUTS:  # the check is sharp: dropping or flipping the term fails it
        mean, se = mc["diff"][out]
        assert np.max(np.abs(mean) / se) > SHARP, (out, mean, se)


# --- exact cases: D = 0 ---------------------------------------------------------------------


@pytest.mark.parametrize("steps", [1, 2])
def test_anil_equals_fo_anil_when_the_head_step_is_exact(steps):
    """At Q = q I (diagonal A = a I) and eta_w = K / a the inner step is exact, D = 0: every
    v_s = D^(2S-1-s) h_0 and D^(2S) - D^S vanish, so ANIL's drift is FO-ANIL's to rounding,
    at any R, w0, u_mean, gamma, noise; 10 % off that eta_w they differ at O(1)."""
    K, M, q = 3, 2, 0.8
    rng = np.random.default_rng(5)
    R = 0.3 * rng.normal(size=(K, M))
    Q, T, w0 = q * np.eye(K), np.eye(M) + 0.1 * np.ones((M, M)), 0.4 * rng.normal(size=K)
    a = 2 / np.pi * np.arcsin(q / (1 + q))
    st = TheorySettings(finite_p=False)  # the P = infinity statement
    gaps = []
    for eta_w in (K / a, 1.1 * K / a):
        base = dict(K=K, M=M, eta_w=eta_w, eta_J=1.5, eta_w0=0.7, inner_steps=steps, gamma=0.9,
                    u_mean=0.5, u_std=1.1, noise_std=0.3)  # fmt: skip
        fo = drift(R, Q, T, w0, Physics.from_params(RunParams(**base)), terms_for(st, "fo-anil"))
        anil = drift(R, Q, T, w0, Physics.from_params(RunParams(**base, algorithm="anil")),
                     terms_for(st, "anil"))  # fmt: skip
        gaps.append(max(np.abs(anil[k] - fo[k]).max() for k in OUTPUTS))
    assert gaps[0] < 1e-12, gaps
    assert gaps[1] > 1e-3, gaps


# --- linear escape from the unspecialised state ---------------------------------------------

ESCAPE_CASES = [(3, 3, 4.5), (3, 3, 9.0), (3, 3, 20.0), (4, 2, 7.0), (2, 3, 14.0), (5, 3, 27.0)]


@pytest.mark.parametrize("K,M,eta_w", ESCAPE_CASES)
@pytest.mark.parametrize("steps", [1, 2])
def test_escape_factor_from_the_jacobian(K, M, eta_w, steps):
    """docs/theory.md, section 10: at R -> 0, Q = T = I, w0 = 0, u_mean = 0 the FO-ANIL rate is
    eta_J eta_w u_std^2 gamma^2 (1 - d^S) / (1 - d) / (pi^2 K M) with d = 1 - eta_w / (3K), and
    ANIL's (and MAML's) is that times 1 + d^S (= 2 - eta_w / (3K) for S = 1). The Jacobian is
    numerical (central differences of the right-hand side), the formulas are not: they agree
    to the finite-difference error, O(step^2) ~ 1e-8 relative."""
    # u_mean != 0 on purpose: escape_rate evaluates at u_mean = 0
    base = dict(K=K, M=M, eta_w=eta_w, eta_J=2.0, u_std=1.3, gamma=0.9, inner_steps=steps,
                u_mean=0.7, noise_std=0.2)  # fmt: skip
    runs = [RunParams(**base, algorithm=a) for a in ("fo-anil", "anil", "maml", "fo-maml")]
    fo, anil, maml, fo_maml = escape_rate(runs, {"finite_p": False})
    d = 1.0 - eta_w / (3 * K)
    geometric = steps if d == 1 else (1 - d**steps) / (1 - d)
    fo_expected = 2.0 * eta_w * 1.3**2 * 0.9**2 * geometric / (math.pi**2 * K * M)
    np.testing.assert_allclose(fo, fo_expected, rtol=1e-6)
    np.testing.assert_allclose(anil / fo, 1 + d**steps, rtol=1e-6, atol=1e-7)
    assert maml == anil and fo_maml == fo  # MAML's ODE is ANIL's
    if steps == 1:
        np.testing.assert_allclose(anil / fo, 2 - eta_w / (3 * K), rtol=1e-6, atol=1e-7)


def test_escape_rate_single_and_stability_sign():
    """A single RunParams gives a float; for eta_w > 6K (S = 1) ANIL's unspecialised state is
    linearly stable (negative rate) while FO-ANIL's is not."""
    anil = escape_rate(RunParams(algorithm="anil", K=3, M=3, eta_w=20.0), {"finite_p": False})
    fo = escape_rate(RunParams(algorithm="fo-anil", K=3, M=3, eta_w=20.0), {"finite_p": False})
    assert isinstance(anil, float) and anil < 0 < fo


# --- the early growth rate of R from a trajectory -------------------------------------------


def _trajectory(rates, alpha, R0=0.05, late=3.0):
    """R (seed, alpha, 2, 2) growing as exp(rate alpha) while rms(R) < 1.2 R0 ... then faster."""
    seeds = len(rates)
    R = np.empty((seeds, len(alpha), 2, 2))
    pattern = np.array([[1.0, -0.5], [0.3, 2.0]])
    pattern = R0 * pattern / np.sqrt(np.mean(pattern**2))
    for s, rate in enumerate(rates):
        log_growth = rate * alpha
        # beyond alpha = 2 the growth is no longer exponential (outside the default window)
        log_growth = np.where(alpha > 2.0, rate * 2.0 + late * (alpha - 2.0), log_growth)
        R[s] = np.exp(log_growth)[:, None, None] * pattern
    return xr.Dataset(
        {"R": (("seed", "alpha", "k", "n"), R)},
        coords={"seed": np.arange(seeds), "alpha": alpha},
    )


def test_early_growth_rate_recovers_the_exponent():
    alpha = np.concatenate([[0.0], np.geomspace(0.01, 50.0, 40)])
    ds = _trajectory([0.15, -0.2, 0.0], alpha)
    got = early_growth_rate(ds)
    np.testing.assert_allclose(got.values, [0.15, -0.2, 0.0], atol=1e-10)
    # a fast grower leaves the window at rms(R) = 1.5 rms(R0): still the early exponent
    fast = early_growth_rate(_trajectory([0.9], alpha))
    np.testing.assert_allclose(fast.values, [0.9], atol=1e-10)
    with pytest.raises(ValueError, match="max_growth"):
        early_growth_rate(ds, max_growth=1.0)


# --- MAML = ANIL and FO-MAML = FO-ANIL at leading order in N ----------------------------------


def weights_of_the_maml_check(N, K=2, M=2):
    """(J, B, w0) of `one_update_drifts`: J with an O(1) overlap with B, w0 != 0."""
    init = torch.Generator().manual_seed(123)
    B = torch.randn(1, M, N, generator=init, dtype=torch.float64)
    J = 0.5 * torch.randn(1, K, N, generator=init, dtype=torch.float64)
    J[:, :M] += 0.6 * B
    return J, B, torch.tensor([[0.3, -0.2]], dtype=torch.float64)


def one_update_drifts(
    algorithm, N, n_tasks, *, K=2, M=2, P=40, V=40, eta_J=1.0, eta_w=2.0, inner_steps=1
):
    """Per task, N times the one-update change of (R, Q) (first order in the step) and of w0,
    i.e. each task's contribution to d(R, Q, w0)/dalpha, on the weights, (n_tasks, entries).

    The weights and the tasks are the same for every algorithm (common random numbers): J has
    an O(1) overlap with B, w0 != 0 (`weights_of_the_maml_check`), S = inner_steps. MAML and
    FO-MAML adapt J in the inner loop too (eta_J_inner = eta_J), with `model.maml_gradients`;
    ANIL and FO-ANIL use
    `model.field_gradients`, with the J gradient assembled from the field gradients.
    """
    J, B, w0 = weights_of_the_maml_check(N, K, M)
    gen = torch.Generator().manual_seed(7)
    rows = []
    for start in range(0, n_tasks, 250):
        n = min(250, n_tasks - start)
        X = torch.randn(n, P + V, N, generator=gen, dtype=torch.float64)
        u = torch.randn(n, M, generator=gen, dtype=torch.float64)
        y = model.network_output(X @ B.transpose(-1, -2) / math.sqrt(N), u, ERF)
        Jb, w0b = J.expand(n, K, N), w0.expand(n, K)
        line = ALGORITHM_TABLE[algorithm]
        if line.adapts_J:
            grad_J, grad_w0 = model.maml_gradients(
                Jb, w0b, X[:, :P], y[:, :P], X[:, P:], y[:, P:], act=ERF, eta_w=eta_w,
                eta_J_inner=eta_J, inner_steps=inner_steps, second_order=line.second_order,
            )  # fmt: skip
        else:
            lam = X @ Jb.transpose(-1, -2) / math.sqrt(N)
            d_tr, d_val, grad_w0 = model.field_gradients(
                lam[:, :P], y[:, :P], lam[:, P:], y[:, P:], w0b, act=ERF, eta_w=eta_w,
                inner_steps=inner_steps, second_order=line.second_order,
            )  # fmt: skip
            grad_J = d_val.transpose(-1, -2) @ X[:, P:] / math.sqrt(N)
            if d_tr is not None:
                grad_J = grad_J + d_tr.transpose(-1, -2) @ X[:, :P] / math.sqrt(N)
        dR = -eta_J * grad_J @ B.transpose(-1, -2)  # N Delta R
        JdJ = -eta_J * grad_J @ J.transpose(-1, -2)
        dQ = JdJ + JdJ.transpose(-1, -2)  # N Delta Q, first order in eta_J
        rows.append(torch.cat([dR.flatten(1), dQ.flatten(1), -eta_J * grad_w0], 1).numpy())
    return np.concatenate(rows)


@pytest.mark.parametrize("pair", [("maml", "anil"), ("fo-maml", "fo-anil")])
def test_maml_minus_anil_falls_like_one_over_N(pair):
    """docs/theory.md, section 9: MAML's inner J step moves the validation fields by
    O(eta_J / sqrt(N P)) with zero mean, and its Hessian term is O(1/N^2) per task, so the mean
    one-update difference of the drifts (MAML - ANIL, FO-MAML - FO-ANIL; S = 1) falls like 1/N,
    while ANIL - FO-ANIL is O(1). The mean over n tasks has a Monte-Carlo error, checked below
    to be < 15 % of the difference, so the fitted exponent is within ~0.1 of -1."""
    Ns, n_tasks = (50, 200, 800), 1000
    sizes, errors = [], []
    for N in Ns:
        diff = one_update_drifts(pair[0], N, n_tasks) - one_update_drifts(pair[1], N, n_tasks)
        mean = diff.mean(0)
        sizes.append(np.sqrt(np.mean(mean**2)))
        errors.append(np.sqrt(np.mean(diff.var(0, ddof=1) / n_tasks)))
    assert all(e < 0.15 * s for e, s in zip(errors, sizes)), (sizes, errors)
    slope = np.polyfit(np.log(Ns), np.log(sizes), 1)[0]
    assert -1.25 < slope < -0.75, (slope, sizes)
    # the second-order part itself is O(1): it does not shrink with N
    gap = one_update_drifts("anil", 800, 200) - one_update_drifts("fo-anil", 800, 200)
    assert np.sqrt(np.mean(gap.mean(0) ** 2)) > 30 * sizes[-1], (gap.mean(0), sizes)


# --- the theory of a run is its algorithm's ---------------------------------------------------


def test_sweep_with_an_algorithm_axis_integrates_each_members_own_ode():
    """A theory sweep with `algorithm` as a grid axis: each member is integrated with its
    algorithm's right-hand side (compared with a direct integration), the attributes say which
    ODEs were used, and ANIL differs from FO-ANIL away from eta_w = 3K."""
    from tsmeta.tasks import initial_state
    from tsmeta.theory import integrate
    from tsmeta.theory.sweeps import member_params, run_sweep

    base = {"K": 2, "M": 2, "N": 60, "eta_J": 2.0, "alpha_final": 6.0}
    settings = {"finite_p": False, "rtol": 1e-9, "atol": 1e-11}
    sweep = {"base": base, "grid": {"algorithm": ["fo-anil", "anil"], "eta_w": [3.0, 12.0]}}
    ds = run_sweep(sweep, settings, n_fine=30, n_coarse=6)
    assert ds.attrs["theory_algorithm"] == "fo-anil,anil"
    assert "anil: first_order,finite_v,second_order" in ds.attrs["terms"]
    for algorithm in ("fo-anil", "anil"):
        for eta_w in (3.0, 12.0):
            p = member_params(base, {"algorithm": algorithm, "eta_w": eta_w})
            assert p.algorithm == algorithm
            ts = initial_state(p)
            state = [ts[v].values for v in ("R0", "Q0", "T", "w0")]
            ref = integrate(*state, p, np.array([0.0, p.alpha_final]), settings)
            got = ds["R"].sel(algorithm=algorithm, eta_w=eta_w).values
            np.testing.assert_allclose(got, ref.R[0, -1], rtol=0, atol=1e-6)
    final = ds["eps_final"].sel(eta_w=12.0)
    assert abs(float(final.sel(algorithm="anil") - final.sel(algorithm="fo-anil"))) > 1e-3


@pytest.mark.parametrize(
    "algorithm,theory", [("fo-anil", "fo-anil"), ("anil", "anil"), ("maml", "anil"),
                         ("fo-maml", "fo-anil")],
)  # fmt: skip
def test_theory_stage_integrates_the_runs_own_algorithm(tmp_path, algorithm, theory):
    """stages.make_theory passes the run's algorithm; the netCDF says which ODE it is."""
    from tsmeta import stages
    from tsmeta.io import open_dataset

    p = RunParams(algorithm=algorithm, K=2, M=2, N=20, eta_w=3.0, seeds=1, alpha_final=0.5,
                  n_records=3)  # fmt: skip
    tasks = stages.make_tasks(p, tmp_path / "tasks.nc")
    ds = open_dataset(stages.make_theory(tasks, p, {"finite_p": False}, tmp_path / "th.nc"))
    assert ds.attrs["theory_algorithm"] == theory
    assert ds.attrs["param_algorithm"] == algorithm
    assert ("second_order" in ds.attrs["terms"].split(",")) == (theory == "anil")
