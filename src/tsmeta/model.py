"""The networks and the meta-learning updates of docs/model.md, in PyTorch.

Everything here is batched over a leading seed axis. Because the networks see an input
only through its fields (`lambda = J x / sqrt(N)`, `nu_t = B_t x / sqrt(N)`), FO-ANIL and
ANIL are written in field space: `field_gradients` returns dL_val/d(fields) per example and
dL_val/dw0; the J gradient is then sum_mu dL/dlambda^mu x^mu / sqrt(N), assembled by the
sampler (`tsmeta.simulation.samplers`). MAML and FO-MAML adapt J too, so they work on the weights.

The activation is an argument `act`: the module of the run's torch functions `g` and
`g_prime` (`tsmeta.activations.activation(params.activation).torch()`).
"""

from __future__ import annotations

import math
from types import ModuleType

import torch


def output_of(activations: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """s = (1/sqrt(units)) sum_k weights_k a_k from the activations a = g(fields)."""
    units = activations.shape[-1]
    return (activations @ weights.unsqueeze(-1)).squeeze(-1) / math.sqrt(units)


def network_output(fields: torch.Tensor, weights: torch.Tensor, act: ModuleType) -> torch.Tensor:
    """s = (1/sqrt(units)) sum_k weights_k g(fields_k); fields (..., n_ex, units)."""
    return output_of(act.g(fields), weights)


def half_mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Loss L_D = mean over the set of (1/2)(s - y)^2, one value per leading index."""
    return 0.5 * ((pred - y) ** 2).mean(-1)


def _gradient_of(activations: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """grad_w L_D = mean over the set of delta g(lambda) / sqrt(K), from the activations."""
    n_ex, K = activations.shape[-2:]
    return (activations.transpose(-1, -2) @ delta.unsqueeze(-1)).squeeze(-1) / (n_ex * math.sqrt(K))


def head_gradient(
    lam: torch.Tensor, y: torch.Tensor, w: torch.Tensor, act: ModuleType
) -> torch.Tensor:
    """grad_w L_D(J, w) from the fields lam (S, n_ex, K) and labels y (S, n_ex)."""
    gl = act.g(lam)
    return _gradient_of(gl, output_of(gl, w) - y)


def adapt_head(
    lam: torch.Tensor, y: torch.Tensor, w0: torch.Tensor, eta_w: float, steps: int, act: ModuleType
):
    """Inner loop, head only: w <- w - eta_w grad_w L_train(J, w), `steps` times from w0.
    The activations are evaluated once for all steps."""
    w = w0
    gl = act.g(lam) if steps else None
    for _ in range(steps):
        w = w - eta_w * _gradient_of(gl, output_of(gl, w) - y)
    return w


def field_gradients(
    lam_tr,
    y_tr,
    lam_val,
    y_val,
    w0,
    *,
    act: ModuleType,
    eta_w: float,
    inner_steps: int,
    second_order: bool,
):
    """Outer gradients of ANIL-type algorithms in field space.

    Returns (dL/dlam_tr (S, P, K), dL/dlam_val (S, V, K), dL/dw0 (S, K)), where L is the
    validation loss at the adapted head. First order (FO-ANIL): the head is treated as a
    constant, so dL/dlam_tr is None (zero) and dL/dw0 is grad_w L_val at the adapted head.
    """
    if not second_order:
        w = adapt_head(lam_tr, y_tr, w0, eta_w, inner_steps, act)
        g_val = act.g(lam_val)  # each activation once: with the field draws, the step's floor
        delta = output_of(g_val, w) - y_val  # (S, V)
        n_val, K = lam_val.shape[-2:]
        d_lam_val = (
            delta.unsqueeze(-1) * act.g_prime(lam_val) * w.unsqueeze(-2) / (n_val * math.sqrt(K))
        )
        return None, d_lam_val, _gradient_of(g_val, delta)
    with torch.enable_grad():
        lam_tr = lam_tr.detach().requires_grad_(True)
        lam_val = lam_val.detach().requires_grad_(True)
        w0 = w0.detach().requires_grad_(True)
        w = adapt_head(lam_tr, y_tr, w0, eta_w, inner_steps, act)
        loss = half_mse(network_output(lam_val, w, act), y_val).sum()  # sum over seeds: independent
        return torch.autograd.grad(loss, (lam_tr, lam_val, w0))


def maml_gradients(
    J,
    w0,
    X_tr,
    y_tr,
    X_val,
    y_val,
    *,
    act: ModuleType,
    eta_w: float,
    eta_J_inner: float,
    inner_steps: int,
    second_order: bool,
):
    """Outer gradients (dL/dJ, dL/dw0) of MAML (second_order) or FO-MAML, on the weights.

    Inner loop: J and w adapted together, J_t = J - eta_J_inner grad_J L_train,
    w_t = w - eta_w grad_w L_train. FO-MAML evaluates the gradient at (J_t, w_t).
    """
    N = J.shape[-1]

    def loss(Jx, wx, X, y):
        lam = X @ Jx.transpose(-1, -2) / math.sqrt(N)
        return half_mse(network_output(lam, wx, act), y).sum()

    with torch.enable_grad():
        J0 = J.detach().requires_grad_(True)
        w00 = w0.detach().requires_grad_(True)
        Jt, wt = J0, w00
        for _ in range(inner_steps):
            gJ, gw = torch.autograd.grad(
                loss(Jt, wt, X_tr, y_tr), (Jt, wt), create_graph=second_order
            )
            Jt, wt = Jt - eta_J_inner * gJ, wt - eta_w * gw
        if second_order:
            return torch.autograd.grad(loss(Jt, wt, X_val, y_val), (J0, w00))
        Jt = Jt.detach().requires_grad_(True)
        wt = wt.detach().requires_grad_(True)
        return torch.autograd.grad(loss(Jt, wt, X_val, y_val), (Jt, wt))
