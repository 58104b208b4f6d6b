"""The finite-N simulator: batching, exactness of the projected sampler, observables."""

import dataclasses
import json
import subprocess
import sys
import types

import numpy as np
import pytest
import torch
import xarray as xr
from conftest import replicated_state
from scipy import stats

from tsmeta.activations import ACTIVATIONS, activation
from tsmeta.io import open_dataset, params_from_attrs, params_to_attrs, write_netcdf
from tsmeta.params import RunParams
from tsmeta.settings import SimSettings
from tsmeta.simulation import Simulation, simulate
from tsmeta.simulation.samplers import ProjectedSampler
from tsmeta.tasks import initial_state
from tsmeta.theory import eps_meta_closed_form, eps_meta_p_closed_form

FAST = SimSettings(mc_tasks=20, mc_adapt=100, mc_test=100, draw_chunk=8)


@pytest.mark.parametrize(
    "algorithm,sampler",
    [
        ("fo-anil", "projected"), ("fo-anil", "dense"), ("anil", "projected"), ("maml", "dense"),
        ("fo-anil", "gram"), ("anil", "gram"), ("fo-maml", "gram"),
    ],
)  # fmt: skip
def test_batched_run_equals_seeds_one_by_one(algorithm, sampler):
    params = RunParams(
        N=24, K=3, M=2, P=10, V=8, seeds=3, alpha_final=1.5, n_records=4, algorithm=algorithm
    )
    settings = dataclasses.replace(FAST, sampler=sampler)
    batched = simulate(initial_state(params), params, settings)
    for i, seed in enumerate(params.seed_list):
        single = RunParams(**{**params.to_dict(), "seeds": 1, "seed_offset": seed})
        one = simulate(initial_state(single), single, settings)
        for name in ("R", "Q", "w0", "eps_meta", "eps_meta_mc"):
            np.testing.assert_allclose(
                batched[name].values[i], one[name].values[0], rtol=1e-9, atol=1e-12
            )
    # and the seeds really are different runs
    assert np.abs(batched["R"].values[0, -1] - batched["R"].values[1, -1]).max() > 1e-3


@pytest.mark.parametrize("sampler,algorithm", [("gram", "fo-anil"), ("projected", "anil")])
def test_compiled_update_equals_the_eager_one(sampler, algorithm, tmp_path):
    """`simulation.compile` changes how one task's update runs, not what it computes: the same
    run (task noise, gamma < 1: every branch of the update) agrees with eager to rounding over
    many tasks; the setting is recorded in sim.nc."""
    params = RunParams(
        N=40, K=3, M=2, P=12, V=10, seeds=2, gamma=0.9, noise_std=0.1, alpha_final=2.0,
        n_records=3, algorithm=algorithm,
    )  # fmt: skip
    settings = dataclasses.replace(FAST, sampler=sampler)
    eager = simulate(initial_state(params), params, settings)
    compiled_sim = Simulation(initial_state(params), params, settings.replace(compile=True))
    assert hasattr(compiled_sim.sampler.advance, "_torchdynamo_orig_callable")  # compiled
    compiled = compiled_sim.run()
    for name in ("R", "Q", "w0", "eps_meta"):
        np.testing.assert_allclose(compiled[name].values, eager[name].values, rtol=1e-9, atol=1e-12)
    assert np.abs(eager["R"].values[:, -1] - eager["R"].values[:, 0]).max() > 1e-2  # it moved
    write_netcdf(compiled, tmp_path / "sim.nc")
    assert bool(open_dataset(tmp_path / "sim.nc").attrs["sim_compile"])
    assert not bool(eager.attrs["sim_compile"])


def test_an_eager_run_does_not_import_the_compiler():
    """torch._dynamo takes 1.5 s to import, most of a small simulate job: only a compiled run
    (`simulation.compile`) may pay it. A fresh interpreter, every sampler and algorithm once."""
    code = """
import sys
from tsmeta.params import RunParams
from tsmeta.settings import SimSettings
from tsmeta.simulation import simulate
from tsmeta.tasks import initial_state
for algorithm, sampler in [("fo-anil", "gram"), ("anil", "projected"), ("maml", "dense")]:
    params = RunParams(N=24, K=3, M=2, P=6, V=6, seeds=2, alpha_final=0.5, n_records=2,
                       algorithm=algorithm, init="symmetric")
    settings = SimSettings(sampler=sampler, mc_tasks=4, mc_adapt=20, mc_test=20)
    simulate(initial_state(params), params, settings)
print(sorted(m for m in sys.modules if m.startswith("torch._dynamo")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout[-2000:]


def _one_update(
    params, sampler, copies=3000, drop_orthogonal=False, monkeypatch=None, normals="float32"
):
    """Statistics of one outer update from one state, sampled over `copies` task draws."""
    tasks = replicated_state(params, copies)
    settings = dataclasses.replace(FAST, sampler=sampler, draw_chunk=1, normals=normals)
    sim = Simulation(tasks, params, settings)
    if drop_orthogonal:  # negative control: a sampler that forgets x_perp
        monkeypatch.setattr(
            ProjectedSampler, "input_sum",
            lambda self, coef, inputs, h, W, G, xi: torch.linalg.solve(
                G, (coef.transpose(-1, -2) @ h / params.N**0.5).transpose(-1, -2)
            ).transpose(-1, -2) @ W,
        )  # fmt: skip
    state = sim.sampler
    J0 = state.J.clone()
    w00 = state.w0.clone()
    sim.step(sim.draw(1), 0)
    N = params.N
    dJ = state.J - J0
    gen = torch.Generator().manual_seed(99)
    v = torch.randn(N, generator=gen, dtype=torch.float64)
    Q1, Q0 = state.J @ state.J.transpose(-1, -2) / N, J0 @ J0.transpose(-1, -2) / N
    R1, R0 = state.J @ state.B.transpose(-1, -2) / N, J0 @ state.B.transpose(-1, -2) / N
    return {
        "dQ00": (Q1 - Q0)[:, 0, 0],
        "dQ01": (Q1 - Q0)[:, 0, 1],
        "dR00": (R1 - R0)[:, 0, 0],
        "dR11": (R1 - R0)[:, 1, 1],
        "dw0": (state.w0 - w00)[:, 0],
        "v.dJ0": dJ[:, 0] @ v,
        "v.dJ1": dJ[:, 1] @ v,
    }


@pytest.mark.parametrize("algorithm,gamma", [("fo-anil", 1.0), ("fo-anil", 0.7), ("anil", 1.0)])
def test_projected_sampler_gives_the_distribution_of_one_update(algorithm, gamma):
    params = RunParams(
        N=30, K=2, M=2, P=8, V=6, seeds=1, algorithm=algorithm, gamma=gamma, w0_std=0.5
    )
    dense = _one_update(params, "dense")
    projected = _one_update(params, "projected")
    for key in dense:
        # 3000 vs 3000 samples: KS detects shifts of ~0.05 sd; p > 1e-3 per statistic
        p_value = stats.ks_2samp(dense[key].numpy(), projected[key].numpy()).pvalue
        assert p_value > 1e-3, f"{key}: p = {p_value:.2e}"


@pytest.mark.parametrize("sampler", ["dense", "projected"])
def test_normals_drawn_in_float32_give_the_distribution_of_float64_ones(sampler):
    """The default draws standard normals in float32 (upcast; the state stays float64): one
    update has the distribution of the same update with float64 normals (3000 vs 3000, KS
    resolves ~0.05 sd)."""
    params = RunParams(N=30, K=2, M=2, P=8, V=6, seeds=1, gamma=0.7, w0_std=0.5, noise_std=0.3)
    single = _one_update(params, sampler, normals="float64")
    fast = _one_update(params, sampler, normals="float32")
    for key in single:
        p_value = stats.ks_2samp(single[key].numpy(), fast[key].numpy()).pvalue
        assert p_value > 1e-3, f"{key}: p = {p_value:.2e}"


def test_exactness_test_catches_a_sampler_without_the_orthogonal_part(monkeypatch):
    params = RunParams(N=30, K=2, M=2, P=8, V=6, seeds=1, w0_std=0.5)
    dense = _one_update(params, "dense")
    broken = _one_update(params, "projected", drop_orthogonal=True, monkeypatch=monkeypatch)
    p_values = {k: stats.ks_2samp(dense[k].numpy(), broken[k].numpy()).pvalue for k in dense}
    assert min(p_values.values()) < 1e-6, p_values


def test_trajectories_of_both_samplers_agree_in_mean_and_spread():
    params = RunParams(N=40, K=2, M=2, P=20, V=20, seeds=16, alpha_final=3.0, n_records=3)
    tasks = initial_state(params)
    runs = {
        s: simulate(tasks, params, dataclasses.replace(FAST, sampler=s))
        for s in ("dense", "projected")
    }
    for name in ("R", "Q", "eps_meta"):
        a = runs["dense"][name].isel(alpha=-1).values.reshape(16, -1)
        b = runs["projected"][name].isel(alpha=-1).values.reshape(16, -1)
        # same initial states (paired by seed): compare the difference to its own spread
        diff = a - b
        se = diff.std(0, ddof=1) / np.sqrt(16)
        assert np.all(np.abs(diff.mean(0)) < 4.5 * se + 1e-12), name
        ratio = a.std(0, ddof=1) / b.std(0, ddof=1)
        assert np.all((ratio > 0.35) & (ratio < 2.9)), (name, ratio)  # F(15,15) at p ~ 1e-3


@pytest.mark.parametrize(
    "sampler,gamma,N", [("projected", 1.0, 60), ("projected", 0.8, 400), ("dense", 1.0, 40)]
)
def test_closed_form_eps_meta_matches_monte_carlo(sampler, gamma, N):
    """Both Monte-Carlo errors against their closed forms, with no allowance but the MC error:
    eps_meta_mc (adapted on mc_adapt examples) is the few-shot error at P = mc_adapt, whose
    excess over eps_meta, (eta_w^2 / (2 mc_adapt K)) tr(Sigma_bar A), is predicted; and
    eps_meta_p_mc (adapted on the run's P = 10) is eps_meta_p. The P = infinity eps_meta is
    rejected by the few-shot estimate (excess ~0.05 against a standard error ~0.005)."""
    params = RunParams(N=N, K=3, M=3, P=10, V=10, seeds=2, gamma=gamma, w0_std=0.3, u_mean=0.2)
    n_tasks = 1500 if sampler == "projected" else 300
    settings = SimSettings(sampler=sampler, mc_tasks=n_tasks, mc_adapt=4000, mc_test=1000)
    sim = Simulation(initial_state(params), params, settings)
    measured = sim.monte_carlo_errors()
    R, Q = (x.numpy() for x in sim.sampler.overlaps())
    state = (R, Q, sim.T, sim.sampler.w0.numpy())
    at_mc_adapt = eps_meta_p_closed_form(*state, dataclasses.replace(params, P=4000))
    mc, err = measured["eps_meta_mc"]
    assert np.all(np.abs(mc - at_mc_adapt) < 4 * err), (mc, at_mc_adapt, err)
    few, few_err = measured["eps_meta_p_mc"]
    few_shot = eps_meta_p_closed_form(*state, params)
    assert np.all(np.abs(few - few_shot) < 4 * few_err), (few, few_shot, few_err)
    assert np.all(np.abs(few - eps_meta_closed_form(*state, params)) > 4 * few_err)


def _aligned_state(params):
    """Student equal to the (orthonormal) teacher: R = Q = T = I exactly, w0 = 0."""
    tasks = initial_state(params)
    tasks["J"] = tasks["B"].rename(n="k").assign_coords(k=tasks["k"])
    return tasks


def test_head_rate_3K_makes_the_adapted_student_the_task_teacher():
    params = RunParams(N=50, K=3, M=3, eta_w=9.0, teacher_init="orthonormal", seeds=1)
    settings = SimSettings(mc_tasks=400, mc_adapt=4000, mc_test=500)
    sim = Simulation(_aligned_state(params), params, settings)
    I = np.eye(3)[None]
    assert eps_meta_closed_form(I, I, I, np.zeros((1, 3)), params)[0] == pytest.approx(0, abs=1e-14)
    mc, err = sim.eps_meta_monte_carlo()
    # only the finite adaptation set is left: eps_P = 7 / (15 P) at P = mc_adapt (1.2e-4)
    at_mc_adapt = dataclasses.replace(params, P=settings.mc_adapt)
    excess = eps_meta_p_closed_form(I, I, I, np.zeros((1, 3)), at_mc_adapt)[0]
    assert excess == pytest.approx(7 / (15 * settings.mc_adapt), rel=1e-8)
    assert abs(mc[0] - excess) < 4 * err[0]
    for eta_w in (6.0, 12.0):  # any other rate leaves an error, in both estimates
        other = dataclasses.replace(params, eta_w=eta_w)
        sim = Simulation(_aligned_state(other), other, settings)
        mc, err = sim.eps_meta_monte_carlo()
        assert eps_meta_closed_form(I, I, I, np.zeros((1, 3)), other)[0] > 0.01
        closed = eps_meta_p_closed_form(
            I, I, I, np.zeros((1, 3)), dataclasses.replace(other, P=settings.mc_adapt)
        )[0]
        assert abs(mc[0] - closed) < 4 * err[0]


def test_order_parameters_are_measured_from_the_weights(tmp_path):
    params = RunParams(N=30, K=3, M=2, P=10, V=10, seeds=2, alpha_final=1.0, n_records=3)
    tasks = initial_state(params)
    sim = simulate(tasks, params, FAST)
    J, B = tasks["J"].values, tasks["B"].values
    np.testing.assert_allclose(
        sim["R"].values[:, 0], np.einsum("ski,sni->skn", J, B) / 30, rtol=1e-12
    )
    np.testing.assert_allclose(
        sim["Q"].values[:, 0], np.einsum("ski,sli->skl", J, J) / 30, rtol=1e-12
    )
    np.testing.assert_allclose(sim["T"].values, tasks["T"].values, rtol=1e-12)
    np.testing.assert_allclose(tasks["R0"].values, sim["R"].values[:, 0], rtol=1e-12)


def test_netcdf_round_trip_keeps_values_and_attributes(tmp_path):
    params = RunParams(N=20, K=2, M=2, P=5, V=5, seeds=2, alpha_final=0.5, n_records=3)
    ds = simulate(initial_state(params), params, FAST)
    path = write_netcdf(ds, tmp_path / "sim.nc")
    back = open_dataset(path, stage="simulate")
    xr.testing.assert_identical(ds, back)
    assert back.attrs["param_eta_w"] == 9.0
    assert "erf" in back.attrs["convention_activation"]
    assert RunParams.from_dict(__import__("json").loads(back.attrs["params_json"])) == params


# --- the activation and algorithm tables drive the simulation --------------------------------


def test_activation_is_a_run_parameter_and_erf_keeps_the_run_names():
    assert RunParams().activation == "erf"
    assert RunParams(activation="erf").name() == RunParams().name()
    assert "activation" not in RunParams(algorithm="anil", K=2).name()
    assert RunParams(activation="relu").name() != RunParams().name()
    with pytest.raises(
        ValueError, match=r"activation must be one of \['erf', 'relu', 'linear'\], got 'tanh'"
    ):
        RunParams(activation="tanh")
    with pytest.raises(ValueError, match=r"activation must be one of \['erf', 'relu', 'linear'\]"):
        RunParams.from_dict({"activation": "tanh"})


def test_files_without_the_activation_key_read_as_erf():
    """Files written before the key existed: their params_json has no `activation`."""
    params = RunParams(N=20, K=2, M=2, algorithm="anil")
    old = {k: v for k, v in params.to_dict().items() if k != "activation"}
    back = params_from_attrs({"params_json": json.dumps(old, sort_keys=True)})
    assert back == params and back.activation == "erf"
    attrs = params_to_attrs(params)
    assert attrs["param_activation"] == "erf"
    assert attrs["convention_activation"] == activation("erf").formula


def _fake_activation(monkeypatch, g):
    """A second table line "fake" whose torch functions are `g` and erf's g_prime."""
    erf = activation("erf")
    module = types.ModuleType("fake_torch_fns")
    module.g, module.g_prime = g, erf.torch().g_prime
    monkeypatch.setitem(sys.modules, module.__name__, module)
    line = dataclasses.replace(erf, name="fake", torch_fns=module.__name__)
    monkeypatch.setitem(ACTIVATIONS, "fake", line)


@pytest.mark.parametrize(
    "algorithm,sampler", [("fo-anil", "gram"), ("anil", "projected"), ("maml", "dense")]
)
def test_the_run_activation_reaches_the_sampler(algorithm, sampler, monkeypatch):
    """A table line with erf's functions, called through the table, gives erf's run exactly;
    one with another g gives another run: every g of the update and of the Monte Carlo is the
    run's (a forgotten module-level erf would leave the runs equal)."""
    calls = []
    erf_g = activation("erf").torch().g

    def counted(z):
        calls.append(z.shape)
        return erf_g(z)

    params = RunParams(
        N=16, K=2, M=2, P=6, V=6, seeds=2, alpha_final=0.5, n_records=2, algorithm=algorithm
    )
    settings = dataclasses.replace(FAST, sampler=sampler)
    reference = simulate(initial_state(params), params, settings)
    _fake_activation(monkeypatch, counted)
    fake = dataclasses.replace(params, activation="fake")
    same = simulate(initial_state(fake), fake, settings)
    assert calls and same.attrs["param_activation"] == "fake"
    for name in ("R", "Q", "w0", "eps_meta_mc", "eps_meta_p_mc"):
        np.testing.assert_array_equal(same[name].values, reference[name].values)
    _fake_activation(monkeypatch, lambda z: torch.tanh(z))
    other = simulate(initial_state(fake), fake, settings)
    for name in ("R", "eps_meta_mc"):
        assert np.nanmax(np.abs(other[name].values - reference[name].values)) > 1e-6, name
