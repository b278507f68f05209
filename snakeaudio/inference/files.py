"""Synthesis of files: audio is copy-synthesised (audio → mel → vocoder), mel files are vocoded.

Audio inputs (wav/flac/ogg) are mixed down to mono and resampled to the model's rate; the
output has the input's duration at the model's rate. Mel inputs (``.npy``/``.pt``, shaped
(n_mels, F)) give F · hop samples. A silent input gives a (near-)silent output. An input that
cannot be used (missing, unreadable, too short) fails alone: the others still run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..dsp.io import AUDIO_FILE_SUFFIXES, MEL_FILE_SUFFIXES, audio_files, counted, naming_warnings, read_audio, read_mel
from ._common import fit_length, like_parameters
from .chunked import synthesize_chunked
from .synthesis import synthesize_batch

__all__ = ["EXAMPLE_INPUT", "Job", "Synthesized", "plan_jobs", "synthesize_files"]

EXAMPLE_INPUT = Path(__file__).resolve().parents[1] / "data" / "example_speech.wav"
_INPUT_KINDS = f"audio ({', '.join(AUDIO_FILE_SUFFIXES)}) or mel ({', '.join(MEL_FILE_SUFFIXES)})"


@dataclass(frozen=True)
class Job:
    source: Path
    target: Path


@dataclass
class Synthesized:
    job: Job
    audio: Tensor  # (T,) at the model's rate
    input_mel: Tensor  # (n_mels, F): the given mel, or the input audio's


def plan_jobs(inputs: Sequence[str | Path], output: str | Path) -> list[Job]:
    """Pair every input file with its output wav.

    Folders are searched recursively for audio and mel files (one warning counts the other
    files); their outputs keep the paths relative to the folder. ``output`` is a folder, or
    a ``.wav`` path for a single input file. A missing input is planned like a file: it
    fails when it is read, alone. Raises ``ValueError`` for a ``.wav`` output with several
    inputs or a folder, a folder without inputs, two inputs mapped to one output, or an
    output that is an input.
    """
    output, paths = Path(output), [Path(p) for p in inputs]
    to_file = output.suffix.lower() == ".wav"
    if to_file and (len(paths) != 1 or paths[0].is_dir()):
        given = f"the input {paths[0]} is a folder" if len(paths) == 1 else f"there are {counted(len(paths), 'input')}"
        raise ValueError(f"the output {output} names one wav file, but {given}; give an output folder instead")
    jobs: list[Job] = []
    for item in paths:
        if item.is_dir():
            found = audio_files(item, AUDIO_FILE_SUFFIXES + MEL_FILE_SUFFIXES, warn_skipped=True)
            if not found:
                raise ValueError(f"no {_INPUT_KINDS} files under {item}")
            jobs += [Job(p, output / p.relative_to(item).with_suffix(".wav")) for p in found]
        else:
            jobs.append(Job(item, output if to_file else output / f"{item.stem}.wav"))
    sources = {job.source.resolve() for job in jobs}
    seen: dict[Path, Path] = {}
    for job in jobs:
        target = job.target.resolve()
        if target in sources:
            raise ValueError(f"the output {job.target} would overwrite an input; choose another output folder")
        if target in seen:
            raise ValueError(f"{seen[target]} and {job.source} would both be written to {job.target}")
        seen[target] = job.source
    return jobs


def _shortest_input(generator: nn.Module) -> int:
    """The fewest samples of audio (at the generator's rate) that it can synthesise: one mel
    frame, and more than the mel's reflect padding of (n_fft − hop) / 2 on each side."""
    mel = generator.config.mel_config
    return max(mel.hop_length, (mel.n_fft - mel.hop_length) // 2 + 1)


def _load(generator: nn.Module, path: Path, strict: bool) -> tuple[Tensor, int]:
    """The mel to vocode (n_mels, F) and the number of output samples. Called under no_grad."""
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix in MEL_FILE_SUFFIXES:
        mel = read_mel(path, generator.num_mels)
        return mel, mel.shape[-1] * generator.hop_length
    if suffix not in AUDIO_FILE_SUFFIXES:
        raise ValueError(f"{path}: unsupported input type {suffix!r}; expected {_INPUT_KINDS}")
    sr, shortest = generator.sample_rate, _shortest_input(generator)
    with naming_warnings(path):
        wav = read_audio(path, sr, strict=strict)  # (T,)
        if wav.numel() < shortest:
            raise ValueError(
                f"{path} is too short to synthesize: {counted(wav.numel(), 'sample')} ({1000 * wav.numel() / sr:.1f} ms at "
                f"{sr} Hz); the model needs at least {counted(shortest, 'sample')} ({1000 * shortest / sr:.1f} ms)"
            )
        if not torch.isfinite(wav).all():
            raise ValueError(f"{path} contains NaN or infinite samples")
        mel = generator.mel(wav[None, None].to(next(generator.parameters()).device))[0]  # (1, 1, T) -> (n_mels, F)
    return mel, wav.numel()


@torch.no_grad()
def synthesize_files(
    generator: nn.Module, jobs: Sequence[Job], *, batch_size: int = 1, chunk_frames: int | None = None, strict: bool = False
) -> Iterator[Synthesized | tuple[Job, Exception]]:
    """Vocode every job's input; yields a :class:`Synthesized` per success and
    ``(job, error)`` per input that could not be used, so the others still run.

    With ``batch_size`` > 1 inputs go through the generator as padded batches
    (:func:`synthesize_batch`, exact per item); with 1, an input longer than ``chunk_frames``
    mel frames goes in chunks of that many (:func:`synthesize_chunked`, exact; the
    generator's receptive field is measured then, once), any other whole. ``strict``: a
    truncated audio file fails instead of giving a warning (:func:`read_audio`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(jobs), batch_size):
        loaded = []
        for job in jobs[start : start + batch_size]:
            try:
                loaded.append((job, *_load(generator, job.source, strict)))
            except (ValueError, OSError) as err:
                yield job, err
        if not loaded:
            continue
        mels = [mel for _, mel, _ in loaded]
        if len(loaded) == 1:
            mel = like_parameters(generator, mels[0][None])  # (1, n_mels, F) on the generator's device, in its dtype
            chunked = chunk_frames is not None and mel.shape[-1] > chunk_frames
            audios = [synthesize_chunked(generator, mel, chunk_frames) if chunked else generator(mel)]
        else:
            audios = synthesize_batch(generator, mels)
        for (job, mel, length), audio in zip(loaded, audios):
            yield Synthesized(job, fit_length(audio, length).cpu(), mel.cpu())
