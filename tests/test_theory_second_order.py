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

from tsmeta import model
from tsmeta.params import RunParams
from tsmeta.settings import TheorySettings
from tsmeta.theory import drift, term_drifts, terms_for
from tsmeta.theory.closed_form import Physics

N_SIGMA = 4.5  # bound on every |theory - MC| / SE; ~100 z-values per run: false alarm < 1e-3
SHARP = 10.0  # the new term must be this many SE away from zero somewhere (a dropped term fails)
OUTPUTS = ("dR", "dQ", "dw0")


def random_vectors(K, M, gamma, seed):
    """Explicit weight vectors in d = K + 2M dimensions (x ~ N(0, I_d), fields = W x).

    The task-teacher perturbation lives in M extra orthonormal directions, so the field
    covariance of docs/theory.md holds exactly; R, Q, T are read off the vectors.
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


def field_gradient_drifts(J, B, Bt, w0, p: RunParams, n_tasks, seed, chunk=2000):
    """Per-task drift samples of FO-ANIL and ANIL from `model.field_gradients` on the SAME
    tasks (common random numbers): {"fo"|"anil"|"diff": {"dR", "dQ", "dw0": (mean, SE)}}.

    One task's contribution to dR_kn / dalpha is -eta_J sum_mu dL/dlambda_k^mu nu_n^mu over
    the training and validation examples (the J update is -eta_J sum_mu dL/dlambda^mu x^mu /
    sqrt N and N tasks make one unit of alpha), to the first-order part of dQ_kl
    -eta_J sum_mu (dL/dlambda_l^mu lambda_k^mu + (k <-> l)), and to dw0 -eta_w0 dL/dw0.
    """
    gen = torch.Generator().manual_seed(seed)
    K, M, d = J.shape[0], B.shape[0], J.shape[1]
    W = torch.as_tensor(np.vstack([J, B, Bt]), dtype=torch.float64)
    w0_t = torch.as_tensor(w0, dtype=torch.float64)
    n_ex = p.P + p.V
    samples = {key: {out: [] for out in OUTPUTS} for key in ("fo", "anil", "diff")}
    for start in range(0, n_tasks, chunk):
        n = min(chunk, n_tasks - start)
        x = torch.randn(n, n_ex, d, generator=gen, dtype=torch.float64)
        z = x @ W.T
        lam, nu, nut = z[..., :K], z[..., K : K + M], z[..., K + M :]
        u = p.u_mean + p.u_std * torch.randn(n, M, generator=gen, dtype=torch.float64)
        y = model.network_output(nut, u)
        y = y + p.noise_std * torch.randn(n, n_ex, generator=gen, dtype=torch.float64)
        w0_b = w0_t.expand(n, K)
        per = {}
        for key, second in (("fo", False), ("anil", True)):
            d_tr, d_val, d_w0 = model.field_gradients(
                lam[:, : p.P], y[:, : p.P], lam[:, p.P :], y[:, p.P :], w0_b,
                eta_w=p.eta_w, inner_steps=p.inner_steps, second_order=second,
            )  # fmt: skip
            d_lam = torch.zeros_like(lam)
            d_lam[:, p.P :] = d_val
            if d_tr is not None:
                d_lam[:, : p.P] = d_tr
            dR = -p.eta_J * d_lam.transpose(-1, -2) @ nu
            X = d_lam.transpose(-1, -2) @ lam  # [l, k] = sum_mu dL/dlambda_l lambda_k
            per[key] = {"dR": dR, "dQ": -p.eta_J * (X + X.transpose(-1, -2)),
                        "dw0": -p.eta_w0_eff * d_w0}  # fmt: skip
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

    Expected deviations: Monte Carlo (n_tasks = 2e4, SE ~ 1% of the drifts) and the finite
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
    mc = field_gradient_drifts(J, B, Bt, w0, p, n_tasks=20_000, seed=K * 7 + steps)
    for key, by_out in expected.items():
        for out, value in by_out.items():
            mean, se = mc[key][out]
            z = np.abs(value - mean) / se
            assert np.all(z < N_SIGMA), (key, out, float(z.max()), value, mean, se)
    for out in OUTPUTS:  # the check is sharp: dropping or flipping the term fails it
        mean, se = mc["diff"][out]
        assert np.max(np.abs(mean) / se) > SHARP, (out, mean, se)
