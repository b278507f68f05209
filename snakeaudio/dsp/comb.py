"""Hop-comb score: how far a signal's long-term spectrum peaks on the multiples of its frame rate.

A vocoder that is shift-equivariant only by whole mel frames can leak a component that
repeats every ``hop_length`` samples. A waveform periodic in ``hop`` samples has all its power
on the lines ``k · sr / hop``, so the leak shows as a comb of spectral lines (a buzz at the
frame rate and its harmonics), strongest where the recording itself is quiet, e.g. above 1 kHz
in speech. :func:`hop_comb_db` compares the long-term spectrum on those lines with the spectrum
half-way between them; a recording scores about 0 dB, a leak scores above it.

The spectrum is Welch-averaged: Hann windows of ``n_fft = 2^⌈log2(sr / resolution_hz)⌉``
samples (8192 at 16 to 24 kHz, 16384 at 44.1 kHz: 1.95 to 2.93 Hz per bin), 50 % overlap,
power averaged over all whole windows. The resolution trades sensitivity (a line's power sits
in one bin while the noise floor shrinks with the bin width) against the number of windows
averaged (16 in 3 s at 24 kHz, which puts the score's spread on white noise near ±0.2 dB).
On white noise a comb 20 dB below the noise in total power scores only about +0.5 dB at this
resolution, one 10 dB below it about +4 dB; in speech, whose spectrum above 1 kHz lies far
below its total power, a comb 20 dB below the speech scores about +10 dB.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from .._internal import as_mono

__all__ = ["HOP_COMB_BAND", "hop_comb_db", "hop_comb_window"]

HOP_COMB_BAND = (1000.0, 12000.0)
"""The default band (Hz) of the comb lines scored; the top is also capped at 0.95 · Nyquist."""


def hop_comb_window(sample_rate: int, resolution_hz: float = 3.0) -> int:
    """The Welch window of :func:`hop_comb_db`: the power of two giving at most ``resolution_hz`` per bin.

    >>> hop_comb_window(24000), hop_comb_window(44100)
    (8192, 16384)
    """
    if sample_rate < 1:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
    if not resolution_hz > 0:
        raise ValueError(f"resolution_hz must be a positive frequency step in Hz, got {resolution_hz}")
    return 2 ** math.ceil(math.log2(sample_rate / resolution_hz))


def hop_comb_db(
    wav: Tensor | np.ndarray,
    sample_rate: int,
    hop_length: int,
    *,
    band: tuple[float, float] = HOP_COMB_BAND,
    resolution_hz: float = 3.0,
) -> float:
    """Mean height in dB of the spectral lines at ``k · sample_rate / hop_length`` above the
    spectrum half-way between them.

    With ``P`` the Welch power spectrum (see the module docstring) in dB and ``P̂(f)`` the
    largest of ``P`` on the bin nearest ``f`` and its two neighbours (which tolerates a line
    that falls between bins), the score is the mean over every ``k`` whose line
    ``f_k = k · sr / hop`` lies in ``band`` (and below 0.95 · Nyquist) of

        P̂(f_k) − (P̂(f_k − sr / 2hop) + P̂(f_k + sr / 2hop)) / 2.

    Noise and recordings score about 0 dB; a component periodic in ``hop_length`` samples
    raises the score. The score of an estimate *minus* that of its reference is the comb a
    vocoder adds (:func:`snakeaudio.inference.scores.copy_synthesis_scores`).

    The signal must span one Welch window (:func:`hop_comb_window`: 0.34 s at 24 kHz, 0.51 s
    at 16 kHz), and the lines must be at least 6 bins apart (``hop_length ≤ n_fft / 6``).

    >>> noise = torch.randn(3 * 24000, generator=torch.Generator().manual_seed(0))
    >>> comb = torch.zeros(3 * 24000)
    >>> comb[::256] = 5.0  # a click every hop, 10 dB below the noise in total power
    >>> abs(hop_comb_db(noise, 24000, 256)) < 0.5, hop_comb_db(noise + comb, 24000, 256) > 3
    (True, True)

    Shape: a mono waveform (T,), (1, T) or (1, 1, T) -> float (dB).
    """
    n_fft = hop_comb_window(sample_rate, resolution_hz)
    if hop_length < 1:
        raise ValueError(f"hop_length must be a positive number of samples, got {hop_length}")
    low, high = band
    if not 0 <= low < high:
        raise ValueError(f"band must be (low, high) in Hz with 0 ≤ low < high, got {band}")
    if 6 * hop_length > n_fft:
        raise ValueError(
            f"the lines k·sr/hop = k·{sample_rate / hop_length:.2f} Hz are too close for {resolution_hz:g} Hz "
            f"resolution: expected hop_length ≤ n_fft / 6 = {n_fft // 6}, got {hop_length}"
        )
    x = as_mono(wav, "wav").double()  # (T,)
    if x.numel() < n_fft:
        raise ValueError(
            f"the hop comb needs at least one {n_fft}-sample Welch window ({n_fft / sample_rate:.2f} s at "
            f"{sample_rate} Hz), got {x.numel()} samples"
        )
    frames = x.unfold(0, n_fft, n_fft // 2)  # (S, n_fft): 50 % overlap, whole windows only
    frames = (frames - frames.mean(dim=-1, keepdim=True)) * torch.hann_window(n_fft, dtype=torch.float64)
    power = torch.fft.rfft(frames).abs().square().mean(dim=0)  # (n_fft/2+1,)
    log_power = 10 * torch.log10(power.clamp_min(1e-20))

    line_step = sample_rate / hop_length  # Hz between lines
    bin_hz = sample_rate / n_fft
    top = min(high, 0.95 * sample_rate / 2)
    k = np.arange(max(1, math.ceil(low / line_step)), math.floor(top / line_step) + 1)
    k = k[(k + 0.5) * line_step / bin_hz + 1 < n_fft // 2]  # the upper half-way bins must exist too
    if k.size == 0:
        raise ValueError(
            f"no multiple of sr/hop = {line_step:.2f} Hz lies in the band [{low:g}, {min(high, top):g}] Hz; "
            f"expected a band wider than the line spacing"
        )

    def peak(frequencies: np.ndarray) -> Tensor:
        """P̂: the largest of the nearest bin and its two neighbours, in dB."""
        nearest = torch.from_numpy(np.rint(frequencies / bin_hz).astype(np.int64))  # (K,)
        return log_power[nearest[:, None] + torch.arange(-1, 2)].amax(dim=-1)  # (K, 3) -> (K,)

    line = peak(k * line_step)
    between = (peak((k - 0.5) * line_step) + peak((k + 0.5) * line_step)) / 2
    return float((line - between).mean())
