"""Task-generation stage: the meta-teacher and the initial meta-learner of every seed.

The state is drawn with NumPy from `numpy.random.default_rng(seed)`, in this order:
meta-teacher `B` (M x N), student rows `J` (K x N), head `w0` (K). The same seed
gives the same state for every parameter set of the same (N, K, M), so runs that
differ only in, say, a learning rate are paired seed by seed.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from tsmeta.io import describe, params_to_attrs
from tsmeta.params import RunParams

TASKS_RNG = "numpy.random.default_rng(seed) -> B, J, w0 in that order"


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


def initial_state(params: RunParams) -> xr.Dataset:
    """Draw B, J, w0 for every seed and return them with their order parameters."""
    Bs, Js, w0s = [], [], []
    for seed in params.seed_list:
        rng = np.random.default_rng(seed)
        Bs.append(draw_meta_teacher(rng, params.M, params.N, params.teacher_init))
        J, w0 = draw_student(rng, params)
        Js.append(J)
        w0s.append(w0)
    B, J, w0 = np.stack(Bs), np.stack(Js), np.stack(w0s)
    N = params.N
    R0 = np.einsum("ski,sni->skn", J, B) / N
    Q0 = np.einsum("ski,sli->skl", J, J) / N
    T = np.einsum("sni,smi->snm", B, B) / N
    K, M = params.K, params.M
    ds = xr.Dataset(
        {
            "B": (("seed", "n", "i"), B),
            "J": (("seed", "k", "i"), J),
            "w0": (("seed", "k"), w0),
            "R0": (("seed", "k", "n"), R0),
            "Q0": (("seed", "k", "l"), Q0),
            "T": (("seed", "n", "m"), T),
        },
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
            "rng_initial_state": TASKS_RNG,
        },
    )
    return describe(ds)
