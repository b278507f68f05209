"""Objective quality scores of an estimate against its reference recording.

:func:`pesq_wideband` is ITU-T P.862.2 wide-band PESQ (1 … 4.64, higher is better) from
the optional ``pesq`` package; :func:`log_mel_l1` is the mean absolute difference of two
log-mel spectrograms (0 for identical signals, lower is better).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

__all__ = ["PESQ_SAMPLE_RATE", "log_mel_l1", "pesq_wideband"]

logger = logging.getLogger(__name__)

PESQ_SAMPLE_RATE = 16000
"""Wide-band PESQ is defined at 16 kHz; other rates are resampled to it."""


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


def log_mel_l1(reference: Tensor, estimate: Tensor, mel: Callable[[Tensor], Tensor]) -> float:
    """Mean |mel(reference) − mel(estimate)| over bands and frames, after trimming to the common length.

    ``mel`` maps a waveform to log-mel features, e.g. ``generator.mel`` or
    ``partial(mel_spectrogram, config=MelConfig(...))``.

    Shape: two waveforms (T,), (B, T) or (B, 1, T) -> float.
    """
    n = min(reference.shape[-1], estimate.shape[-1])
    return float((mel(reference[..., :n]) - mel(estimate[..., :n])).abs().mean())
