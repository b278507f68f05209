"""Copy-synthesis scores of a vocoder's output against the recording it resynthesised.

One scorer for the trainer's validation and for ``snakeaudio evaluate``, so both report
the same numbers:

- log-mel L1: mean |mel(output) − mel(input)|, the generator's own features (lower is better);
- MR-STFT: spectral convergence + log-magnitude L1 over three STFT resolutions (lower is better);
- PESQ: wide-band PESQ, 1 … 4.64 (higher is better; None without the ``pesq`` package);
- F0 error: median pitch error in cents over frames voiced in both (lower is better);
- periodicity: RMS difference of pYIN voicing probabilities (lower is better);
- V/UV F1: agreement of voiced/unvoiced decisions (higher is better).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..dsp.pitch import pitch_metrics
from ..dsp.quality import log_mel_l1, pesq_wideband
from ..models.generator import Generator
from .losses import multi_resolution_stft_distance

__all__ = ["PITCH_FMAX", "PITCH_FMIN", "Scores", "copy_synthesis_scores"]

PITCH_FMIN = 50.0
PITCH_FMAX = 1000.0
"""pYIN's search range in Hz (the upper end is capped at a quarter of the sample rate)."""


@dataclass(frozen=True)
class Scores:
    """One system's scores on one recording (see the module docstring).

    ``pesq`` is None when PESQ is unavailable or refuses the audio; ``cents_error`` is NaN
    when no frame is voiced in both signals.
    """

    log_mel_l1: float
    mr_stft: float
    pesq: float | None
    cents_error: float
    periodicity_error: float
    vuv_f1: float


def copy_synthesis_scores(reference: Tensor, estimate: Tensor, generator: Generator) -> Scores:
    """Scores of ``estimate`` against ``reference``, both at ``generator``'s sample rate,
    with log-mels from ``generator.mel``.

    Shape: two mono waveforms (T,) of equal length -> Scores.
    """
    if reference.dim() != 1 or reference.shape != estimate.shape:
        raise ValueError(
            f"expected two mono waveforms (T,) of equal length, got {tuple(reference.shape)} and {tuple(estimate.shape)}"
        )
    sr = generator.sample_rate
    pitch = pitch_metrics(reference, estimate, sr, fmin=PITCH_FMIN, fmax=min(PITCH_FMAX, sr / 4))
    return Scores(
        log_mel_l1=log_mel_l1(reference, estimate, generator.mel),
        mr_stft=float(multi_resolution_stft_distance(reference, estimate)),
        pesq=pesq_wideband(reference, estimate, sr),
        cents_error=pitch.cents_error,
        periodicity_error=pitch.periodicity_error,
        vuv_f1=pitch.vuv_f1,
    )
