"""Measure aliasing of a nonlinearity with a stepped sine sweep, and filter stop-band attenuation.

A memoryless nonlinearity turns a tone at ``f`` into harmonics ``k·f``. Harmonics above
Nyquist cannot be represented and fold back to mirrored frequencies ``|k·f − round(k·f)|``,
which are inharmonic: that is aliasing. Each tone of the sweep sits exactly on an FFT bin
of an odd index ``m`` over ``N = 2^j`` samples, so that no folded harmonic lands on a true
harmonic and a rectangular window is exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["AliasingReport", "measure_aliasing", "stopband_attenuation_db", "frequency_response"]


@dataclass(frozen=True)
class AliasingReport:
    """Result of :func:`measure_aliasing`.

    Attributes:
        frequencies: the test tones in cycles/sample, shaped (n_tones,).
        aliased_db: energy on mirrored (folded) harmonic frequencies relative to the
            output's total energy, in dB, per tone.
        harmonic_db: energy on true harmonics below Nyquist (fundamental excluded),
            relative to the total, in dB, per tone: how much the block distorts at all.
    """

    frequencies: Tensor
    aliased_db: Tensor
    harmonic_db: Tensor

    @property
    def mean_aliased_db(self) -> float:
        """Aliased energy averaged (in power) over the sweep, in dB."""
        return float(10 * torch.log10((10 ** (self.aliased_db / 10)).mean()))


def _to_db(ratio: Tensor) -> Tensor:
    return 10 * torch.log10(ratio.clamp_min(1e-30))


def measure_aliasing(
    block: Callable[[Tensor], Tensor],
    channels: int = 1,
    n_fft: int = 4096,
    low: float = 0.05,
    high: float = 0.45,
    n_tones: int = 16,
    amplitude: float = 1.0,
    max_harmonic: int = 64,
) -> AliasingReport:
    """Pass tones from ``low`` to ``high`` cycles/sample through ``block`` and measure folded energy.

    Args:
        block: maps (n_tones, channels, T) to the same shape at the same rate.
        channels: channel count the block expects (every channel gets the same tone).
        n_fft: analysis length N (a power of two); the signal is longer by a margin on
            each side, which is discarded so that edge padding does not leak into the measurement.
        low, high: range of the tones in cycles/sample (0 < low < high < 0.5).
        amplitude: peak amplitude of the tones.
        max_harmonic: highest harmonic order whose folded image is counted as aliasing.

    >>> report = measure_aliasing(torch.tanh, n_tones=4)
    >>> bool((report.aliased_db < 0).all())
    True
    """
    if n_fft < 64 or n_fft & (n_fft - 1):
        raise ValueError(f"n_fft must be a power of two >= 64, got {n_fft}")
    if not 0 < low < high < 0.5:
        raise ValueError(f"expected 0 < low < high < 0.5 cycles/sample, got low={low}, high={high}")
    bins = torch.linspace(low * n_fft, high * n_fft, n_tones).round().long()
    bins = bins + (bins % 2 == 0).long()  # odd bins: folded harmonics never hit true ones
    margin = n_fft // 4
    n = torch.arange(-margin, n_fft + margin, dtype=torch.float64)
    tones = amplitude * torch.sin(2 * torch.pi * bins[:, None].double() * n / n_fft)
    x = tones[:, None, :].expand(-1, channels, -1).float().contiguous()
    with torch.no_grad():
        y = block(x)
    if y.shape != x.shape:
        raise ValueError(f"the block must keep the shape {tuple(x.shape)}, got {tuple(y.shape)}")
    power = torch.fft.rfft(y[:, :, margin : margin + n_fft].double(), dim=-1).abs().square().sum(1)
    power[:, 0] = 0  # the DC offset Snake adds is neither harmonic distortion nor aliasing
    total = power.sum(-1)
    aliased, harmonic = torch.zeros(n_tones, dtype=torch.float64), torch.zeros(n_tones, dtype=torch.float64)
    for i, m in enumerate(bins.tolist()):
        orders = torch.arange(2, max_harmonic + 1)
        images = (orders * m) % n_fft
        images = torch.minimum(images, n_fft - images)  # fold into [0, N/2]
        folded = orders * m > n_fft // 2
        aliased[i] = power[i, images[folded].unique()].sum()
        harmonic[i] = power[i, (orders * m)[~folded]].sum()
    return AliasingReport(bins.double() / n_fft, _to_db(aliased / total), _to_db(harmonic / total))


def frequency_response(taps: Tensor, n_points: int = 8192) -> tuple[Tensor, Tensor]:
    """Magnitude response of an FIR filter.

    Returns: frequencies in cycles/sample (n_points // 2 + 1,) and gains in dB.
    """
    spectrum = torch.fft.rfft(taps.double().reshape(-1), n=n_points).abs()
    freqs = torch.fft.rfftfreq(n_points, dtype=torch.float64)
    return freqs, 20 * torch.log10(spectrum.clamp_min(1e-30))


def stopband_attenuation_db(taps: Tensor, stopband_start: float) -> float:
    """Minimum attenuation (positive dB) of an FIR filter from ``stopband_start`` to Nyquist.

    >>> from snakeaudio.dsp import kaiser_sinc_filter
    >>> stopband_attenuation_db(kaiser_sinc_filter(0.25, 0.3, 12), 0.4) > 20
    True
    """
    if not 0 < stopband_start < 0.5:
        raise ValueError(f"stopband_start must be in (0, 0.5) cycles/sample, got {stopband_start}")
    freqs, gain = frequency_response(taps)
    return float(-gain[freqs >= stopband_start].max())
