"""The finite-P term: the sampling noise of the inner step on P training examples.

Derivation: docs/theory.md, section 7. With one inner step the adapted head is
w_hat = w - eta_w xi, where w is the P = infinity head and xi, the deviation of the P-example
head gradient from its mean, has E[xi | u] = 0 and Cov(xi | u) = Sigma(u) / P exactly. The
first-order drifts are quadratic in the head and the validation set is independent of the
training set, so the exact finite-P drift is the P = infinity drift with
E[w_k w_l] -> E[w_k w_l] + (eta_w^2 / P) Sigma_bar_kl: this term is the difference, in dR and
dQ (dw0 is linear in the head: no correction). Nothing is left at O(1/P^2).

Where it is applied (`rhs.TERMS`): every algorithm (for ANIL and MAML it corrects the
first-order part; the term `second_order_finite_p` corrects the rest), members with
inner_steps = 1 only; members with inner_steps >= 2 get zero here and their correction from
the term `finite_p_steps` (the head expanded to second order in the training-set noise). The
O(eta_J^2 eta_w^2 / (V P)) part of the finite-V term is the term `finite_vp`.
"""

from __future__ import annotations

import numpy as np

from tsmeta.algorithms import algorithm
from tsmeta.theory.closed_form import batch_axes, finite_p_exact, head_noise_covariance
from tsmeta.theory.second_order import second_order_theory

DOC = "finite-P term (eta_w^2/P) Sigma_bar in E[w w] of dR, dQ (exact for inner_steps = 1)"


def applies(settings, name: str) -> bool:
    """The rule of `rhs.TERMS`: the `finite_p` setting, every algorithm (for ANIL and MAML it
    is the correction of the first-order part; `second_order_finite_p` adds the rest)."""
    return bool(settings.finite_p)


def finite_p_term(f) -> dict:
    """(eta_w^2 / P) Sigma_bar added to E[w_k w_l] in the first-order dR and dQ."""
    K, M = f.K, f.M
    exact = finite_p_exact(f.phys)
    if not np.any(exact):
        return {}
    scale = np.where(exact, f.phys.eta_J * f.phys.eta_w**2 / (f.phys.P * K), 0.0)
    scale = batch_axes(scale, 2)
    sigma = head_noise_covariance(f.C, f.i2, f.w0, f.phys)  # (..., K, K)
    # f.i3[k, b, l] = <g'(lambda_k) z_b g(lambda_l)>, as in the first-order term
    dR = -scale * np.einsum("...kl,...knl->...kn", sigma, f.i3[..., :, K : K + M, :K])
    Y = np.einsum("...kl,...kql->...kq", sigma, f.i3[..., :, :K, :K])
    dQ = -scale * (Y + np.swapaxes(Y, -1, -2))
    return {"dR": dR, "dQ": dQ}


def finite_p_description(terms, params) -> str:
    """What the theory of a run holds at finite P, in words (attribute finite_P_corrections),
    with the measured size of what it leaves out (docs/theory.md, sections 7a, 7b, 9a)."""
    if "finite_p" not in terms:
        return "not included (theory.finite_p = false); error O(1/P)"
    second = second_order_theory(params.algorithm)
    moves_J = algorithm(params.algorithm).adapts_J
    if params.inner_steps == 1:
        parts = ["exact 1/P term included (inner_steps = 1: nothing left at O(1/P^2) in the "
                 "first-order drift)"]  # fmt: skip
        if second:
            parts.append(
                "the second-order part's O(1/P) term included (second_order_finite_p); left "
                "out: the O(1/P^2) remainder of its orthogonal step, measured 1-15 % of that "
                "part at eta_w = 2 and ~40 % at eta_w = 3 (P = V = 10)"
            )
    else:
        shift = ", with the inner J steps' shift of the training fields" if moves_J else ""
        parts = [
            f"O(1/P) term included (finite_p_steps: the head to second order in the training-set "
            f"noise{shift}); left out: O(1/P^2), measured 7-11 % of the term in dQ at P = 10"
        ]
        if second:
            parts.append(
                "not derived: the second-order part's O(1/P) terms for inner_steps >= 2, "
                "measured at P = V = 10, inner_steps = 2: 8-11 % of dR and dQ, 6-27 % of dw0, "
                "1.5-2.4 times the finite-VP term in the orthogonal step"
            )
    if "finite_vp" in terms:
        parts.append(
            "the O(eta_J^2 eta_w^2 / (V P)) part of the finite-V term included (finite_vp); "
            "left out: its O(1/P^2) remainder, ~10 % of it at eta_w = 3, P = V = 10"
        )
    else:
        parts.append("not included: the O(eta_J^2 eta_w^2 / (V P)) part of the finite-V term")
    return "; ".join(parts)
