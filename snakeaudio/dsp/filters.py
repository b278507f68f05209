"""Kaiser-windowed sinc filters and the ×r resamplers of BigVGAN's anti-aliased activation.

Filters are designed in float64 by pure functions and cached by the modules as
non-persistent float32 buffers, so ``.to()`` moves them and state dicts stay clean.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "kaiser_beta",
    "kaiser_sinc_filter",
    "LowPassFilter1d",
    "UpSample1d",
    "DownSample1d",
    "default_kernel_size",
]


def default_kernel_size(ratio: int) -> int:
    """BigVGAN's default filter length for a ratio: 12 taps for ×2, 6 per unit of ratio."""
    return int(6 * ratio // 2) * 2


def kaiser_beta(half_width: float, kernel_size: int) -> float:
    """Kaiser window β for a transition band of ``half_width`` (cycles/sample) and ``kernel_size`` taps.

    Uses Kaiser's empirical formulas for the attenuation ``A`` (dB) such a filter can reach.
    """
    half_size = kernel_size // 2
    attenuation = 2.285 * (half_size - 1) * math.pi * (4 * half_width) + 7.95
    if attenuation > 50.0:
        return 0.1102 * (attenuation - 8.7)
    if attenuation >= 21.0:
        return 0.5842 * (attenuation - 21) ** 0.4 + 0.07886 * (attenuation - 21.0)
    return 0.0


def kaiser_sinc_filter(cutoff: float, half_width: float, kernel_size: int) -> Tensor:
    """Low-pass FIR: a sinc at ``cutoff`` (cycles/sample, ≤ 0.5) under a Kaiser window.

    Even sizes are centred between two samples, odd sizes on one. The taps sum to 1
    (unit gain at DC); ``cutoff == 0`` blocks everything and gives all zeros.

    Returns: float64 tensor shaped (kernel_size,).

    >>> h = kaiser_sinc_filter(0.25, 0.3, 12)
    >>> h.shape, round(h.sum().item(), 12), bool(torch.allclose(h, h.flip(0)))
    (torch.Size([12]), 1.0, True)
    """
    if not 0.0 <= cutoff <= 0.5:
        raise ValueError(f"cutoff must be in [0, 0.5] cycles/sample (0.5 is Nyquist), got {cutoff}")
    if half_width <= 0:
        raise ValueError(f"half_width must be > 0, got {half_width}")
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    half_size = kernel_size // 2
    if kernel_size % 2 == 0:
        time = torch.arange(-half_size, half_size, dtype=torch.float64) + 0.5
    else:
        time = torch.arange(kernel_size, dtype=torch.float64) - half_size
    if cutoff == 0:
        return torch.zeros(kernel_size, dtype=torch.float64)
    window = torch.kaiser_window(
        kernel_size, periodic=False, beta=kaiser_beta(half_width, kernel_size), dtype=torch.float64
    )
    taps = 2 * cutoff * window * torch.sinc(2 * cutoff * time)
    return taps / taps.sum()


def _check_ratio_kernel(ratio: int, kernel_size: int, what: str) -> None:
    if not isinstance(ratio, int) or ratio < 1:
        raise ValueError(f"{what} ratio must be an integer >= 1, got {ratio!r}")
    if kernel_size < ratio:
        raise ValueError(f"{what} kernel_size must be >= the ratio ({ratio}), got {kernel_size}")


def _check_signal(x: Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"expected a signal shaped (B, C, T), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point signal, got dtype {x.dtype}")


class LowPassFilter1d(nn.Module):
    """Depthwise Kaiser-sinc low-pass with optional stride and edge padding.

    Shape: (B, C, T) -> (B, C, ⌊(T - 1)/stride⌋ + 1) with padding.
    """

    filter: Tensor

    def __init__(
        self,
        cutoff: float = 0.5,
        half_width: float = 0.6,
        stride: int = 1,
        padding: bool = True,
        padding_mode: str = "replicate",
        kernel_size: int = 12,
    ) -> None:
        super().__init__()
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.padding_mode = padding_mode
        self.pad_left = kernel_size // 2 - int(kernel_size % 2 == 0)
        self.pad_right = kernel_size // 2
        taps = kaiser_sinc_filter(cutoff, half_width, kernel_size)
        self.register_buffer("filter", taps.float().view(1, 1, -1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        _check_signal(x)
        channels = x.shape[1]
        if self.padding:
            x = F.pad(x, (self.pad_left, self.pad_right), mode=self.padding_mode)
        weight = self.filter.to(x.dtype).expand(channels, -1, -1)
        return F.conv1d(x, weight, stride=self.stride, groups=channels)


class UpSample1d(nn.Module):
    """×ratio upsampling: replicate-pad, zero-stuff, Kaiser-sinc interpolate (BigVGAN's ``UpSample1d``).

    Shape: (B, C, T) -> (B, C, ratio·T).
    """

    filter: Tensor

    def __init__(self, ratio: int = 2, kernel_size: int | None = None) -> None:
        super().__init__()
        kernel_size = default_kernel_size(ratio) if kernel_size is None else kernel_size
        _check_ratio_kernel(ratio, kernel_size, "upsampling")
        self.ratio = ratio
        self.kernel_size = kernel_size
        self.pad = kernel_size // ratio - 1
        self.pad_left = self.pad * ratio + (kernel_size - ratio) // 2
        self.pad_right = self.pad * ratio + (kernel_size - ratio + 1) // 2
        taps = kaiser_sinc_filter(0.5 / ratio, 0.6 / ratio, kernel_size)
        self.register_buffer("filter", taps.float().view(1, 1, -1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        _check_signal(x)
        channels = x.shape[1]
        x = F.pad(x, (self.pad, self.pad), mode="replicate")
        weight = self.filter.to(x.dtype).expand(channels, -1, -1)
        x = self.ratio * F.conv_transpose1d(x, weight, stride=self.ratio, groups=channels)
        return x[..., self.pad_left : x.shape[-1] - self.pad_right]


class DownSample1d(nn.Module):
    """Kaiser-sinc low-pass at ``0.5/ratio`` then keep every ``ratio``-th sample.

    Shape: (B, C, T) -> (B, C, ⌊(T - 1)/ratio⌋ + 1).
    """

    def __init__(self, ratio: int = 2, kernel_size: int | None = None) -> None:
        super().__init__()
        kernel_size = default_kernel_size(ratio) if kernel_size is None else kernel_size
        _check_ratio_kernel(ratio, kernel_size, "downsampling")
        self.ratio = ratio
        self.kernel_size = kernel_size
        self.lowpass = LowPassFilter1d(0.5 / ratio, 0.6 / ratio, stride=ratio, kernel_size=kernel_size)

    def forward(self, x: Tensor) -> Tensor:
        return self.lowpass(x)
