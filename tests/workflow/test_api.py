"""The Python API (docs/api.md): what a notebook user calls, the README example, the notebook."""

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tsmeta
from tsmeta.io import params_from_attrs, write_netcdf

ROOT = Path(__file__).resolve().parents[2]
SMALL = dict(N=60, P=30, V=30, seeds=2, alpha_final=1.0, n_records=4)


def test_import_is_light():
    """`import tsmeta` and its RunParams import neither torch nor SciPy (lazy API names)."""
    code = (
        "import sys, tsmeta; tsmeta.RunParams(); "
        "print('torch' in sys.modules, 'scipy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_simulate_runs_on_one_thread_and_restores_torchs_setting(monkeypatch):
    """tsmeta.simulate uses one CPU thread, as the workflow's jobs do (more do not pay at
    these sizes and stall on a busy machine), and gives torch its setting back;
    threads=None leaves torch's setting alone."""
    import torch

    import tsmeta.simulation

    seen = []
    monkeypatch.setattr(tsmeta.simulation, "simulate",
                        lambda *args, **kwargs: seen.append(torch.get_num_threads()))  # fmt: skip
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        tsmeta.simulate(**SMALL)
        assert seen == [1] and torch.get_num_threads() == 2
        tsmeta.simulate(**SMALL, threads=None)
        assert seen == [1, 2]
    finally:
        torch.set_num_threads(before)


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="simulte"):
        tsmeta.simulte  # noqa: B018


def test_simulate_and_theory_start_from_the_same_state():
    sim = tsmeta.simulate(tsmeta.RunParams(**SMALL), progress=False)
    th = tsmeta.theory_of(sim)
    assert sim.attrs["stage"] == "simulate" and th.attrs["stage"] == "theory"
    for name in ("R", "Q", "w0"):
        # the simulation recomputes them from its weights: equal to rounding
        np.testing.assert_allclose(sim[name].isel(alpha=0), th[name].isel(alpha=0), atol=1e-12)
    np.testing.assert_allclose(sim["T"], th["T"], atol=1e-12)
    np.testing.assert_array_equal(sim.alpha, th.alpha)
    # the same as the workflow's tasks -> theory stages
    from tsmeta.tasks import initial_state
    from tsmeta.theory import theory_dataset

    direct = theory_dataset(initial_state(tsmeta.RunParams(**SMALL)), tsmeta.RunParams(**SMALL))
    np.testing.assert_array_equal(th.R, direct.R)


def test_changes_and_settings_reach_the_run():
    changes = {**SMALL, "eta_w": 6.0}
    sim = tsmeta.simulate(sampler="dense", progress=False, settings={"mc_tasks": 3}, **changes)
    assert params_from_attrs(sim.attrs).eta_w == 6.0 and sim.attrs["sampler_used"] == "dense"
    with pytest.raises(ValueError, match="sampler"):
        tsmeta.simulate(tsmeta.RunParams(**SMALL), sampler="fast", progress=False)
    th = tsmeta.theory_of(dataclasses.replace(tsmeta.RunParams(**SMALL)), finite_p=False)
    assert "finite_p" not in th.attrs["terms"].split(",")
    with pytest.raises(ValueError, match="kind"):
        tsmeta.theory_of(tsmeta.RunParams(**SMALL), kind="nonsense")
    # run parameters and theory settings told apart by name
    slower = tsmeta.theory_of(tsmeta.RunParams(**SMALL), eta_w=4.5, finite_v=False)
    assert params_from_attrs(slower.attrs).eta_w == 4.5
    assert "finite_v" not in slower.attrs["terms"].split(",")
    with pytest.raises(ValueError, match="'etaw' is neither a run parameter"):
        tsmeta.theory_of(tsmeta.RunParams(**SMALL), etaw=4.5)


def test_open_run_reads_what_the_stages_wrote(tmp_path):
    p = tsmeta.RunParams(**SMALL)
    folder = tmp_path / "runs" / p.name()
    write_netcdf(tsmeta.initial_state(p), folder / "tasks.nc")
    write_netcdf(tsmeta.simulate(p, progress=False), folder / "sim.nc")
    write_netcdf(tsmeta.theory_of(p), folder / "theory.nc")
    write_netcdf(tsmeta.theory_of(p, finite_v=False), folder / "theory_nofv.nc")
    run = tsmeta.open_run(folder)
    assert run.params == p
    assert set(run.variants) == {"nofv"}
    assert run.sim.attrs["stage"] == "simulate" and run.theory is not None
    with pytest.raises(FileNotFoundError, match="no such run folder"):
        tsmeta.open_run(tmp_path / "nothing")


def test_plot_has_every_figure_kind_and_paints_a_figure_data_file(tmp_path):
    """tsmeta.plot.<kind> for every registered kind; tsmeta.plot.figure paints the data file
    the workflow's figure_data stage writes, as the figure stage does."""
    import matplotlib.pyplot as plt

    from tsmeta.figure_kinds import KINDS
    from tsmeta.stages import make_figure_data

    assert all(callable(getattr(tsmeta.plot, kind)) for kind in KINDS)
    p = tsmeta.RunParams(**SMALL)
    sim, theory = tsmeta.simulate(p, progress=False), tsmeta.theory_of(p)
    fig = tsmeta.plot.dynamics([sim], [theory], thresholds=[0.5])
    assert len(fig.axes) == 3 and fig.axes[0].get_lines()
    plt.close(fig)
    write_netcdf(sim, tmp_path / "sim.nc")
    write_netcdf(theory, tmp_path / "theory.nc")
    data = tmp_path / "dyn.nc"
    make_figure_data("dyn", {"kind": "dynamics"}, [tmp_path / "sim.nc"],
                     [tmp_path / "theory.nc"], data)  # fmt: skip
    fig = tsmeta.plot.figure(data, xscale="linear")
    assert fig.axes[0].get_xscale() == "linear"
    plt.close(fig)
    with pytest.raises(ValueError, match="figure kind must be one of"):
        tsmeta.plot.draw("dynamic", [sim])


def test_help_shows_parameters_returns_and_an_example():
    doc = tsmeta.simulate.__doc__
    for heading in ("Parameters", "Returns", "Examples"):
        assert heading in doc
    assert "theory_of" in tsmeta.api.__doc__


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use from Python", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_python_example_runs_as_written(tmp_path):
    code = _readme_example()
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=300,
                   env={**__import__("os").environ, "MPLBACKEND": "Agg"})  # fmt: skip


@pytest.mark.slow
def test_notebook_runs():
    """notebooks/quickstart.ipynb, executed as a user would (a fresh kernel)."""
    import nbformat
    from nbclient import NotebookClient

    path = ROOT / "notebooks" / "quickstart.ipynb"
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
        "store the notebook without outputs"
    )
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}})  # fmt: skip
    client.execute()
