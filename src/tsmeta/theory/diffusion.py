"""The diffusion matrix of the order parameters: the noise of one outer update, per task.

Derivation: docs/theory.md, section 12. One task changes the state X = (R, Q, w0) by
Delta X = O(1/N) with E[N Delta X | X] = f(X) (the drift of `rhs`) and
D(X) = N^2 Cov(Delta X | X) = O(1); over d alpha (N d alpha independent tasks)
dX = f dalpha + sqrt(D / N) dW. D is expanded in the sizes of the two sets of a task,

    D = D_inf + D_V / V + D_P / P + D_PP / P^2 + O(1 / (P V)),

each part a named entry of `PARTS`:

- "task_head" (D_inf): the spread of the P = V = infinity increment q(u) over the task head
  u. The adapted head is affine in u for any inner_steps, so q is quadratic in u and its
  covariance is exact on a Gauss-Hermite rule with 3 nodes per dimension of u.
- "validation" (D_V / V): the sampling noise of the validation average given u: the
  per-example second moments (I6 for the R, Q block, F4 for the w0 block) minus the squared
  means, plus the covariance of q with the finite-V drift given u.
- "training" (D_P / P), "training2" (D_PP / P^2, its Gaussian part): the sampling noise of
  the inner step on P examples, through the gradient and the Hessian of q in the head (one
  inner step only: the head is then linear in the sampled gradient).

The matrices are over the flat state of `trajectory.StateLayout` (R, the full Q, w0), so the
rows of Q_kl and Q_lk are equal. Vectorised over leading batch dims like the drift.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from tsmeta.theory.closed_form import Physics
from tsmeta.theory.rhs import Fields

PARTS = ("task_head", "validation", "training", "training2")
HERMITE_NODES = 3  # per dimension of u: exact for polynomials of degree <= 5 (ours: <= 4)

LEFT_OUT = (
    "O(1/(P V)) and the non-Gaussian O(1/P^2) part (third cumulant of the per-example head "
    "gradient); the per-example covariance of the (R, Q) and the w0 updates in D_V (needs "
    "<g' z g g g>; zero at w0 = 0, u_mean = 0 by the symmetry u -> -u); D_P and D_PP for "
    "inner_steps >= 2 (the head is nonlinear in the sampled gradients); the O(1/N) noise of "
    "the task teacher dB_t for gamma < 1; for ANIL and MAML: the second-order part with "
    "inner_steps >= 2, the training examples in the outer gradient's per-example noise, "
    "the finite-P parts; O(1/N) corrections to D"
)


def _col(x, n: int) -> np.ndarray:
    """A batch-shaped parameter with `n` trailing unit axes."""
    x = np.asarray(x, dtype=float)
    return x.reshape(x.shape + (1,) * n)


@lru_cache(maxsize=8)
def hermite_rule(M: int, per_dim: int = HERMITE_NODES) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (G, M) and weights (G,) of the product Gauss-Hermite rule for N(0, I_M)."""
    x, w = np.polynomial.hermite_e.hermegauss(per_dim)
    w = w / w.sum()
    grids = np.meshgrid(*([x] * M), indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=-1)
    weights = np.prod(np.meshgrid(*([w] * M), indexing="ij"), axis=0).ravel()
    for a in (nodes, weights):
        a.flags.writeable = False
    return nodes, weights


@lru_cache(maxsize=8)
def field_selector(K: int, M: int) -> np.ndarray:
    """S (K M + K K, K, K + M): the (R, Q) rows' per-example update is -eta_J sum_ks
    S[i, k, s] e_k z_s (R_kn: e_k nu_n; Q_kl: e_k lambda_l + e_l lambda_k)."""
    S = np.zeros((K * M + K * K, K, K + M))
    for k in range(K):
        for n in range(M):
            S[k * M + n, k, K + n] = 1.0
        for l in range(K):
            S[K * M + k * K + l, k, l] += 1.0
            S[K * M + k * K + l, l, k] += 1.0
    S.flags.writeable = False
    return S


def weighted_cov(x, y, weights) -> np.ndarray:
    """Covariance over the node axis (-2) of x (..., G, n) and y (..., G, m): (..., n, m)."""
    mx = np.einsum("g,...gi->...i", weights, x)
    my = np.einsum("g,...gj->...j", weights, y)
    second = np.einsum("g,...gi,...gj->...ij", weights, x, y)
    return second - mx[..., :, None] * my[..., None, :]


class Increments:
    """The increment of one task at a state, as a function of the task head u.

    Every component is N Delta X_i = sum_ka T[i, k, a] w_k c_a + sum_a t[i, a] c_a at the
    adapted head w and c = (w / sqrt K, 0_M, -u / sqrt M); evaluated on the nodes of u.
    """

    def __init__(self, f: Fields, second_order: bool = False):
        self.f = f
        K, M = f.K, f.M
        self.K, self.M, self.D = K, M, K + 2 * M
        phys = f.phys
        S = field_selector(K, M)
        i3 = f.i3[..., :, : K + M, :]  # [k, s, a]
        T_rq = -_col(phys.eta_J / math.sqrt(K), 3) * np.einsum("iks,...ksa->...ika", S, i3)
        batch = T_rq.shape[:-3]
        zeros_w = np.zeros(batch + (K, K, self.D))
        self.T = np.concatenate([T_rq, zeros_w], axis=-3)  # (..., n, K, D)
        t_w = -_col(phys.eta_w0 / math.sqrt(K), 2) * f.i2[..., :K, :]
        self.t = np.concatenate([np.zeros(batch + (T_rq.shape[-3], self.D)), t_w], axis=-2)
        self.n_rq = T_rq.shape[-3]
        xi, self.weights = hermite_rule(M)
        self.u = _col(phys.u_mean, 2) + _col(phys.u_std, 2) * xi  # (..., G, M)
        a, G = f.head
        self.w = a[..., None, :] + np.einsum("...km,...gm->...gk", G, self.u)
        self.c = self.head_fields(self.w)
        self.q = np.einsum("...ika,...gk,...ga->...gi", self.T, self.w, self.c) + np.einsum(
            "...ia,...ga->...gi", self.t, self.c
        )
        if second_order:
            self.q = self.q + self.second_order_part()

    def second_order_part(self) -> np.ndarray:
        """ANIL's second-order part of the increment on the nodes, one inner step
        (docs/theory.md, section 9, before its average over u): with h0 = A w0 / K -
        C~ u / sqrt(KM), v = D_m h0 and c0 = c(w0), coef_ka = v_k c0_a / sqrt K +
        [a < K] v_a w0_k / K enters dR, dQ as the drift's coef; dw0 gets -eta_w0 (D_m^2 -
        D_m) h0. Members with inner_steps >= 2 are not derived: NaN."""
        f, K, M = self.f, self.K, self.M
        phys = f.phys
        A, Ct = f.i2[..., :K, :K], f.i2[..., :K, K + M :]
        Dm = np.eye(K) - _col(phys.eta_w / K, 2) * A
        h0 = (np.einsum("...kl,...l->...k", A, f.w0) / K)[..., None, :] - np.einsum(
            "...km,...gm->...gk", Ct, self.u
        ) / math.sqrt(K * M)
        v = np.einsum("...kl,...gl->...gk", Dm, h0)
        c0 = self.head_fields(np.broadcast_to(f.w0[..., None, :], self.w.shape))
        coef = v[..., :, None] * c0[..., None, :] / math.sqrt(K)
        coef[..., :K] += v[..., None, :] * f.w0[..., None, :, None] / K
        rate = _col(phys.eta_J * phys.eta_w, 3)
        dR = rate * np.einsum("...gka,...kna->...gkn", coef, f.i3[..., :, K : K + M, :])
        X = np.einsum("...gpa,...pqa->...gpq", coef, f.i3[..., :, :K, :])
        dQ = rate * (X + np.swapaxes(X, -1, -2))
        dw0 = -_col(phys.eta_w0, 2) * np.einsum("...kl,...gl->...gk", Dm @ Dm - Dm, h0)
        batch = dR.shape[:-2]
        out = np.concatenate([dR.reshape(batch + (-1,)), dQ.reshape(batch + (-1,)), dw0], axis=-1)
        one_step = _col(np.asarray(phys.inner_steps) == 1, 2)
        return np.where(one_step, out, np.nan)

    def head_fields(self, w) -> np.ndarray:
        """c = (w / sqrt K, 0_M, -u / sqrt M) on the nodes, (..., G, D)."""
        K, M = self.K, self.M
        batch = np.broadcast_shapes(w.shape[:-1], self.u.shape[:-1])
        return np.concatenate(
            [
                np.broadcast_to(w / math.sqrt(K), batch + (K,)),
                np.zeros(batch + (M,)),
                np.broadcast_to(-self.u / math.sqrt(M), batch + (M,)),
            ],
            axis=-1,
        )

    def mean(self) -> np.ndarray:
        """E_u q: the first-order drift, flat (..., n)."""
        return np.einsum("g,...gi->...i", self.weights, self.q)

    def cov(self, x, y) -> np.ndarray:
        return weighted_cov(x, y, self.weights)

    def task_head(self) -> np.ndarray:
        """D_inf = Cov_u(q)."""
        return self.cov(self.q, self.q)

    # --- finite V ----------------------------------------------------------------------------
    def per_example_rq(self) -> np.ndarray:
        """E_u <phi_i phi_j> of the (R, Q) rows, (..., n_rq, n_rq): the I6 part."""
        f, K, M = self.f, self.K, self.M
        Y, j2, Ct = f.gaussian.I6_contracted(f.C, K, f.Ewwcc, K + M)
        sigma2 = _col(f.phys.noise_std, 4) ** 2
        Y = Y + sigma2 * (f.moments["Eww"] * j2)[..., None, None] * Ct[..., : K + M, : K + M]
        S = field_selector(K, M)
        return _col(f.phys.eta_J**2 / K, 2) * np.einsum(
            "ips,jqt,...pqst->...ij", S, S, Y, optimize=True
        )

    def f4_heads(self) -> np.ndarray:
        """F4(a, b, lambda_k, lambda_l) for a, b over the students and the task teacher
        (where c has entries), (..., K + M, K + M, K, K); computed once per state."""
        if not hasattr(self, "_f4"):
            K, M = self.K, self.M
            used = np.concatenate([np.arange(K), np.arange(K + M, K + 2 * M)])
            lam = np.arange(K)
            self._f4 = self.f.gaussian.F4_block(self.f.C, used, used, lam, lam)
        return self._f4

    def used(self, c) -> np.ndarray:
        K, M = self.K, self.M
        return np.concatenate([c[..., :K], c[..., K + M :]], axis=-1)

    def per_example_w0(self) -> np.ndarray:
        """E_u <phi_k phi_l> of the w0 rows, (..., K, K)."""
        f, K = self.f, self.K
        Ecc = np.einsum("g,...ga,...gb->...ab", self.weights, self.used(self.c), self.used(self.c))
        quartic = np.einsum("...ab,...abkl->...kl", Ecc, self.f4_heads())
        noise = _col(f.phys.noise_std, 2) ** 2 * f.i2[..., :K, :K]
        return _col(f.phys.eta_w0**2 / K, 2) * (quartic + noise)

    def finite_v_given_u(self) -> np.ndarray:
        """V times the finite-V drift given u, (..., G, n): (eta_J^2 / K) <e_k e_l> in Q."""
        f, K = self.f, self.K
        ww = self.w[..., :, None] * self.w[..., None, :]  # (..., G, K, K)
        quart = np.einsum("...gkl,...ga,...gb,...klab->...gkl", ww, self.c, self.c, f.i4)
        quart = quart + _col(f.phys.noise_std, 3) ** 2 * ww * f.j2[..., None, :, :]
        s_q = _col(f.phys.eta_J**2 / K, 3) * quart
        batch = s_q.shape[:-2]
        return np.concatenate(
            [np.zeros(batch + (K * self.M,)), s_q.reshape(batch + (K * K,)),
             np.zeros(batch + (K,))], axis=-1,
        )  # fmt: skip

    def validation(self, with_fields: bool = True) -> np.ndarray:
        """D_V (times V): per-example covariance given u plus Cov_u(q, s) + Cov_u(s, q).
        `with_fields=False` leaves the I6 part out (a negative control of the tests)."""
        n, nrq = self.q.shape[-1], self.n_rq
        second = np.einsum("g,...gi,...gj->...ij", self.weights, self.q, self.q)
        per = np.zeros(second.shape)
        if with_fields:
            per[..., :nrq, :nrq] = self.per_example_rq()
        per[..., nrq:, nrq:] = self.per_example_w0()
        block = np.zeros((n, n), dtype=bool)
        block[:nrq, :nrq] = block[nrq:, nrq:] = True  # the cross block is left out
        s = self.finite_v_given_u()
        cross = self.cov(self.q, s)
        return np.where(block, per - second, 0.0) + cross + np.swapaxes(cross, -1, -2)

    # --- finite P (one inner step) ---------------------------------------------------------
    def head_noise(self) -> np.ndarray:
        """Sigma(u) (..., G, K, K): covariance of one training example's head gradient at w0
        given u (docs/theory.md, section 7, before its average over u)."""
        f, K = self.f, self.K
        c0 = self.head_fields(np.broadcast_to(f.w0[..., None, :], self.w.shape))
        used = self.used(c0)
        quartic = np.einsum("...ga,...gb,...abkl->...gkl", used, used, self.f4_heads())
        m = np.einsum("...ga,...ak->...gk", c0, f.i2[..., :, :K])
        noise = _col(f.phys.noise_std, 2) ** 2 * f.i2[..., :K, :K]
        return (quartic + noise[..., None, :, :] - m[..., :, None] * m[..., None, :]) / K

    def training_parts(self) -> tuple[np.ndarray, np.ndarray]:
        """(D_P, D_PP) without their factors eta_w^2 / P and eta_w^4 / P^2: the gradient g_i
        and half-Hessian A_i of q_i in the head, h_i = tr(A_i Sigma)."""
        K = self.K
        sigma = self.head_noise()
        Tk = self.T[..., :K]  # [i, k, j]: the c_j = w_j / sqrt K part
        grad = (
            np.einsum("...ika,...ga->...gik", self.T, self.c)
            + np.einsum("...ikj,...gk->...gij", Tk, self.w) / math.sqrt(K)
            + self.t[..., None, :, :K] / math.sqrt(K)
        )
        hess = 0.5 * (Tk + np.swapaxes(Tk, -1, -2)) / math.sqrt(K)  # A_i, (..., n, K, K)
        h = np.einsum("...ikj,...gjk->...gi", hess, sigma)
        gsg = np.einsum(
            "g,...gik,...gkl,...gjl->...ij", self.weights, grad, sigma, grad, optimize=True
        )
        cross = self.cov(self.q, h)
        d_p = gsg + cross + np.swapaxes(cross, -1, -2)
        a_sigma = np.einsum("...ikl,...glm->...gikm", hess, sigma)
        trace = np.einsum("g,...gikm,...gjmk->...ij", self.weights, a_sigma, a_sigma)
        d_pp = 2.0 * trace + self.cov(h, h)
        return d_p, d_pp


def diffusion_parts(
    R,
    Q,
    T,
    w0,
    phys: Physics,
    parts=PARTS,
    *,
    validation_fields: bool = True,
    second_order: bool = False,
) -> dict:
    """The parts of D at the state, each with its factor (1/V, eta_w^2/P, eta_w^4/P^2):
    {name: (..., n, n)} over the flat layout (R, full Q, w0). D_P and D_PP are zero where
    inner_steps >= 2. `second_order`: the increment includes ANIL's second-order part (one
    inner step), in D_inf and in the covariances of the other parts with it."""
    R, Q, T, w0 = (np.asarray(x, dtype=float) for x in (R, Q, T, w0))
    phys = Physics.from_params(phys)
    inc = Increments(Fields(R, Q, T, w0, phys), second_order)
    out = {}
    if "task_head" in parts:
        out["task_head"] = inc.task_head()
    if "validation" in parts:
        out["validation"] = inc.validation(validation_fields) / _col(phys.V, 2)
    if "training" in parts or "training2" in parts:
        one_step = _col(np.asarray(phys.inner_steps) == 1, 2)
        rate = _col(phys.eta_w**2 / phys.P, 2)
        d_p, d_pp = inc.training_parts()
        if "training" in parts:
            out["training"] = np.where(one_step, rate * d_p, 0.0)
        if "training2" in parts:
            out["training2"] = np.where(one_step, rate**2 * d_pp, 0.0)
    return out


def diffusion_matrix(R, Q, T, w0, phys: Physics, parts=PARTS, second_order=False) -> np.ndarray:
    """D = the sum of `parts`, (..., n, n), symmetric."""
    total = sum(diffusion_parts(R, Q, T, w0, phys, parts, second_order=second_order).values())
    return 0.5 * (total + np.swapaxes(total, -1, -2))


def parts_for(terms) -> tuple[str, ...]:
    """The parts of D that go with the drift's terms: finite-V noise with the finite-V term,
    finite-P noise with the finite-P term."""
    parts = ["task_head"]
    if "finite_v" in terms:
        parts.append("validation")
    if "finite_p" in terms:
        parts += ["training", "training2"]
    return tuple(parts)


def noise_factor(D: np.ndarray) -> np.ndarray:
    """F (..., n, n) with F F^T = D clipped to its positive part: the 1/L expansion is PSD
    only up to O(1/L^2), and D_inf has low rank (no Cholesky)."""
    vals, vecs = np.linalg.eigh(D)
    return vecs * np.sqrt(np.clip(vals, 0.0, None))[..., None, :]
