"""Gradients of the meta-learning updates against autograd and finite differences."""

import math

import pytest
import torch

from tsmeta import model
from tsmeta.activations import activation

ERF = activation("erf").torch()
S, N, K, M, P, V = 2, 15, 3, 2, 7, 6


@pytest.fixture
def problem():
    gen = torch.Generator().manual_seed(3)
    r = lambda *shape: torch.randn(*shape, generator=gen, dtype=torch.float64)
    J, B = r(S, K, N), r(S, M, N)
    w0 = 0.5 * r(S, K)
    u = r(S, M)
    X_tr, X_val = r(S, P, N), r(S, V, N)
    label = lambda X: model.network_output(X @ B.transpose(-1, -2) / math.sqrt(N), u, ERF)
    return J, w0, X_tr, label(X_tr), X_val, label(X_val)


def fields(J, X):
    return X @ J.transpose(-1, -2) / math.sqrt(N)


def val_loss_after_adaptation(J, w0, X_tr, y_tr, X_val, y_val, eta_w, steps=1):
    w = model.adapt_head(fields(J, X_tr), y_tr, w0, eta_w, steps, ERF)
    return model.half_mse(model.network_output(fields(J, X_val), w, ERF), y_val)


def field_grads_as_weight_grads(J, w0, X_tr, y_tr, X_val, y_val, eta_w, second_order, steps=1):
    d_tr, d_val, d_w0 = model.field_gradients(
        fields(J, X_tr), y_tr, fields(J, X_val), y_val, w0, act=ERF,
        eta_w=eta_w, inner_steps=steps, second_order=second_order,
    )  # fmt: skip
    grad_J = d_val.transpose(-1, -2) @ X_val / math.sqrt(N)
    if d_tr is not None:
        grad_J = grad_J + d_tr.transpose(-1, -2) @ X_tr / math.sqrt(N)
    return grad_J, d_w0


def test_head_gradient_matches_autograd(problem):
    J, w0, X_tr, y_tr, _, _ = problem
    w = w0.clone().requires_grad_(True)
    loss = model.half_mse(model.network_output(fields(J, X_tr), w, ERF), y_tr).sum()
    (auto,) = torch.autograd.grad(loss, w)
    torch.testing.assert_close(
        model.head_gradient(fields(J, X_tr), y_tr, w0, ERF), auto, rtol=1e-12, atol=1e-14
    )


def test_first_order_gradients_match_autograd_at_fixed_head(problem):
    J, w0, X_tr, y_tr, X_val, y_val = problem
    grad_J, grad_w = field_grads_as_weight_grads(J, w0, X_tr, y_tr, X_val, y_val, 9.0, False)
    w_t = model.adapt_head(fields(J, X_tr), y_tr, w0, 9.0, 1, ERF).detach().requires_grad_(True)
    Jg = J.clone().requires_grad_(True)
    loss = model.half_mse(model.network_output(fields(Jg, X_val), w_t, ERF), y_val).sum()
    auto_J, auto_w = torch.autograd.grad(loss, (Jg, w_t))
    torch.testing.assert_close(grad_J, auto_J, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(grad_w, auto_w, rtol=1e-10, atol=1e-13)


def _finite_difference(f, x, direction, h=1e-6):
    return (f(x + h * direction) - f(x - h * direction)) / (2 * h)


@pytest.mark.parametrize("steps", [1, 2])
def test_anil_is_the_derivative_through_the_inner_step(problem, steps):
    J, w0, X_tr, y_tr, X_val, y_val = problem
    eta_w = 4.0
    anil_J, anil_w = field_grads_as_weight_grads(
        J, w0, X_tr, y_tr, X_val, y_val, eta_w, True, steps
    )
    fo_J, fo_w = field_grads_as_weight_grads(J, w0, X_tr, y_tr, X_val, y_val, eta_w, False, steps)
    gen = torch.Generator().manual_seed(11)
    dJ = torch.randn(J.shape, generator=gen, dtype=torch.float64)
    dw = torch.randn(w0.shape, generator=gen, dtype=torch.float64)
    fd_J = _finite_difference(
        lambda Jx: val_loss_after_adaptation(Jx, w0, X_tr, y_tr, X_val, y_val, eta_w, steps), J, dJ
    )
    fd_w = _finite_difference(
        lambda wx: val_loss_after_adaptation(J, wx, X_tr, y_tr, X_val, y_val, eta_w, steps), w0, dw
    )
    dot = lambda a, b: (a * b).flatten(1).sum(1)
    torch.testing.assert_close(dot(anil_J, dJ), fd_J, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(dot(anil_w, dw), fd_w, rtol=1e-6, atol=1e-9)
    # FO-ANIL misses the term through the inner step: it does NOT match the derivative ...
    assert (dot(fo_J, dJ) - fd_J).abs().max() > 1e-4
    # ... and the difference is exactly that term (derivative at fixed head minus full one)
    fd_J_fixed_head = _finite_difference(
        lambda Jx: model.half_mse(
            model.network_output(
                fields(Jx, X_val),
                model.adapt_head(fields(J, X_tr), y_tr, w0, eta_w, steps, ERF),
                ERF,
            ),
            y_val,
        ),
        J,
        dJ,
    )
    torch.testing.assert_close(dot(fo_J, dJ), fd_J_fixed_head, rtol=1e-6, atol=1e-9)


def test_all_algorithms_coincide_without_inner_learning(problem):
    J, w0, X_tr, y_tr, X_val, y_val = problem
    fo = field_grads_as_weight_grads(J, w0, X_tr, y_tr, X_val, y_val, 0.0, False)
    anil = field_grads_as_weight_grads(J, w0, X_tr, y_tr, X_val, y_val, 0.0, True)
    kw = dict(act=ERF, eta_w=0.0, eta_J_inner=0.0, inner_steps=1)
    maml = model.maml_gradients(J, w0, X_tr, y_tr, X_val, y_val, second_order=True, **kw)
    fomaml = model.maml_gradients(J, w0, X_tr, y_tr, X_val, y_val, second_order=False, **kw)
    for other in (anil, maml, fomaml):
        torch.testing.assert_close(other[0], fo[0], rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(other[1], fo[1], rtol=1e-10, atol=1e-13)
    # with inner learning they differ
    kw = dict(act=ERF, eta_w=4.0, eta_J_inner=3.0, inner_steps=1)
    maml = model.maml_gradients(J, w0, X_tr, y_tr, X_val, y_val, second_order=True, **kw)
    fomaml = model.maml_gradients(J, w0, X_tr, y_tr, X_val, y_val, second_order=False, **kw)
    assert (maml[0] - fomaml[0]).abs().max() > 1e-6


def test_maml_is_the_derivative_through_both_inner_updates(problem):
    J, w0, X_tr, y_tr, X_val, y_val = problem
    kw = dict(act=ERF, eta_w=3.0, eta_J_inner=2.0, inner_steps=1)
    grad_J, grad_w = model.maml_gradients(J, w0, X_tr, y_tr, X_val, y_val, second_order=True, **kw)

    def loss(Jx, wx):
        Jv = Jx.clone().requires_grad_(True)
        wv = wx.clone().requires_grad_(True)
        inner = model.half_mse(model.network_output(fields(Jv, X_tr), wv, ERF), y_tr).sum()
        gJ, gw = torch.autograd.grad(inner, (Jv, wv))
        Jt, wt = Jx - kw["eta_J_inner"] * gJ, wx - kw["eta_w"] * gw
        return model.half_mse(model.network_output(fields(Jt, X_val), wt, ERF), y_val)

    gen = torch.Generator().manual_seed(5)
    dJ = torch.randn(J.shape, generator=gen, dtype=torch.float64)
    dw = torch.randn(w0.shape, generator=gen, dtype=torch.float64)
    dot = lambda a, b: (a * b).flatten(1).sum(1)
    torch.testing.assert_close(
        dot(grad_J, dJ), _finite_difference(lambda x: loss(x, w0), J, dJ), rtol=1e-6, atol=1e-9
    )
    torch.testing.assert_close(
        dot(grad_w, dw), _finite_difference(lambda x: loss(J, x), w0, dw), rtol=1e-6, atol=1e-9
    )
