"""Functional Snake: ``y = x + sin²(αx)/α`` (or ``/β``) with its own autograd.

The forward saves only ``x`` and the parameters; the backward recomputes the
trigonometry. Half-precision inputs are computed in float32. The fused CPU
kernel (:mod:`snakeaudio.kernels.cpu`) runs float32 CPU tensors; every other
case runs the same formulas in plain torch ops, which are the reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..kernels.cpu import cpu_library, snake_backward_cpu, snake_forward_cpu
from ._common import compute_dtype, eager_custom_op, prepared_parameters, snake_plain

__all__ = ["snake", "snake_reference", "exporting"]


def exporting() -> bool:
    """True while tracing for ONNX or ``torch.export``: fused ops give way to standard ones."""
    return torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting()


# Rows shorter than this (e.g. (B, C) inputs, one value per row) vectorise better in torch ops.
_MIN_ROW = 16


def _use_cpu_kernel(x: Tensor) -> bool:
    """x: (rows, C, n)."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and x.shape[-1] >= _MIN_ROW and cpu_library() is not None


# ---------------------------------------------------------------------------
# Custom ops on the canonical layout x: (rows, C, n), parameters (C,)
# ---------------------------------------------------------------------------


@eager_custom_op("snakeaudio::snake_forward")
def _snake_forward(x: Tensor, alpha: Tensor, inv_scale: Tensor) -> Tensor:
    if _use_cpu_kernel(x):
        return snake_forward_cpu(x.contiguous(), alpha.contiguous(), inv_scale.contiguous())
    a, inv = alpha.view(1, -1, 1), inv_scale.view(1, -1, 1)
    return torch.addcmul(x, torch.sin(x * a).square_(), inv)


@_snake_forward.register_fake
def _(x: Tensor, alpha: Tensor, inv_scale: Tensor) -> Tensor:
    return torch.empty_like(x)


@eager_custom_op("snakeaudio::snake_backward")
def _snake_backward(
    x: Tensor, grad: Tensor, alpha: Tensor, inv_scale: Tensor, has_beta: bool
) -> tuple[Tensor, Tensor, Tensor]:
    if _use_cpu_kernel(x):
        x, grad = x.contiguous(), grad.contiguous()
        return snake_backward_cpu(x, grad, alpha.contiguous(), inv_scale.contiguous(), has_beta)
    a, inv = alpha.view(1, -1, 1), inv_scale.view(1, -1, 1)
    u = x * a
    s, c = torch.sin(u), torch.cos(u)
    if has_beta:
        s2c = 2 * s * c * inv
        grad_x = grad + grad * a * s2c
        grad_alpha = (grad * x * s2c).sum((0, 2))
        grad_beta = -(grad * s.square() * inv.square()).sum((0, 2))
    else:
        q = s * inv  # sin(αx)/α, finite as α → 0
        grad_x = grad + grad * 2 * s * c
        grad_alpha = (grad * q * (2 * x * c - q)).sum((0, 2))
        grad_beta = torch.zeros_like(alpha)
    return grad_x, grad_alpha, grad_beta


@_snake_backward.register_fake
def _(x: Tensor, grad: Tensor, alpha: Tensor, inv_scale: Tensor, has_beta: bool) -> tuple[Tensor, Tensor, Tensor]:
    return torch.empty_like(x), alpha.new_empty(alpha.shape), alpha.new_empty(alpha.shape)


# ---------------------------------------------------------------------------
# Autograd
# ---------------------------------------------------------------------------


def _canonical(x: Tensor, per_channel: bool) -> tuple[int, ...]:
    """Shape (rows, C, n) under which x is processed."""
    if per_channel:
        return (x.shape[0], x.shape[1], x[0, 0].numel())
    return (1, 1, x.numel())


class _SnakeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, alpha: Tensor, beta: Tensor | None) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, alpha, beta)
        dtype = compute_dtype(x.dtype)
        shape = _canonical(x, alpha.dim() == 1)
        a, inv = prepared_parameters(alpha, beta, shape[1], dtype)
        y = _snake_forward(x.to(dtype).reshape(shape), a, inv)
        return y.reshape(x.shape).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:  # type: ignore[override]
        x, alpha, beta = ctx.saved_tensors
        dtype = compute_dtype(x.dtype)
        shape = _canonical(x, alpha.dim() == 1)
        a, inv = prepared_parameters(alpha, beta, shape[1], dtype)
        grad_x, grad_alpha, grad_beta = _snake_backward(
            x.to(dtype).reshape(shape), grad.to(dtype).reshape(shape), a, inv, beta is not None
        )
        grad_x = grad_x.reshape(x.shape).to(x.dtype)
        grad_alpha = grad_alpha.sum().reshape(alpha.shape) if alpha.dim() == 0 else grad_alpha
        if beta is not None:
            grad_beta = grad_beta.sum().reshape(beta.shape) if beta.dim() == 0 else grad_beta
            grad_beta = grad_beta.to(beta.dtype)
        return grad_x, grad_alpha.to(alpha.dtype), grad_beta if beta is not None else None


def _check(x: Tensor, alpha: Tensor, beta: Tensor | None) -> None:
    if not x.is_floating_point():
        raise ValueError(f"Snake expects a floating-point input, got dtype {x.dtype}")
    for name, p in (("alpha", alpha), ("beta", beta)):
        if p is None:
            continue
        if not p.is_floating_point():
            raise ValueError(f"Snake's {name} must be floating point, got dtype {p.dtype}")
        if p.dim() > 1:
            raise ValueError(f"Snake's {name} must be a scalar or shaped (C,), got shape {tuple(p.shape)}")
        if p.dim() == 1:
            if x.dim() < 2:
                raise ValueError(
                    f"a per-channel {name} needs an input shaped (B, C, ...), got shape {tuple(x.shape)}"
                )
            if p.shape[0] != x.shape[1]:
                raise ValueError(
                    f"Snake has {p.shape[0]} channels but the input has {x.shape[1]} on axis 1 "
                    f"(input shape {tuple(x.shape)})"
                )
    if beta is not None and beta.dim() != alpha.dim():
        raise ValueError(
            f"alpha and beta must both be scalars or both per-channel, got shapes {tuple(alpha.shape)} and {tuple(beta.shape)}"
        )


def snake(x: Tensor, alpha: Tensor, beta: Tensor | None = None) -> Tensor:
    """Snake activation ``y = x + sin²(αx)/α``, or SnakeBeta ``y = x + sin²(αx)/β``.

    Args:
        x: input of any shape; with per-channel parameters, shaped (B, C, ...).
        alpha: α, a scalar tensor or one value per channel (C,) on axis 1.
        beta: optional β, shaped like ``alpha``.

    Shape: (B, C, *) -> (B, C, *).

    As α → 0 the result tends to the identity and stays finite, gradients too.

    >>> x = torch.linspace(-2, 2, 5).view(1, 1, 5)
    >>> snake(x, torch.tensor([1.0]))
    tensor([[[-1.1732, -0.2919,  0.0000,  1.7081,  2.8268]]])
    """
    _check(x, alpha, beta)
    if exporting():
        return snake_plain(x, alpha, beta)
    return _SnakeFunction.apply(x, alpha, beta)


def snake_reference(x: Tensor, alpha: Tensor, beta: Tensor | None = None) -> Tensor:
    """The textbook formula in autograd-traced torch ops, for testing and export.

    Shape: (B, C, *) -> (B, C, *).
    """
    _check(x, alpha, beta)
    shape = (1, -1) + (1,) * (x.dim() - 2) if alpha.dim() == 1 else ()
    a = alpha.reshape(shape)
    scale = a if beta is None else beta.reshape(shape)
    return x + torch.sin(a * x).square() / scale
