"""A run split into jobs by max_runtime (tsmeta.cost) gives the same numbers as one job."""

import numpy as np
import pytest
import xarray as xr

from tsmeta import cost, stages
from tsmeta.params import RunParams
from tsmeta.settings import SimSettings
from tsmeta.simulation import Simulation
from tsmeta.tasks import initial_state


@pytest.mark.parametrize("sampler", ["gram", "projected", "dense"])
def test_a_chain_of_segments_equals_one_run(tmp_path, sampler):
    params = RunParams(N=50, P=20, V=20, K=2, M=2, seeds=2, alpha_final=6, n_records=8)
    settings = SimSettings(sampler=sampler, draw_chunk=16, mc_tasks=4, mc_adapt=50, mc_test=50)
    tasks = initial_state(params)
    whole = Simulation(tasks, params, settings).run(progress=False)
    chunk = 1 if sampler == "dense" else settings.draw_chunk
    stops = cost.segment_stops(params.total_steps, chunk, 3)
    assert len(stops) == 2
    previous = None
    for k, stop in enumerate(stops, start=1):
        out = tmp_path / f"segment_{k}.ckpt"
        sim = Simulation(tasks, params, settings)
        assert sim.run(checkpoint=out, resume_from=previous, stop_at=stop, progress=False) is None
        assert sim.t == stop
        previous = out
    last = Simulation(tasks, params, settings).run(resume_from=previous, progress=False)
    for name in ("R", "Q", "w0", "eps_meta_mc", "eps_meta_p_mc"):
        np.testing.assert_array_equal(last[name].values, whole[name].values, err_msg=name)


def test_make_segment_writes_the_state_the_last_job_resumes(tmp_path):
    params = RunParams(N=40, P=10, V=10, K=2, M=2, seeds=2, alpha_final=4, n_records=4)
    settings = {"draw_chunk": 8, "mc_tasks": 2, "mc_adapt": 20, "mc_test": 20}
    tasks = tmp_path / "tasks.nc"
    stages.make_tasks(params, tasks)
    segment = stages.make_segment(tasks, params, settings, tmp_path / "s1.ckpt", stop_at=80)
    split = stages.make_simulation(tasks, params, settings, tmp_path / "a.nc",
                                   resume_from=segment)  # fmt: skip
    whole = stages.make_simulation(tasks, params, settings, tmp_path / "b.nc")
    a, b = xr.open_dataset(split), xr.open_dataset(whole)
    np.testing.assert_array_equal(a["Q"].values, b["Q"].values)
