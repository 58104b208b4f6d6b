"""The fused Gram kernel (`simulation.kernel`, tsmeta.simulation.gram_fused): the same chain
as the eager Gram update, on the same draws, to rounding."""

import numpy as np
import pytest

from tsmeta import cost
from tsmeta.config import ConfigError, expand
from tsmeta.params import RunParams
from tsmeta.settings import WORTH_FUSING, SimSettings
from tsmeta.simulation import Simulation
from tsmeta.tasks import initial_state

pytest.importorskip("numba")  # a dependency; without it `kernel: auto` runs eager

FAST = SimSettings(sampler="gram", mc_tasks=10, mc_adapt=100, mc_test=100, draw_chunk=16)

CASES = {
    # every branch: task noise, gamma < 1 (dB_t off the frame), two inner steps, u_mean != 0
    "erf-all-branches": dict(K=2, M=3, P=12, V=9, gamma=0.8, noise_std=0.3, inner_steps=2,
                             u_mean=0.5, eta_w=2.0),
    "erf-paper-shape": dict(K=3, M=3, P=50, V=50, eta_J=3.0),
    "relu": dict(K=3, M=2, P=10, V=10, activation="relu", gamma=0.9, eta_w=2.0),
    "linear": dict(K=3, M=3, P=10, V=6, activation="linear", noise_std=0.1, eta_w=1.0,
                   eta_J=1.0),
    "V-equals-K": dict(K=3, M=2, P=4, V=3),
}  # fmt: skip


def _run(params, kernel, **kw):
    sim = Simulation(initial_state(params), params, FAST.replace(kernel=kernel))
    return sim, sim.run(progress=False, **kw)


@pytest.mark.parametrize("case", CASES)
def test_the_fused_kernel_is_the_eager_chain(case):
    """Same draws, same chain: R, Q, w0 and the Monte-Carlo error agree with eager to rounding
    over hundreds of tasks (a wrong term, e.g. the Wishart part left out, moves Q by
    (eta_J / N)^2 per task: ~1e-4 here, far above the tolerance)."""
    params = RunParams(N=80, seeds=2, alpha_final=4.0, n_records=4, **CASES[case])
    sim, fused = _run(params, "fused")
    assert sim.sampler.fused is not None and fused.attrs["kernel_used"] == "fused"
    _, eager = _run(params, "eager")
    assert eager.attrs["kernel_used"] == "eager"
    for name in ("R", "Q", "w0", "eps_meta", "eps_meta_mc"):
        np.testing.assert_allclose(fused[name].values, eager[name].values, rtol=1e-9, atol=1e-12)
    assert np.abs(eager["Q"].values[:, -1] - eager["Q"].values[:, 0]).max() > 1e-2  # it moved


def test_leaving_out_the_wishart_part_is_caught(monkeypatch):
    """The comparison above can fail: a kernel whose J gets no part off the frame differs."""
    from tsmeta.simulation import gram_fused

    params = RunParams(N=80, seeds=2, alpha_final=2.0, n_records=2, **CASES["erf-paper-shape"])
    _, eager = _run(params, "eager")
    original = gram_fused._stretch.py_func

    def without_wishart(code, G, w0, xi, B_t, u, zeta, w_chi, w_below, *rest):
        original(code, G, w0, xi, B_t, u, zeta, 0.0 * w_chi, 0.0 * w_below, *rest)

    monkeypatch.setattr(gram_fused, "_stretch", without_wishart)
    _, broken = _run(params, "fused")
    assert np.abs(broken["Q"].values - eager["Q"].values).max() > 1e-3


def test_a_run_split_at_a_checkpoint_is_the_uninterrupted_run(tmp_path):
    params = RunParams(N=80, seeds=2, alpha_final=4.0, n_records=4, **CASES["relu"])
    _, whole = _run(params, "fused")
    checkpoint = tmp_path / "run.ckpt"
    sim = Simulation(initial_state(params), params, FAST.replace(kernel="fused"))
    assert sim.run(progress=False, checkpoint=checkpoint, stop_at=5 * FAST.draw_chunk) is None
    resumed = Simulation(initial_state(params), params, FAST.replace(kernel="fused"))
    second = resumed.run(progress=False, checkpoint=checkpoint)
    for name in ("R", "Q", "w0"):
        np.testing.assert_array_equal(second[name].values, whole[name].values)


def test_a_diverging_seed_is_recorded_as_diverged_as_in_eager():
    params = RunParams(N=60, K=3, M=3, P=10, V=10, seeds=3, eta_J=200.0, eta_w=40.0,
                       alpha_final=3.0, n_records=3)  # fmt: skip
    _, fused = _run(params, "fused")
    _, eager = _run(params, "eager")
    assert fused["diverged"].values.sum() >= 1
    np.testing.assert_array_equal(fused["diverged"].values, eager["diverged"].values)
    np.testing.assert_array_equal(fused["alpha_diverged"].values, eager["alpha_diverged"].values)


def test_auto_fuses_long_runs_and_refuses_fused_where_it_does_not_apply():
    small = RunParams(N=50, seeds=2, alpha_final=1.0)
    large = RunParams(N=50, seeds=2, alpha_final=WORTH_FUSING / 100 + 1)
    assert Simulation(initial_state(small), small, FAST).sampler.fused is None
    assert Simulation(initial_state(large), large, FAST).sampler.fused is not None
    anil = RunParams(N=50, seeds=2, alpha_final=1.0, algorithm="anil")
    assert Simulation(initial_state(anil), anil, FAST).sampler.fused is None  # auto: eager
    with pytest.raises(ValueError, match=r"simulation.kernel 'fused'.*'anil'.*'auto' or 'eager'"):
        Simulation(initial_state(anil), anil, FAST.replace(kernel="fused"))


def test_validation_refuses_fused_for_a_run_it_cannot_take():
    config = {
        "simulation": {"kernel": "fused"},
        "experiments": {"e": {"figure": "dynamics", "base": {"algorithm": "anil"}}},
    }
    with pytest.raises(ConfigError, match=r"simulation.kernel.*\(e, run .*anil"):
        expand(config)


def test_the_cost_model_knows_which_update_runs():
    params = RunParams(N=10_000, P=50, V=50, seeds=16, alpha_final=100.0)
    fused = cost.simulation_seconds("gram", params, SimSettings(kernel="fused"))
    eager = cost.simulation_seconds("gram", params, SimSettings(kernel="eager"))
    assert 2.0 < eager / fused < 3.5  # measured: 30 vs 11.5 us per seed-task, MC shared


def test_one_task_at_a_time_is_the_stretch():
    """`Simulation.step` (one task, as the benchmarks and one-update tests call it) and
    `Simulation.steps` (a stretch) run the same fused update (to rounding: each call starts
    from chol(G) of the G the last one wrote)."""
    params = RunParams(N=80, seeds=2, alpha_final=1.0, **CASES["erf-all-branches"])
    sims = [Simulation(initial_state(params), params, FAST.replace(kernel="fused")) for _ in "ab"]
    for sim in sims:
        draws = sim.draw(FAST.draw_chunk)
        if sim is sims[0]:
            sim.steps(draws, 0, FAST.draw_chunk)
        else:
            for c in range(FAST.draw_chunk):
                sim.step(draws, c)
    for name in ("G", "w0"):
        a, b = (getattr(sim.sampler, name).numpy() for sim in sims)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
