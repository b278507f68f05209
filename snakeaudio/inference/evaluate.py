"""Copy-synthesis evaluation on real recordings: audio → log-mel → vocoder → audio, scored against the input.

For every file the vocoder resynthesises the recording from the recording's own log-mel
(at the model's rate, the whole file at once) and the output is scored against the
recording over their common length with
:func:`snakeaudio.inference.scores.copy_synthesis_scores` (log-mel L1 on the frames and shifted
by half a hop, MR-STFT, wide-band PESQ, F0 error median and 90th percentile, periodicity,
V/UV F1, hop comb, DNSMOS), the scores the trainer validates with.

With ``griffin_lim_baseline`` the same log-mel is also inverted by Griffin-Lim, a
training-free floor that any trained vocoder should clear. DNSMOS needs no reference, so
the recording's own DNSMOS is reported too, as the row "input": the ceiling for the others.
A silent recording is not scored: scores against silence mean nothing.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import librosa
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ..dsp import quality
from ..dsp.io import SILENCE_PEAK, audio_files, counted, naming_warnings, read_audio
from ..dsp.mel import MelConfig, mel_basis
from ..dsp.quality import DNSMOSScores
from ..models.config import GeneratorConfig
from ..models.generator import Generator
from .scores import Scores, copy_synthesis_scores

__all__ = [
    "INPUT_METRICS", "METRICS", "EvaluationReport", "FailuresWarning", "FileResult", "Scores", "audio_files", "evaluate", "griffin_lim",
]  # fmt: skip


class FailuresWarning(UserWarning):
    """Some files could not be evaluated (``skip_failures``); their reasons are in ``EvaluationReport.failures``."""

METRICS: dict[str, str] = {
    "log_mel_l1": "mel L1 ↓",
    "log_mel_l1_shifted": "mel L1 ½hop ↓",
    "mr_stft": "MR-STFT ↓",
    "pesq": "PESQ ↑",
    "cents_error": "F0 cents ↓",
    "cents_error_p90": "F0 p90 ↓",
    "periodicity_error": "periodicity ↓",
    "vuv_f1": "V/UV F1 ↑",
    "hop_comb": "comb dB ↓",
    "dnsmos_p808": "P.808 ↑",
    "dnsmos_sig": "SIG ↑",
    "dnsmos_bak": "BAK ↑",
    "dnsmos_ovrl": "OVRL ↑",
}
"""Score names (the fields of :class:`Scores`) and their table labels; ↓: lower is better,
↑: higher is better. F0 cents and F0 p90 are the median and the 90th percentile of the
pitch error; comb dB is the hop comb the output adds to the input's; P.808 … OVRL are DNSMOS."""

INPUT_METRICS = ("dnsmos_p808", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl")
"""The scores that need no reference, reported for the input recording too."""

VOCODER = "vocoder"
GRIFFIN_LIM = "griffin-lim"
INPUT = "input"


def _input_scores(mos: DNSMOSScores | None) -> dict[str, float | None]:
    """The input row: its DNSMOS under the metric names of :data:`INPUT_METRICS`."""
    return {metric: getattr(mos, metric.removeprefix("dnsmos_")) if mos else None for metric in INPUT_METRICS}

@dataclass(frozen=True)
class FileResult:
    """The scores of every system on one file; ``duration`` is the compared length in seconds;
    ``input``: the recording's own DNSMOS (None when not computed or unavailable)."""

    path: str
    duration: float
    scores: dict[str, Scores]
    input: DNSMOSScores | None = None


def _defined(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _json_number(value: float | None) -> float | None:
    return value if _defined(value) else None


@dataclass
class EvaluationReport:
    """Per-file scores of each system (``"vocoder"``, ``"griffin-lim"``), their means, the
    input recordings' DNSMOS, and the files that could not be evaluated (path → reason; only
    with ``skip_failures``)."""

    sample_rate: int
    files: list[FileResult] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def systems(self) -> list[str]:
        names: list[str] = []
        for result in self.files:
            names += [name for name in result.scores if name not in names]
        return names

    @property
    def duration(self) -> float:
        """Seconds of audio scored, over all files."""
        return sum(result.duration for result in self.files)

    def means(self) -> dict[str, dict[str, float | None]]:
        """system → metric → mean over the files where the metric is defined (None where it never is)."""
        out: dict[str, dict[str, float | None]] = {}
        for system in self.systems:
            rows = [result.scores[system] for result in self.files if system in result.scores]
            out[system] = {}
            for metric in METRICS:
                values = [v for v in (getattr(row, metric) for row in rows) if _defined(v)]
                out[system][metric] = float(np.mean(values)) if values else None
        return out

    def input_means(self) -> dict[str, float | None]:
        """The input recordings' DNSMOS (:data:`INPUT_METRICS`), mean over the files where it is defined."""
        rows = [_input_scores(result.input) for result in self.files]
        out: dict[str, float | None] = {}
        for metric in INPUT_METRICS:
            values = [v for v in (row[metric] for row in rows) if _defined(v)]
            out[metric] = float(np.mean(values)) if values else None
        return out

    @property
    def has_input_scores(self) -> bool:
        return any(result.input is not None for result in self.files)

    def to_dict(self) -> dict:
        """A JSON-serialisable summary: undefined scores (missing PESQ, NaN F0 error) become None.

        ``"input"`` holds the input recordings' mean DNSMOS, and each file's own under its ``"input"``.
        """
        return {
            "sample_rate": self.sample_rate,
            "duration_s": self.duration,
            "metrics": dict(METRICS),
            "means": self.means(),
            "input": self.input_means(),
            "files": [
                {
                    "path": result.path,
                    "duration_s": result.duration,
                    "scores": {
                        system: {k: _json_number(v) for k, v in asdict(scores).items()}
                        for system, scores in result.scores.items()
                    },
                    "input": {k: _json_number(v) for k, v in _input_scores(result.input).items()},
                }
                for result in self.files
            ],
            "failures": dict(self.failures),
        }

    def format_table(self, per_file: bool = False) -> str:
        """A fixed-width table: one row per system (mean over files), metrics as columns.

        The row "input" holds the input recordings' own DNSMOS (when computed). With
        ``per_file``, one further row per file and system follows. Undefined values show as "–".
        """
        labels = list(METRICS.values())
        rows = [[system] + [_cell(means[m], m) for m in METRICS] for system, means in self.means().items()]
        if self.has_input_scores:
            means = self.input_means()
            rows.append([INPUT] + [_cell(means.get(m), m) for m in METRICS])
        if per_file:
            for result in self.files:
                name = Path(result.path).name
                rows += [
                    [f"{name} {system}"] + [_cell(getattr(s, m), m) for m in METRICS]
                    for system, s in result.scores.items()
                ]
                if result.input is not None:
                    values = _input_scores(result.input)
                    rows.append([f"{name} {INPUT}"] + [_cell(values.get(m), m) for m in METRICS])
        header = ["system"] + labels
        widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            return "  ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

        title = f"copy synthesis: {counted(len(self.files), 'file')}, {self.duration:.1f} s at {self.sample_rate} Hz"
        lines = [title, line(header), "  ".join("-" * w for w in widths)] + [line(row) for row in rows]
        if self.failures:
            lines.append(f"{counted(len(self.failures), 'file')} could not be evaluated: {', '.join(self.failures)}")
        return "\n".join(lines)


def _cell(value: float | None, metric: str) -> str:
    if not _defined(value):
        return "–"
    if metric.startswith("cents_error"):
        return f"{value:.1f}"
    if metric == "hop_comb" or metric.startswith("dnsmos_"):
        return f"{value:.2f}"
    return f"{value:.3f}"


def griffin_lim(mel: Tensor, config: MelConfig | GeneratorConfig, *, n_iter: int = 32, seed: int = 0) -> Tensor:
    """Invert a log-mel spectrogram (:func:`snakeaudio.dsp.mel.mel_spectrogram`) with Griffin-Lim.

    The mel magnitudes ``exp(mel)`` are mapped back to linear frequency by non-negative
    least squares on the same slaney mel basis, then ``n_iter`` Griffin-Lim iterations
    (librosa, random initial phase from ``seed``) estimate a phase with the same uncentred
    Hann STFT. Since the features reflect-pad by (n_fft − hop)/2, dropping that many
    samples from the start aligns the output with the analysed waveform: frame f covers
    samples around f · hop + hop/2 in both. The output is clamped to [-1, 1], as the
    generator's is.

    Shape: (n_mels, F) -> (F · hop_length,), float32 on ``mel``'s device.
    """
    if isinstance(config, GeneratorConfig):
        config = config.mel_config
    if mel.dim() != 2 or mel.shape[0] != config.num_mels:
        hint = " (drop the batch axis with mel[0])" if mel.dim() == 3 else ""
        raise ValueError(
            f"expected a log-mel spectrogram shaped ({config.num_mels}, F), got shape {tuple(mel.shape)}{hint}"
        )
    if n_iter < 1:
        raise ValueError(f"n_iter must be a positive number of iterations, got {n_iter}")
    frames = mel.shape[-1]
    basis = mel_basis(config).numpy()  # (n_mels, n_fft/2+1)
    magnitude = librosa.util.nnls(basis, np.exp(mel.detach().float().cpu().numpy()))  # (n_fft/2+1, F)
    # (n_fft + (F − 1)·hop,): the uncentred STFT's full span, padding included
    wav = librosa.griffinlim(
        magnitude, n_iter=n_iter, hop_length=config.hop_length, win_length=config.win_length, n_fft=config.n_fft,
        window="hann", center=False, random_state=seed,
    )  # fmt: skip
    start = (config.n_fft - config.hop_length) // 2
    out = torch.from_numpy(np.ascontiguousarray(wav[start : start + frames * config.hop_length])).float()
    out = torch.nn.functional.pad(out, (0, frames * config.hop_length - out.numel()))  # (F·hop,)
    return out.clamp(-1.0, 1.0).to(mel.device)


def _evaluate_file(generator: Generator, path: Path, griffin_lim_baseline: bool, with_dnsmos: bool, strict: bool) -> FileResult:
    parameter = next(generator.parameters())
    wav = read_audio(path, generator.sample_rate, strict=strict).to(parameter.device)  # (T,)
    peak = float(wav.abs().max()) if wav.numel() else 0.0
    if peak < SILENCE_PEAK:
        raise ValueError(f"{path} is silent (peak {peak:.1g} < {SILENCE_PEAK:g}): scores against silence mean nothing")
    try:
        mel = generator.mel(wav)  # (1, n_mels, F)
        audio = generator(mel.to(parameter.dtype))[0, 0].float()  # (F·hop,)
        n = min(wav.numel(), audio.numel())
        estimates = {VOCODER: audio[:n]}
        if griffin_lim_baseline:
            estimates[GRIFFIN_LIM] = griffin_lim(mel[0], generator.config)[:n]
        scores = {
            name: copy_synthesis_scores(wav[:n], estimate, generator, dnsmos=with_dnsmos)
            for name, estimate in estimates.items()
        }
        reference = quality.dnsmos(wav[:n], generator.sample_rate) if with_dnsmos else None
    except ValueError as err:
        raise ValueError(f"cannot evaluate {path}: {err}") from err
    return FileResult(str(path), n / generator.sample_rate, scores, reference)


def evaluate(
    generator: Generator,
    files: Sequence[str | os.PathLike],
    *,
    griffin_lim_baseline: bool = True,
    dnsmos: bool = True,
    skip_failures: bool = False,
    progress: bool = False,
    strict: bool = False,
) -> EvaluationReport:
    """Copy-synthesis scores of ``generator`` (and of Griffin-Lim) on audio files.

    Each file is read as mono at the generator's rate, turned into the generator's log-mel
    and vocoded whole; see the module docstring for the scores. The compared length (the
    file's whole hops at the model's rate) must reach 1025 samples, half MR-STFT's largest
    window plus one, about a quarter second for a PESQ score (None otherwise), and the comb's
    Welch window (0.34 s at 24 kHz) for a hop-comb score (NaN otherwise). ``dnsmos=False``
    skips DNSMOS, the slowest score (about 0.7 s per system and file up to 9 s on two CPU cores).

    A file that cannot be read or scored, or is silent, raises ``ValueError`` naming it;
    with ``skip_failures`` it is recorded in ``report.failures`` instead (and left out of the
    means), with one warning at the end. ``strict``: a truncated audio file fails instead of
    giving a warning (:func:`~snakeaudio.dsp.io.read_audio`). ``progress`` shows a progress
    bar. The generator is run in eval mode and left in the mode it was in.
    """
    report = EvaluationReport(generator.sample_rate)
    was_training = generator.training
    generator.eval()
    try:
        with torch.inference_mode():
            for path in tqdm([Path(f) for f in files], desc="evaluating", unit="file", disable=not progress):
                try:
                    with naming_warnings(path):
                        report.files.append(_evaluate_file(generator, path, griffin_lim_baseline, dnsmos, strict))
                except ValueError as err:
                    if not skip_failures:
                        raise
                    report.failures[str(path)] = str(err)
    finally:
        generator.train(was_training)
    if report.failures:
        warnings.warn(
            f"{len(report.failures)} of {counted(len(files), 'file')} could not be evaluated; see EvaluationReport.failures",
            FailuresWarning,
            stacklevel=2,
        )
    return report
