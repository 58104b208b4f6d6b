"""g(z) = max(z, 0) and its derivative in PyTorch (docs/model.md).

g'(0) = 0, the convention of torch.relu's autograd: a unit whose field is exactly 0 on an
input gets no gradient from it (a set of measure zero for Gaussian inputs).
"""

from __future__ import annotations

import torch


def g(z: torch.Tensor) -> torch.Tensor:
    """Activation g(z) = max(z, 0)."""
    return torch.relu(z)


def g_prime(z: torch.Tensor) -> torch.Tensor:
    return (z > 0).to(z.dtype)


# the same functions on one float, compiled into the fused Gram kernel (simulation.gram_fused)
def g_scalar(z: float) -> float:
    return z if z > 0.0 else 0.0


def g_prime_scalar(z: float) -> float:
    return 1.0 if z > 0.0 else 0.0
