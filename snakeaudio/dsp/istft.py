"""STFT and inverse STFT with framing and overlap-add, which stream and chunk exactly; and fast
Griffin-Lim iterations built on them.

Each transform has a reference as a matrix product of plain real-valued ops (``reference``,
what ONNX export traces) and a fast path through ``torch.fft`` that ``forward`` takes for
float32/float64 in eager mode, unless the transform was built with ``backend="reference"``
(``None``, the default, reads ``$SNAKEAUDIO_BACKEND`` as :class:`~snakeaudio.nn.AntiAliasedActivation1d` does).

Frames are placed as :mod:`snakeaudio.dsp.mel` places them: frame ``f`` covers samples
``f·hop − (n_fft − hop)/2 … f·hop + (n_fft + hop)/2``, so ``F`` frames give ``F·hop`` samples
and a spectrum computed with the mel's framing inverts back to the signal it came from.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..nn._common import BufferDtypesKept, backend_setting
from ..nn.functional import exporting

__all__ = ["STFT", "InverseSTFT", "fast_griffin_lim", "inverse_dft_basis"]


def _use_fft(dtype: torch.dtype, backend: str) -> bool:
    return dtype in (torch.float32, torch.float64) and not exporting() and backend != "reference"


def inverse_dft_basis(n_fft: int, window: Tensor) -> tuple[Tensor, Tensor]:
    """Real and imaginary synthesis matrices of the windowed one-sided inverse DFT, in float64.

    ``frames = real_basis.T @ re + imag_basis.T @ im`` equals ``window · irfft(re + i·im)``.
    Shape: window (n_fft,) -> two (n_fft // 2 + 1, n_fft).
    """
    bins = n_fft // 2 + 1
    k = torch.arange(bins, dtype=torch.float64)[:, None]
    n = torch.arange(n_fft, dtype=torch.float64)[None]
    weight = torch.full((bins, 1), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if n_fft % 2 == 0:
        weight[-1] = 1.0  # the Nyquist bin appears once
    angle = 2 * math.pi * k * n / n_fft
    w = window.to(torch.float64)[None]
    return weight * torch.cos(angle) * w / n_fft, -weight * torch.sin(angle) * w / n_fft


class STFT(BufferDtypesKept):
    """One-sided STFT with a periodic Hann window and the mel's framing (reflect padding of
    (n_fft − hop_length) / 2 on each side, no centring): the analysis that :class:`InverseSTFT`
    inverts; its window and basis stay float32 under ``.half()`` and the like.
    ``backend="reference"`` keeps to the matrix product; ``None`` reads ``$SNAKEAUDIO_BACKEND``
    (see the module docstring).

    Shape: (B, 1, F · hop_length) -> real, imag (B, n_fft // 2 + 1, F).

    >>> STFT(16, 4)(torch.zeros(2, 1, 20))[0].shape
    torch.Size([2, 9, 5])
    """

    def __init__(self, n_fft: int, hop_length: int, backend: str | None = None) -> None:
        super().__init__()
        self.n_fft, self.hop_length, self.backend = n_fft, hop_length, backend_setting(backend)
        n = torch.arange(n_fft, dtype=torch.float64)
        angle = 2 * math.pi * torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None] * n / n_fft
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window  # (2K, n_fft)
        self.register_buffer("basis", basis.float(), persistent=False)
        self.register_buffer("window", window.float(), persistent=False)

    def _frames(self, wav: Tensor) -> Tensor:
        """Shape: (B, 1, T) -> (B, F, n_fft)."""
        pad = (self.n_fft - self.hop_length) // 2
        if not exporting() and wav.shape[-1] <= pad:  # a traced length is symbolic
            raise ValueError(f"the STFT's reflect padding needs more than {pad} samples, got {wav.shape[-1]}")
        x = wav[:, 0]
        x = torch.cat([x[:, 1 : pad + 1].flip(-1), x, x[:, -pad - 1 : -1].flip(-1)], dim=-1)  # reflect: (B, T + 2·pad)
        return x.unfold(-1, self.n_fft, self.hop_length)

    def forward(self, wav: Tensor) -> tuple[Tensor, Tensor]:
        if not _use_fft(wav.dtype, self.backend):
            return self.reference(wav)
        spectrum = torch.fft.rfft(self._frames(wav) * self.window.to(wav.dtype), dim=-1).transpose(1, 2)  # (B, K, F) complex
        return spectrum.real, spectrum.imag

    def reference(self, wav: Tensor) -> tuple[Tensor, Tensor]:
        frames = self._frames(wav)  # (B, F, n_fft)
        spectrum = torch.matmul(frames, self.basis.to(frames.dtype).t()).transpose(1, 2)  # (B, 2K, F)
        return spectrum.chunk(2, dim=1)

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop_length={self.hop_length}"


def fast_griffin_lim(
    magnitude: Tensor, real: Tensor, imag: Tensor, stft: STFT | None, istft: InverseSTFT, iterations: int, momentum: float = 0.99
) -> Tensor:
    """The waveform after ``iterations`` of fast Griffin-Lim (Perraudin, Balazs & Søndergaard,
    2013) from the spectrum ``real + i·imag``: each round keeps the STFT's phase of the
    current waveform and puts back ``magnitude``, with momentum. Differentiable (no angle of
    zero is ever taken), and each round reaches only a few frames further, so the result
    streams and chunks to float rounding, which each round amplifies a little.

    Shape: magnitude, real, imag (B, K, F) -> (B, 1, F · hop_length).
    """
    if iterations and stft is None:
        raise ValueError(f"{iterations} Griffin-Lim iterations need an STFT")
    previous_real, previous_imag = real, imag
    for _ in range(iterations):
        re, im = stft(istft(real, imag))  # the nearest consistent spectrum
        scale = magnitude / torch.sqrt(re.square() + im.square() + 1e-12)
        re, im = re * scale, im * scale  # with the target magnitude
        real, imag = re + momentum * (re - previous_real), im + momentum * (im - previous_imag)
        previous_real, previous_imag = re, im
    return istft(previous_real, previous_imag)


class InverseSTFT(BufferDtypesKept):
    """Windowed overlap-add inverse of a one-sided STFT with a periodic Hann window; its
    window and basis stay float32 under ``.half()`` and the like.

    Args:
        n_fft: frame length; a multiple of ``hop_length``, at least twice it (a Hann window
            needs overlap to cover every sample), with ``n_fft − hop_length`` even.
        hop_length: samples between frames.
        backend: ``"reference"`` keeps to the matrix product; ``None`` reads ``$SNAKEAUDIO_BACKEND``.

    Shape: real, imag (B, n_fft // 2 + 1, F) -> (B, 1, F · hop_length).

    >>> istft = InverseSTFT(16, 4)
    >>> istft(torch.zeros(2, 9, 5), torch.zeros(2, 9, 5)).shape
    torch.Size([2, 1, 20])
    """

    def __init__(self, n_fft: int, hop_length: int, backend: str | None = None) -> None:
        super().__init__()
        if hop_length < 1 or n_fft % hop_length or n_fft < 2 * hop_length or (n_fft - hop_length) % 2:
            raise ValueError(
                "n_fft must be a multiple of hop_length, at least twice it, with an even difference (Hann windows "
                f"overlap-add to a constant only then), got n_fft={n_fft}, hop_length={hop_length}"
            )
        self.n_fft, self.hop_length, self.backend = n_fft, hop_length, backend_setting(backend)
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        real, imag = inverse_dft_basis(n_fft, window)
        self.register_buffer("basis", torch.cat([real, imag]).float(), persistent=False)  # (2K, n_fft)
        self.register_buffer("window", window.float(), persistent=False)
        overlap = n_fft // hop_length
        self.register_buffer("window_power", window.pow(2).reshape(overlap, hop_length).float(), persistent=False)

    def _overlap_add(self, pieces: Tensor) -> Tensor:
        """Shape: (B, R, hop, F) with R = n_fft / hop -> (B, hop, F + R − 1), piece r shifted by r frames."""
        overlap, frames = pieces.shape[1], pieces.shape[-1]
        out = pieces[:, 0].new_zeros(pieces.shape[0], self.hop_length, frames + overlap - 1)
        for r in range(overlap):
            out = out + nn.functional.pad(pieces[:, r], (r, overlap - 1 - r))
        return out

    def _check(self, real: Tensor, imag: Tensor) -> None:
        if real.shape != imag.shape or real.dim() != 3 or real.shape[1] != self.n_fft // 2 + 1:
            raise ValueError(
                f"expected real and imaginary parts shaped (B, {self.n_fft // 2 + 1}, F), got {tuple(real.shape)} and {tuple(imag.shape)}"
            )

    def _crop(self, x: Tensor, frames: int) -> Tensor:
        start = (self.n_fft - self.hop_length) // 2
        return x[..., start : start + frames * self.hop_length]

    def forward(self, real: Tensor, imag: Tensor) -> Tensor:
        dtype = torch.promote_types(real.dtype, torch.float32)  # half-precision inputs are summed in float32
        if not _use_fft(dtype, self.backend):
            return self.reference(real, imag)
        self._check(real, imag)
        batch, frames, overlap = real.shape[0], real.shape[-1], self.n_fft // self.hop_length
        spectrum = torch.complex(real.to(dtype), imag.to(dtype)).transpose(1, 2)  # (B, F, K)
        # The one-sided inverse DFT ignores the imaginary parts of the DC and Nyquist bins, as the reference's basis does.
        pieces = (torch.fft.irfft(spectrum, n=self.n_fft, dim=-1) * self.window.to(dtype)).reshape(batch, frames, overlap, -1)
        out = pieces.new_zeros(batch, frames + overlap - 1, self.hop_length)
        envelope = pieces.new_zeros(frames + overlap - 1, self.hop_length)
        for r in range(overlap):  # frame f's piece r lands on output block f + r
            out[:, r : r + frames] += pieces[:, :, r]
            envelope[r : r + frames] += self.window_power[r].to(dtype)
        return self._crop((out / envelope.clamp(min=1e-8)).reshape(batch, 1, -1), frames)

    def reference(self, real: Tensor, imag: Tensor) -> Tensor:
        self._check(real, imag)
        batch, frames = real.shape[0], real.shape[-1]
        overlap = self.n_fft // self.hop_length
        dtype = torch.promote_types(real.dtype, torch.float32)  # half-precision inputs are summed in float32
        real, imag = real.to(dtype), imag.to(dtype)
        x = torch.matmul(self.basis.to(dtype).t(), torch.cat([real, imag], dim=1))  # (B, 2K, F) -> (B, n_fft, F): windowed frames
        x = self._overlap_add(x.reshape(batch, overlap, self.hop_length, frames))  # -> (B, hop, F + R − 1)
        ones = real.new_ones(1, 1, 1, frames)
        envelope = self._overlap_add(self.window_power.to(dtype)[None, :, :, None] * ones)  # (1, hop, F + R − 1)
        x = x / envelope.clamp(min=1e-8)
        return self._crop(x.transpose(1, 2).reshape(batch, 1, -1), frames)  # (B, hop, F + R − 1) -> (B, 1, (F + R − 1)·hop)

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop_length={self.hop_length}"
