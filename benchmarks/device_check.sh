#!/bin/bash
# The CUDA checks in one command, for a lent GPU machine (the workplace's `device` tool runs it
# from the repository root; about 6 minutes on an H100 is the plan, measured times in $OUT):
#
#     bash benchmarks/device_check.sh
#
#  1. the tests marked `cuda` (tests/physics/test_cuda.py: every sampler on the device against
#     the CPU in distribution, and a negative control);
#  2. the samplers and their floor on the device (benchmarks/bench_simulator.py --device cuda);
#  3. one paper-scale run simulated on the device (the dynamics run of config/paper.yaml,
#     FO-ANIL, N = P = V = 1000, 10 seeds, 4.5e6 seed-tasks), its wall time and its final
#     eps_meta next to the tabulated CPU estimate (tsmeta.cost).
#
# The machine has torch, numpy, scipy, xarray, pandas, pytest and tqdm; tsmeta comes from src/.
# Outputs go to $OUT (the tool's return folder) or ./device-check.
set -o pipefail
out=${OUT:-device-check}
mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
py=python3
status=0

nvidia-smi -L 2>&1 | tee "$out/gpu.txt"
$py -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" \
    2>&1 | tee -a "$out/gpu.txt" || exit 1

echo "== 1. tests marked cuda"
timeout 240 $py -m pytest -q -p no:cacheprovider -m cuda tests/physics/test_cuda.py 2>&1 |
    tee "$out/tests.txt" || status=1

echo "== 2. samplers on the device"
timeout 150 $py benchmarks/bench_simulator.py --device cuda --seconds 1 --no-theory 2>&1 |
    tee "$out/bench.txt" || status=1

echo "== 3. one paper-scale run on the device"
timeout 300 $py - <<'EOF' 2>&1 | tee "$out/paper_run.txt" || status=1
import time

import tsmeta
from tsmeta import config as tsconfig
from tsmeta import cost
from tsmeta.settings import SimSettings

plan = tsconfig.expand(tsconfig.load("config/paper.yaml"))
name = plan.experiments["dynamics"].runs[0]
params = plan.runs[name]
settings = {**plan.sim_settings[name], "device": "cuda"}
start = time.perf_counter()
sim = tsmeta.simulate(params, settings=settings, progress=False)
wall = time.perf_counter() - start
cpu = cost.estimate(name, params, SimSettings.from_dict(plan.sim_settings[name]), {})
print(f"run {name}: {params.seeds * params.total_steps:.3g} seed-tasks on {sim.attrs['device_used']}"
      f" ({sim.attrs['sampler_used']}, {sim.attrs['kernel_used']}) in {wall:.0f} s;"
      f" the CPU estimate (one thread) {cpu.simulate_s:.0f} s: {cpu.simulate_s / wall:.2f}x")
print("final eps_meta per seed:", sim["eps_meta"].isel(alpha=-1).values.round(5).tolist())
print("diverged seeds:", int(sim["diverged"].sum()))
EOF
exit $status
