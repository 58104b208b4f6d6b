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
