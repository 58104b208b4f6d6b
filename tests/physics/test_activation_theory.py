"""The theory with relu and linear: every drift term against the simulator's own field
gradients (as tests/physics/test_theory_ode.py, test_theory_second_order.py and
test_theory_finite_p.py do for erf), and the exact values of docs/theory.md, section 12."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import field_gradient_update
from scipy import optimize

from tsmeta import model
from tsmeta.activations import activation
from tsmeta.analysis import rate_law
from tsmeta.params import RunParams
from tsmeta.settings import TheorySettings
from tsmeta.theory import eps_meta_closed_form, eps_meta_p_closed_form, term_drifts
from tsmeta.theory.closed_form import Physics
from tsmeta.theory.rhs import drift, terms_for
from tsmeta.theory.stability import escape_rate, symmetric_fixed_point

N_SIGMA = 4.5  # ~60 z-values per case and quantity: false alarm of a correct term < 1e-3
OUTPUTS = ("dR", "dQ", "dw0")


def vectors(K, M, gamma, seed):
    """J, B, B_t in d = K + 2M dimensions with x ~ N(0, I_d): the field covariance of
    docs/theory.md holds exactly (the task-teacher perturbation in M extra directions)."""
    rng = np.random.default_rng(seed)
    d = K + 2 * M
    J, B, dB = np.zeros((K, d)), np.zeros((M, d)), np.zeros((M, d))
    J[:, : K + M] = 0.5 * rng.normal(size=(K, K + M))
    B[:, : K + M] = 0.5 * rng.normal(size=(M, K + M))
    dB[:, K + M :] = np.eye(M)
    return J, B, gamma * B + math.sqrt(1 - gamma**2) * dB


def field_gradient_drifts(J, B, Bt, w0, p: RunParams, n_tasks, seed, chunk=2000):
    """Per unit alpha, means and standard errors over tasks of one FO-ANIL and one ANIL update
    on the same tasks, from `model.field_gradients` with the run's activation:
    {"fo"|"anil"|"diff": {"dR", "dQ", "dw0"}} plus "finite_v" (the step orthogonal to the
    fields, eta_J^2 sum_mu dL/dlambda_k dL/dlambda_l of FO-ANIL) and "eps_p" (the few-shot
    error of the head adapted on the P examples)."""
    act = activation(p.activation).torch()
    gen = torch.Generator().manual_seed(seed)
    K, M = J.shape[0], B.shape[0]
    W = torch.as_tensor(np.vstack([J, B, Bt]), dtype=torch.float64)
    samples: dict[str, list] = {}

    def add(key, value):
        samples.setdefault(key, []).append(value.numpy())

    for start in range(0, n_tasks, chunk):
        n = min(chunk, n_tasks - start)
        z = torch.randn(n, p.P + p.V, W.shape[1], generator=gen, dtype=torch.float64) @ W.T
        lam, nu, nut = z[..., :K], z[..., K : K + M], z[..., K + M :]
        u = p.u_mean + p.u_std * torch.randn(n, M, generator=gen, dtype=torch.float64)
        clean = model.network_output(nut, u, act)
        y = clean + p.noise_std * torch.randn(clean.shape, generator=gen, dtype=torch.float64)
        w0s = torch.as_tensor(w0, dtype=torch.float64).expand(n, K)
        per = {}
        for key, second in (("fo", False), ("anil", True)):
            per[key], d_lam = field_gradient_update(lam, nu, y, w0s, p, act, second)
            if key == "fo":
                add("finite_v", p.eta_J**2 * d_lam.transpose(-1, -2) @ d_lam)
        for out in OUTPUTS:
            add(("fo", out), per["fo"][out])
            add(("anil", out), per["anil"][out])
            add(("diff", out), per["anil"][out] - per["fo"][out])
        w = model.adapt_head(lam[:, : p.P], y[:, : p.P], w0s, p.eta_w, p.inner_steps, act)
        pred = model.network_output(lam[:, p.P :], w, act)
        add("eps_p", model.half_mse(pred, clean[:, p.P :]))
    out = {}
    for key, parts in samples.items():
        values = np.concatenate(parts)
        out[key] = (values.mean(0), values.std(0, ddof=1) / math.sqrt(len(values)))
    return out


def assert_within(value, mc, label, n_sigma=N_SIGMA):
    mean, se = mc
    z = np.abs(np.asarray(value) - mean) / (se + 1e-15)
    assert np.all(z < n_sigma), (label, float(z.max()), value, mean, se)
    return float(z.max())


# activation, K, M, gamma, u_mean, noise_std, eta_w
CASES = [
    ("relu", 3, 2, 0.8, 0.3, 0.3, 2.5),
    ("relu", 2, 3, 1.0, 0.0, 0.0, 4.0),
    ("linear", 3, 2, 0.8, 0.3, 0.3, 1.5),
    ("linear", 2, 3, 1.0, 0.0, 0.0, 2.5),
]


@pytest.mark.parametrize("name,K,M,gamma,u_mean,noise,eta_w", CASES)
def test_drift_terms_against_field_gradients(name, K, M, gamma, u_mean, noise, eta_w):
    """At P = V = 10 and a random state: FO-ANIL's field drift = first_order + finite_p, its
    few-shot error = eps_meta_p. At P = 400 (the theory's ANIL and finite-V terms take the
    P = infinity head; the O(eta_w^2 / (K P)) rest is below the SE there): ANIL - FO-ANIL =
    second_order, FO-ANIL's step orthogonal to the fields = finite_v. Monte Carlo: 2e4 tasks,
    SE ~ 1-2 % of the drifts."""
    J, B, Bt = vectors(K, M, gamma, seed=K * 10 + M)
    w0 = 0.4 * np.random.default_rng(K).normal(size=K)
    p = RunParams(
        K=K, M=M, P=10, V=10, eta_J=1.0, eta_w=eta_w, eta_w0=0.7, gamma=gamma,
        u_mean=u_mean, u_std=1.1, noise_std=noise, activation=name,
    )  # fmt: skip
    R, Q, T = J @ B.T, J @ J.T, B @ B.T
    d = term_drifts(R, Q, T, w0, p, ("first_order", "finite_v", "finite_p"))
    mc = field_gradient_drifts(J, B, Bt, w0, p, n_tasks=20_000, seed=3)
    for out in OUTPUTS:
        expected = d["first_order"][out] + d["finite_p"].get(out, 0.0)
        assert_within(expected, mc[("fo", out)], out)
    assert_within(eps_meta_p_closed_form(R, Q, T, w0, p), mc["eps_p"], "eps_p")
    # sharp: without the finite-P term dQ is off by many SE
    mean, se = mc[("fo", "dQ")]
    assert np.max(np.abs(d["first_order"]["dQ"] - mean) / se) > 3 * N_SIGMA

    p_large = RunParams(**{**p.to_dict(), "P": 400, "V": 10})
    large = term_drifts(R, Q, T, w0, p_large, ("second_order", "finite_v"))
    second = large["second_order"]
    mc = field_gradient_drifts(J, B, Bt, w0, p_large, n_tasks=3000, seed=5, chunk=500)
    assert_within(large["finite_v"]["dQ"], mc["finite_v"], "finite_v")
    for out in OUTPUTS:
        assert_within(second[out], mc[("diff", out)], "second_order " + out)
    mean, se = mc[("diff", "dR")]
    assert np.max(np.abs(mean) / se) > 10  # the term is resolved: dropping it fails


def test_eps_meta_against_the_large_p_limit():
    """eps_meta (P = infinity head) of relu against the few-shot error at P = 4000."""
    J, B, Bt = vectors(3, 3, 1.0, seed=1)
    p = RunParams(K=3, M=3, P=4000, V=10, eta_w=2.0, activation="relu", u_mean=0.2)
    R, Q, T = J @ B.T, J @ J.T, B @ B.T
    w0 = np.zeros(3)
    mc = field_gradient_drifts(J, B, Bt, w0, p, n_tasks=400, seed=9, chunk=100)
    eps_p = float(eps_meta_p_closed_form(R, Q, T, w0, p))
    assert_within(eps_p, mc["eps_p"], "eps_p")
    assert abs(eps_p - float(eps_meta_closed_form(R, Q, T, w0, p))) < 2e-3 * eps_p


# --- exact values (docs/theory.md, section 12) ----------------------------------------------

P_INF = {"finite_v": False, "finite_p": False}  # P = V = infinity: the drift is linear in eta_J


def _drift(R, Q, w0, p, terms=("first_order",), T=None):
    """The sum of `terms` (T = I unless given)."""
    d = term_drifts(R, Q, np.eye(p.M) if T is None else T, w0, p, terms)
    return {out: sum(part.get(out, 0.0) for part in d.values()) for out in OUTPUTS}


@pytest.mark.parametrize(
    "K,M,eta_J,eta_w,u_std,gamma", [(3, 3, 2.0, 4.0, 1.3, 0.8), (4, 2, 1.0, 9.0, 1.0, 1.0)]
)
def test_relu_drift_at_r_zero(K, M, eta_J, eta_w, u_std, gamma):
    """R = 0 is no fixed point of relu: with d_s = 1 - eta_w (pi - 1 + K) / (2 pi K),
    dR_kn = eta_J eta_w u_std^2 gamma / (8 pi K M) for every k, n (ANIL: times 1 + d_s),
    dQ_kk = eta_J u_std^2 eta_w / (2 pi^2 K) [1 - (eta_w / K)((K - 1) / (2 pi) + 1/2)],
    dQ_kl = -eta_J u_std^2 eta_w^2 / (8 pi^2 K^2) (one inner step, Q = T = I, w0 = 0)."""
    base = dict(K=K, M=M, eta_J=eta_J, eta_w=eta_w, u_std=u_std, gamma=gamma, activation="relu")
    R, Q, w0 = np.zeros((K, M)), np.eye(K), np.zeros(K)
    fo = _drift(R, Q, w0, RunParams(**base))
    anil = _drift(R, Q, w0, RunParams(**base, algorithm="anil"), ("first_order", "second_order"))
    d_s = 1 - eta_w * (math.pi - 1 + K) / (2 * math.pi * K)
    dR = eta_J * eta_w * u_std**2 * gamma / (8 * math.pi * K * M)
    dQkk = (
        eta_J
        * u_std**2
        * eta_w
        / (2 * math.pi**2 * K)
        * (1 - eta_w / K * ((K - 1) / (2 * math.pi) + 0.5))
    )
    dQkl = -eta_J * u_std**2 * eta_w**2 / (8 * math.pi**2 * K**2)
    np.testing.assert_allclose(fo["dR"], dR, rtol=1e-12)
    np.testing.assert_allclose(anil["dR"], dR * (1 + d_s), rtol=1e-10)
    np.testing.assert_allclose(np.diagonal(fo["dQ"]), dQkk, rtol=1e-12)
    np.testing.assert_allclose(fo["dQ"][~np.eye(K, dtype=bool)], dQkl, rtol=1e-12)


@pytest.mark.parametrize(
    "K,M,eta_w,steps", [(3, 3, 2.0, 1), (3, 3, 4.0, 2), (4, 2, 1.5, 3), (2, 3, 5.0, 1)]
)
def test_linear_escape_rate_is_the_rate_law_with_one_for_one_over_pi_squared(K, M, eta_w, steps):
    """Linear: r = eta_J eta_w u_std^2 gamma^2 (1 - d^S) / ((1 - d) K M), d = 1 - eta_w / K;
    ANIL and MAML times 1 + d^S. For S = 1 this is `analysis.rate_law` with the table's
    escape factor 1 (erf: 1 / pi^2, d = 1 - eta_w / (3K))."""
    base = dict(K=K, M=M, eta_J=1.7, eta_w=eta_w, u_std=1.2, gamma=0.9, inner_steps=steps,
                activation="linear")  # fmt: skip
    fo, anil = escape_rate([RunParams(**base), RunParams(**base, algorithm="anil")], P_INF)
    d = 1 - eta_w / K
    geometric = steps if d == 1 else (1 - d**steps) / (1 - d)
    expected = 1.7 * eta_w * 1.2**2 * 0.9**2 * geometric / (K * M)
    np.testing.assert_allclose(fo, expected, rtol=1e-6)
    np.testing.assert_allclose(anil, expected * (1 + d**steps), rtol=1e-6, atol=1e-8)
    if steps == 1:
        law = rate_law(1.7, eta_w, K, M, 1.2, 0.9, activation="linear")
        np.testing.assert_allclose(fo, law, rtol=1e-6)


def test_linear_anil_unspecialised_state_is_stable_above_two_k():
    """S = 1: ANIL's factor 2 - eta_w / K changes sign at eta_w = 2K (erf: 6K)."""
    rates = escape_rate(
        [RunParams(K=3, M=3, eta_w=w, algorithm="anil", activation="linear") for w in (5.5, 6.5)],
        P_INF,
    )
    assert rates[0] > 0 > rates[1]


@pytest.mark.parametrize("name", ["relu", "linear"])
@pytest.mark.parametrize("algorithm", ["fo-anil", "anil"])
def test_positive_homogeneity_maps_the_dynamics_onto_itself(name, algorithm):
    """(J, w0, eta_J, eta_w, eta_w0) -> (c J, w0 / c, c^2 eta_J, eta_w / c^2, eta_w0 / c^2)
    gives (dR, dQ, dw0) -> (c dR, c^2 dQ, dw0 / c) with every term (finite V, finite P for
    FO-ANIL, second order for ANIL), to rounding; erf, not homogeneous, misses it by far."""
    K, M, c = 3, 2, 1.7
    J, B, _ = vectors(K, M, 0.7, seed=4)
    R, Q, T = J @ B.T, J @ J.T, B @ B.T
    w0 = np.array([0.3, -0.5, 0.2])
    base = dict(K=K, M=M, P=12, V=9, eta_J=0.8, eta_w=2.5, eta_w0=1.1, gamma=0.7, u_mean=0.3,
                noise_std=0.2, algorithm=algorithm)  # fmt: skip
    scaled = {**base, "eta_J": c**2 * 0.8, "eta_w": 2.5 / c**2, "eta_w0": 1.1 / c**2}
    terms = ("first_order", "finite_v", "finite_p", "second_order")
    worst = {}
    for g in (name, "erf"):
        one = _drift(R, Q, w0, RunParams(**base, activation=g), terms, T)
        two = _drift(c * R, c**2 * Q, w0 / c, RunParams(**scaled, activation=g), terms, T)
        powers = {"dR": c, "dQ": c**2, "dw0": 1 / c}
        worst[g] = max(
            float(np.abs(two[out] - powers[out] * one[out]).max() / np.abs(one[out]).max())
            for out in OUTPUTS
        )
    assert worst[name] < 1e-12, worst
    assert worst["erf"] > 1e-3, worst


def _one_to_one_floor(M, x, steps=1):
    """eps of m = 1 scaled copies per teacher unit (K = M, T = I): (u_std^2 / (2M)) sum_i
    mu_i (1 - x mu_i)^(2S), x = eta_w Q_kk / K, mu = (pi - 1) / (2 pi) on the M - 1 difference
    modes and (pi - 1 + M) / (2 pi) on the sum mode of the head."""
    mu = np.array([(math.pi - 1) / (2 * math.pi)] * (M - 1) + [(math.pi - 1 + M) / (2 * math.pi)])
    return float((mu * (1 - x * mu) ** (2 * steps)).sum() / (2 * M))


@pytest.mark.parametrize("M", [2, 3, 5])
def test_relu_one_to_one_floor(M):
    """eps_meta at R = sqrt(q) I, Q = q I equals the floor formula for every q; its minimum over
    the head rate, 0.0175, 0.0338, 0.0603 for M = 2, 3, 5: ReLU has no exact one-step head."""
    p = RunParams(K=M, M=M, eta_w=3.0, activation="relu")
    for q in (0.3, 1.0, 2.2):
        eps = float(eps_meta_closed_form(math.sqrt(q) * np.eye(M), q * np.eye(M), np.eye(M),
                                         np.zeros(M), p))  # fmt: skip
        np.testing.assert_allclose(eps, _one_to_one_floor(M, 3.0 * q / M), rtol=1e-12)
    best = optimize.minimize_scalar(lambda x: _one_to_one_floor(M, x), bounds=(0, 10),
                                    method="bounded", options={"xatol": 1e-10})  # fmt: skip
    assert round(best.fun, 4) == {2: 0.0175, 3: 0.0338, 5: 0.0603}[M]


def test_relu_plateau_and_escape_at_k_m_3():
    """FO-ANIL, K = M = 3, P = V = infinity: the symmetric plateau R* = 0.2448,
    Q*_kk = 0.3411, Q*_kl = 0.0991, eps* = 0.1312 at eta_w = 9, and the escape rate from it
    kappa eta_J eta_w / (K M) with kappa = 0.1504 for every (eta_J, eta_w): eta_w Q*_kk = 3.070
    and kappa depend on the rates only through eta_J eta_w (homogeneity)."""
    runs = [
        RunParams(K=3, M=3, eta_J=a, eta_w=b, activation="relu")
        for a, b in ((3, 9), (1, 9), (3, 3))
    ]
    point = symmetric_fixed_point(runs[0], P_INF)
    assert [round(point[k], 4) for k in ("r", "q", "p", "eps")] == [0.2448, 0.3411, 0.0991, 0.1312]
    kappa = escape_rate(runs, P_INF) * 9 / np.array([27.0, 9.0, 9.0])
    np.testing.assert_allclose(kappa, 0.1504, atol=5e-5)
    np.testing.assert_allclose(kappa, kappa[0], rtol=1e-5)
    assert round(9 * point["q"], 3) == 3.070
    # R = 0 is not where it escapes: the old evaluation point gives another number
    assert abs(symmetric_fixed_point(runs[2], P_INF)["eps"] - point["eps"]) < 1e-9


def _relu_head_correlation(Q):
    """<g(lambda_k) g(lambda_l)> for relu: the arc-cosine kernel of degree 1."""
    q = np.sqrt(np.diag(Q))
    theta = np.arccos(np.clip(Q / np.outer(q, q), -1.0, 1.0))
    return np.outer(q, q) / (2 * np.pi) * (np.sin(theta) + (np.pi - theta) * np.cos(theta))


@pytest.mark.parametrize("algorithm", ["fo-anil", "anil"])
def test_relu_head_at_w0_zero_is_unstable_for_fo_anil_where_the_inner_step_overshoots(algorithm):
    """docs/theory.md section 13: with u_mean = 0, w0 = 0 is invariant, and around it
    dw0/dalpha = -eta_w0 (A/K) D w0 (FO-ANIL), -eta_w0 D (A/K) D w0 (ANIL), D = I - eta_w A/K,
    A the units' activation correlation, at any (R, Q) and with every term of the theory
    (FO-ANIL at P = V = 200; ANIL at P = V = infinity, its finite-P second-order part adds
    to it). Where eta_w a > 1 for an eigenvalue a of A/K (relu's mean puts a
    large one on the sum mode), FO-ANIL's w0 grows at eta_w0 a (eta_w a - 1); ANIL's never."""
    rng = np.random.default_rng(7)
    K = M = 3
    overshoots = []
    for eta_w in (1.0, 3.0, 6.0, 9.0):
        p = RunParams(K=K, M=M, algorithm=algorithm, activation="relu", eta_J=3.0,
                      eta_w=eta_w, eta_w0=2.0, P=200, V=200)  # fmt: skip
        X = rng.normal(size=(K, K))
        Q = X @ X.T / K + 0.5 * np.eye(K)
        R, T = 0.3 * rng.normal(size=(K, M)), np.eye(M)
        settings = TheorySettings() if algorithm == "fo-anil" else TheorySettings(**P_INF)
        terms = terms_for(settings, algorithm)
        phys = Physics.from_params(p)
        state = (R, Q, T)
        assert np.abs(drift(*state, np.zeros(K), phys, terms)["dw0"]).max() < 1e-14
        h = 1e-6
        jac = np.stack([
            (drift(*state, h * e, phys, terms)["dw0"] - drift(*state, -h * e, phys, terms)["dw0"])
            / (2 * h)
            for e in np.eye(K)
        ], axis=1)  # fmt: skip
        A = _relu_head_correlation(Q) / K
        D = np.eye(K) - eta_w * A
        expected = -p.eta_w0_eff * (A @ D if algorithm == "fo-anil" else D @ A @ D)
        np.testing.assert_allclose(jac, expected, atol=1e-7 * np.abs(expected).max())
        a = np.linalg.eigvalsh(A)
        growth = np.linalg.eigvals(jac).real.max()
        overshoots.append(eta_w * a.max() > 1)
        if algorithm == "fo-anil" and eta_w * a.max() > 1:
            assert growth == pytest.approx(p.eta_w0_eff * a.max() * (eta_w * a.max() - 1), rel=1e-5)
        else:
            assert growth <= 1e-12
    assert any(overshoots) and not all(overshoots)  # both sides of the threshold were tried


def test_theory_records_the_growth_rate_of_fo_anils_relu_end_state():
    """The theory stage's growth_rate_end at FO-ANIL's specialised relu state (K = M = 3,
    eta_w = 6, the relu_anil_unstable run at alpha = 60) is the head's sum mode of the test
    above, eta_w0 a (eta_w a - 1) with a the largest eigenvalue of A/K at the end Q: at
    w0 = 0 the Jacobian is block-triangular (the w0 rows vanish off their block), and the
    (R, Q) block of a stable specialised state is negative. Forward differences of step
    1e-6 give the rate to ~1e-6."""
    import tsmeta

    p = RunParams(K=3, M=3, N=2000, P=1000, V=1000, activation="relu", eta_J=3.0, eta_w=6.0,
                  alpha_final=60.0, n_records=4, seeds=1)  # fmt: skip
    ds = tsmeta.theory_of(p)
    assert np.abs(ds["w0"].values).max() == 0.0  # the ODE stays on w0 = 0
    a = np.linalg.eigvalsh(_relu_head_correlation(ds["Q"].values[0, -1]) / p.K).max()
    assert p.eta_w * a > 1
    expected = p.eta_w0_eff * a * (p.eta_w * a - 1)
    assert float(ds["growth_rate_end"][0]) == pytest.approx(expected, rel=1e-4)
    assert expected == pytest.approx(0.099, abs=1e-3)  # docs/theory.md section 13


def test_linear_exact_head_fixed_point():
    """Linear: A = Q, so R = Q = T = I with eta_w = K is an exact fixed point (drift 0,
    eps_meta 0; erf's is eta_w = 3K), and eps_meta = 0 for every eta_w at Q = (K / eta_w) I."""
    K = 3
    I, w0 = np.eye(K), np.zeros(K)
    for algorithm, terms in (
        ("fo-anil", ("first_order",)),
        ("anil", ("first_order", "second_order")),
    ):
        d = _drift(
            I,
            I,
            w0,
            RunParams(K=K, M=K, eta_w=3.0, algorithm=algorithm, activation="linear"),
            terms,
        )
        for out in OUTPUTS:
            np.testing.assert_allclose(d[out], 0.0, atol=1e-13)
    for eta_w in (2.0, 9.0):
        q = K / eta_w
        p = RunParams(K=K, M=K, eta_w=eta_w, activation="linear")
        assert eps_meta_closed_form(math.sqrt(q) * I, q * I, I, w0, p) < 1e-15
    assert activation("linear").exact_head_rate(K, 1) == K


def test_no_noise_bands_where_the_activation_has_no_diffusion_matrix():
    """relu has no I6 integral: its theory.nc has the ODE path, no *_sd, and says so."""
    import tsmeta

    small = dict(N=40, P=20, V=20, K=2, M=2, seeds=1, alpha_final=0.5, n_records=3)
    relu = tsmeta.theory_of(tsmeta.RunParams(activation="relu", **small))
    assert "R_sd" not in relu and relu.attrs["noise_left_out"].startswith("all")
    assert "R_sd" in tsmeta.theory_of(tsmeta.RunParams(**small))
