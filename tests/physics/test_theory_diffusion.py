"""The diffusion matrix (theory.diffusion, docs/theory.md section 12) against one-step Monte
Carlo of the simulator's own increments N (X' - X) (gram sampler, N = 1e5).

Statistic, per block (RR, QQ, w0 w0, RQ; Q's upper triangle) of the sample covariance
D_hat of `copies` independent increments from one state: the Frobenius error |D_hat - D|
against its Monte-Carlo size s = sqrt(sum_ij Var(D_hat_ij)) (Var from the sample's fourth
moments). A candidate D passes if, in every block at every state,

    |D_hat - D| <= 3 s + (LEFT_OUT / L) |D - D_inf|,   L = P = V,

the second term being the stated size of what is left out (O(1/(PV)) and the non-Gaussian
O(1/P^2): a relative O(1/L) correction to the finite-L part; it is largest in the Q block near
R = 0, 27 % of it at L = 50, measured). Under the null |D_hat - D| / s is about 1 (measured
0.2-2.6 over the cases below), so 3 s is a 3-sigma bound per block. The same statistic must
reject the negative controls: D_inf alone, D_V without its I6 part, D_P with a factor 2.
"""

import numpy as np
import pytest
import torch
import xarray as xr
from conftest import one_step

from tsmeta.params import RunParams
from tsmeta.settings import SimSettings
from tsmeta.simulation import Simulation
from tsmeta.tasks import initial_state
from tsmeta.theory import integrate, term_drifts
from tsmeta.theory.closed_form import Physics
from tsmeta.theory.diffusion import Increments, diffusion_parts
from tsmeta.theory.rhs import Fields

K = M = 3
N_SIM = 100_000
LEFT_OUT = 6.0
BASE = dict(K=K, M=M, N=N_SIM, eta_J=3.0, eta_w=9.0, teacher_init="orthonormal")
COPIES = {50: 30_000, 100: 30_000, 1000: 12_000, 10_000: 1_500}
UPPER = [K * M + k * K + l for k in range(K) for l in range(k, K)]
BLOCKS = {
    "RR": (list(range(K * M)), list(range(K * M))),
    "QQ": (UPPER, UPPER),
    "w0w0": ([18, 19, 20], [18, 19, 20]),
    "RQ": (list(range(K * M)), UPPER),
}


def params_at(L: int) -> RunParams:
    return RunParams(**BASE, P=L, V=L)


@pytest.fixture(scope="module")
def states():
    """Random overlaps (an N = 50 draw), the second plateau (eps ~ 9e-3) and a specialised
    state (eps ~ 1e-4) of the ODE from them, at P = V = 100."""
    p = params_at(100)
    ini = initial_state(RunParams(**{**p.to_dict(), "N": 50, "seeds": 1, "seed_offset": 3}))
    R0, Q0, w0 = (ini[v].values[0] for v in ("R0", "Q0", "w0"))
    T = np.eye(M)
    alphas = np.linspace(0.0, 200.0, 2001)
    tr = integrate(R0, Q0, T, w0, p, alphas)
    eps = np.asarray(tr.eps_meta)[0]
    out = {"random": (R0, Q0, T, w0)}
    for name, target in (("plateau", 9e-3), ("specialised", 1e-4)):
        i = int(np.argmin(np.abs(np.log(eps / target))))
        out[name] = (tr.R[0, i], tr.Q[0, i], T, tr.w0[0, i])
    return out


def _tasks_at(state, copies: int, first_seed: int) -> xr.Dataset:
    R, Q, T, w0 = state
    rep = lambda x: np.broadcast_to(x, (copies,) + np.shape(x)).copy()  # noqa: E731
    return xr.Dataset(
        {"R0": (("seed", "k", "n"), rep(R)), "Q0": (("seed", "k", "l"), rep(Q)),
         "T": (("seed", "n", "m"), rep(T)), "w0": (("seed", "k"), rep(w0))},
        coords={"seed": np.arange(first_seed, first_seed + copies), "k": np.arange(K),
                "l": np.arange(K), "n": np.arange(M), "m": np.arange(M)},
    )  # fmt: skip


def one_step_increments(params, state, copies, group=500, first_seed=10**6) -> np.ndarray:
    """N (X' - X) of one task from `state`, `copies` independent tasks, (copies, 21) in the
    flat layout (R, full Q, w0)."""
    torch.manual_seed(0)
    out = []
    for start in range(0, copies, group):
        n = min(group, copies - start)
        tasks = _tasks_at(state, n, first_seed + start)
        sim = Simulation(tasks, params, SimSettings(sampler="gram", draw_chunk=1, mc_tasks=1))
        dR, dQ, dw0 = one_step(sim)
        out.append(params.N * np.concatenate([dR.reshape(n, -1), dQ.reshape(n, -1), dw0], axis=1))
    return np.concatenate(out)


def block_errors(X, D, D_inf, L) -> dict:
    """{block: (|D_hat - D|, Monte-Carlo size s, allowance)} (module doc)."""
    n = len(X)
    Xc = X - X.mean(0)
    D_hat = Xc.T @ Xc / (n - 1)
    var = ((Xc**2).T @ (Xc**2) / n - D_hat**2) / n
    out = {}
    for name, (rows, cols) in BLOCKS.items():
        ix = np.ix_(rows, cols)
        noise = np.sqrt(var[ix].sum())
        allowance = 3.0 * noise + LEFT_OUT / L * np.linalg.norm((D - D_inf)[ix])
        out[name] = (np.linalg.norm(D_hat[ix] - D[ix]), noise, allowance)
    return out


def rejected(X, D, D_inf, L) -> list[str]:
    return [b for b, (err, _, allow) in block_errors(X, D, D_inf, L).items() if err > allow]


@pytest.fixture(scope="module")
def samples(states):
    cache = {}

    def get(L, name):
        if (L, name) not in cache:
            cache[L, name] = one_step_increments(params_at(L), states[name], COPIES[L])
        return cache[L, name]

    return get


def candidates(state, L) -> dict:
    """The full D and the negative controls at a state."""
    parts = diffusion_parts(*state, params_at(L))
    full = sum(parts.values())
    no_i6 = sum(diffusion_parts(*state, params_at(L), validation_fields=False).values())
    return {
        "full": full,
        "task head only (D_inf)": parts["task_head"],
        "D_V without I6": no_i6,
        "2 D_P": full + parts["training"],
        "inf": parts["task_head"],
    }


@pytest.mark.parametrize("L", sorted(COPIES))
@pytest.mark.parametrize("name", ["random", "plateau", "specialised"])
def test_diffusion_matches_one_step_monte_carlo(states, samples, L, name):
    c = candidates(states[name], L)
    X = samples(L, name)
    assert not rejected(X, c["full"], c["inf"], L), block_errors(X, c["full"], c["inf"], L)


@pytest.mark.parametrize(
    "control, L, name",
    [
        ("task head only (D_inf)", 100, "plateau"),
        ("task head only (D_inf)", 1000, "specialised"),
        ("D_V without I6", 50, "random"),
        ("D_V without I6", 1000, "random"),
        ("2 D_P", 100, "plateau"),
        ("2 D_P", 1000, "specialised"),
    ],
)
def test_negative_controls_are_rejected(states, samples, control, L, name):
    c = candidates(states[name], L)
    assert rejected(samples(L, name), c[control], c["inf"], L)


def test_node_mean_is_the_first_order_drift(states):
    """The increment on the Gauss-Hermite nodes of u averages to the drift's first-order term."""
    p = params_at(100)
    for state in states.values():
        inc = Increments(Fields(*(np.asarray(x, float) for x in state), Physics.from_params(p)))
        d = term_drifts(*state, p, ["first_order"])["first_order"]
        flat = np.concatenate([d["dR"].ravel(), d["dQ"].ravel(), d["dw0"].ravel()])
        np.testing.assert_allclose(inc.mean(), flat, rtol=0, atol=1e-13)


def test_closed_forms_at_the_unstable_point():
    """R = 0, Q = T = I, w0 = 0, u_mean = 0 (docs/theory.md, section 12):
    D_R = eta_J^2 eta_w^2 u_std^4 (M + 2) / (9 pi^2 K^2 M^2 P) I,
    D_w0 = (eta_w0^2 u_std^2 / (9 K)) (1 / V + eta_w^2 / (9 K^2 P)) I, D_inf = 0."""
    p = RunParams(**{**BASE, "N": 1000}, P=80, V=120, u_std=1.3)
    state = (np.zeros((K, M)), np.eye(K), np.eye(M), np.zeros(K))
    parts = diffusion_parts(*state, p)
    D = sum(parts.values())
    s2 = p.u_std**2
    d_r = p.eta_J**2 * p.eta_w**2 * s2**2 * (M + 2) / (9 * np.pi**2 * K**2 * M**2 * p.P)
    d_w = p.eta_J**2 * s2 / (9 * K) * (1 / p.V + p.eta_w**2 / (9 * K**2 * p.P))
    np.testing.assert_allclose(np.diag(D)[: K * M], d_r, rtol=1e-12)
    np.testing.assert_allclose(np.diag(D)[-K:], d_w, rtol=1e-12)
    assert np.abs(parts["task_head"]).max() < 1e-15


def test_anil_node_mean_is_the_second_order_drift(states):
    """ANIL's increment on the nodes (one inner step) averages to first_order + second_order."""
    p = RunParams(**{**BASE, "N": 1000, "eta_w": 20.0}, P=100, V=100, algorithm="anil")
    for state in states.values():
        R, Q, T, w0 = (np.asarray(x, float) for x in state)
        w0 = w0 + 0.1  # w0 != 0 exercises the w0 parts of the second-order term
        inc = Increments(Fields(R, Q, T, w0, Physics.from_params(p)), second_order=True)
        d = term_drifts(R, Q, T, w0, p, ["first_order", "second_order"])
        flat = sum(
            np.concatenate([x["dR"].ravel(), x["dQ"].ravel(), x["dw0"].ravel()]) for x in d.values()
        )
        np.testing.assert_allclose(inc.mean(), flat, rtol=0, atol=1e-12)
