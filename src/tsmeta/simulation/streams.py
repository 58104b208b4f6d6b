"""Random streams: one torch.Generator per seed and stream, drawn into batched tensors.

Every seed has its own generator for the task stream and another for the Monte-Carlo
measurement of eps_meta, so a seed's trajectory does not depend on which other seeds share
its batch (tested). The order of the draws is part of the stream and is written into the
`rng` attribute of every sim.nc (`RNG_DESCRIPTION` plus the sampler's own part).
A sampler may also ask for chi-square variates (`ChiSquare`, the Gram sampler's Bartlett
factors), drawn from the same generator in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

TASK_STREAM, MEASUREMENT_STREAM = 1, 2

RNG_DESCRIPTION = (
    "per seed s: task stream torch.Generator(device).manual_seed(numpy SeedSequence([s, 1])"
    ".generate_state(1)[0]), measurement stream likewise with [s, 2]; task draws in chunks of "
    "`draw_chunk` tasks (dense: 1), in order: u (chunk, M); then the sampler's draws "
    "({sampler}); label noise (chunk, P + V) if noise_std > 0; a chi-square variate with n "
    "degrees of freedom is 2 torch._standard_gamma(n / 2, generator) of the same generator"
)


@dataclass(frozen=True)
class ChiSquare:
    """Chi-square variates of shape (*lead, len(dof)), dof[i] degrees of freedom along the last
    axis; a draw spec next to the plain shapes (standard normals) of `draw_normals`."""

    lead: tuple
    dof: tuple

    @property
    def shape(self) -> tuple:
        return (*self.lead, len(self.dof))


def chi_square(gen: torch.Generator, dof, lead: tuple, dtype, device) -> torch.Tensor:
    """Chi-square variates (*lead, len(dof)) from `gen`: 2 Gamma(dof / 2), Marsaglia-Tsang, O(1)
    for any dof > 0 (torch.distributions.Chi2 takes no generator, hence the private op)."""
    half = torch.as_tensor(dof, dtype=dtype, device=device) / 2
    if half.numel() == 0:
        return torch.empty((*lead, 0), dtype=dtype, device=device)
    return 2 * torch._standard_gamma(half.expand(*lead, -1).contiguous(), generator=gen)


def generator(seed: int, stream: int, device: torch.device) -> torch.Generator:
    state = int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])
    return torch.Generator(device=device).manual_seed(state)


def generators(seeds, stream: int, device: torch.device) -> list[torch.Generator]:
    return [generator(s, stream, device) for s in seeds]


def draw_normals(gens, shapes: dict, dtype, device) -> dict:
    """Standard normals of the given shapes (chi-square variates for `ChiSquare` specs), seed by
    seed (each from its own generator, in the order of `shapes`), stacked into (S, ...)."""
    size = lambda spec: spec.shape if isinstance(spec, ChiSquare) else spec  # noqa: E731
    draws = {
        key: torch.empty((len(gens), *size(spec)), dtype=dtype, device=device)
        for key, spec in shapes.items()
    }
    for s, gen in enumerate(gens):
        for key, spec in shapes.items():
            if isinstance(spec, ChiSquare):
                draws[key][s] = chi_square(gen, spec.dof, spec.lead, dtype, device)
            else:
                torch.randn(spec, generator=gen, dtype=dtype, device=device, out=draws[key][s])
    return draws
