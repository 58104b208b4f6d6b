"""g(z) = z and its derivative in PyTorch (docs/model.md): the student is a linear map."""

from __future__ import annotations

import torch


def g(z: torch.Tensor) -> torch.Tensor:
    """Activation g(z) = z."""
    return z


def g_prime(z: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(z)


# the same functions on one float, compiled into the fused Gram kernel (simulation.gram_fused)
def g_scalar(z: float) -> float:
    return z


def g_prime_scalar(z: float) -> float:
    return 1.0
