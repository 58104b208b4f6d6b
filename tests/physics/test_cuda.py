"""The CUDA path (`simulation.device: cuda`): every sampler runs there and agrees in
distribution with the CPU.

Marked `cuda`: they run where torch sees a GPU and are skipped elsewhere (a skip here is not a
pass: `benchmarks/device_check.sh` runs them on a lent GPU). `TSMETA_TEST_DEVICE=cpu` runs the
same checks with the device side on the CPU too, which tests the tests.

CUDA draws its own random streams (a generator per seed on the device), so the device's run is
another realisation of the same seeds, not the CPU's numbers: the check is statistical. The
two sides use disjoint seeds (independent realisations even on one device), and per
observable at the last record the two-sample z = |mean_dev - mean_cpu| / sqrt(var_dev / S +
var_cpu / S) over S seeds must stay below 4 (a false alarm ~6e-5 per check for Gaussian
seed means).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import tsmeta
from tsmeta.params import RunParams

DEVICE = os.environ.get("TSMETA_TEST_DEVICE", "cuda")
pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        DEVICE == "cuda" and not torch.cuda.is_available(), reason="no CUDA device here"
    ),
]

SEEDS = 16
RUN = {"N": 200, "K": 3, "M": 3, "P": 50, "V": 50, "seeds": SEEDS, "alpha_final": 3.0,
       "n_records": 3}  # fmt: skip
Z_MAX = 4.0


def simulate(params: RunParams, sampler: str, device: str):
    settings = {"mc_tasks": 4, "mc_adapt": 200, "mc_test": 200}
    return tsmeta.simulate(params, sampler=sampler, device=device, progress=False,
                           settings=settings)  # fmt: skip


def z_scores(a, b) -> dict:
    """Two-sample z per observable at the last record, over seeds (eps_meta_mc: the
    Monte-Carlo measurement, made on the device too)."""
    out = {}
    observables = (("eps_meta", None), ("eps_meta_mc", None), ("R", ("k", "n")),
                   ("Q", ("k", "l")), ("w0", "k"))  # fmt: skip
    for name, reduce in observables:
        x, y = a[name].isel(alpha=-1), b[name].isel(alpha=-1)
        if reduce is not None:  # one number per seed: the overlaps' squared norm
            x, y = (x**2).sum(reduce), (y**2).sum(reduce)
        x, y = np.asarray(x), np.asarray(y)
        se = np.sqrt(x.var(ddof=1) / x.size + y.var(ddof=1) / y.size)
        out[name] = abs(x.mean() - y.mean()) / se
    return out


@pytest.mark.parametrize(
    "sampler, algorithm",
    [
        ("gram", "fo-anil"),
        ("projected", "fo-anil"),
        ("dense", "fo-anil"),
        ("gram", "anil"),
        ("dense", "maml"),
    ],
)
def test_every_sampler_on_the_device_agrees_with_the_cpu(sampler, algorithm):
    on_device = RunParams.from_dict({**RUN, "algorithm": algorithm})
    on_cpu = RunParams.from_dict({**RUN, "algorithm": algorithm, "seed_offset": SEEDS})
    dev = simulate(on_device, sampler, DEVICE)
    cpu = simulate(on_cpu, sampler, "cpu")
    assert dev.attrs["device_used"].startswith(DEVICE)
    assert dev.attrs["sampler_used"] == sampler
    assert not dev["diverged"].any()
    for name, z in z_scores(dev, cpu).items():
        assert z < Z_MAX, f"{sampler}, {algorithm}: {name} differs by {z:.1f} standard errors"


def test_a_different_law_on_the_device_is_caught():
    """Negative control: the same statistic flags a run whose rate differs (eta_w 9 -> 6)."""
    base = {**RUN, "algorithm": "fo-anil", "alpha_final": 6.0}
    dev = simulate(RunParams.from_dict(base), "gram", DEVICE)
    other = RunParams.from_dict({**base, "eta_w": 6.0, "seed_offset": SEEDS})
    cpu = simulate(other, "gram", "cpu")
    assert max(z_scores(dev, cpu).values()) > Z_MAX
