"""The Gram sampler (docs/simulation.md, "The Gram sampler"): exact in distribution against the
dense and projected samplers, its negative controls rejected, the initial state without
N-vectors, configuration errors, and `auto`."""

import dataclasses

import numpy as np
import pytest
import torch
import xarray as xr
from conftest import one_step
from scipy import stats

from tsmeta.algorithms import ALGORITHM_TABLE
from tsmeta.params import RunParams
from tsmeta.settings import SAMPLERS, SimSettings, resolve_sampler
from tsmeta.simulation import Simulation, simulate
from tsmeta.simulation.gram import GramSampler
from tsmeta.tasks import VECTORS_MAX, initial_state
from tsmeta.theory import eps_meta_closed_form

FAST = SimSettings(mc_tasks=20, mc_adapt=100, mc_test=100, draw_chunk=8)
COPIES = 3000  # draws of one update per sampler; see test_one_update_matches_dense
BASE = dict(N=30, K=2, M=2, P=8, V=6, seeds=1, w0_std=0.5)

# One update from one state, dense against gram. The cases cover the exactness table of
# docs/simulation.md: degrees of freedom of the Wishart N - D from 0 to 26 (N - K - M < K
# included), a singular G (J = B), gamma < 1 with fewer off-frame directions than M, ANIL,
# FO-MAML with one inner step (P < K too), label noise with u_mean, u_std and two inner steps.
CASES = {
    "fo-anil": {},
    "gamma": dict(K=3, gamma=0.3),
    "dof-1": dict(N=6, K=3, M=2),
    "dof-0": dict(N=5, K=3, M=2, eta_J=6.0),
    "gamma-small-N": dict(N=6, K=3, M=2, gamma=0.6),
    # J = B at N = 6: dof N - K - M = 2 where N - rank(G) would give 4 (10000 draws: that
    # control moves only Q11's tail)
    "singular": dict(N=6, V=3, aligned=True, eta_J=8.0, copies=10_000),
    "anil": dict(N=20, algorithm="anil", eta_J=6.0),
    "fo-maml": dict(N=20, algorithm="fo-maml"),
    "fo-maml-small": dict(N=10, K=3, P=2, V=4, algorithm="fo-maml", gamma=0.8, eta_J=6.0),
    "noise": dict(noise_std=0.5, u_mean=0.3, u_std=0.7, inner_steps=2),
    # few validation inputs and a large step: the Wishart term is about eta_J / sqrt(V) ~ 5
    # standard deviations of the in-frame part of dQ (the Wishart controls below use it)
    "large-step": dict(V=3, eta_J=8.0),
}


def _case(name: str) -> tuple[RunParams, bool, int]:
    values = {**BASE, **CASES[name]}
    aligned = values.pop("aligned", False)
    copies = values.pop("copies", COPIES)
    return RunParams(**values), aligned, copies


def _replicated(params: RunParams, copies: int, first_seed: int, aligned=False) -> xr.Dataset:
    """`copies` seeds that all start from seed 0's state (each with its own task stream, seeds
    first_seed, first_seed + 1, ...): one outer step over the batch samples one update."""
    one = initial_state(dataclasses.replace(params, seeds=1, seed_offset=0), method="vectors")
    if aligned:  # J = B: G is singular (rank M of K + M)
        one["J"] = one["B"].rename(n="k").assign_coords(k=one["k"])
        one["R0"] = one["T"].rename(n="k", m="n").assign_coords(k=one["k"], n=one["n"])
        one["Q0"] = one["T"].rename(n="k", m="l").assign_coords(k=one["k"], l=one["l"])
    ds = one.isel(seed=np.zeros(copies, dtype=int))
    return ds.assign_coords(seed=np.arange(first_seed, first_seed + copies))


def one_update(params, sampler, aligned=False, copies=COPIES, first_seed=10_000):
    """dR, dQ, dw0 of one outer update from one state, `copies` independent draws."""
    tasks = _replicated(params, copies, first_seed, aligned)
    sim = Simulation(tasks, params, dataclasses.replace(FAST, sampler=sampler, draw_chunk=1))
    dR, dQ, dw0 = one_step(sim)
    return {
        "dQ00": dQ[:, 0, 0],
        "dQ01": dQ[:, 0, 1],
        "dQ11": dQ[:, 1, 1],
        "dR00": dR[:, 0, 0],
        "dR10": dR[:, 1, 0],
        "dw0": dw0[:, 0],
    }


_DENSE: dict = {}


def dense_update(name: str):
    """The dense reference of a case (computed once per session; its seeds differ from gram's)."""
    if name not in _DENSE:
        params, aligned, copies = _case(name)
        _DENSE[name] = one_update(params, "dense", aligned, copies, first_seed=1_000_000)
    return _DENSE[name]


def ks_p_values(a: dict, b: dict) -> dict:
    return {key: stats.ks_2samp(a[key], b[key]).pvalue for key in a}


@pytest.mark.parametrize("name", list(CASES))
def test_one_update_matches_dense(name):
    params, aligned, copies = _case(name)
    p_values = ks_p_values(dense_update(name), one_update(params, "gram", aligned, copies))
    # 3000 against 3000 draws, 6 statistics in 10 cases: p > 1e-4 each keeps the chance of a
    # false alarm of a correct sampler below 1 % (Bonferroni); KS at this size detects a shift
    # of about 0.1 standard deviations at that level (the negative controls below move more)
    assert min(p_values.values()) > 1e-4, p_values


def _break(monkeypatch, hook: str, replacement):
    monkeypatch.setattr(GramSampler, hook, replacement)


CONTROLS = {
    # name: (case, hook, broken hook)
    "wishart dropped": ("large-step", "wishart_dof", lambda self: 0),
    "wishart dof + 50": ("large-step", "wishart_dof", lambda self: self.dof + 50),
    "frame extension forgotten": ("gamma", "frame_extension", lambda self: 0),
    "anil scale without training part": (
        "anil",
        "wishart_coef",
        lambda self, coef_tr, coef_val: coef_val,
    ),
    "dof N - rank G (singular G)": ("singular", "wishart_dof", lambda self: self.dof + 2),
}


@pytest.mark.parametrize("control", list(CONTROLS))
def test_negative_controls_are_rejected(control, monkeypatch):
    name, hook, broken = CONTROLS[control]
    params, aligned, copies = _case(name)
    _break(monkeypatch, hook, broken)
    p_values = ks_p_values(dense_update(name), one_update(params, "gram", aligned, copies))
    assert min(p_values.values()) < 1e-6, p_values


def _final(ds, name):
    return ds[name].isel(alpha=-1).values.reshape(ds.sizes["seed"], -1)


@pytest.mark.parametrize(
    "case",
    [
        dict(),
        dict(algorithm="anil", gamma=0.8, noise_std=0.3, u_mean=0.2),
        dict(init="symmetric", teacher_init="orthonormal", inner_steps=2),
    ],
    ids=["fo-anil", "anil-gamma-noise", "symmetric-orthonormal"],
)
def test_trajectories_match_the_projected_sampler(case):
    """Whole trajectories over 96 seeds: same initial states, independent task streams."""
    params = RunParams(
        **{**dict(N=40, K=2, M=2, P=12, V=8, seeds=96, alpha_final=4.0, n_records=3), **case}
    )
    tasks = initial_state(params)
    runs = {s: simulate(tasks, params, dataclasses.replace(FAST, sampler=s, mc_every=100))
            for s in ("projected", "gram")}  # fmt: skip
    for name in ("R", "Q", "w0", "eps_meta"):
        a, b = _final(runs["projected"], name), _final(runs["gram"], name)
        diff = a - b  # paired by initial state
        se = diff.std(0, ddof=1) / np.sqrt(len(diff))
        # 96 pairs: the mean difference is within 4 standard errors (p ~ 6e-5 per entry)
        assert np.all(np.abs(diff.mean(0)) < 4 * se + 1e-12), (name, diff.mean(0), se)
        for j in range(a.shape[1]):  # and the spreads agree: two-sample KS of the entries
            assert stats.ks_2samp(a[:, j], b[:, j]).pvalue > 1e-4, (name, j)


def test_fo_maml_trajectories_match_the_dense_sampler():
    params = RunParams(
        N=20, K=2, M=2, P=6, V=6, seeds=48, alpha_final=2.0, n_records=2, algorithm="fo-maml"
    )
    tasks = initial_state(params)
    runs = {s: simulate(tasks, params, dataclasses.replace(FAST, sampler=s, mc_every=100))
            for s in ("dense", "gram")}  # fmt: skip
    for name in ("R", "Q", "w0"):
        a, b = _final(runs["dense"], name), _final(runs["gram"], name)
        diff = a - b
        se = diff.std(0, ddof=1) / np.sqrt(len(diff))
        assert np.all(np.abs(diff.mean(0)) < 4 * se + 1e-12), (name, diff.mean(0), se)


@pytest.mark.parametrize(
    "case",
    [dict(), dict(init="symmetric"), dict(teacher_init="orthonormal", init_std=0.5),
     dict(N=4, K=3, M=2), dict(N=3, K=3, M=2, init="symmetric")],
    ids=["random", "symmetric", "orthonormal", "N<q", "N<d-symmetric"],
)  # fmt: skip
def test_initial_overlaps_without_vectors_have_the_law_of_the_vectors(case):
    params = RunParams(**{**dict(N=12, K=3, M=2, seeds=2000, w0_std=0.3), **case})
    a = initial_state(params, method="vectors")
    b = initial_state(dataclasses.replace(params, seed_offset=10**6), method="overlaps")
    for name in ("R0", "Q0", "T", "w0"):
        x, y = (ds[name].values.reshape(params.seeds, -1) for ds in (a, b))
        if params.teacher_init == "orthonormal" and name == "T":
            np.testing.assert_allclose(y, x, atol=1e-12)  # T = I exactly in both
            continue
        for j in range(x.shape[1]):  # 2000 against 2000; at most 15 entries: p > 1e-4 each
            assert stats.ks_2samp(x[:, j], y[:, j]).pvalue > 1e-4, (name, j)


def test_large_N_tasks_hold_overlaps_only_and_weight_samplers_say_so():
    N = VECTORS_MAX // 4 + 1  # N (K + M) just above the limit
    params = RunParams(N=N, K=2, M=2, P=5, V=5, seeds=2, alpha_final=1e-4, n_records=1)
    tasks = initial_state(params)
    assert "J" not in tasks and "B" not in tasks and tasks.attrs["vectors_stored"] == 0
    assert resolve_sampler("auto", params) == "gram"
    for sampler in ("projected", "dense"):
        with pytest.raises(ValueError, match="needs the weights B and J.*use sampler 'gram'"):
            Simulation(tasks, params, dataclasses.replace(FAST, sampler=sampler))
    # MAML has no N-free sampler: its tasks carry B and J built from the same overlaps
    maml = initial_state(dataclasses.replace(params, algorithm="maml"))
    np.testing.assert_array_equal(maml["Q0"].values, tasks["Q0"].values)
    J, B = maml["J"].values, maml["B"].values
    np.testing.assert_allclose(J @ B.transpose(0, 2, 1) / N, tasks["R0"].values, atol=1e-12)
    np.testing.assert_allclose(J @ J.transpose(0, 2, 1) / N, tasks["Q0"].values, atol=1e-12)


def test_gram_runs_at_a_million_inputs_in_float64():
    params = RunParams(N=10**6, K=3, M=3, P=20, V=20, seeds=2, teacher_init="orthonormal",
                       alpha_final=2e-4, n_records=2)  # fmt: skip
    ds = simulate(initial_state(params), params, dataclasses.replace(FAST, sampler="auto"))
    assert ds.attrs["sampler_used"] == "gram"
    np.testing.assert_array_equal(ds["T"].values, np.broadcast_to(np.eye(3), (2, 3, 3)))
    Q = ds["Q"].values[:, -1]
    assert np.all(np.linalg.eigvalsh(Q) > 0)
    # 200 tasks at eta_J = 3 move Q by O(200 eta_J / N) = 6e-4: resolved, not lost to rounding
    dQ = np.abs(ds["Q"].values[:, -1] - ds["Q"].values[:, 0]).max()
    assert 1e-6 < dQ < 1e-2


def test_monte_carlo_eps_meta_matches_the_closed_form_at_gamma_below_one():
    """The measurement draws fresh task teachers exactly in the frame extended by dB_t."""
    params = RunParams(N=400, K=3, M=3, P=10, V=10, seeds=2, gamma=0.8, w0_std=0.3, u_mean=0.2)
    settings = SimSettings(sampler="gram", mc_tasks=600, mc_adapt=2000, mc_test=500)
    sim = Simulation(initial_state(params), params, settings)
    mc, err = sim.eps_meta_monte_carlo()
    R, Q = (x.numpy() for x in sim.sampler.overlaps())
    closed = eps_meta_closed_form(R, Q, sim.T, sim.sampler.w0.numpy(), params)
    # finite adaptation set: relative bias O(eta_w^2 / (K mc_adapt)) ~ 1e-2 at most; the
    # task teacher's norm at N = 400: relative O(1/sqrt(N M)) ~ 3e-2 per task, averaging out
    assert np.all(np.abs(mc - closed) < 4 * err + 0.01 * closed), (mc, closed, err)
    # without the extension the task teacher's squared norm is gamma^2 + (1 - gamma^2) (K + M)
    # / N ~ 0.65 instead of 1: the labels shrink and the error falls by ~20 % (same draws, so
    # the difference is nearly free of Monte-Carlo noise)
    GramSampler.frame_extension, saved = (lambda self: 0), GramSampler.frame_extension
    try:
        broken, _ = Simulation(initial_state(params), params, settings).eps_meta_monte_carlo()
    finally:
        GramSampler.frame_extension = saved
    assert np.all(mc - broken > 0.1 * closed), (mc, broken, closed)


@pytest.mark.parametrize(
    "values,match,auto",
    [
        (dict(algorithm="maml"), "algorithm 'maml'.*use sampler 'dense'", "dense"),
        (dict(algorithm="fo-maml", inner_steps=2), "inner_steps: 1.*got inner_steps=2", "dense"),
        (dict(N=4, K=3, M=3), "needs N >= K \\+ M", "projected"),
    ],
)
def test_gram_is_refused_where_it_is_not_exact(values, match, auto):
    with pytest.raises(ValueError, match=match):
        resolve_sampler("gram", RunParams(**values))
    assert resolve_sampler("auto", RunParams(**values)) == auto


@pytest.mark.parametrize("name", list(ALGORITHM_TABLE))
def test_sampler_exactness_follows_the_algorithm_table(name):
    """Which sampler is exact is the table's flags, not the names: projected for algorithms
    that keep J in the inner loop, gram also for first-order ones that adapt it (one inner
    step), dense always."""
    line = ALGORITHM_TABLE[name]
    for steps in (1, 2):
        params = RunParams(N=100, algorithm=name, inner_steps=steps)
        exact = {sampler: SAMPLERS[sampler].unsupported(params) is None for sampler in SAMPLERS}
        gram = not line.adapts_J or (not line.second_order and steps == 1)
        assert exact == {"projected": not line.adapts_J, "gram": gram, "dense": True}


def test_sampler_exactness_reads_the_table(monkeypatch):
    """Flip the flags of a line: the predicates follow (a name test would not)."""
    params = RunParams(N=100, algorithm="anil")
    assert resolve_sampler("auto", params) == "gram"
    anil = ALGORITHM_TABLE["anil"]
    monkeypatch.setitem(ALGORITHM_TABLE, "anil", dataclasses.replace(anil, adapts_J=True))
    assert SAMPLERS["projected"].unsupported(params) is not None
    with pytest.raises(ValueError, match="algorithm 'anil'.*use sampler 'dense'"):
        resolve_sampler("gram", params)
    assert resolve_sampler("auto", params) == "dense"


def test_config_names_the_key_where_gram_does_not_fit():
    from tsmeta.config import ConfigError, expand

    config = {
        "defaults": {"N": 50, "seeds": 1},
        "simulation": {"sampler": "gram"},
        "experiments": {"x": {"runs": [{"algorithm": "maml"}], "figure": {"kind": "dynamics"}}},
    }
    with pytest.raises(ConfigError, match="'simulation.sampler'.*'gram'.*use sampler 'dense'"):
        expand(config)


@pytest.mark.parametrize(
    "values,expected",
    [
        (dict(N=1000, algorithm="fo-maml"), "gram"),
        (dict(N=10**6, algorithm="anil"), "gram"),
        (dict(N=200, K=3), "gram"),  # N K = 600: above the measured crossover
        (dict(N=50, K=3), "projected"),  # N K = 150: projected is as fast or faster
        (dict(N=50, K=3, algorithm="fo-maml"), "gram"),  # faster than dense at any N
        (dict(N=1000, algorithm="maml"), "dense"),
    ],
)
def test_auto_takes_the_fastest_exact_sampler(values, expected):
    assert resolve_sampler("auto", RunParams(**values)) == expected


def test_checkpoint_holds_a_few_numbers_per_seed(tmp_path):
    params = RunParams(N=10**5, K=3, M=3, P=10, V=10, seeds=3, alpha_final=1e-3, n_records=2)
    settings = dataclasses.replace(FAST, sampler="gram", checkpoint_every=16)
    sim = Simulation(initial_state(params), params, settings)
    state = sim.state_dict()["sampler"]
    assert sum(t.numel() for t in state.values()) == 3 * (6 * 6 + 3)
    full = sim.run()
    path = tmp_path / "ckpt.pt"
    again = Simulation(initial_state(params), params, settings)
    again.run(checkpoint=path)  # writes checkpoints on the way, removes none
    resumed = Simulation(initial_state(params), params, settings)
    resumed.load_state_dict(torch.load(path, weights_only=False))
    assert 0 < resumed.t < params.total_steps
    out = resumed.run()
    for name in ("R", "Q", "w0"):
        np.testing.assert_array_equal(out[name].values, full[name].values)


def test_a_slow_run_checkpoints_by_wall_time_too(tmp_path, monkeypatch):
    """checkpoint_every far beyond the run: with the wall-time trigger at 0 s a checkpoint is
    written at every chunk boundary, without it at none; the run's numbers do not change."""
    from tsmeta.simulation import run as run_module

    params = RunParams(N=10**4, K=3, M=3, P=10, V=10, seeds=2, alpha_final=0.02, n_records=2)
    settings = dataclasses.replace(FAST, sampler="gram", draw_chunk=32, checkpoint_every=10**9)
    saved = []
    monkeypatch.setattr(Simulation, "save_checkpoint", lambda sim, path: saved.append(sim.t))
    plain = Simulation(initial_state(params), params, settings).run(checkpoint=tmp_path / "a")
    assert saved == []
    monkeypatch.setattr(run_module, "CHECKPOINT_WALL_S", 0.0)
    timed = Simulation(initial_state(params), params, settings).run(checkpoint=tmp_path / "b")
    assert saved == list(range(32, params.total_steps, 32))
    for name in ("R", "Q", "w0"):
        np.testing.assert_array_equal(timed[name].values, plain[name].values)
