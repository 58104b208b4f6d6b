"""Bad input never hangs and is named (issue 16): non-finite numbers, repeated YAML keys,
figure needs, exact run names, bounded theory work, unusable files, permissions, progress,
the command line from any folder."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import os
import re
import signal
import stat
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsmeta import cli, progress
from tsmeta import config as tsconfig
from tsmeta.io import (
    InputFileError,
    open_dataset,
    setting_aside_unreadable_files,
    write_netcdf,
)
from tsmeta.params import RunParams
from tsmeta.settings import SimSettings, TheorySettings
from tsmeta.stages import log_to, make_tasks
from tsmeta.tasks import initial_state
from tsmeta.theory import steppers
from tsmeta.theory.integrator import integrate

ROOT = Path(__file__).resolve().parents[2]
TEST_CONFIG = ROOT / "config" / "test.yaml"
BASE = tsconfig.load(TEST_CONFIG)
NON_FINITE = [math.nan, math.inf, -math.inf]
FAST = SimSettings(mc_tasks=5, mc_adapt=50, mc_test=50, draw_chunk=8)


@contextlib.contextmanager
def time_limit(seconds: float):
    """Turn a hang into a test failure (SIGALRM; the project runs on Linux)."""

    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# ---------------------------------------------------------------- YAML
def test_numbers_with_an_exponent_are_numbers_everywhere():
    """YAML 1.1 (PyYAML) reads 1e6 and 1.0e6 as strings; the project's loader does not."""
    data = tsconfig.loads("a: 1e6\nb: 1.0e6\nc: 2.5E-3\nd: -1e+2\ne: 3\nf: 1e\ng: '1e6'\n")
    assert data == {"a": 1e6, "b": 1e6, "c": 2.5e-3, "d": -100.0, "e": 3, "f": "1e", "g": "1e6"}
    assert yaml.safe_load("a: 1e6")["a"] == "1e6"  # what the loader fixes
    config = copy.deepcopy(BASE)
    config["simulation"]["divergence_threshold"] = tsconfig.loads("x: 1.0e6")["x"]
    tsconfig.validate(config)


def test_a_quoted_number_is_refused_with_a_hint():
    config = copy.deepcopy(BASE)
    config["experiments"]["dynamics"]["base"]["eta_J"] = "1.0e6"
    with pytest.raises(tsconfig.ConfigError, match=r"dynamics\.base\.eta_J.*unquoted"):
        tsconfig.validate(config)


@pytest.mark.parametrize(
    "text,key,line",
    [
        ("a: 1\nb: 2\na: 3\n", "a", 3),
        ("x:\n  y: 1\n  z: 2\n  y: 3\n", "y", 4),
        ("x: {y: 1, y: 2}\n", "y", 1),
        ("- {u: 1}\n- {v: 1, v: 2}\n", "v", 2),
    ],
)
def test_a_repeated_key_is_an_error_naming_key_and_line(text, key, line):
    with pytest.raises(tsconfig.ConfigError) as err:
        tsconfig.loads(text, "f.yaml")
    assert f"f.yaml, line {line}" in str(err.value) and f"duplicate key '{key}'" in str(err.value)


def test_a_yaml_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("results: r\nexperiments:\n  a: [1,\n  b: 2\n")
    with pytest.raises(tsconfig.ConfigError, match=r"bad\.yaml, line 5.*not valid YAML"):
        tsconfig.load(path)


KEY_LINE = re.compile(r"^(\s*)([A-Za-z_]\w*):")


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fuzz_repeating_any_key_line_of_a_config_is_caught(data):
    lines = TEST_CONFIG.read_text().splitlines()
    keyed = [i for i, text in enumerate(lines) if KEY_LINE.match(text)]
    i = data.draw(st.sampled_from(keyed))
    key = KEY_LINE.match(lines[i]).group(2)
    text = "\n".join(lines[: i + 1] + [lines[i]] + lines[i + 1 :]) + "\n"
    with pytest.raises(tsconfig.ConfigError) as err:
        tsconfig.loads(text, "test.yaml")
    assert f"duplicate key '{key}'" in str(err.value)
    assert f"line {i + 2}," in str(err.value)


# ---------------------------------------------------------------- non-finite numbers
def _number_paths(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _number_paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _number_paths(value, (*path, i))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path


def _with_settings():
    """test.yaml with a few settings of every section spelt out, so they can be fuzzed too."""
    config = copy.deepcopy(BASE)
    config["simulation"].update(divergence_threshold=1e6, checkpoint_every=0)
    config["theory"].update(max_wall_s=600.0, max_rhs_evals=1000, fixed_step=None)
    config["experiments"]["dynamics"]["figure"].update(thresholds=[0.01])
    config["experiments"]["dynamics"]["compare"] = {"level": 0.01, "alpha_end": 2.0}
    return config


FUZZED = _with_settings()
NUMBER_PATHS = sorted(_number_paths(FUZZED), key=str)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(NUMBER_PATHS), value=st.sampled_from(NON_FINITE))
def test_fuzz_a_non_finite_number_anywhere_is_refused_naming_its_key(path, value):
    config = copy.deepcopy(FUZZED)
    node = config
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    with pytest.raises(tsconfig.ConfigError) as err:
        tsconfig.validate(config)
    assert f"config key '{'.'.join(map(str, path))}'" in str(err.value)
    assert "finite" in str(err.value)


def test_the_fuzzed_config_itself_is_valid():
    tsconfig.validate(FUZZED)  # else the fuzz test above would pass for the wrong reason
    assert len(NUMBER_PATHS) > 40


@pytest.mark.parametrize("value", NON_FINITE)
def test_run_params_and_settings_refuse_non_finite_numbers(value):
    with pytest.raises(ValueError, match="eta_J must be a finite number"):
        RunParams.from_dict({"eta_J": value})
    with pytest.raises(ValueError, match="atol must be a finite number"):
        TheorySettings(atol=value)
    with pytest.raises(ValueError, match="divergence_threshold must be a finite number"):
        SimSettings(divergence_threshold=value)


@pytest.mark.parametrize(
    "grid,key",
    [
        ({"eta_J": [1.0, 3.0], "eta_w": [3.0, 6.0], "gamma": [1.0, 1.5]}, "grid.gamma"),
        ({"eta_J": [1.0, 3.0], "eta_w": {"start": -1, "stop": 3, "num": 3, "scale": "log"}},
         "grid.eta_w"),
        ({"eta_J": [1.0, 3.0], "eta_w": [3.0, 6.0], "K": [2, 0]}, "grid.K"),
    ],
)  # fmt: skip
def test_bad_sweep_grid_values_are_named_at_validation(grid, key):
    config = copy.deepcopy(BASE)
    config["experiments"]["phase_diagram"]["theory_sweep"]["grid"] = grid
    with pytest.raises(tsconfig.ConfigError) as err:
        tsconfig.validate(config)
    assert f"experiments.phase_diagram.theory_sweep.{key}'" in str(err.value)


def test_near_equal_rates_are_two_runs():
    config = copy.deepcopy(BASE)
    config["experiments"]["dynamics"]["sweep"] = {"eta_J": [3.0, 3.0000001]}
    plan = tsconfig.expand(config)
    runs = plan.experiments["dynamics"].runs
    assert len(runs) == 2 and runs[0] != runs[1]
    assert {plan.runs[r].eta_J for r in runs} == {3.0, 3.0000001}


# ---------------------------------------------------------------- figure needs
def _drop(path):
    def edit(config):
        node = config["experiments"]
        for part in path[:-1]:
            node = node[part]
        node.pop(path[-1])

    return edit


def _set(path, value):
    def edit(config):
        node = config["experiments"]
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value

    return edit


@pytest.mark.parametrize(
    "edit,message",
    [
        (_set(["dynamics", "stages"], []), r"dynamics\.stages'.*add \['simulate'\]"),
        (_set(["finite_size", "stages"], ["simulate"]), r"finite_size\.stages'.*\['theory'\]"),
        (_set(["finite_size", "runs"], [{"N": 20}]), r"finite_size'.*at least 2 run"),
        (_drop(["phase_diagram", "theory_sweep"]), r"phase_diagram\.theory_sweep'.*needs a"),
        (_drop(["phase_diagram", "theory_sweep", "grid", "eta_w"]), r"axes \['eta_J', 'eta_w'\]"),
        (_drop(["rates_vs_K", "theory_sweep"]), r"rates_vs_K\.theory_sweep'"),
        (_drop(["finite_data", "theory_variants"]), r"finite_data\.theory_variants'"),
        (
            _set(["dynamics", "figure", "escape_level"], 0.01),
            r"dynamics\.figure'.*'escape_level' is not an option of figure kind 'dynamics'",
        ),
        (_set(["finite_size", "figure", "first_stage_level"], 0.01), r"unknown key"),
        (_set(["finite_size", "compare"], {"level": 0}), r"finite_size\.compare\.level'"),
    ],
)
def test_what_a_figure_needs_is_checked_before_any_job(edit, message):
    config = copy.deepcopy(BASE)
    edit(config)
    with pytest.raises(tsconfig.ConfigError, match=message):
        tsconfig.validate(config)


def test_every_figure_kind_declares_its_needs():
    from tsmeta.figure_kinds import KINDS, FigureNeeds

    schema = tsconfig.load(tsconfig.SCHEMA_PATH)
    kinds = schema["$defs"]["experiment"]["properties"]["figure"]["properties"]["kind"]["enum"]
    assert set(KINDS) == set(kinds)
    assert all(isinstance(kind.needs, FigureNeeds) for kind in KINDS.values())


def test_the_needs_check_reads_the_registry(monkeypatch):
    """A kind's needs come from figure_kinds.KINDS: asking dynamics for two runs is enforced."""
    import dataclasses

    from tsmeta import figure_kinds

    dynamics = figure_kinds.KINDS["dynamics"]
    needs = dataclasses.replace(dynamics.needs, min_runs=3)
    monkeypatch.setitem(figure_kinds.KINDS, "dynamics", dataclasses.replace(dynamics, needs=needs))
    with pytest.raises(tsconfig.ConfigError, match=r"dynamics'.*at least 3 run"):
        tsconfig.validate(copy.deepcopy(BASE))


# ---------------------------------------------------------------- run names
floats = st.floats(0.0, 100.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(a=floats, b=floats, key=st.sampled_from(["eta_J", "eta_w", "u_std", "init_std"]))
def test_two_parameter_sets_share_a_name_only_if_equal(a, b, key):
    pa, pb = RunParams.from_dict({key: a}), RunParams.from_dict({key: b})
    assert (pa.name() == pb.name()) == (pa == pb)


@settings(max_examples=100, deadline=None)
@given(x=st.floats(1e-3, 1e3))
def test_the_next_float_is_another_run(x):
    nxt = float(np.nextafter(x, np.inf))
    assert RunParams(eta_J=x).name() != RunParams(eta_J=nxt).name()


def test_names_differing_in_the_seventh_digit_and_round_values_stay_short():
    assert RunParams(eta_J=3.000001).name() != RunParams(eta_J=3.0000011).name()
    assert "eta_J~3_eta_w~9" in RunParams(eta_J=3.0).name()
    assert RunParams.from_dict({"u_mean": -0.0}).name() == RunParams().name()


# ---------------------------------------------------------------- theory: no hang on bad input
def _state(K=2, M=2, seeds=2):
    p = RunParams(K=K, M=M, N=40, P=40, V=40, seeds=seeds, alpha_final=0.5, n_records=3)
    ts = initial_state(p)
    return p, [ts[v].values.copy() for v in ("R0", "Q0", "T", "w0")]


def _poisoned(p: RunParams, key: str, value: float) -> RunParams:
    """A RunParams with a non-finite number that validation would refuse (the integrator
    must not rely on it)."""
    bad = dataclasses.replace(p)
    object.__setattr__(bad, key, value)
    return bad


METHODS = [("RK45", None), ("BDF", None), ("LSODA", None), ("RK45", 0.05)]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    where=st.sampled_from(["R0", "Q0", "T", "w0", "eta_J", "eta_w", "gamma", "u_std"]),
    value=st.sampled_from(NON_FINITE),
    member=st.sampled_from([0, 1]),
    method=st.sampled_from(METHODS),
)
def test_fuzz_non_finite_inputs_reach_the_integrator_without_a_hang(where, value, member, method):
    """The poisoned member stops at once, marked diverged with a reason; the other member is
    integrated exactly as alone (the same solver on the same one-member system)."""
    p, (R0, Q0, T, w0) = _state()
    arrays = {"R0": R0, "Q0": Q0, "T": T, "w0": w0}
    plist = [p, p]
    if where in arrays:
        arrays[where][member].flat[0] = value
    else:
        plist[member] = _poisoned(p, where, value)
    alphas = p.alphas()
    st_ = {"method": method[0], "fixed_step": method[1], "rtol": 1e-6, "atol": 1e-8}
    with time_limit(60):
        out = integrate(R0, Q0, T, w0, plist, alphas, st_)
    other = 1 - member
    assert out.diverged[member] and out.reason[member]
    assert out.alpha_diverged[member] <= alphas[1]  # at the start, or the first fixed step
    assert not out.diverged[other] and out.reason[other] == ""
    alone = integrate(R0[[other]], Q0[[other]], T[[other]], w0[[other]], p, alphas, st_)
    # the same system after the poisoned member left at alpha = 0: equal to rounding
    np.testing.assert_allclose(out.R[other], alone.R[0], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", ["RK45", "BDF"])
def test_near_equal_rates_integrate_as_one_batch(method):
    p, (R0, Q0, T, w0) = _state(seeds=1)
    q = dataclasses.replace(p, eta_J=float(np.nextafter(p.eta_J, 10.0)))
    two = [np.concatenate([x, x]) for x in (R0, Q0, T, w0)]
    out = integrate(*two, [p, q], p.alphas(), {"method": method, "rtol": 1e-8, "atol": 1e-10})
    assert not out.diverged.any()
    np.testing.assert_allclose(out.R[0], out.R[1], atol=1e-7)  # rtol-sized, not a mix-up


def test_a_solver_whose_step_became_nan_comes_back(monkeypatch):
    """The original hang: scipy's step loop with a NaN step size never ends by itself; the
    work bound is checked inside the right-hand side, so it ends."""
    make = steppers.scipy_solver

    def broken(*args, **kw):
        solver = make(*args, **kw)
        solver.h_abs = math.nan
        return solver

    monkeypatch.setattr(steppers, "scipy_solver", broken)
    p, (R0, Q0, T, w0) = _state()
    with time_limit(60):
        out = integrate(R0, Q0, T, w0, p, p.alphas(), {"max_rhs_evals": 2000})
    assert out.stalled.all() and out.diverged.all()
    assert all("max_rhs_evals" in r for r in out.reason)


def test_the_wall_time_bound_stops_a_long_integration():
    p, (R0, Q0, T, w0) = _state()
    long = dataclasses.replace(p, alpha_final=450.0)
    settings_ = {"method": "RK45", "rtol": 1e-12, "atol": 1e-14, "max_wall_s": 0.2}
    with time_limit(30):
        out = integrate(R0, Q0, T, w0, long, long.alphas(), settings_)
    assert out.stalled.all()
    assert all("max_wall_s = 0.2 s" in r for r in out.reason)
    assert np.all(out.alpha_diverged < 450.0)


def test_a_stopped_theory_names_run_seed_and_alpha(tmp_path, caplog):
    from tsmeta.theory import theory_dataset

    p = RunParams(K=2, M=2, N=40, P=40, V=40, seeds=2, alpha_final=40, n_records=5)
    with caplog.at_level(logging.WARNING):
        ds = theory_dataset(initial_state(p), p, {"max_rhs_evals": 50})
    text = caplog.text
    assert f"theory of run {p.name()}, seed 0: stopped at alpha = " in text
    assert "max_rhs_evals = 50" in text
    assert ds["diverged"].values.all() and "seed 1: alpha = " in ds.attrs["stop_reasons"]


def test_a_non_finite_state_in_the_tasks_file_gives_a_recorded_diverged_theory(tmp_path):
    from tsmeta.stages import make_theory

    p = RunParams(K=2, M=2, N=40, P=40, V=40, seeds=2, alpha_final=2, n_records=3)
    tasks = initial_state(p)
    tasks["Q0"].values[0, 0, 0] = math.inf  # seed 0: a blown-up state
    write_netcdf(tasks, tmp_path / "tasks.nc")
    with time_limit(60):
        make_theory(tmp_path / "tasks.nc", p, {"rtol": 1e-6}, tmp_path / "theory.nc")
    theory = open_dataset(tmp_path / "theory.nc", stage="theory")
    assert theory["diverged"].values.tolist() == [1, 0]
    assert theory["alpha_diverged"].values[0] == 0.0
    assert theory.attrs["stop_reasons"].startswith("seed 0: alpha = 0, left the valid domain")
    assert np.isfinite(theory["eps_meta"].values[1]).all()


def test_the_sweep_refuses_non_finite_rates_and_marks_non_finite_states(monkeypatch):
    from tsmeta.theory import sweeps

    base = {"K": 2, "M": 2, "N": 40, "P": 40, "V": 40, "alpha_final": 0.5, "seed_offset": 0}
    with pytest.raises(ValueError, match="eta_J must be a finite number"):
        sweeps.run_sweep({"base": {**base, "eta_J": math.nan}, "grid": {"eta_w": [3.0]}})
    with pytest.raises(ValueError, match="eta_w must be a finite number"):
        sweeps.run_sweep({"base": base, "grid": {"eta_w": [3.0, math.inf]}})

    real = sweeps.initial_state

    def nan_for_large_n(p):  # members with N = 50 get a NaN initial overlap
        ts = real(p)
        if p.N == 50:
            ts["R0"].values[0, 0, 0] = math.nan
        return ts

    monkeypatch.setattr(sweeps, "initial_state", nan_for_large_n)
    with time_limit(60):
        ds = sweeps.run_sweep({"base": base, "grid": {"N": [40, 50], "eta_w": [3.0, 6.0]}},
                              {"rtol": 1e-6, "atol": 1e-8}, n_fine=20, n_coarse=5)  # fmt: skip
    assert ds["diverged"].sel(N=50).values.all() and not ds["diverged"].sel(N=40).values.any()
    assert np.isfinite(ds["eps_final"].sel(N=40).values).all()


# ---------------------------------------------------------------- unusable files
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_an_unreadable_input_of_a_workflow_job_is_set_aside(tmp_path):
    p = RunParams(N=20, P=5, V=5, seeds=1, alpha_final=0.2, n_records=2)
    tasks = make_tasks(p, tmp_path / "tasks.nc")
    _truncate(tasks)
    with pytest.raises(InputFileError) as err:
        open_dataset(tasks)
    assert tasks.exists() and "delete it" in str(err.value)  # outside a job: left in place
    with setting_aside_unreadable_files(), pytest.raises(InputFileError) as err:
        open_dataset(tasks)
    moved = tasks.with_name("tasks.nc.unreadable")
    assert not tasks.exists() and moved.exists()
    assert f"moved aside to {moved}" in str(err.value) and "snakemake --cores all" in str(err.value)


def test_a_truncated_checkpoint_is_named_set_aside_and_the_run_starts_over(tmp_path, caplog):
    from tsmeta.simulation import simulate

    p = RunParams(N=20, P=10, V=10, seeds=2, alpha_final=2, n_records=3)
    settings_ = dataclasses.replace(FAST, checkpoint_every=8)
    ckpt = tmp_path / "sim.ckpt"
    simulate(initial_state(p), p, settings_, checkpoint=ckpt)  # leaves its last checkpoint
    assert ckpt.exists()
    _truncate(ckpt)
    with caplog.at_level(logging.WARNING):
        resumed = simulate(initial_state(p), p, settings_, checkpoint=ckpt)
    assert f"checkpoint {ckpt} is unusable" in caplog.text
    assert ckpt.with_name("sim.ckpt.unusable").exists()
    straight = simulate(initial_state(p), p, settings_)
    for name in ("R", "Q", "w0", "eps_meta_mc"):
        np.testing.assert_array_equal(resumed[name].values, straight[name].values)


def test_check_sets_aside_unreadable_result_files(tmp_path, monkeypatch, capsys):
    config = copy.deepcopy(BASE)
    config["experiments"] = {"dynamics": config["experiments"]["dynamics"]}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    run = tsconfig.expand(config).experiments["dynamics"].runs[0]
    folder = tmp_path / "results" / "runs" / run
    tasks = make_tasks(RunParams(N=20, P=5, V=5, seeds=1, alpha_final=0.2), folder / "tasks.nc")
    (folder / "sim.nc").write_text("not netCDF")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check", "--config", "c.yaml"]) == 1
    out = capsys.readouterr()
    assert "2 file(s) under results/ checked, 1 unreadable and set aside" in out.out
    assert "sim.nc: not a readable netCDF file" in out.err
    assert tasks.exists() and (folder / "sim.nc.unreadable").exists()
    assert not (folder / "sim.nc").exists()
    assert cli.main(["check", "--config", "c.yaml"]) == 0


# ---------------------------------------------------------------- permissions
@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o027, 0o640)])
def test_files_get_the_permissions_of_the_umask(tmp_path, mask, mode):
    import matplotlib.pyplot as plt

    from tsmeta.figures import save
    from tsmeta.simulation.run import Simulation

    old = os.umask(mask)
    try:
        nc = write_netcdf(xr.Dataset({"x": ("i", np.arange(3.0))}), tmp_path / "a.nc")
        figs = save(plt.figure(), [tmp_path / "f.png", tmp_path / "f.pdf"])
        p = RunParams(N=10, P=5, V=5, seeds=1, alpha_final=0.1, n_records=1)
        sim = Simulation(initial_state(p), p, FAST)
        sim.save_checkpoint(tmp_path / "s.ckpt")
    finally:
        os.umask(old)
    for path in [nc, *figs, tmp_path / "s.ckpt"]:
        assert stat.S_IMODE(path.stat().st_mode) == mode, path


# ---------------------------------------------------------------- progress
def test_simulation_and_sweep_report_progress(capfd):
    from tsmeta.simulation import simulate
    from tsmeta.theory.sweeps import run_sweep

    p = RunParams(N=20, P=10, V=10, seeds=1, alpha_final=1, n_records=2)
    simulate(initial_state(p), p, FAST)
    err = capfd.readouterr().err
    assert f"[simulate {p.name()}] done: 20/20 tasks (100 %), alpha = 1" in err
    run_sweep({"base": p.to_dict(), "grid": {"eta_w": [3.0, 6.0]}}, {"rtol": 1e-6},
              n_fine=10, n_coarse=4, label="theory sweep x")  # fmt: skip
    assert "[theory sweep x] done: 2/2 members (100 %), groups = 1" in capfd.readouterr().err


def test_a_workflow_job_writes_progress_and_warnings_to_log_and_terminal(tmp_path, capfd):
    log = tmp_path / "job.log"
    with log_to(log):
        bar = progress.Progress(10, "job", unit="tasks", min_interval=0.0)
        bar.update(5, alpha=0.5)
        logging.getLogger("tsmeta.test").info("only in the log")
        logging.getLogger("tsmeta.test").warning("seed 3 diverged")
        bar.close(10)
    terminal, logged = capfd.readouterr().err, log.read_text()
    for text in (terminal, logged):
        assert "[job] progress: 5/10 tasks (50 %), alpha = 0.5" in text
        assert "[job] done: 10/10 tasks" in text and "seed 3 diverged" in text
    assert "only in the log" in logged and "only in the log" not in terminal


# ---------------------------------------------------------------- command line
def test_the_cli_finds_the_repository_config_from_any_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["validate"]) == 0
    assert str(ROOT / "config" / "config.yaml") in capsys.readouterr().out
    with pytest.raises(tsconfig.ConfigError, match="no config given.*--config FILE"):
        tsconfig.default_config_path(repository=tmp_path)


def test_validate_takes_the_config_as_an_argument_or_with_config(capsys):
    assert cli.main(["validate", str(TEST_CONFIG)]) == 0
    assert cli.main(["validate", "--config", str(TEST_CONFIG)]) == 0
    assert capsys.readouterr().out.count(f"{TEST_CONFIG}: valid") == 2
    assert cli.main(["runs", str(TEST_CONFIG)]) == 0
    assert cli.main(["validate", str(TEST_CONFIG), "--config", "other.yaml"]) == 2
    assert "two config files given" in capsys.readouterr().err


def test_set_applies_with_run_and_a_malformed_set_is_a_usage_error(tmp_path, capsys):
    plan = tsconfig.expand(BASE)
    run = plan.experiments["dynamics"].runs[0]
    out = tmp_path / "tasks.nc"
    args = ["tasks", "--config", str(TEST_CONFIG), "--run", run, "--out", str(out)]
    assert cli.main([*args, "--set", "N=30", "--set", "init_std=1e0"]) == 0
    params = RunParams.from_dict(yaml.safe_load(open_dataset(out).attrs["params_json"]))
    assert params.N == 30 and params.K == plan.runs[run].K and params.init_std == 1.0
    with pytest.raises(SystemExit) as exit_:
        cli.main([*args, "--set", "N"])
    assert exit_.value.code == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert cli.main([*args, "--set", "eta_J=.nan"]) == 2
    assert "eta_J must be a finite number" in capsys.readouterr().err


# ---------------------------------------------------------------- report captions
def test_descriptions_are_safe_in_the_report_caption():
    import docutils.core
    import docutils.utils

    description = "the final |R_kn| and *all* `units` of eta_J_ and a\\b\n  - not a list"

    def render(text):
        return docutils.core.publish_parts(
            f"**x**: {text}", writer="html",
            settings_overrides={"halt_level": 2, "report_level": 5},
        )["body"]  # fmt: skip

    with pytest.raises(docutils.utils.SystemMessage):
        render(description)  # as it was: "Undefined substitution referenced: R_kn"
    body = render(tsconfig.rst_text(description))
    assert "the final |R_kn| and *all* `units` of eta_J_ and a\\b - not a list" in body
