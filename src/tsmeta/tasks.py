"""Task-generation stage: the meta-teacher and the initial meta-learner of every seed.

Two ways to draw a seed's state, both from `numpy.random.default_rng(seed)`
(docs/simulation.md, "The initial state"):

* `vectors` (N (K + M) <= VECTORS_MAX numbers per seed): meta-teacher `B` (M x N), student
  rows `J` (K x N), head `w0` (K), in that order; the overlaps R0, Q0, T are computed from them.
* `overlaps` (above): the initial overlaps are drawn directly, without any N-vector, from the
  same law: W = [B; J] is a fixed linear map of a Gaussian matrix Y (rows: teacher, then the
  student's), so W W^T / N follows from Y Y^T ~ Wishart(N, I), drawn through its Bartlett
  factor (chi-square diagonal, then the normals below it), then `w0`. Only where no N-free
  sampler fits the run (MAML, FO-MAML with inner_steps >= 2) are B and J built too, from these
  overlaps and a Haar-random frame (W = sqrt(N) L E).

The method depends only on (N, K, M), never on the number of seeds, so a seed's state is the
same in every batch; the same seed gives the same state for every parameter set of the same
(N, K, M, init), so runs that differ only in, say, a learning rate are paired seed by seed.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from tsmeta.io import describe, params_to_attrs
from tsmeta.params import RunParams

TASKS_RNG = {
    "vectors": "numpy.random.default_rng(seed) -> B, J, w0 in that order",
    "overlaps": (
        "numpy.random.default_rng(seed) -> Bartlett factor of Y Y^T ~ Wishart_q(N, I) (chi-square "
        "diagonal with N - i dof, i < min(q, N), then the (q, min(q, N)) normals of which the "
        "part below the diagonal is used; q = M + K, symmetric init M + 1 + K), w0; where B and "
        "J are stored: then an (N, min(q, N)) normal matrix whose QR gives the frame E"
    ),
}
METHODS = ("vectors", "overlaps")
VECTORS_MAX = 2**18  # numbers per seed, N (K + M): 2 MiB of float64; N = 43690 at K = M = 3


def method_for(params: RunParams) -> str:
    """How the initial state of a run is drawn: N-vectors where they are small enough to store."""
    return "vectors" if params.N * (params.K + params.M) <= VECTORS_MAX else "overlaps"


def needs_vectors(params: RunParams) -> bool:
    """Whether the run's algorithm has no sampler that works on the overlaps alone."""
    from tsmeta.settings import SAMPLERS

    return SAMPLERS["gram"].unsupported(params) is not None


def draw_meta_teacher(rng: np.random.Generator, M: int, N: int, kind: str) -> np.ndarray:
    B = rng.standard_normal((M, N))
    if kind == "orthonormal":
        q, _ = np.linalg.qr(B.T)
        B = q.T * np.sqrt(N)  # rows orthogonal, norm sqrt(N): T = I exactly
    return B


def draw_student(rng: np.random.Generator, params: RunParams) -> tuple[np.ndarray, np.ndarray]:
    K, N = params.K, params.N
    if params.init == "symmetric":
        # identical units up to a small perturbation: the symmetric plateau of the paper
        common = rng.standard_normal((1, N)) * params.init_std
        J = common + params.init_perturbation * params.init_std * rng.standard_normal((K, N))
    else:
        J = rng.standard_normal((K, N)) * params.init_std
    w0 = rng.standard_normal(K) * params.w0_std
    return J, w0


def bartlett_factor(rng: np.random.Generator, q: int, n: int) -> np.ndarray:
    """Lower trapezoidal A (q x min(q, n)) with A A^T ~ Wishart_q(n, I): the LQ factor of a q x n
    standard normal matrix (diagonal sqrt(chi2_{n - i}), normals below it)."""
    r = min(q, n)
    chi2 = rng.chisquare(n - np.arange(r))
    A = np.tril(rng.standard_normal((q, r)), -1)
    A[np.arange(r), np.arange(r)] = np.sqrt(chi2)
    return A


def draw_root(rng: np.random.Generator, params: RunParams) -> np.ndarray:
    """A root L (d x r, rows [B; J]) of the initial Gram matrix G0 = W W^T / N, W = sqrt(N) L E.

    W = map Y with Y (q x N) standard normal: B = Y_B, J = init_std Y_J (random init) or
    init_std (1_K y_common + init_perturbation Y_J) (symmetric init); Y = A E (LQ, A the
    Bartlett factor, E Haar and independent of A), so L = map A / sqrt(N). An orthonormal
    teacher is sqrt(N) times the first M rows of E: L_B = [I_M, 0].
    """
    K, M, N = params.K, params.M, params.N
    s = params.init_std
    if params.init == "symmetric":
        map_J = np.hstack(
            [np.zeros((K, M)), np.full((K, 1), s), params.init_perturbation * s * np.eye(K)]
        )
    else:
        map_J = np.hstack([np.zeros((K, M)), s * np.eye(K)])
    q = map_J.shape[1]
    if params.teacher_init == "orthonormal" and N < M:
        raise ValueError(f"teacher_init 'orthonormal' needs N >= M, got N={N}, M={M}")
    A = bartlett_factor(rng, q, N)
    L_B = np.eye(M, q) @ A / np.sqrt(N)
    if params.teacher_init == "orthonormal":
        L_B = np.eye(M, A.shape[1])
    return np.vstack([L_B, map_J @ A / np.sqrt(N)])


def frame_vectors(rng: np.random.Generator, L: np.ndarray, N: int) -> np.ndarray:
    """W = sqrt(N) L E with E (r x N) Haar-random orthonormal rows (QR with the sign fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((N, L.shape[1])))
    E = (q * np.sign(np.diag(r))).T
    return np.sqrt(N) * L @ E


def _draw_vectors(rng, params):
    B = draw_meta_teacher(rng, params.M, params.N, params.teacher_init)
    J, w0 = draw_student(rng, params)
    return B, J, w0


def _draw_overlaps(rng, params, vectors: bool):
    L = draw_root(rng, params)
    w0 = rng.standard_normal(params.K) * params.w0_std
    W = frame_vectors(rng, L, params.N) if vectors else None
    return L @ L.T, W, w0


def initial_state(params: RunParams, method: str | None = None) -> xr.Dataset:
    """The initial state of every seed: R0, Q0, T, w0, and B, J where they are stored.

    method: 'vectors' or 'overlaps' (module doc); None: `method_for(params)`.
    """
    method = method or method_for(params)
    if method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {method!r}")
    K, M, N = params.K, params.M, params.N
    vectors = method == "vectors" or needs_vectors(params)
    Bs, Js, w0s, Gs = [], [], [], []
    for seed in params.seed_list:
        rng = np.random.default_rng(seed)
        if method == "vectors":
            B, J, w0 = _draw_vectors(rng, params)
            W = np.vstack([B, J])
            G = W @ W.T / N
        else:
            G, W, w0 = _draw_overlaps(rng, params, vectors)
            B, J = (None, None) if W is None else (W[:M], W[M:])
        Bs.append(B)
        Js.append(J)
        w0s.append(w0)
        Gs.append(G)
    G = np.stack(Gs)
    data = {
        "w0": (("seed", "k"), np.stack(w0s)),
        "R0": (("seed", "k", "n"), G[:, M:, :M]),
        "Q0": (("seed", "k", "l"), G[:, M:, M:]),
        "T": (("seed", "n", "m"), G[:, :M, :M]),
    }
    if vectors:
        data = {"B": (("seed", "n", "i"), np.stack(Bs)), "J": (("seed", "k", "i"), np.stack(Js)),
                **data}  # fmt: skip
    ds = xr.Dataset(
        data,
        coords={
            "seed": params.seed_list,
            "k": np.arange(K),
            "l": np.arange(K),
            "n": np.arange(M),
            "m": np.arange(M),
        },
        attrs={
            **params_to_attrs(params),
            "stage": "tasks",
            "initial_state_method": method,
            "vectors_stored": int(vectors),
            "rng_initial_state": TASKS_RNG[method],
        },
    )
    return describe(ds)
