"""g(z) = erf(z / sqrt(2)) and its derivative in PyTorch (docs/model.md)."""

from __future__ import annotations

import math

import torch

SQRT2 = math.sqrt(2.0)
G_PRIME_NORM = math.sqrt(2.0 / math.pi)


def g(z: torch.Tensor) -> torch.Tensor:
    """Activation g(z) = erf(z / sqrt(2))."""
    return torch.erf(z / SQRT2)


def g_prime(z: torch.Tensor) -> torch.Tensor:
    return G_PRIME_NORM * torch.exp(-0.5 * z * z)


# the same functions on one float, compiled into the fused Gram kernel (simulation.gram_fused)
def g_scalar(z: float) -> float:
    return math.erf(z / SQRT2)


def g_prime_scalar(z: float) -> float:
    return G_PRIME_NORM * math.exp(-0.5 * z * z)
