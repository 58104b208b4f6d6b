"""Bad input, divergence, interruption, determinism, partial and corrupt files."""

import copy
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tsmeta import config as tsconfig
from tsmeta.io import InputFileError, open_dataset, write_netcdf
from tsmeta.params import RunParams
from tsmeta.settings import SimSettings
from tsmeta.simulation import simulate
from tsmeta.stages import make_simulation, make_tasks
from tsmeta.tasks import initial_state

ROOT = Path(__file__).resolve().parents[2]
FAST = SimSettings(mc_tasks=10, mc_adapt=100, mc_test=100, draw_chunk=8)

# ---------------------------------------------------------------- config validation
INT_KEYS = ["N", "K", "M", "P", "V", "inner_steps", "seeds", "n_records"]
NONNEG_KEYS = ["eta_J", "eta_w", "u_std", "noise_std", "init_std", "w0_std", "init_perturbation"]
ENUM_KEYS = {
    "algorithm": ["fo-anil", "anil", "maml", "fo-maml"],
    "init": ["random", "symmetric"],
    "teacher_init": ["gaussian", "orthonormal"],
    "alpha_grid": ["log", "linear"],
}
KNOWN = set(INT_KEYS + NONNEG_KEYS + list(ENUM_KEYS)) | set(RunParams().to_dict())

bad_values = st.one_of(
    st.tuples(
        st.sampled_from(INT_KEYS),
        st.one_of(st.integers(-100, 0), st.just(1.5), st.text(max_size=3)),
    ),
    st.tuples(st.sampled_from(NONNEG_KEYS), st.one_of(st.floats(-1e3, -1e-6), st.just("fast"))),
    st.tuples(st.just("gamma"), st.one_of(st.floats(1.0001, 10), st.floats(-10, -1e-6))),
    st.tuples(st.just("alpha_final"), st.floats(-100, 0)),
    st.tuples(st.sampled_from(sorted(ENUM_KEYS)), st.text(min_size=1, max_size=8)),
    st.tuples(  # an unknown key (a random name that is a real key is no error)
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10).filter(
            lambda key: key not in KNOWN
        ),
        st.integers(),
    ),
).filter(lambda kv: kv[0] not in ENUM_KEYS or kv[1] not in ENUM_KEYS[kv[0]])
bad_values = bad_values.filter(
    lambda kv: kv[0] in KNOWN - {"seed_offset", "u_mean"} or kv[0] not in KNOWN
)

good_values = st.fixed_dictionaries(
    {},
    optional={
        **{k: st.integers(1, 5000) for k in INT_KEYS},
        **{k: st.floats(0, 100) for k in NONNEG_KEYS},
        "gamma": st.floats(0, 1),
        "u_mean": st.floats(-5, 5),
        "alpha_final": st.floats(1e-3, 1e3),
        **{k: st.sampled_from(v) for k, v in ENUM_KEYS.items()},
    },
)

BASE = tsconfig.load(ROOT / "config" / "test.yaml")
WHERE = ["defaults", "experiments.dynamics.base", "experiments.dynamics.runs.0"]


def _place(config, where, key, value):
    config = copy.deepcopy(config)
    node = config
    parts = where.split(".")
    if parts[-1] == "0":
        config["experiments"]["dynamics"]["runs"] = [{}]
    for part in parts:
        node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
    node[key] = value
    return config


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kv=bad_values, where=st.sampled_from(WHERE))
def test_every_bad_config_is_rejected_naming_its_key(kv, where):
    key, value = kv
    config = _place(BASE, where, key, value)
    with pytest.raises(tsconfig.ConfigError) as err:
        tsconfig.validate(config)
    assert f"{where}.{key}" in str(err.value)


@settings(max_examples=30, deadline=None)  # each example expands a whole plan (~3 s)
@given(values=good_values, where=st.sampled_from(WHERE))
def test_valid_configs_pass(values, where):
    config = copy.deepcopy(BASE) | {"memory_budget": 1e9}  # the schema, not the resources
    for key, value in values.items():
        config = _place(config, where, key, value)
    tsconfig.validate(config)


@pytest.mark.parametrize(
    "where,key,value,allowed",
    [
        ("simulation", "device", "tpu", "cpu"),
        ("simulation", "sampler", "fast", "projected"),
        ("theory", "method", "euler", "RK45"),
        ("theory", "kind", "langevin", "sde"),
        ("experiments.dynamics.figure", "kind", "pie", "dynamics"),
        ("simulation", "speed", 1, "mc_tasks"),
    ],
)
def test_bad_settings_name_the_key_and_the_allowed_values(where, key, value, allowed):
    config = _place(BASE, where, key, value)
    with pytest.raises(tsconfig.ConfigError) as err:
        tsconfig.validate(config)
    assert f"{where}.{key}" in str(err.value) and allowed in str(err.value)


def test_projected_sampler_for_maml_is_a_clear_error():
    config = _place(BASE, "simulation", "sampler", "projected")
    config = _place(config, "experiments.dynamics.base", "algorithm", "maml")
    with pytest.raises(tsconfig.ConfigError, match="projected.*maml"):
        tsconfig.validate(config)


# ---------------------------------------------------------------- divergence
def test_diverging_rates_mark_the_run_and_keep_the_trajectory_up_to_there(tmp_path):
    params = RunParams(N=40, P=20, V=20, seeds=3, eta_J=200.0, alpha_final=5, n_records=10)
    make_tasks(params, tmp_path / "tasks.nc")
    make_simulation(tmp_path / "tasks.nc", params, FAST.__dict__, tmp_path / "sim.nc")
    sim = open_dataset(tmp_path / "sim.nc", stage="simulate")
    assert sim["diverged"].values.tolist() == [1, 1, 1]
    assert sim.attrs["any_diverged"] == 1
    for i, alpha_div in enumerate(sim["alpha_diverged"].values):
        before = sim["alpha"].values < alpha_div - 8 / 40  # checked once per chunk of 8 tasks
        assert np.isfinite(sim["eps_meta"].values[i, before]).all()
        assert np.isnan(sim["Q"].values[i, sim["alpha"].values >= alpha_div]).all()


def test_a_stable_run_is_not_marked_diverged():
    params = RunParams(N=40, P=20, V=20, seeds=2, alpha_final=2, n_records=4)
    sim = simulate(initial_state(params), params, FAST)
    assert sim["diverged"].values.tolist() == [0, 0]
    assert np.isnan(sim["alpha_diverged"].values).all()


# ---------------------------------------------------------------- determinism
def _data(ds):
    return ds.drop_attrs() if hasattr(ds, "drop_attrs") else ds.assign_attrs({})


def test_same_seed_same_data_other_seed_other_data():
    params = RunParams(N=30, P=10, V=10, seeds=2, alpha_final=1, n_records=3)
    a = simulate(initial_state(params), params, FAST)
    b = simulate(initial_state(params), params, FAST)
    xr.testing.assert_identical(_data(a), _data(b))
    other = RunParams(**{**params.to_dict(), "seed_offset": 5})
    c = simulate(initial_state(other), other, FAST)
    assert np.abs(a["R"].values[:, -1] - c["R"].values[:, -1]).max() > 1e-3


# ---------------------------------------------------------------- interruption
def _cli(*args):
    return [shutil.which("tsmeta") or "tsmeta", *args]


@pytest.mark.slow
def test_killed_simulation_resumes_from_its_checkpoint_bit_for_bit(tmp_path):
    run = ["--config", str(ROOT / "config" / "test.yaml")]
    run += ["--set", "N=100", "--set", "P=100", "--set", "V=100", "--set", "alpha_final=40"]
    subprocess.run(
        _cli("tasks", *run, "--out", str(tmp_path / "tasks.nc")), check=True, timeout=120
    )
    sim = ["simulate", *run, "--tasks", str(tmp_path / "tasks.nc"), "--threads", "1"]
    ckpt, out = tmp_path / "sim.ckpt", tmp_path / "sim.nc"
    killed = subprocess.Popen(
        _cli(*sim, "--out", str(out), "--checkpoint", str(ckpt), "--checkpoint-every", "256")
    )
    deadline = time.time() + 240
    while not ckpt.exists() and time.time() < deadline and killed.poll() is None:
        time.sleep(0.05)
    time.sleep(0.5)  # let it go on past the checkpoint, so the kill loses work
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert ckpt.exists(), "no checkpoint was written before the kill"
    assert not out.exists(), "the run finished before it could be killed: make it longer"
    resume = _cli(*sim, "--out", str(out), "--checkpoint", str(ckpt), "--checkpoint-every", "256")
    resumed = subprocess.run(resume, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    assert not ckpt.exists()  # removed once the output is safely written
    straight = tmp_path / "straight.nc"
    subprocess.run(
        _cli(*sim, "--out", str(straight), "--checkpoint-every", "256"), check=True, timeout=600
    )
    a, b = open_dataset(out, stage="simulate"), open_dataset(straight, stage="simulate")
    xr.testing.assert_identical(_data(a), _data(b))  # bit for bit, NaN where NaN


# ---------------------------------------------------------------- partial and corrupt files
def test_an_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    ds = xr.Dataset({"x": ("i", np.arange(1000.0))})

    def broken_to_netcdf(self, path, **kw):
        Path(path).write_bytes(b"CDF\x01" + b"\0" * 100)  # half-written ...
        raise KeyboardInterrupt  # ... and interrupted

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken_to_netcdf)
    with pytest.raises(KeyboardInterrupt):
        write_netcdf(ds, tmp_path / "out.nc")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["truncated", "foreign", "text", "missing"])
def test_a_bad_input_file_gives_an_error_naming_it(tmp_path, kind):
    params = RunParams(N=20, P=5, V=5, seeds=1, alpha_final=0.2, n_records=2)
    tasks = tmp_path / "tasks.nc"
    make_tasks(params, tasks)
    if kind == "truncated":
        data = tasks.read_bytes()
        tasks.write_bytes(data[: len(data) // 2])
    elif kind == "foreign":
        write_netcdf(xr.Dataset({"temperature": ("time", np.ones(3))}), tasks)
    elif kind == "text":
        tasks.write_text("not a netCDF file\n")
    else:
        os.remove(tasks)
    with pytest.raises(InputFileError) as err:
        make_simulation(tasks, params, FAST.__dict__, tmp_path / "sim.nc")
    assert str(tasks) in str(err.value)
    assert not (tmp_path / "sim.nc").exists()


def test_tasks_made_for_other_parameters_are_refused(tmp_path):
    params = RunParams(N=20, P=5, V=5, seeds=1, alpha_final=0.2, n_records=2)
    make_tasks(params, tmp_path / "tasks.nc")
    other = RunParams(**{**params.to_dict(), "N": 30})
    with pytest.raises(ValueError, match="N=20"):
        make_simulation(tmp_path / "tasks.nc", other, FAST.__dict__, tmp_path / "sim.nc")


def test_config_yaml_files_of_the_project_are_valid():
    for path in sorted((ROOT / "config").glob("*.yaml")):
        if path.name != "schema.yaml":
            tsconfig.validate(tsconfig.load(path))  # the project's loader: repeated keys too
