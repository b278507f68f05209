"""Copy-synthesis scores of a vocoder's output against the recording it resynthesised.

One scorer for the trainer's validation and for ``snakeaudio evaluate``, so both report
the same numbers:

- log-mel L1: mean |mel(output) − mel(input)|, the generator's own features (lower is better);
- log-mel L1, half-hop shifted: the same with both signals shifted by hop // 2 samples, so
  that the frames fall between the ones the output was made from (lower is better). A
  system fitted to the very frames scored (Griffin-Lim) is flattered by the first, not by this;
- MR-STFT: spectral convergence + log-magnitude L1 over three STFT resolutions (lower is better);
- PESQ: wide-band PESQ, 1 … 4.64 (higher is better; None without the ``pesq`` package);
- F0 error: median and 90th percentile of the pitch error in cents over frames voiced in both
  (lower is better; off pYIN's 10-cent grid, see :mod:`snakeaudio.dsp.pitch`);
- periodicity: RMS difference of pYIN voicing probabilities (lower is better);
- V/UV F1: agreement of voiced/unvoiced decisions (higher is better);
- hop comb: :func:`~snakeaudio.dsp.comb.hop_comb_db` of the output minus that of the input, in
  dB: spectral lines at multiples of sr / hop that the vocoder added (lower is better, 0 for
  none; NaN for a clip shorter than the comb's Welch window, 0.34 s at 24 kHz, 0.51 s at 16 kHz);
- DNSMOS P.808, SIG, BAK, OVRL: predicted listener opinion of the output alone, 1 … 5
  (higher is better; None without the ``speechmos`` package or with ``dnsmos=False``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields

from torch import Tensor

from ..dsp.comb import HOP_COMB_BAND, hop_comb_db
from ..dsp.pitch import pitch_metrics
from ..dsp.quality import dnsmos as dnsmos_scores
from ..dsp.quality import log_mel_l1, multi_resolution_stft_distance, pesq_wideband
from ..models.generator import Generator

__all__ = ["PITCH_FMAX", "PITCH_FMIN", "VALIDATION_KEYS", "Scores", "copy_synthesis_scores"]

logger = logging.getLogger(__name__)

PITCH_FMIN = 50.0
PITCH_FMAX = 1000.0
"""pYIN's search range in Hz (the upper end is capped at a quarter of the sample rate)."""


@dataclass(frozen=True)
class Scores:
    """One system's scores on one recording (see the module docstring).

    ``pesq`` and the ``dnsmos_*`` scores are None when unavailable; ``cents_error`` and
    ``cents_error_p90`` are NaN when no frame is voiced in both signals, ``hop_comb`` when
    the clip is too short for it.
    """

    log_mel_l1: float
    log_mel_l1_shifted: float
    mr_stft: float
    pesq: float | None
    cents_error: float
    cents_error_p90: float
    periodicity_error: float
    vuv_f1: float
    hop_comb: float
    dnsmos_p808: float | None = None
    dnsmos_sig: float | None = None
    dnsmos_bak: float | None = None
    dnsmos_ovrl: float | None = None

    def as_dict(self) -> dict[str, float]:
        """The defined scores by field name, in field order: None and NaN are left out.

        >>> Scores(0.4, 0.5, 1.2, None, 20.0, float("nan"), 0.1, 0.9, 3.0).as_dict()  # doctest: +NORMALIZE_WHITESPACE
        {'log_mel_l1': 0.4, 'log_mel_l1_shifted': 0.5, 'mr_stft': 1.2, 'cents_error': 20.0,
         'periodicity_error': 0.1, 'vuv_f1': 0.9, 'hop_comb': 3.0}
        """
        values = ((f.name, getattr(self, f.name)) for f in fields(self))
        return {name: float(v) for name, v in values if v is not None and not math.isnan(v)}


VALIDATION_KEYS: dict[str, str] = {
    "log_mel_l1": "val_mel_l1",
    "log_mel_l1_shifted": "val_mel_l1_shifted",
    "mr_stft": "val_mrstft",
    "pesq": "val_pesq",
    "cents_error": "val_cents_error",
    "cents_error_p90": "val_cents_error_p90",
    "periodicity_error": "val_periodicity_error",
    "vuv_f1": "val_vuv_f1",
    "hop_comb": "val_hop_comb",
    "dnsmos_p808": "val_dnsmos_p808",
    "dnsmos_sig": "val_dnsmos_sig",
    "dnsmos_bak": "val_dnsmos_bak",
    "dnsmos_ovrl": "val_dnsmos_ovrl",
}
"""Score field → the name training validation logs it under (the first six as logged before)."""


def copy_synthesis_scores(reference: Tensor, estimate: Tensor, generator: Generator, *, dnsmos: bool = True) -> Scores:
    """Scores of ``estimate`` against ``reference``, both at ``generator``'s sample rate,
    with log-mels from ``generator.mel``.

    DNSMOS is the slowest score (about 0.7 s per clip up to 9 s on two CPU cores, for each
    further second 0.7 s more); ``dnsmos=False`` skips it (the ``dnsmos_*`` scores are None).

    Shape: two mono waveforms (T,) of equal length -> Scores.
    """
    if reference.dim() != 1 or reference.shape != estimate.shape:
        raise ValueError(
            f"expected two mono waveforms (T,) of equal length, got {tuple(reference.shape)} and {tuple(estimate.shape)}"
        )
    sr, hop = generator.sample_rate, generator.hop_length
    pitch = pitch_metrics(reference, estimate, sr, fmin=PITCH_FMIN, fmax=min(PITCH_FMAX, sr / 4))
    try:
        comb = hop_comb_db(estimate, sr, hop, band=HOP_COMB_BAND) - hop_comb_db(reference, sr, hop, band=HOP_COMB_BAND)
    except ValueError as err:  # too short for the comb's window
        logger.debug("no hop-comb score: %s", err)
        comb = float("nan")
    mos = dnsmos_scores(estimate, sr) if dnsmos else None
    return Scores(
        log_mel_l1=log_mel_l1(reference, estimate, generator.mel),
        log_mel_l1_shifted=log_mel_l1(reference, estimate, generator.mel, shift=hop // 2),
        mr_stft=float(multi_resolution_stft_distance(reference, estimate)),
        pesq=pesq_wideband(reference, estimate, sr),
        cents_error=pitch.cents_error,
        cents_error_p90=pitch.cents_error_p90,
        periodicity_error=pitch.periodicity_error,
        vuv_f1=pitch.vuv_f1,
        hop_comb=comb,
        dnsmos_p808=mos.p808 if mos else None,
        dnsmos_sig=mos.sig if mos else None,
        dnsmos_bak=mos.bak if mos else None,
        dnsmos_ovrl=mos.ovrl if mos else None,
    )
