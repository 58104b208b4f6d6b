"""Averages over the task head u ~ N(u_mean 1, u_std^2 I_M) of polynomials of low degree.

The finite-P terms of ANIL and of several inner steps need E_u of products of up to four
quantities that are affine in u. The probabilists' Gauss-Hermite rule with 3 nodes per
coordinate integrates every polynomial of degree <= 5 in each coordinate exactly, so the
product grid (3^M nodes) gives these averages exactly, without writing out Isserlis' theorem
for every product (docs/theory.md, section 9a).
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from tsmeta.theory.closed_form import batch_axes as expand

NODES_PER_AXIS = 3  # exact up to degree 5 per coordinate: the terms are of degree <= 4


def u_nodes(M: int, u_mean, u_std) -> tuple[np.ndarray, np.ndarray]:
    """Nodes u (..., Q, M) and weights (Q,) summing to 1, with Q = 3^M; `u_mean` and `u_std`
    batch-shaped (the leading dims)."""
    x, w = hermegauss(NODES_PER_AXIS)
    w = w / w.sum()
    grid = np.array(list(itertools.product(x, repeat=M)))  # (Q, M)
    weights = np.array([np.prod(c) for c in itertools.product(w, repeat=M)])
    um = expand(np.asarray(u_mean, float), 2)
    us = expand(np.asarray(u_std, float), 2)
    return um + us * grid, weights


def average(values: np.ndarray, weights: np.ndarray, tail: int) -> np.ndarray:
    """The weighted sum over the node axis, the axis before the last `tail` axes."""
    return np.tensordot(np.moveaxis(values, -(tail + 1), -1), weights, axes=([-1], [0]))
