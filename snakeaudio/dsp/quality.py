"""Objective quality scores of an estimate, against its reference recording or on its own.

:func:`pesq_wideband` is ITU-T P.862.2 wide-band PESQ (1 … 4.64, higher is better) from
the optional ``pesq`` package; :func:`log_mel_l1` is the mean absolute difference of two
log-mel spectrograms (0 for identical signals, lower is better). :func:`dnsmos` is
non-intrusive: Microsoft's DNSMOS predicts the mean opinion scores of listeners (1 … 5,
higher is better) from the signal alone, with the ONNX models of the optional ``speechmos``
package. :mod:`snakeaudio.dsp.comb` scores the spectral comb a hop-periodic leak leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor

__all__ = ["DNSMOS_SAMPLE_RATE", "PESQ_SAMPLE_RATE", "DNSMOSScores", "dnsmos", "log_mel_l1", "pesq_wideband"]

logger = logging.getLogger(__name__)

PESQ_SAMPLE_RATE = 16000
"""Wide-band PESQ is defined at 16 kHz; other rates are resampled to it."""

DNSMOS_SAMPLE_RATE = 16000
"""DNSMOS's models take 16 kHz audio; other rates are resampled to it."""


def _mono(wav: Tensor | np.ndarray, name: str) -> Tensor:
    """A float32 CPU tensor (T,) from (T,), (1, T) or (1, 1, T)."""
    wav = torch.as_tensor(wav).detach()
    if wav.dim() > 1 and any(size != 1 for size in wav.shape[:-1]):
        raise ValueError(
            f"{name} must be one mono waveform shaped (T,), (1, T) or (1, 1, T), got shape {tuple(wav.shape)}"
        )
    return wav.reshape(-1).float().cpu()


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

    ref, est = _mono(reference, "reference"), _mono(estimate, "estimate")
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

    wav = _mono(wav, "wav")
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
