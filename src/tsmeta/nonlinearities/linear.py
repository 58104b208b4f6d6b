"""g(z) = z and its derivative in PyTorch (docs/model.md): the student is a linear map."""

from __future__ import annotations

import torch


def g(z: torch.Tensor) -> torch.Tensor:
    """Activation g(z) = z."""
    return z


def g_prime(z: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(z)
