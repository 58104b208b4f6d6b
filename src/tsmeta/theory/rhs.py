"""The physics of the order-parameter ODE: d(R, Q, w0)/d(alpha) as a sum of named terms.

Derivation: docs/theory.md. A term is a function of a `Fields` object (the Gaussian integrals
and head moments at one state, computed once and shared) that returns its contribution to
some of dR (..., K, M), dQ (..., K, K) and dw0 (..., K). `TERMS` lists every term with the
rule that switches it on for a run; adding a term is one function and one line there. The
integrator (`theory.integrator`) only ever calls `drift`.

Everything is vectorised over leading batch dims and over the parameters in `Physics`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from tsmeta.params import RunParams
from tsmeta.settings import TheorySettings
from tsmeta.theory import (
    finite_p,
    finite_p_steps,
    finite_vp,
    second_order,
    second_order_finite_p,
)
from tsmeta.theory.closed_form import (
    Physics,
    batch_axes,
    field_covariance,
    fourth_moments,
    head_from_i2,
    head_moments,
)

OUTPUTS = ("dR", "dQ", "dw0")


class Fields:
    """What the terms share at one state (R, Q, T, w0) and parameters `phys`, each computed on
    first use: field covariance C, the Gaussian integrals of the run's activation I2, I3, I4,
    J2 (g' on the students), the adapted head w = a + G u and its moments over u."""

    def __init__(self, R, Q, T, w0, phys: Physics):
        self.R, self.Q, self.T, self.w0, self.phys = R, Q, T, w0, phys
        self.K, self.M = R.shape[-2:]
        self.gaussian = phys.gaussian()  # the integrals of the batch's activation

    @cached_property
    def C(self) -> np.ndarray:
        return field_covariance(self.R, self.Q, self.T, self.phys.gamma)

    @cached_property
    def i2(self) -> np.ndarray:
        return self.gaussian.I2(self.C)

    @cached_property
    def i3(self) -> np.ndarray:
        """[k, b, a] = <g'(lambda_k) z_b g(z_a)>."""
        return self.gaussian.I3(self.C, first=self.K)

    @cached_property
    def i4(self) -> np.ndarray:
        """[k, l, a, b] = <g'(lambda_k) g'(lambda_l) g(z_a) g(z_b)>."""
        return self.gaussian.I4(self.C, first=self.K)

    @cached_property
    def j2(self) -> np.ndarray:
        """[k, l] = <g'(lambda_k) g'(lambda_l)>."""
        return self.gaussian.J2(self.C, first=self.K)

    @cached_property
    def head(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, G) of the adapted head w = a + G u (P -> infinity)."""
        return head_from_i2(
            self.i2, self.w0, self.K, self.M, self.phys.eta_w, self.phys.inner_steps
        )

    @cached_property
    def moments(self) -> dict:
        a, G = self.head
        return head_moments(a, G, self.phys.u_mean, self.phys.u_std, fourth=False)

    @cached_property
    def Ewwcc(self) -> np.ndarray:
        return fourth_moments(self.moments)


# --- the terms ----------------------------------------------------------------------------


def first_order_term(f: Fields) -> dict:
    """Mean outer update at the adapted head, first order in eta_J (docs/theory.md, 6)."""
    K, M = f.K, f.M
    sK = math.sqrt(K)
    eta_J = batch_axes(f.phys.eta_J, 2)
    Ewc = f.moments["Ewc"]
    dR = -(eta_J / sK) * np.einsum("...ka,...kna->...kn", Ewc, f.i3[..., :, K : K + M, :])
    X = np.einsum("...pa,...pqa->...pq", Ewc, f.i3[..., :, :K, :])
    dQ = -(eta_J / sK) * (X + np.swapaxes(X, -1, -2))
    dw0 = -(batch_axes(f.phys.eta_w0, 1) / sK) * np.einsum(
        "...a,...ka->...k", f.moments["Ec"], f.i2[..., :K, :]
    )
    return {"dR": dR, "dQ": dQ, "dw0": dw0}


def finite_v_term(f: Fields) -> dict:
    """(eta_J^2 / V) <e_k e_l> in dQ: the step orthogonal to all fields (docs/theory.md, 6)."""
    K = f.K
    quart = np.einsum("...klab,...klab->...kl", f.Ewwcc, f.i4)
    quart = quart + batch_axes(f.phys.noise_std, 2) ** 2 * f.moments["Eww"] * f.j2
    quart = 0.5 * (quart + np.swapaxes(quart, -1, -2))  # exact symmetry of Q
    return {"dQ": batch_axes(f.phys.eta_J**2 / (f.phys.V * K), 2) * quart}


@dataclass(frozen=True)
class Term:
    """A right-hand-side term and the rule that includes it for a run.

    `fn` gives its drift; `diffusion`, None for a deterministic term, would give a noise of
    its own, independent of the others: a dict like the drift's whose arrays carry one more
    trailing axis (its Wiener increments). The finite-N noise of the outer update is not of
    that kind (the terms' fluctuations are correlated: one task moves them all), so it is
    owned by `theory.diffusion`, which the SDE stepper uses; no term has one today.
    """

    fn: Callable[[Fields], dict]
    applies: Callable[[TheorySettings, str], bool]  # (settings, algorithm) -> included?
    doc: str
    diffusion: Callable[[Fields], dict] | None = None


# Order matters only for floating-point sums: terms are added in this order.
TERMS: dict[str, Term] = {
    "first_order": Term(
        first_order_term, lambda st, alg: True, "first order in eta_J: dR, dQ, dw0"
    ),
    "finite_v": Term(
        finite_v_term, lambda st, alg: st.finite_v, "finite-V term (eta_J^2/V)<e_k e_l> in dQ"
    ),
    "second_order": Term(second_order.second_order_term, second_order.applies, second_order.DOC),
    "finite_p": Term(finite_p.finite_p_term, finite_p.applies, finite_p.DOC),
    "finite_vp": Term(finite_vp.finite_vp_term, finite_vp.applies, finite_vp.DOC),
    "second_order_finite_p": Term(
        second_order_finite_p.second_order_finite_p_term,
        second_order_finite_p.applies,
        second_order_finite_p.DOC,
    ),
    "finite_p_steps": Term(
        finite_p_steps.finite_p_steps_term, finite_p_steps.applies, finite_p_steps.DOC
    ),
}


def terms_for(settings: TheorySettings, algorithm: str) -> tuple[str, ...]:
    """Names of the terms the theory of a run includes."""
    return tuple(name for name, term in TERMS.items() if term.applies(settings, algorithm))


def drift(R, Q, T, w0, phys: Physics, terms: Sequence[str]) -> dict:
    """Sum of `terms` at the state: {"dR", "dQ", "dw0"}, batched over the leading dims."""
    total = {key: 0.0 for key in OUTPUTS}
    for contribution in term_drifts(R, Q, T, w0, phys, terms).values():
        for key, value in contribution.items():
            total[key] = total[key] + value
    zero = {"dR": R, "dQ": Q, "dw0": w0}
    return {key: np.zeros(zero[key].shape) if np.isscalar(v) else v for key, v in total.items()}


def term_drifts(R, Q, T, w0, params: RunParams | Physics, terms: Sequence[str]) -> dict:
    """Each term's contribution separately, {name: {"dR"?, "dQ"?, "dw0"?}}, sharing one Fields."""
    f = _fields(R, Q, T, w0, params)
    return {name: TERMS[name].fn(f) for name in terms}


def diffusion(R, Q, T, w0, params: RunParams | Physics, terms: Sequence[str]) -> dict | None:
    """The noise of `terms` at the state, None where no term has one (an ODE).

    {"dR" (..., K, M, L), "dQ" (..., K, K, L), "dw0" (..., K, L)}: the terms' noises are
    independent, so their Wiener axes are concatenated (L in all), zeros where a term leaves
    an output out."""
    noisy = [name for name in terms if TERMS[name].diffusion is not None]
    if not noisy:
        return None
    f = _fields(R, Q, T, w0, params)
    parts = [TERMS[name].diffusion(f) for name in noisy]
    shapes = {"dR": f.R.shape, "dQ": f.Q.shape, "dw0": f.w0.shape}
    total = {}
    for key in OUTPUTS:
        blocks = []
        for part in parts:
            width = next(iter(part.values())).shape[-1]
            blocks.append(part.get(key, np.zeros(shapes[key] + (width,))))
        total[key] = np.concatenate(blocks, axis=-1)
    return total


def _fields(R, Q, T, w0, params: RunParams | Physics) -> Fields:
    R, Q, T, w0 = (np.asarray(x, dtype=float) for x in (R, Q, T, w0))
    return Fields(R, Q, T, w0, Physics.from_params(params))
