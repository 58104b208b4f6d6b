"""Relabelling and arrangements that know the symmetry of the activation: sign flips for odd
g (erf, linear), permutations and the signed R for relu, the learned subspace for linear."""

import dataclasses
import json

import numpy as np
import pytest
import xarray as xr
from scipy.linalg import subspace_angles
from scipy.stats import ortho_group

from tsmeta import analysis
from tsmeta.activations import activation
from tsmeta.params import RunParams
from tsmeta.tasks import initial_state
from tsmeta.theory import integrate
from tsmeta.theory.sweeps import run_sweep

# unit 0 points against teacher 0 and a little along teacher 1; unit 1 along both
R = np.array([[-0.9, 0.3], [0.5, 0.8]])


def test_odd_activations_flip_signs_relu_only_permutes():
    order, signs = analysis.alignment(R, odd=activation("erf").odd)
    assert list(order) == [0, 1] and list(signs) == [-1.0, 1.0]  # |R|: -B_0 is B_0
    order, signs = analysis.alignment(R, odd=activation("relu").odd)
    assert list(order) == [1, 0] and list(signs) == [1.0, 1.0]  # signed R: -B_0 is no B_0


def test_relu_arrangement_classifies_with_the_signed_overlap():
    Rs = np.array([[-0.9, 0.1], [0.1, 0.8]])
    assert analysis.arrangement(Rs, 0.5).label == "1-1"
    assert analysis.arrangement(Rs, 0.5, odd=False).label == "1-0, one unit off"
    assert not analysis.specialised(Rs, odd=False) and analysis.specialised(Rs)


def test_run_arrangements_read_the_run_activation():
    ds = xr.Dataset(
        {"R": (("seed", "alpha", "k", "n"), np.array([[[[-0.9, 0.1], [0.1, 0.8]]]])),
         "Q": (("seed", "alpha", "k", "l"), np.array([[np.eye(2)]]))},
        coords={"seed": [0], "alpha": [0.0]},
    )  # fmt: skip
    assert analysis.run_arrangements(ds) == {"1-1": 1}
    ds.attrs[analysis.ACTIVATION_ATTR] = "relu"
    assert analysis.run_arrangements(ds) == {"1-0, one unit off": 1}


def _explicit(K, M, N, seed, in_span=False):
    rng = np.random.default_rng(seed)
    B = rng.normal(size=(M, N))
    J = rng.normal(size=(K, M)) @ B if in_span else rng.normal(size=(K, N))
    return J, B


@pytest.mark.parametrize("K,M", [(3, 3), (4, 3), (2, 3)])
def test_subspace_cosines_are_the_principal_angles(K, M):
    """Against scipy's principal angles of the explicit vectors (T != I), invariant under
    rotations of the student units, and 1 where J lies in the teacher span."""
    N = 40
    J, B = _explicit(K, M, N, seed=K + M)
    Rm, Q, T = J @ B.T / N, J @ J.T / N, B @ B.T / N
    cos2 = analysis.subspace_cosines(Rm, Q, T)
    angles = subspace_angles(J.T, B.T)  # min(K, M) angles, largest first
    expected = np.sort(np.concatenate([np.cos(angles) ** 2, np.zeros(M - min(K, M))]))[::-1]
    np.testing.assert_allclose(cos2, expected, atol=1e-12)
    O = ortho_group.rvs(K, random_state=1)
    np.testing.assert_allclose(analysis.subspace_cosines(O @ Rm, O @ Q @ O.T, T), cos2, atol=1e-12)
    if K >= M:
        J, B = _explicit(K, M, N, seed=2, in_span=True)
        inside = analysis.subspace_cosines(J @ B.T / N, J @ J.T / N, B @ B.T / N)
        np.testing.assert_allclose(inside, 1.0, atol=1e-12)


def test_rate_law_from_the_table():
    assert analysis.rate_law(2.0, 3.0, 3, 3, activation="linear") == pytest.approx(2 * 3 / 9)
    with pytest.raises(ValueError, match="no linear escape rate from R = 0"):
        analysis.rate_law(2.0, 3.0, 3, 3, activation="relu")
    arr = analysis.arrangement(np.eye(3), 0.5)
    assert analysis.exact_head_rates(arr, "linear") == {1: 3.0}
    assert analysis.exact_head_rates(arr, "relu") == {}


def test_plateau_growth_rate_measures_the_symmetry_breaking_part():
    """R = r(alpha) 11^T + exp(kappa alpha) P (P of zero mean): the symmetric part, however it
    moves, does not enter; the window starts at `start` and ends at a growth of 3."""
    alpha = np.linspace(0.0, 20.0, 81)
    pattern = np.array([[1.0, -0.5, -0.5], [-0.5, 1.0, -0.5], [-0.5, -0.5, 1.0]]) * 1e-3
    symmetric = 0.25 * (1 - np.exp(-alpha))[:, None, None] * np.ones((3, 3))
    rates = [0.3, 0.5]
    R = np.stack([symmetric + np.exp(k * alpha)[:, None, None] * pattern for k in rates])
    ds = xr.Dataset({"R": (("seed", "alpha", "k", "n"), R)},
                    coords={"seed": [0, 1], "alpha": alpha})  # fmt: skip
    got = analysis.plateau_growth_rate(ds, start=5.0)
    np.testing.assert_allclose(got.values, rates, rtol=1e-9)
    window = alpha[(alpha >= 5.0)]
    assert got.attrs["start"] == 5.0 and len(window) > 3
    assert np.isnan(analysis.plateau_growth_rate(ds, start=25.0).values).all()  # no record


def test_a_sweep_with_an_activation_axis_batches_each_activation_apart():
    """Each activation's members form their own batch (one set of integrals per batch), and a
    member equals the same run integrated alone."""
    base = RunParams(N=60, K=2, M=2, alpha_final=2.0, seed_offset=3).to_dict()
    sweep = {"base": base, "grid": {"activation": ["erf", "relu", "linear"]}, "levels": [0.1]}
    settings = {"method": "RK45", "rtol": 1e-9, "atol": 1e-11, "finite_p": False}
    ds = run_sweep(sweep, settings, n_fine=20, n_coarse=5)
    groups = json.loads(ds.attrs["groups_json"])
    assert sorted(g.get("activation", "erf") for g in groups) == ["erf", "linear", "relu"]
    p = RunParams.from_dict({**base, "activation": "relu"})
    ts = initial_state(dataclasses.replace(p, seeds=1))
    alone = integrate(*(ts[v].values for v in ("R0", "Q0", "T", "w0")), p, ds["alpha"].values,
                      settings)  # fmt: skip
    np.testing.assert_allclose(ds.sel(activation="relu")["eps_meta"].values, alone.eps_meta[0],
                               rtol=1e-7)  # fmt: skip
