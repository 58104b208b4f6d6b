"""Random streams: one torch.Generator per seed and stream, drawn into batched tensors.

Every seed has its own generator for the task stream and another for the Monte-Carlo
measurement of eps_meta, so a seed's trajectory does not depend on which other seeds share
its batch (tested). The order of the draws is part of the stream and is written into the
`rng` attribute of every sim.nc (`RNG_DESCRIPTION` plus the sampler's own part).
"""

from __future__ import annotations

import numpy as np
import torch

TASK_STREAM, MEASUREMENT_STREAM = 1, 2

RNG_DESCRIPTION = (
    "per seed s: task stream torch.Generator(device).manual_seed(numpy SeedSequence([s, 1])"
    ".generate_state(1)[0]), measurement stream likewise with [s, 2]; task draws in chunks of "
    "`draw_chunk` tasks (dense: 1), in order: u (chunk, M); then the sampler's draws "
    "({sampler}); label noise (chunk, P + V) if noise_std > 0"
)


def generator(seed: int, stream: int, device: torch.device) -> torch.Generator:
    state = int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(state)


def generators(seeds, stream: int, device: torch.device) -> list[torch.Generator]:
    return [generator(s, stream, device) for s in seeds]


def draw_normals(gens, shapes: dict, dtype, device) -> dict:
    """Standard normals of the given shapes, seed by seed (each from its own generator, in the
    order of `shapes`), stacked into (S, *shape) tensors."""
    draws = {
        key: torch.empty((len(gens), *shape), dtype=dtype, device=device)
        for key, shape in shapes.items()
    }
    for s, gen in enumerate(gens):
        for key, shape in shapes.items():
            torch.randn(shape, generator=gen, dtype=dtype, device=device, out=draws[key][s])
    return draws
