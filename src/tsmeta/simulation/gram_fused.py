"""The Gram sampler's FO-ANIL update as one compiled loop over tasks and seeds (numba).

At small P + V an eager PyTorch task is ~60 small operations whose dispatch costs several
times the arithmetic (benchmarks/bench_simulator.py --gram-floor). This kernel runs a stretch
of tasks of every seed in one call, on the same draws in the same order as
`GramSampler.advance`, so a run is the same chain to rounding (tested), not a new sampler.

It carries the Cholesky factor L of G instead of G. With B's rows first, L = [[L_T, 0],
[L_JB, L_JJ]] and L_T = chol(T) is fixed for a run. One outer step makes the new J's
coordinates A (K x D) on the frame plus the Wishart part orth (K x m) off it; then

    L_JB' = A[:, :M],    L_JJ' = chol(A[:, M:] A[:, M:]^T + (eta_J / N)^2 orth orth^T),

which is chol(G') of `GramSampler.advance` without forming R' and Q' (R' = A[:, :M] L_T^T).
G is rebuilt from L at the end of every call, before any record. The roots are the unique
lower-triangular ones, as `gram.scale_root` normalises them, so both paths draw the same
Wishart matrix from the same Bartlett draws.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch

from tsmeta.nonlinearities import erf, linear, relu
from tsmeta.settings import FUSED_ACTIVATIONS

# reassociated sums vectorise; no flag that assumes finite values (a diverged seed's NaN must
# stay NaN for the divergence check). cache: machine code kept next to this file.
_jit = numba.njit(error_model="numpy", fastmath={"reassoc", "contract", "arcp"}, cache=True)

# The activations' scalar functions (`g_scalar`, `g_prime_scalar` of tsmeta.nonlinearities).
# A cached kernel cannot close over functions, so `_g` and `_g_prime` branch on the position
# of the run's activation in FUSED_ACTIVATIONS; another activation runs eager until it is
# added there and here.
assert FUSED_ACTIVATIONS == ("erf", "relu", "linear")
_g_erf, _g_prime_erf = _jit(erf.g_scalar), _jit(erf.g_prime_scalar)
_g_relu, _g_prime_relu = _jit(relu.g_scalar), _jit(relu.g_prime_scalar)
_g_linear, _g_prime_linear = _jit(linear.g_scalar), _jit(linear.g_prime_scalar)


@_jit
def _g(code, z):
    if code == 0:
        return _g_erf(z)
    if code == 1:
        return _g_relu(z)
    return _g_linear(z)


@_jit
def _g_prime(code, z):
    if code == 0:
        return _g_prime_erf(z)
    if code == 1:
        return _g_prime_relu(z)
    return _g_prime_linear(z)


# relative size below which a Cholesky pivot counts as zero (a PSD matrix of lower rank, e.g.
# J = B): the column is dropped, which is exact for a PSD matrix and keeps a NaN a NaN
PIVOT_TOLERANCE = 1e-13


@_jit
def _cholesky(a, out):
    """Lower-triangular out with out out^T = a (n x n, PSD); zero columns where a pivot is
    zero to PIVOT_TOLERANCE relative to its diagonal entry."""
    n = a.shape[0]
    for j in range(n):
        s = a[j, j]
        for k in range(j):
            s -= out[j, k] * out[j, k]
        for i in range(j):
            out[i, j] = 0.0
        if s <= PIVOT_TOLERANCE * abs(a[j, j]):
            for i in range(j, n):
                out[i, j] = 0.0
            continue
        d = math.sqrt(s)
        out[j, j] = d
        for i in range(j + 1, n):
            t = a[i, j]
            for k in range(j):
                t -= out[i, k] * out[j, k]
            out[i, j] = t / d


@_jit
def _bartlett(chi, below, out):
    """The Bartlett factor of `gram.bartlett_factor` (rows x m) into out."""
    rows, m = out.shape
    for i in range(rows):
        for j in range(m):
            if j < i:
                out[i, j] = below[i, j]
            elif j == i:
                out[i, j] = math.sqrt(chi[j])
            else:
                out[i, j] = 0.0


@_jit
def _fields(x, L_J, teacher, xT, fields):
    """Fields (K + M, n_ex), the student's then the task teacher's, of the inputs x (n_ex,
    D); xT (D, n_ex) gets x transposed, so that every inner loop runs along the examples."""
    n_ex, D = x.shape
    K, M = L_J.shape[0], teacher.shape[0]
    for mu in range(n_ex):
        for j in range(D):
            xT[j, mu] = x[mu, j]
    fields[:, :] = 0.0
    for k in range(K):
        for j in range(M + k + 1):  # L_J is lower triangular
            a = L_J[k, j]
            for mu in range(n_ex):
                fields[k, mu] += a * xT[j, mu]
    for i in range(M):
        for j in range(D):
            a = teacher[i, j]
            if a != 0.0:
                for mu in range(n_ex):
                    fields[K + i, mu] += a * xT[j, mu]


@_jit
def _outputs(act, w, first, stop, labels, delta):
    """delta = s - y on examples first..stop, s = w . g(lambda) / sqrt(K)."""
    K = w.shape[0]
    for mu in range(first, stop):
        delta[mu] = -labels[mu]
    for k in range(K):
        a = w[k] / math.sqrt(K)
        for mu in range(first, stop):
            delta[mu] += a * act[k, mu]


@_jit
def _head_gradient(act, delta, first, stop, grad):
    """grad_w of the half squared error on examples first..stop (their mean)."""
    K = grad.shape[0]
    scale = 1.0 / ((stop - first) * math.sqrt(K))
    for k in range(K):
        t = 0.0
        for mu in range(first, stop):
            t += act[k, mu] * delta[mu]
        grad[k] = t * scale


@_jit
def _new_factor(L_J, A, orth, step, M, gram, root):
    """L_J' = [A[:, :M], chol(A[:, M:] A[:, M:]^T + step^2 orth orth^T)]."""
    K, D = A.shape
    m = orth.shape[1]
    for k in range(K):
        for q in range(k + 1):
            t = 0.0
            for j in range(M, D):
                t += A[k, j] * A[q, j]
            o = 0.0
            for j in range(m):
                o += orth[k, j] * orth[q, j]
            gram[k, q] = t + step * step * o
            gram[q, k] = gram[k, q]
    _cholesky(gram, root)
    L_J[:, :] = 0.0
    for k in range(K):
        for j in range(M):
            L_J[k, j] = A[k, j]
        for q in range(k + 1):
            L_J[k, M + q] = root[k, q]


@_jit
def _wishart(coef, chi, below, gram, root, wish, orth):
    """orth (K x m) = chol(coef coef^T) times the Bartlett factor: the J gradient's part off
    the frame has Gram orth orth^T (coef (K, V))."""
    K, V = coef.shape
    m = orth.shape[1]
    for k in range(K):
        for q in range(k + 1):
            t = 0.0
            for nu in range(V):
                t += coef[k, nu] * coef[q, nu]
            gram[k, q] = t
            gram[q, k] = t
    _cholesky(gram, root)
    _bartlett(chi, below, wish)
    for k in range(K):
        for j in range(m):
            t = 0.0
            for q in range(j, k + 1):
                t += root[k, q] * wish[q, j]
            orth[k, j] = t


@_jit
def _write_gram(L, L_J, G):
    """G = [[T, R^T], [R, Q]] from the factor: R = L_JB L_T^T, Q = L_J L_J^T."""
    K, d = L_J.shape[0], L.shape[0]
    M = d - K
    for k in range(K):
        for i in range(M):
            t = 0.0
            for j in range(i + 1):
                t += L_J[k, j] * L[i, j]
            G[M + k, i] = t
            G[i, M + k] = t
        for q in range(k + 1):
            t = 0.0
            for j in range(d):
                t += L_J[k, j] * L_J[q, j]
            G[M + k, M + q] = t
            G[M + q, M + k] = t


@_jit
def _task(code, L_J, w0, x, teacher, u, zeta, chi, below, P, step, eta_w, inner_steps,
          noise_std, work):  # fmt: skip
    """One outer step of one seed: L_J updated in place; w0's gradient left in grad."""
    xT, fields, act, labels, delta, w, grad, coef, A, gram, root, wish, orth = work
    K, M = L_J.shape[0], teacher.shape[0]
    n_ex, D = x.shape
    V = n_ex - P
    _fields(x, L_J, teacher, xT, fields)
    for k in range(K + M):  # every activation in one loop: with the draws, the floor
        for mu in range(n_ex):
            act[k, mu] = _g(code, fields[k, mu])
    for mu in range(n_ex):
        t = 0.0
        for i in range(M):
            t += u[i] * act[K + i, mu]
        labels[mu] = t / math.sqrt(M) + (noise_std * zeta[mu] if noise_std > 0.0 else 0.0)
    w[:] = w0
    for _ in range(inner_steps):  # the head on the training set
        _outputs(act, w, 0, P, labels, delta)
        _head_gradient(act, delta, 0, P, grad)
        for k in range(K):
            w[k] -= eta_w * grad[k]
    _outputs(act, w, P, n_ex, labels, delta)  # validation
    _head_gradient(act, delta, P, n_ex, grad)
    for k in range(K):
        a = w[k] / (V * math.sqrt(K))
        for nu in range(V):
            coef[k, nu] = a * delta[P + nu] * _g_prime(code, fields[k, P + nu])
    for k in range(K):  # J's new coordinates on the frame
        for j in range(D):
            t = 0.0
            for nu in range(V):
                t += coef[k, nu] * xT[j, P + nu]
            A[k, j] = L_J[k, j] - step * t
    _wishart(coef, chi, below, gram, root, wish, orth)
    _new_factor(L_J, A, orth, step, M, gram, root)


@_jit
def _stretch(code, G, w0, xi, B_t, u, zeta, w_chi, w_below, start, stop, P, N, eta_J, eta_w,
             eta_w0_eff, inner_steps, noise_std):  # fmt: skip
    """Tasks start..stop of the chunk applied to G (S, d, d) and w0 (S, K). The draws are
    (chunk, S, ...), each task's contiguous; B_t (chunk or 1, S, M, D) are the task
    teachers' coordinates (`GramSampler.prepare_chunk`), zeta (chunk or 1, S, P + V)."""
    S, d = G.shape[0], G.shape[1]
    K = w0.shape[1]
    M = d - K
    n_ex, D = xi.shape[2], xi.shape[3]
    m = w_chi.shape[2]
    work = (
        np.empty((D, n_ex)), np.empty((K + M, n_ex)), np.empty((K + M, n_ex)),
        np.empty(n_ex), np.empty(n_ex), np.empty(K), np.empty(K), np.empty((K, n_ex - P)),
        np.empty((K, D)), np.empty((K, K)), np.empty((K, K)), np.empty((K, m)),
        np.empty((K, m)),
    )  # fmt: skip
    L = np.empty((d, d))
    L_J = np.zeros((K, D))
    grad = work[6]
    for s in range(S):
        _cholesky(G[s], L)
        L_J[:, :] = 0.0
        L_J[:, :d] = L[M:, :]
        for c in range(start, stop):
            teacher = B_t[0 if B_t.shape[0] == 1 else c, s]
            noise = zeta[0 if zeta.shape[0] == 1 else c, s]
            _task(code, L_J, w0[s], xi[c, s], teacher, u[c, s], noise, w_chi[c, s],
                  w_below[c, s], P, eta_J / N, eta_w, inner_steps, noise_std,
                  work)  # fmt: skip
            for k in range(K):
                w0[s, k] -= eta_w0_eff / N * grad[k]
        _write_gram(L, L_J, G[s])


def kernel(params):
    """Tasks start..stop of a chunk's draws applied in place to the Gram state (G, w0) of
    `params` by the compiled loop: numba compiles it on first use (~10 s) and caches the
    machine code next to this file (0.3 s to load)."""
    p, code = params, FUSED_ACTIVATIONS.index(params.activation)

    def apply(G: torch.Tensor, w0: torch.Tensor, draws: dict, start: int, stop: int) -> None:
        zeta = as_array(draws["zeta"]) if "zeta" in draws else np.zeros((1, G.shape[0], 1))
        _stretch(
            code, G.numpy(), w0.numpy(), as_array(draws["xi"]), as_array(draws["B_t"]),
            as_array(draws["u"]), zeta, as_array(draws["w_chi"]), as_array(draws["w_below"]),
            start, stop, p.P, float(p.N), p.eta_J, p.eta_w, p.eta_w0_eff, p.inner_steps,
            p.noise_std,
        )  # fmt: skip

    return apply


def as_array(x: torch.Tensor) -> np.ndarray:
    """A draw (S, chunk, ...) as the kernel reads it: (chunk, S, ...), C-contiguous (a view
    where `streams.draw_normals` laid it out so, a copy otherwise)."""
    return np.ascontiguousarray(x.transpose(0, 1).numpy())
