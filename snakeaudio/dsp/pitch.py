"""Pitch and periodicity agreement between a reference and an estimate, via librosa's pYIN.

pYIN decodes its pitch track on a grid of 0.1 semitone (10 cents), so the raw tracks could
only differ by multiples of 10 cents. :func:`pitch_track` therefore keeps pYIN's voicing and
octave decisions but reads each voiced frame's f0 off the YIN trough that pYIN rounded to its
grid (the cumulative mean normalised difference, parabolically interpolated, as pYIN computes
it): a continuous estimate, so that errors of a few cents are measured rather than rounded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import librosa
import numpy as np
from torch import Tensor

__all__ = ["PitchMetrics", "PitchTrack", "compare_pitch", "pitch_metrics", "pitch_track"]

PYIN_RESOLUTION = 0.1
"""pYIN's pitch grid in semitones (librosa's default)."""


@dataclass(frozen=True)
class PitchMetrics:
    """cents_error: median |1200·log2(f0_est / f0_ref)| over frames voiced in both (NaN if none);
    cents_error_p90: the 90th percentile of the same (NaN if none);
    periodicity_error: RMS difference of pYIN's voicing probabilities;
    vuv_f1: F1 of the estimate's voiced/unvoiced decisions against the reference's."""

    cents_error: float
    cents_error_p90: float
    periodicity_error: float
    vuv_f1: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _as_numpy(wav: Tensor | np.ndarray) -> np.ndarray:
    array = wav.detach().cpu().double().numpy() if isinstance(wav, Tensor) else np.asarray(wav, dtype=np.float64)
    return array.reshape(-1)


def _yin_troughs(frames: np.ndarray, min_period: int, max_period: int) -> tuple[np.ndarray, np.ndarray]:
    """YIN's cumulative mean normalised difference d'(τ) for τ in [min_period, max_period], as
    librosa's pYIN computes it, and the parabolic-interpolation offsets of its minima.

    Shape: (frame_length, N) -> (max_period − min_period + 1, N) twice.
    """
    acf = librosa.autocorrelate(frames, max_size=max_period + 1, axis=0)  # (max_period+1, N)
    energy = np.cumsum(frames**2, axis=0)  # (frame_length, N): Σ_{m ≤ j} y(m)²
    lags = np.arange(1, max_period + 1)[:, None]  # (max_period, 1)
    diff = 2 * (acf[:1] - acf[1:]) - energy[:max_period]  # (max_period, N): d(τ) for τ = 1 … max_period
    cumulative_mean = np.cumsum(diff, axis=0) / lags
    cmnd = (diff / (cumulative_mean + np.finfo(np.float64).tiny))[min_period - 1 :]  # (P, N)
    # the vertex of the parabola through each point and its neighbours, where it lies within one lag
    left, mid, right = cmnd[:-2], cmnd[1:-1], cmnd[2:]
    curvature, slope = left + right - 2 * mid, (right - left) / 2
    inside = np.abs(slope) < np.abs(curvature)
    shift = np.zeros_like(cmnd)
    shift[1:-1] = np.where(inside, -slope / np.where(inside, curvature, 1.0), 0.0)
    return cmnd, shift


def _refine_f0(
    y: np.ndarray, f0: np.ndarray, voiced: np.ndarray, sample_rate: int, fmin: float, fmax: float, frame_length: int, hop_length: int
) -> np.ndarray:
    """pYIN's f0 on its 10-cent grid -> the interpolated YIN trough nearest to it, within one grid step.

    Frames as in ``librosa.pyin(center=True)``: zero-padded by half a frame at both ends.

    Shape: (T,), (F,), (F,) -> (F,), NaN where unvoiced.
    """
    refined = np.where(voiced, f0, np.nan)
    if not voiced.any():
        return refined
    min_period = int(np.floor(sample_rate / fmax))
    max_period = min(int(np.ceil(sample_rate / fmin)), frame_length - 1)
    padded = np.pad(y, frame_length // 2)
    frames = librosa.util.frame(padded, frame_length=frame_length, hop_length=hop_length)[:, : f0.size]  # (frame_length, F)
    index = np.flatnonzero(voiced)
    cmnd, shift = _yin_troughs(frames[:, index], min_period, max_period)  # (P, V) each
    step = 2 ** (PYIN_RESOLUTION / 12)  # one grid step, as a frequency ratio
    for column, frame in enumerate(index):
        d = cmnd[:, column]
        trough = np.flatnonzero((d[1:-1] < d[:-2]) & (d[1:-1] <= d[2:])) + 1  # local minima, as pYIN finds them
        if d.size > 1 and d[0] < d[1]:
            trough = np.append(trough, 0)
        if trough.size == 0:
            continue
        periods = min_period + trough + shift[trough, column]
        ratio = np.abs(np.log(sample_rate / periods / f0[frame]))
        nearest = int(np.argmin(ratio))
        if ratio[nearest] <= np.log(step):
            refined[frame] = sample_rate / periods[nearest]
    return refined


@dataclass(frozen=True)
class PitchTrack:
    """pYIN's analysis of one signal: refined f0 (Hz, NaN where unvoiced), voiced flags and
    voicing probabilities, one value per frame (:func:`pitch_track`)."""

    f0: np.ndarray
    voiced: np.ndarray
    probability: np.ndarray


def pitch_track(wav: Tensor | np.ndarray, sample_rate: int, fmin: float = 50.0, fmax: float = 1000.0) -> PitchTrack:
    """pYIN (frames of four periods of ``fmin``, hop a quarter frame) decides voicing and the
    f0 track; each voiced f0 is then refined off pYIN's 10-cent grid (see the module docstring).
    """
    samples = _as_numpy(wav)
    frame = int(2 ** np.ceil(np.log2(4 * sample_rate / fmin)))  # four periods of the lowest pitch
    kwargs = dict(fmin=fmin, fmax=fmax, sr=sample_rate, frame_length=frame, hop_length=frame // 4, resolution=PYIN_RESOLUTION)
    f0, voiced, probability = librosa.pyin(samples, **kwargs)
    return PitchTrack(_refine_f0(samples, f0, voiced, sample_rate, fmin, fmax, frame, frame // 4), voiced, probability)


def compare_pitch(reference: PitchTrack, estimate: PitchTrack) -> PitchMetrics:
    """The metrics of two tracks analysed with the same settings (the shorter one's frames)."""
    n = min(len(reference.f0), len(estimate.f0))
    f0_r, voiced_r, prob_r = reference.f0[:n], reference.voiced[:n], reference.probability[:n]
    f0_e, voiced_e, prob_e = estimate.f0[:n], estimate.voiced[:n], estimate.probability[:n]
    both = voiced_r & voiced_e
    cents = np.abs(1200 * np.log2(f0_e[both] / f0_r[both]))  # (frames voiced in both,)
    median, p90 = (float(np.median(cents)), float(np.percentile(cents, 90))) if both.any() else (float("nan"),) * 2
    periodicity = float(np.sqrt(np.mean((np.nan_to_num(prob_r) - np.nan_to_num(prob_e)) ** 2)))
    true_positive = float(both.sum())
    precision = true_positive / max(float(voiced_e.sum()), 1.0)
    recall = true_positive / max(float(voiced_r.sum()), 1.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PitchMetrics(cents_error=median, cents_error_p90=p90, periodicity_error=periodicity, vuv_f1=f1)


def pitch_metrics(
    reference: Tensor | np.ndarray, estimate: Tensor | np.ndarray, sample_rate: int, fmin: float = 50.0, fmax: float = 1000.0
) -> PitchMetrics:
    """Compare the pitch tracks (:func:`pitch_track`) of two mono signals of (about) the same length.

    >>> t = np.arange(16000) / 16000
    >>> m = pitch_metrics(np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 202 * t), 16000, 100, 400)
    >>> round(m.cents_error, 1), m.vuv_f1 > 0.9  # 1200 · log2(202 / 200) = 17.2 cents
    (17.2, True)
    """
    ref, est = _as_numpy(reference), _as_numpy(estimate)
    n = min(len(ref), len(est))
    return compare_pitch(pitch_track(ref[:n], sample_rate, fmin, fmax), pitch_track(est[:n], sample_rate, fmin, fmax))
