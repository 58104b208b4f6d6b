"""The integrated ODE against the finite-N simulation started from the same overlaps."""

import dataclasses

import numpy as np
import pytest

from tsmeta.params import RunParams
from tsmeta.settings import SimSettings
from tsmeta.simulation import simulate
from tsmeta.tasks import initial_state
from tsmeta.theory import theory_dataset

SEEDS = 10
# P small: the head's sampling noise lowers Q_kk by ~0.15 at alpha = 6 against the P = infinity
# theory; the exact 1/P term of the theory (docs/theory.md, section 7) accounts for it
PARAMS = RunParams(
    N=300, P=30, V=300, seeds=SEEDS, alpha_final=6.0, n_records=6, alpha_grid="linear"
)


@pytest.fixture(scope="module")
def pair():
    tasks = initial_state(PARAMS)
    sim = simulate(tasks, PARAMS, SimSettings(mc_tasks=5, mc_adapt=100, mc_test=100, mc_every=100))
    return tasks, sim


def _within_noise(sim, theory):
    """Per-seed deviations sim - theory: their seed mean must be compatible with zero.

    Each seed's deviation is an O(1/sqrt(N)) fluctuation (independent across seeds) plus
    small biases, measured on Q_kk at +3e-3 by alpha = 5: O(1/N) finite size, and the
    O(eta_J^2 eta_w^2 / (V P)) part of the finite-V term that the theory leaves out (Monte
    Carlo: ~+6e-4 per unit alpha here). The first-order 1/P term is exact for one inner step.
    Accept |mean| < 5 standard errors + 3/N.
    """
    worst = {}
    for name in ("R", "Q", "eps_meta"):
        d = (sim[name] - theory[name]).values.reshape(SEEDS, sim.sizes["alpha"], -1)
        mean, se = d.mean(0), d.std(0, ddof=1) / np.sqrt(SEEDS)
        worst[name] = float(np.max(np.abs(mean) - 5 * se - 3 / PARAMS.N))
    return worst


def test_ode_follows_the_simulation_on_a_short_horizon(pair):
    tasks, sim = pair
    theory = theory_dataset(tasks, PARAMS)
    worst = _within_noise(sim, theory)
    assert all(v < 0 for v in worst.values()), worst
    # and the agreement is not empty: the order parameters moved by much more than the noise
    moved = np.abs(sim["R"].values[:, -1] - sim["R"].values[:, 0]).max()
    assert moved > 0.1


def test_the_same_check_rejects_a_theory_with_a_wrong_rate(pair):
    tasks, sim = pair
    wrong = theory_dataset(tasks, dataclasses.replace(PARAMS, eta_J=PARAMS.eta_J * 1.3))
    worst = _within_noise(sim, wrong)
    assert max(worst.values()) > 0, worst


def test_the_same_check_rejects_the_theory_without_its_finite_p_term(pair):
    tasks, sim = pair
    infinite_p = theory_dataset(tasks, PARAMS, {"finite_p": False})
    worst = _within_noise(sim, infinite_p)
    assert worst["Q"] > 0.05, worst  # Q_kk misses by ~0.15 at alpha = 6
