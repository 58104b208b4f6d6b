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
    "({sampler}); label noise (chunk, P + V) if noise_std > 0; standard normals drawn in "
    "{normals} and used in the simulation's dtype; a chi-square variate with n "
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


def randn(gen: torch.Generator, shape, dtype, device, precision) -> torch.Tensor:
    """Standard normals drawn in `precision` and returned in `dtype`.

    float32 draws cost about a seventh of float64 ones on a CPU; upcast, they carry 24-bit
    mantissas, far finer than any sample size here can resolve (the distribution tests run on
    both), while the state and every sum stay in `dtype`.
    """
    z = torch.randn(shape, generator=gen, dtype=precision, device=device)
    return z if precision == dtype else z.to(dtype)


def draw_normals(gens, shapes: dict, dtype, device, precision=None) -> dict:
    """The draws of a chunk of tasks: standard normals of the given shapes (chi-square variates
    for `ChiSquare` specs), seed by seed, each from its own generator in the order of `shapes`,
    as (S, chunk, ...) tensors of `dtype`; the normals are drawn in `precision` (default: dtype,
    see `randn`). Every shape starts with the chunk's task axis; the tensors are laid out task
    by task in memory, so that one task's draws `x[:, c]` are contiguous."""
    precision = precision or dtype
    draws = {}
    for key, spec in shapes.items():
        size = spec.shape if isinstance(spec, ChiSquare) else spec
        out = torch.empty((size[0], len(gens), *size[1:]), dtype=dtype, device=device)
        for s, gen in enumerate(gens):
            if isinstance(spec, ChiSquare):
                out[:, s] = chi_square(gen, spec.dof, spec.lead, dtype, device)
            else:
                out[:, s] = torch.randn(spec, generator=gen, dtype=precision, device=device)
        draws[key] = out.transpose(0, 1)
    return draws
