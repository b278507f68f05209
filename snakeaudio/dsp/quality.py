"""Objective quality scores of an estimate, against its reference recording or on its own.

:func:`pesq_wideband` is ITU-T P.862.2 wide-band PESQ (1 … 4.64, higher is better) from
the optional ``pesq`` package; :func:`log_mel_l1` is the mean absolute difference of two
log-mel spectrograms and :func:`multi_resolution_stft_distance` spectral convergence +
log-magnitude L1 over STFT resolutions (both 0 for identical signals, lower is better; the
latter is differentiable, also a training loss). :func:`dnsmos` is non-intrusive: Microsoft's
DNSMOS predicts the mean opinion scores of listeners (1 … 5, higher is better) from the signal
alone, with the ONNX models of the optional ``speechmos`` package. :mod:`snakeaudio.dsp.comb`
scores the spectral comb a hop-periodic leak leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .._internal import as_mono, check_waveform_pair

__all__ = [
    "DNSMOS_SAMPLE_RATE",
    "PESQ_SAMPLE_RATE",
    "DNSMOSScores",
    "dnsmos",
    "log_mel_l1",
    "multi_resolution_stft_distance",
    "pesq_wideband",
]

logger = logging.getLogger(__name__)

PESQ_SAMPLE_RATE = 16000
"""Wide-band PESQ is defined at 16 kHz; other rates are resampled to it."""

DNSMOS_SAMPLE_RATE = 16000
"""DNSMOS's models take 16 kHz audio; other rates are resampled to it."""


def pesq_wideband(reference: Tensor | np.ndarray, estimate: Tensor | np.ndarray, sample_rate: int) -> float | None:
    """Wide-band PESQ (MOS-LQO, about 1.04 … 4.64) of ``estimate`` against ``reference``.

    Both are resampled to 16 kHz and trimmed to their common length. Returns None when the
    ``pesq`` package is not installed (``pip install pesq``, part of the ``train`` extra) or
    when PESQ refuses the signals, e.g. empty, silent or shorter than about a quarter second.

    Shape: two mono waveforms (T,), (1, T) or (1, 1, T) -> float.
    """
    if sample_rate < 1:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
    try:
        from pesq import PesqError, pesq
    except ImportError:
        return None
    import torchaudio.functional as AF

    ref, est = as_mono(reference, "reference"), as_mono(estimate, "estimate")
    n = min(ref.numel(), est.numel())
    if n == 0 or not bool(ref[:n].any()) or not bool(est[:n].any()):
        logger.debug("PESQ gave no score: an empty or all-zero signal")
        return None
    ref, est = (AF.resample(w[:n], sample_rate, PESQ_SAMPLE_RATE).double().numpy() for w in (ref, est))
    try:
        return float(pesq(PESQ_SAMPLE_RATE, ref, est, "wb"))
    except (PesqError, ValueError) as err:  # silent, too short, or otherwise unscorable audio
        logger.debug("PESQ gave no score: %s", err)
        return None


def log_mel_l1(reference: Tensor, estimate: Tensor, mel: Callable[[Tensor], Tensor], *, shift: int = 0) -> float:
    """Mean |mel(reference) − mel(estimate)| over bands and frames, after trimming to the common length.

    ``mel`` maps a waveform to log-mel features, e.g. ``generator.mel`` or
    ``partial(mel_spectrogram, config=MelConfig(...))``. ``shift`` drops that many samples at
    the start of both signals first, so that the frames fall between the ones a vocoder (or
    Griffin-Lim) was given: with half a hop this scores the output where it was not fitted.

    Shape: two waveforms (T,), (B, T) or (B, 1, T) -> float.
    """
    n = min(reference.shape[-1], estimate.shape[-1])
    if not 0 <= shift < max(n, 1):
        raise ValueError(f"shift must be a number of samples in [0, {n}) for signals of {n} samples, got {shift}")
    return float((mel(reference[..., shift:n]) - mel(estimate[..., shift:n])).abs().mean())


def _stft_magnitude(wav: Tensor, n_fft: int, hop_length: int, win_length: int, eps: float) -> Tensor:
    window = torch.hann_window(win_length, device=wav.device, dtype=wav.dtype)
    spec = torch.stft(wav, n_fft, hop_length=hop_length, win_length=win_length, window=window, return_complex=True)
    return torch.sqrt(torch.clamp(spec.real**2 + spec.imag**2, min=eps))  # (N, n_fft/2 + 1, F)


def multi_resolution_stft_distance(
    wav_a: Tensor,
    wav_b: Tensor,
    resolutions: Sequence[tuple[int, int, int]] = ((1024, 256, 1024), (2048, 512, 2048), (512, 128, 512)),
    eps: float = 1e-7,
) -> Tensor:
    """Spectral convergence + log-magnitude L1, averaged over STFT resolutions (Parallel WaveGAN's STFT loss).

    For each ``(n_fft, hop_length, win_length)``: a centred Hann STFT, magnitudes
    |S| = sqrt(max(re² + im², eps)), then ``‖|S_a| − |S_b|‖_F / ‖|S_a|‖_F`` per waveform (averaged
    over the batch) plus ``mean|log|S_a| − log|S_b||``. ``wav_a`` is the reference (the real
    recording): spectral convergence is relative to its magnitude, so the distance is not symmetric.
    Differentiable; zero for identical inputs.

    Shape: two waveforms (T,), (B, T) or (B, C, T), T > max(n_fft) / 2 -> scalar.
    """
    if not resolutions:
        raise ValueError("resolutions must name at least one (n_fft, hop_length, win_length)")
    for n_fft, hop, win in resolutions:
        if not (0 < hop and 0 < win <= n_fft):
            raise ValueError(
                f"each resolution must be (n_fft, hop_length, win_length) with 0 < win_length <= n_fft, got {(n_fft, hop, win)}"
            )
    min_length = max(n_fft for n_fft, _, _ in resolutions) // 2 + 1
    check_waveform_pair(wav_a, wav_b, ("wav_a", "wav_b"), min_length, "centred STFT of the largest n_fft")
    a = wav_a.reshape(-1, wav_a.shape[-1])  # (N, T)
    b = wav_b.reshape(-1, wav_b.shape[-1])
    total = a.new_zeros(())
    for n_fft, hop, win in resolutions:
        mag_a = _stft_magnitude(a, n_fft, hop, win, eps)
        mag_b = _stft_magnitude(b, n_fft, hop, win, eps)
        convergence = torch.linalg.vector_norm(mag_a - mag_b, dim=(-2, -1)) / torch.linalg.vector_norm(mag_a, dim=(-2, -1))
        total = total + convergence.mean() + F.l1_loss(torch.log(mag_b), torch.log(mag_a))
    return total / len(resolutions)


@dataclass(frozen=True)
class DNSMOSScores:
    """DNSMOS predictions of listener opinion, 1 … 5, higher is better.

    p808: overall quality as rated in ITU-T P.808 listening tests (DNSMOS P.808);
    sig, bak, ovrl: speech signal quality, background-noise intrusiveness and overall
    quality as rated in ITU-T P.835 tests (DNSMOS P.835).
    """

    p808: float
    sig: float
    bak: float
    ovrl: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def dnsmos(wav: Tensor | np.ndarray, sample_rate: int) -> DNSMOSScores | None:
    """DNSMOS P.808 and P.835 scores of one recording, non-intrusive (no reference needed).

    The audio is resampled to 16 kHz and clipped to [-1, 1]. The models score 9.01 s windows:
    longer audio is scored as ``speechmos`` scores it, in windows every second, averaged. Shorter
    audio is repeated to fill exactly one window; ``speechmos`` (like Microsoft's reference
    script) repeats it by doubling and averages the windows of the doubled clip, which are
    shifts of the same repeated signal: up to 7 model runs for a 1 s clip instead of one, for
    scores that differ by at most 0.08 on the clips we compared.

    Returns None when ``speechmos`` or ``onnxruntime`` is not installed
    (``pip install speechmos onnxruntime``, the ``dnsmos`` extra) or when the audio is empty or
    not finite.
    About 0.7 s per window on two CPU cores; the models load once per process.

    Shape: a mono waveform (T,), (1, T) or (1, 1, T) -> DNSMOSScores.
    """
    if sample_rate < 1:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
    try:
        from speechmos import dnsmos as speechmos_dnsmos
    except ImportError:
        return None
    import torchaudio.functional as AF

    wav = as_mono(wav, "wav")
    if wav.numel() == 0 or not bool(wav.isfinite().all()):
        logger.debug("DNSMOS gave no score: an empty signal, or one with NaN or infinite samples")
        return None
    if sample_rate != DNSMOS_SAMPLE_RATE:
        wav = AF.resample(wav, sample_rate, DNSMOS_SAMPLE_RATE)
    audio = wav.clamp(-1.0, 1.0).numpy()  # (T at 16 kHz,)
    window = int(speechmos_dnsmos.INPUT_LENGTH * DNSMOS_SAMPLE_RATE)
    if audio.size < window:
        audio = np.resize(audio, window)  # (window,): the clip repeated, one model run
    scores = speechmos_dnsmos.run(audio, DNSMOS_SAMPLE_RATE)
    return DNSMOSScores(
        p808=float(scores["p808_mos"]), sig=float(scores["sig_mos"]), bak=float(scores["bak_mos"]), ovrl=float(scores["ovrl_mos"])
    )
