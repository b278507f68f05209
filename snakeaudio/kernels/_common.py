"""What every kernel wrapper checks before handing pointers to compiled code.

The kernels read raw memory: a float16 table read as ``float*``, a strided view read
as contiguous rows, or a (C,) parameter shorter than C would give wrong numbers or read
past the end of a buffer. The wrappers therefore check what they are handed and raise
``TypeError`` (dtype) or ``ValueError`` (shape, layout, device) naming what they got.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import Tensor

F = TypeVar("F", bound=Callable[..., object])


def compile_constant(fn: F) -> F:
    """Mark ``fn`` (no arguments) as returning a constant for ``torch.compile``.

    This is what :func:`torch.compiler.assume_constant_result` does, without importing
    ``torch._dynamo`` (seconds) when this package is imported; ``tests/test_fast_paths.py``
    checks that the two mark a function alike.
    """
    fn._dynamo_marked_constant = True  # type: ignore[attr-defined]
    return fn


def _names(dtypes: Sequence[torch.dtype]) -> str:
    return " or ".join(str(d).removeprefix("torch.") for d in dtypes)


def check_tensor(
    name: str,
    t: object,
    dtypes: Sequence[torch.dtype],
    device: torch.device,
    shape: tuple[int | None, ...],
) -> None:
    """``t`` is a contiguous tensor on ``device`` with one of ``dtypes`` and ``shape`` (``None``: any size)."""
    if not isinstance(t, Tensor):
        raise TypeError(f"expected {name} to be a tensor, got {type(t).__name__}")
    if t.dtype not in dtypes:
        raise TypeError(f"expected {name} of dtype {_names(dtypes)}, got {t.dtype}")
    if t.dim() != len(shape) or any(want is not None and got != want for got, want in zip(t.shape, shape)):
        wanted = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise ValueError(f"expected {name} shaped {wanted}, got shape {tuple(t.shape)}")
    if t.device != device:
        raise ValueError(f"expected {name} on {device} (the input's device), got {t.device}")
    if not t.is_contiguous():
        raise ValueError(f"expected {name} contiguous, got strides {t.stride()} for shape {tuple(t.shape)}")


def check_aa_arguments(
    x: Tensor,
    alpha: Tensor,
    inv_scale: Tensor,
    up_weight: Tensor,
    up_base: Tensor,
    down_taps: Tensor,
    down_pad: int,
    x_dtypes: Sequence[torch.dtype],
    grad: Tensor | None = None,
) -> None:
    """The arguments of the fused anti-aliased Snake kernels (CPU and Triton).

    x (B, C, T) with T >= 1 in one of ``x_dtypes``; alpha, inv_scale (C,) float32;
    up_weight (r, S) float32; up_base (r,) int64; down_taps (Kd,) float32 with
    0 <= down_pad < Kd; grad (backward) like x. All contiguous, on x's device.
    """
    check_tensor("x", x, x_dtypes, x.device, (None, None, None))
    batch, channels, length = x.shape
    if length < 1:
        raise ValueError(f"expected x shaped (B, C, T) with T >= 1, got shape {tuple(x.shape)}")
    if grad is not None:
        check_tensor("grad", grad, (x.dtype,), x.device, tuple(x.shape))
    f32 = (torch.float32,)
    check_tensor("alpha", alpha, f32, x.device, (channels,))
    check_tensor("inv_scale", inv_scale, f32, x.device, (channels,))
    check_tensor("up_weight", up_weight, f32, x.device, (None, None))
    ratio, width = up_weight.shape
    if ratio < 1 or width < 1:
        raise ValueError(f"expected up_weight shaped (r, S) with r, S >= 1, got shape {tuple(up_weight.shape)}")
    check_tensor("up_base", up_base, (torch.int64,), x.device, (ratio,))
    check_tensor("down_taps", down_taps, f32, x.device, (None,))
    if not isinstance(down_pad, int) or not 0 <= down_pad < down_taps.numel():
        raise ValueError(f"expected 0 <= down_pad < {down_taps.numel()} (the low-pass length), got {down_pad!r}")
