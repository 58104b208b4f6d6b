"""The stochastic theory (kind sde, docs/theory.md section 12): Euler-Maruyama with the
diffusion matrix; reproducible per seed and realisation, its noise 1/sqrt(N), its cost
independent of N, P and V, its noiseless limit the ODE."""

import dataclasses

import numpy as np

from tsmeta.params import RunParams
from tsmeta.settings import TheorySettings
from tsmeta.tasks import initial_state
from tsmeta.theory import integrate, theory_dataset
from tsmeta.theory.steppers import clipped_orthogonal_part

BASE = dict(K=2, M=2, eta_J=3.0, eta_w=6.0, P=50, V=50, N=200, seeds=3, alpha_final=6.0,
            teacher_init="orthonormal", n_records=7, alpha_grid="linear")  # fmt: skip
SDE = {"kind": "sde", "realisations": 2}


def _start(p):
    ini = initial_state(p)
    return tuple(ini[v].values for v in ("R0", "Q0", "T", "w0"))


def test_paths_are_reproducible_and_do_not_depend_on_the_batch():
    p = RunParams(**BASE)
    ds = theory_dataset(initial_state(p), p, SDE)
    assert ds["R"].dims == ("realisation", "seed", "alpha", "k", "n")
    again = theory_dataset(initial_state(p), p, SDE)
    np.testing.assert_array_equal(ds["R"].values, again["R"].values)
    one = dataclasses.replace(p, seeds=1, seed_offset=1)  # seed 1 alone
    alone = theory_dataset(initial_state(one), one, SDE)
    # (batched linear algebra may differ in the last bits)
    np.testing.assert_allclose(alone["R"].values[:, 0], ds["R"].values[:, 1], rtol=0, atol=1e-12)
    # realisations differ, and start from the seed's own overlaps
    assert not np.allclose(ds["R"].values[0, :, -1], ds["R"].values[1, :, -1])
    np.testing.assert_array_equal(ds["R"].values[0, :, 0], ds["R"].values[1, :, 0])


def test_noise_scales_as_one_over_sqrt_n_and_vanishes_in_the_limit():
    """Spread of the SDE about the fixed-step Euler ODE path with the same step: about
    sqrt(N1/N2) smaller at larger N (32 paths: the ratio is known to ~15 %), and at
    N = 1e12 the path is the noiseless Euler path (same step)."""
    p = RunParams(**{**BASE, "seeds": 1})
    R0, Q0, T, w0 = (np.repeat(x, 32, axis=0) for x in _start(p))
    alphas = p.alphas()
    euler = integrate(R0[:1], Q0[:1], T[:1], w0[:1], dataclasses.replace(p, N=10**12), alphas,
                      TheorySettings(kind="sde"), streams=[0])  # fmt: skip
    spread = {}
    for N in (200, 3200):
        out = integrate(R0, Q0, T, w0, dataclasses.replace(p, N=N), alphas,
                        TheorySettings(kind="sde"), streams=np.arange(32))  # fmt: skip
        spread[N] = np.sqrt(np.mean((out.R[:, -1] - euler.R[:, -1]) ** 2))
    assert 0.85 * 4.0 < spread[200] / spread[3200] < 1.15 * 4.0
    ode = integrate(R0[:1], Q0[:1], T[:1], w0[:1], p, alphas, TheorySettings(fixed_step=0.1))
    # Euler against RK4 with the same step: O(h) = 0.1 relative to the change of R
    assert np.abs(euler.R - ode.R).max() < 0.1 * np.abs(ode.R[0, -1] - ode.R[0, 0]).max()


def test_cost_does_not_depend_on_n_p_v():
    p = RunParams(**{**BASE, "seeds": 1})
    start = _start(p)
    evals = set()
    for change in ({}, {"N": 10**6}, {"P": 5000, "V": 5000}):
        q = dataclasses.replace(p, **change)
        out = integrate(*start, q, q.alphas(), TheorySettings(kind="sde"), streams=[0])
        evals.add(int(out.nfev))
    assert len(evals) == 1


def test_orthogonal_part_is_clipped_to_psd():
    R = np.array([[0.9, 0.1], [0.0, 0.5]])
    T = np.eye(2)
    Q = R @ R.T + np.array([[-0.01, 0.0], [0.0, 0.2]])
    fixed = clipped_orthogonal_part(R, Q, T)
    S = fixed - R @ R.T
    assert np.linalg.eigvalsh(S).min() > -1e-14
    np.testing.assert_allclose(S, np.diag([0.0, 0.2]), atol=1e-14)
