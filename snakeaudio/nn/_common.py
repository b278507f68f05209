"""What :mod:`snakeaudio.nn.functional` and :mod:`snakeaudio.nn.antialias` share about Snake (not public API).

Both compute half-precision inputs in float32 (:func:`compute_dtype`), hand the fused kernels
α and 1/β (or 1/α) prepared alike (:func:`prepared_parameters`), and fall back on the same
plain-torch formula (:func:`snake_plain`) when exporting or on the reference path; their
fused kernels are custom ops that eager code calls directly (:class:`EagerCustomOp`). The
backend setting (:func:`backend_setting`) is read alike by the anti-aliased activation and the
STFTs of :mod:`snakeaudio.dsp.istft`, which also keep their tables' dtype as the activation
keeps its filters' (:func:`keep_buffer_dtypes`). Imports torch alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "BACKENDS", "TINY_ALPHA", "TINY_BETA", "EagerCustomOp", "backend_setting", "compute_dtype", "eager_custom_op",
    "BufferDtypesKept", "keep_buffer_dtypes", "prepared_parameters", "snake_plain",
]  # fmt: skip

BACKENDS = ("auto", "reference", "cpu", "triton")
"""Values of ``backend=`` and ``$SNAKEAUDIO_BACKEND``: ``"auto"`` (the fused path for the
input's device where there is one), ``"reference"`` (plain torch always), ``"cpu"`` or
``"triton"`` (that fused path, or an error saying why it cannot run an input)."""

TINY_ALPHA = 1e-20
"""|α| below this is replaced by ±TINY_ALPHA: sin²(αx)/α ≈ αx² is then far below float32
resolution of x, so the result is the identity limit, finite with its gradients."""

TINY_BETA = 1e-9
"""SnakeBeta divides by β; keep it at least this far from zero (BigVGAN adds 1e-9)."""


def backend_setting(backend: str | None) -> str:
    """``backend``, else ``$SNAKEAUDIO_BACKEND``, else ``"auto"``; checked against :data:`BACKENDS`."""
    source = "backend"
    if backend is None:
        backend, source = os.environ.get("SNAKEAUDIO_BACKEND") or "auto", "SNAKEAUDIO_BACKEND"
    if backend not in BACKENDS:
        raise ValueError(f"unknown {source} {backend!r}; expected one of {', '.join(BACKENDS)}")
    return backend


def keep_buffer_dtypes(apply: Callable[[], Any], owners: Iterable[nn.Module]) -> None:
    """Run ``apply()`` (a module's ``nn.Module._apply``) and give every buffer of ``owners``
    back the dtype it had, on the device it moved to: signal-processing tables (filters,
    windows, transform bases) stay float32 through ``.half()`` or ``.to(torch.bfloat16)``,
    and their users cast them to the compute dtype where they use them."""
    tables = [(module, name, t) for module in owners for name, t in module._buffers.items() if t is not None]
    apply()
    for module, name, before in tables:
        after = module._buffers[name]
        if after is not None and after.dtype != before.dtype:
            module._buffers[name] = before.to(after.device)


class BufferDtypesKept(nn.Module):
    """A module whose own buffers keep their dtype through dtype conversions, following device
    moves only (:func:`keep_buffer_dtypes` on itself)."""

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        keep_buffer_dtypes(partial(super()._apply, fn, recurse), [self])
        return self


def _away_from_zero(p: Tensor, tiny: float) -> Tensor:
    return torch.where(p.abs() < tiny, torch.full_like(p, tiny), p)


def _replaced_near_zero(p: Tensor, tiny: float) -> Tensor:
    """The value of ``_away_from_zero(p)``, with the gradient of p at that value."""
    return p + (_away_from_zero(p, tiny) - p).detach()


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype Snake computes an input of ``dtype`` in: float32 for float16/bfloat16, else ``dtype``.

    >>> compute_dtype(torch.bfloat16), compute_dtype(torch.float64)
    (torch.float32, torch.float64)
    """
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def prepared_parameters(alpha: Tensor, beta: Tensor | None, channels: int, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """α and 1/β (1/α without β) as the kernels take them: contiguous ``(channels,)`` in ``dtype``,
    each kept at least :data:`TINY_ALPHA` / :data:`TINY_BETA` away from zero.

    Shape: scalar or (C,) parameters -> two (channels,) tensors.
    """
    a = _away_from_zero(alpha.to(dtype), TINY_ALPHA).reshape(-1).expand(channels).contiguous()
    scale = a if beta is None else _away_from_zero(beta.to(dtype), TINY_BETA).reshape(-1).expand(channels)
    return a, scale.reciprocal().contiguous()


def snake_plain(x: Tensor, alpha: Tensor, beta: Tensor | None = None) -> Tensor:
    """:func:`~snakeaudio.nn.functional.snake` in plain torch ops (autograd-traced, exportable),
    with its values and gradients.

    The same compute dtype (float32 for half-precision inputs). A parameter closer to zero than
    ``TINY_*`` is replaced by that value, as the kernels do, and its gradient is taken there;
    Snake's α uses the limit ``sin²(αx)/α → αx²`` instead, whose gradient x² needs no division.

    Shape: (B, C, *) -> (B, C, *).
    """
    dtype = compute_dtype(x.dtype)
    u = x.to(dtype)
    shape = (1, -1) + (1,) * (x.dim() - 2) if alpha.dim() == 1 else ()
    a = alpha.to(dtype).reshape(shape)
    if beta is None:
        small = a.abs() < TINY_ALPHA
        safe = _away_from_zero(a, TINY_ALPHA)
        y = u + torch.where(small, a * u.square(), torch.sin(safe * u).square() / safe)
    else:
        b = beta.to(dtype).reshape(shape)
        y = u + torch.sin(_replaced_near_zero(a, TINY_ALPHA) * u).square() / _replaced_near_zero(b, TINY_BETA)
    return y.to(x.dtype)


class EagerCustomOp:
    """A ``torch.library`` custom op that eager code calls as its plain Python function.

    Calling the op itself imports ``torch._dynamo`` on first use (more than a second of
    start-up for a one-off synthesis); torch.compile and export trace the op and must see
    it, so it is called whenever a graph is being captured. Both run the same function.
    """

    def __init__(self, name: str, function: Callable[..., Any]) -> None:
        self.function = function
        self.op = torch.library.custom_op(name, function, mutates_args=())

    def register_fake(self, fake: Callable[..., Any]) -> Callable[..., Any]:
        return self.op.register_fake(fake)

    def __call__(self, *args: Any) -> Any:
        return (self.op if torch.compiler.is_compiling() else self.function)(*args)


def eager_custom_op(name: str) -> Callable[[Callable[..., Any]], EagerCustomOp]:
    """Decorator: ``@eager_custom_op("snakeaudio::name")`` makes an :class:`EagerCustomOp`."""
    return lambda function: EagerCustomOp(name, function)

