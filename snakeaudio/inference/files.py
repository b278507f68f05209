"""Synthesis of files: audio is copy-synthesised (audio → mel → vocoder), mel files are vocoded.

Audio inputs (wav/flac/ogg) are mixed down to mono and resampled to the model's rate; the
output has the input's duration at the model's rate. Mel inputs (``.npy``/``.pt``, shaped
(n_mels, F)) give F · hop samples. A silent input gives a (near-)silent output.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from ..dsp.io import AUDIO_FILE_SUFFIXES, MEL_FILE_SUFFIXES, audio_files, read_audio, read_mel
from .chunked import synthesize_chunked
from .synthesis import _fit_length, _like_parameters, synthesize_batch

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

    Folders are searched recursively for audio and mel files; their outputs keep the paths
    relative to the folder. ``output`` is a folder, or a ``.wav`` path for a single input
    file. Raises ``FileNotFoundError`` for a missing input and ``ValueError`` for a folder
    without inputs, two inputs mapped to one output, or an output that is an input.
    """
    output = Path(output)
    single = len(inputs) == 1 and Path(inputs[0]).is_file()
    jobs: list[Job] = []
    for item in map(Path, inputs):
        if item.is_dir():
            found = audio_files(item, AUDIO_FILE_SUFFIXES + MEL_FILE_SUFFIXES)
            if not found:
                raise ValueError(f"no {_INPUT_KINDS} files under {item}")
            jobs += [Job(p, output / p.relative_to(item).with_suffix(".wav")) for p in found]
        elif item.is_file():
            target = output if single and output.suffix.lower() == ".wav" else output / f"{item.stem}.wav"
            jobs.append(Job(item, target))
        else:
            raise FileNotFoundError(f"input {item} does not exist")
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


def _load(generator: nn.Module, path: Path) -> tuple[Tensor, int]:
    """The mel to vocode (n_mels, F) and the number of output samples. Called under no_grad."""
    suffix = path.suffix.lower()
    if suffix in MEL_FILE_SUFFIXES:
        mel = read_mel(path, generator.num_mels)
        return mel, mel.shape[-1] * generator.hop_length
    if suffix not in AUDIO_FILE_SUFFIXES:
        raise ValueError(f"{path}: unsupported input type {suffix!r}; expected {_INPUT_KINDS}")
    wav = read_audio(path, generator.sample_rate)  # (T,)
    if wav.numel() < generator.hop_length:
        raise ValueError(f"{path} holds {wav.numel()} samples at {generator.sample_rate} Hz, fewer than one frame ({generator.hop_length})")
    if not torch.isfinite(wav).all():
        raise ValueError(f"{path} contains NaN or infinite samples")
    mel = generator.mel(wav[None, None].to(next(generator.parameters()).device))[0]  # (1, 1, T) -> (n_mels, F)
    return mel, wav.numel()


@torch.no_grad()
def synthesize_files(
    generator: nn.Module, jobs: Sequence[Job], *, batch_size: int = 1, chunk_frames: int | None = None
) -> Iterator[Synthesized | tuple[Job, Exception]]:
    """Vocode every job's input; yields a :class:`Synthesized` per success and
    ``(job, error)`` per input that could not be read, so the others still run.

    With ``batch_size`` > 1 inputs go through the generator as padded batches
    (:func:`synthesize_batch`, exact per item); with 1, each input goes in chunks of
    ``chunk_frames`` mel frames (:func:`synthesize_chunked`, exact), or whole when None.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, len(jobs), batch_size):
        loaded = []
        for job in jobs[start : start + batch_size]:
            try:
                loaded.append((job, *_load(generator, job.source)))
            except (ValueError, OSError) as err:
                yield job, err
        if not loaded:
            continue
        mels = [mel for _, mel, _ in loaded]
        if len(loaded) == 1:
            mel = _like_parameters(generator, mels[0][None])  # (1, n_mels, F) on the generator's device, in its dtype
            audios = [synthesize_chunked(generator, mel, chunk_frames) if chunk_frames else generator(mel)]
        else:
            audios = synthesize_batch(generator, mels)
        for (job, mel, length), audio in zip(loaded, audios):
            yield Synthesized(job, _fit_length(audio, length).cpu(), mel.cpu())
