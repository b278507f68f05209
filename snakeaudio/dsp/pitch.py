"""Pitch and periodicity agreement between a reference and an estimate, via librosa's pYIN."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import librosa
import numpy as np
from torch import Tensor

__all__ = ["PitchMetrics", "pitch_metrics"]


@dataclass(frozen=True)
class PitchMetrics:
    """cents_error: median |1200·log2(f0_est / f0_ref)| over frames voiced in both (NaN if none);
    periodicity_error: RMS difference of pYIN's voicing probabilities;
    vuv_f1: F1 of the estimate's voiced/unvoiced decisions against the reference's."""

    cents_error: float
    periodicity_error: float
    vuv_f1: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _as_numpy(wav: Tensor | np.ndarray) -> np.ndarray:
    array = wav.detach().cpu().double().numpy() if isinstance(wav, Tensor) else np.asarray(wav, dtype=np.float64)
    return array.reshape(-1)


def pitch_metrics(
    reference: Tensor | np.ndarray, estimate: Tensor | np.ndarray, sample_rate: int, fmin: float = 50.0, fmax: float = 1000.0
) -> PitchMetrics:
    """Compare the pitch tracks of two mono signals of (about) the same length.

    >>> t = np.arange(16000) / 16000
    >>> m = pitch_metrics(np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 202 * t), 16000, 100, 400)
    >>> 10 < m.cents_error < 25 and m.vuv_f1 > 0.9
    True
    """
    ref, est = _as_numpy(reference), _as_numpy(estimate)
    n = min(len(ref), len(est))
    frame = int(2 ** np.ceil(np.log2(4 * sample_rate / fmin)))  # four periods of the lowest pitch
    kwargs = dict(fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=frame, hop_length=frame // 4)
    f0_r, voiced_r, prob_r = librosa.pyin(ref[:n], **kwargs)
    f0_e, voiced_e, prob_e = librosa.pyin(est[:n], **kwargs)
    both = voiced_r & voiced_e
    cents = float(np.median(np.abs(1200 * np.log2(f0_e[both] / f0_r[both])))) if both.any() else float("nan")
    periodicity = float(np.sqrt(np.mean((np.nan_to_num(prob_r) - np.nan_to_num(prob_e)) ** 2)))
    true_positive = float(both.sum())
    precision = true_positive / max(float(voiced_e.sum()), 1.0)
    recall = true_positive / max(float(voiced_r.sum()), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PitchMetrics(cents, periodicity, f1)
