"""Log-mel features, equal to BigVGAN's ``mel_spectrogram``.

Slaney-normalised mel basis (librosa's, computed here without importing librosa), reflect padding of ``(n_fft − hop)/2`` on both
sides, an uncentred Hann-window STFT, magnitude ``sqrt(re² + im² + 1e-9)``, then
``log(clamp(·, 1e-5))``. A waveform of T samples gives :func:`num_frames` frames,
``T // hop`` for the usual even ``n_fft − hop``.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["MelConfig", "MelSpectrogram", "mel_spectrogram", "mel_basis", "num_frames"]


@dataclass(frozen=True)
class MelConfig:
    """Parameters of the log-mel features (BigVGAN's names in brackets).

    sample_rate [sampling_rate], n_fft, num_mels, hop_length [hop_size],
    win_length [win_size], fmin, fmax (None: sample_rate / 2).
    """

    sample_rate: int = 24000
    n_fft: int = 1024
    num_mels: int = 100
    hop_length: int = 256
    win_length: int = 1024
    fmin: float = 0.0
    fmax: float | None = None

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "num_mels", "hop_length", "win_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length must be <= n_fft, got {self.win_length} > {self.n_fft}")
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length must be <= n_fft, got {self.hop_length} > {self.n_fft}")
        top = self.sample_rate / 2 if self.fmax is None else self.fmax
        if not 0 <= self.fmin < top <= self.sample_rate / 2:
            raise ValueError(
                f"expected 0 <= fmin < fmax <= sample_rate / 2 = {self.sample_rate / 2}, got fmin={self.fmin}, fmax={self.fmax}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


_SLANEY_HZ_PER_MEL = 200.0 / 3  # linear below 1 kHz ...
_SLANEY_LOG_STEP = np.log(6.4) / 27.0  # ... logarithmic above, 27 mels per factor 6.4


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (Auditory Toolbox), as librosa's ``hz_to_mel(htk=False)``."""
    knee = 1000.0 / _SLANEY_HZ_PER_MEL
    log = knee + np.log(np.maximum(hz, 1e-10) / 1000.0) / _SLANEY_LOG_STEP
    return np.where(hz >= 1000.0, log, hz / _SLANEY_HZ_PER_MEL)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    knee = 1000.0 / _SLANEY_HZ_PER_MEL
    return np.where(mel >= knee, 1000.0 * np.exp(_SLANEY_LOG_STEP * (mel - knee)), mel * _SLANEY_HZ_PER_MEL)


def mel_basis(config: MelConfig) -> Tensor:
    """Slaney mel filterbank shaped (num_mels, n_fft // 2 + 1), float32: triangles between
    num_mels + 2 edges equally spaced in mels, each scaled to unit area (2 / its width in Hz).
    Equals ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)`` (tested), which takes a second
    to import."""
    top = config.sample_rate / 2 if config.fmax is None else config.fmax
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.float64(config.fmin)), _hz_to_mel(np.float64(top)), config.num_mels + 2))
    bins = np.fft.rfftfreq(config.n_fft, 1.0 / config.sample_rate)  # (K,)
    widths = np.diff(edges)  # (num_mels + 1,)
    offsets = edges[:, None] - bins[None]  # (num_mels + 2, K)
    rising, falling = -offsets[:-2] / widths[:-1, None], offsets[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)  # (num_mels, K)
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return torch.from_numpy(weights)


def num_frames(num_samples: int, config: MelConfig) -> int:
    """Number of mel frames for ``num_samples`` samples (``num_samples // hop`` when n_fft − hop is even)."""
    padding = (config.n_fft - config.hop_length) // 2
    return (num_samples + 2 * padding - config.n_fft) // config.hop_length + 1


def _check_waveform(wav: Tensor, config: MelConfig, values: bool = True) -> Tensor:
    """Validate and flatten to (B, T); ``values=False`` skips the checks that read the samples
    (finite, peak), which make the host wait for a GPU."""
    if not wav.is_floating_point():
        raise ValueError(f"expected a floating-point waveform, got dtype {wav.dtype}")
    if wav.dim() == 3:
        if wav.shape[1] != 1:
            raise ValueError(f"expected a mono waveform shaped (B, 1, T), got shape {tuple(wav.shape)}")
        wav = wav[:, 0]
    elif wav.dim() == 1:
        wav = wav[None]
    elif wav.dim() != 2:
        raise ValueError(f"expected a waveform shaped (T,), (B, T) or (B, 1, T), got shape {tuple(wav.shape)}")
    padding = (config.n_fft - config.hop_length) // 2
    if wav.shape[-1] <= padding:
        raise ValueError(
            f"the waveform has {wav.shape[-1]} samples; reflect padding needs more than {padding} "
            f"(n_fft={config.n_fft}, hop={config.hop_length})"
        )
    if not values:
        return wav
    if not bool(torch.isfinite(wav).all()):
        raise ValueError("the waveform contains NaN or infinite values")
    peak = wav.abs().max().item() if wav.numel() else 0.0
    if peak > 1.0:
        warnings.warn(f"waveform exceeds [-1, 1] (peak {peak:.3f}); mel features expect normalised audio", stacklevel=3)
    return wav


def _log_mel(wav: Tensor, basis: Tensor, window: Tensor, config: MelConfig) -> Tensor:
    padding = (config.n_fft - config.hop_length) // 2
    wav = F.pad(wav[:, None], (padding, padding), mode="reflect")[:, 0]
    spec = torch.stft(
        wav, config.n_fft, hop_length=config.hop_length, win_length=config.win_length, window=window,
        center=False, normalized=False, onesided=True, return_complex=True,
    )  # fmt: skip
    magnitude = torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1) + 1e-9)  # (B, n_fft/2+1, F)
    return torch.log(torch.clamp(torch.matmul(basis, magnitude), min=1e-5))  # (B, num_mels, F)


def mel_spectrogram(wav: Tensor, config: MelConfig) -> Tensor:
    """BigVGAN-compatible log-mel spectrogram.

    Shape: (T,), (B, T) or (B, 1, T) -> (B, num_mels, F).

    >>> mel_spectrogram(torch.zeros(24000), MelConfig()).shape
    torch.Size([1, 100, 93])
    """
    wav = _check_waveform(wav, config)
    basis = mel_basis(config).to(wav.device, wav.dtype)
    window = torch.hann_window(config.win_length, device=wav.device, dtype=wav.dtype)
    return _log_mel(wav, basis, window, config)


class MelSpectrogram(nn.Module):
    """:func:`mel_spectrogram` as a module; the mel basis and window are non-persistent buffers.

    ``check=False`` skips the checks that read the samples (finite, within [-1, 1]): a
    training loop that checked a batch shape once avoids a host sync per step.

    Shape: (T,), (B, T) or (B, 1, T) -> (B, num_mels, F).
    """

    basis: Tensor
    window: Tensor

    def __init__(self, config: MelConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("basis", mel_basis(config), persistent=False)
        self.register_buffer("window", torch.hann_window(config.win_length), persistent=False)

    def forward(self, wav: Tensor, check: bool = True) -> Tensor:
        wav = _check_waveform(wav, self.config, values=check)
        return _log_mel(wav, self.basis.to(wav.dtype), self.window.to(wav.dtype), self.config)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config.to_dict().items())
