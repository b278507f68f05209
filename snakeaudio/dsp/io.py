"""Audio and mel files: reading audio for a model, reading mel spectrograms, writing wavs.

Every reader returns float32 CPU tensors and raises a ``ValueError`` that names the file
when the file cannot be used (:func:`read_mel`: ``FileNotFoundError`` when it is missing;
:func:`read_audio`: ``ValueError`` then too), so a batch job can report the bad input and
go on with the others. Warnings name the file too (:func:`naming_warnings` adds the name to
those of code that does not know it).
"""

from __future__ import annotations

import numbers
import os
import pickle
import re
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

__all__ = [
    "AUDIO_FILE_SUFFIXES",
    "MEL_FILE_SUFFIXES",
    "SILENCE_PEAK",
    "atomic_write",
    "audio_files",
    "counted",
    "naming_warnings",
    "read_audio",
    "read_mel",
    "write_wav",
]

AUDIO_FILE_SUFFIXES = (".wav", ".flac", ".ogg")
MEL_FILE_SUFFIXES = (".npy", ".pt")

SILENCE_PEAK = 1e-4
"""Recordings whose peak amplitude stays below this are silent: training skips them and
evaluation does not score them."""


def counted(count: int, noun: str) -> str:
    """``count`` and the noun in the number it needs: ``counted(1, "sample")`` is "1 sample",
    ``counted(3, "sample")`` "3 samples"."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def audio_files(folder: str | Path, suffixes: Sequence[str] = AUDIO_FILE_SUFFIXES, *, warn_skipped: bool = False) -> list[Path]:
    """Files with these suffixes (by default audio: wav, flac, ogg; any letter case) under
    ``folder`` and its subfolders, sorted. With ``warn_skipped``, one warning counts the
    files left out for their type."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no folder at {folder}")
    files = [p for p in folder.rglob("*") if p.is_file()]
    found = sorted(p for p in files if p.suffix.lower() in suffixes)
    skipped = len(files) - len(found)
    if warn_skipped and skipped:
        warnings.warn(f"skipped {counted(skipped, 'file')} under {folder} not ending in {' / '.join(suffixes)}", stacklevel=2)
    return found


def _fraction_present(path: str | Path) -> float | None:
    """For a WAV file whose data ends before its header says (a cut-off copy or download): the
    fraction of the declared data that is there. None for any other file.

    libsndfile reads such a file without complaint, reporting only the frames present.
    """
    with open(path, "rb") as file:
        if file.read(4) != b"RIFF" or file.read(8)[4:] != b"WAVE":
            return None
        size = os.fstat(file.fileno()).st_size
        while len(header := file.read(8)) == 8:
            length = int.from_bytes(header[4:], "little")
            if header[:4] == b"data":
                present = size - file.tell()
                # 0 and 0xFFFFFFFF: a streaming writer's "length unknown"
                return present / length if 0 < length < 0xFFFFFFFF and present < length else None
            file.seek(length + length % 2, os.SEEK_CUR)  # chunks are padded to an even length
    return None


def read_audio(path: str | Path, sample_rate: int, *, strict: bool = False) -> Tensor:
    """Read a file, mix it down to mono and resample it. Returns float32 (T,).

    Raises ``ValueError`` naming the file when it is missing or cannot be opened or decoded.
    A WAV file whose data ends before its header says (truncated) gives what is there, with a
    warning naming the file, or with ``strict`` a ``ValueError``.
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path} does not exist" if not os.path.exists(path) else f"{path} is not a file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # (T, channels)
        fraction = _fraction_present(path)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as err:
        raise ValueError(f"cannot read audio file {path}: {err}") from err
    if fraction is not None:
        seconds = len(data) / rate
        message = f"{path} is truncated: its header promises {seconds / fraction:.2f} s of audio, the file holds {seconds:.2f} s"
        if strict:
            raise ValueError(message)
        warnings.warn(f"{message}; reading what is there", stacklevel=2)
    wav = torch.from_numpy(data).mean(dim=1)  # (T, channels) -> (T,): mono mix-down
    if rate != sample_rate:
        wav = AF.resample(wav, rate, sample_rate)
    return wav


@contextmanager
def naming_warnings(path: str | Path) -> Iterator[None]:
    """Issue the warnings raised inside the block again once it ends, with ``path`` in front
    of those that do not name it: for code that warns about a waveform without knowing its file."""
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for warning in caught:
            message = str(warning.message)
            warnings.warn(message if str(path) in message else f"{path}: {message}", warning.category, stacklevel=3)


def _reason(err: BaseException) -> str:
    """The exception's type and the first sentence of its message."""
    text = str(err).strip().split("\n")[0].split(". ")[0]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _load_array(path: Path) -> Tensor:
    """The array stored in a ``.npy`` or ``.pt`` file, as a CPU tensor (any dtype, any shape)."""
    suffix = path.suffix.lower()
    if suffix not in MEL_FILE_SUFFIXES:
        raise ValueError(
            f"{path}: unsupported mel file type {suffix!r}; expected one of {', '.join(MEL_FILE_SUFFIXES)}"
        )
    if not path.is_file():
        raise FileNotFoundError(f"mel file {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"mel file {path} is empty")
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:  # bad header, truncated data, pickled objects
            raise ValueError(f"cannot read mel file {path}: not a readable numpy.save file ({_reason(err)})") from err
        if not isinstance(array, np.ndarray):  # an .npz archive under a .npy name
            array.close()
            raise ValueError(f"{path} holds {type(array).__name__}, expected a single array saved with numpy.save")
        if array.dtype.kind not in "iuf":
            raise ValueError(f"{path} holds an array of dtype {array.dtype}, expected real (floating-point) mel values")
        return torch.from_numpy(array.astype(np.float32))  # also brings foreign byte orders to the native one
    try:
        # weights_only: tensors and plain containers only; pickled objects are refused, never run.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        refused = re.search(r"unsupported (?:global: )?GLOBAL ([\w.]+)", str(err), flags=re.IGNORECASE)
        if refused:
            raise ValueError(f"{path} holds a pickled {refused[1]}; only tensors are loaded from .pt files") from err
        raise ValueError(
            f"cannot read mel file {path}: not a torch.save file, or it holds pickled objects other than tensors"
        ) from err
    except Exception as err:  # torch.load has no documented error set: KeyError, RuntimeError, EOFError...
        raise ValueError(f"cannot read mel file {path}: not a readable torch.save file ({_reason(err)})") from err
    if isinstance(obj, Tensor) and not (obj.is_complex() or obj.dtype == torch.bool):
        return obj.detach()
    what = f"a tensor of dtype {obj.dtype}" if isinstance(obj, Tensor) else f"a {type(obj).__name__}"
    raise ValueError(f"{path} holds {what}, expected a real-valued tensor saved with torch.save(mel, path)")


def read_mel(path: str | Path, num_mels: int | None = None) -> Tensor:
    """Read a mel spectrogram from a ``.npy`` (``numpy.save``) or ``.pt`` (``torch.save``) file.

    The stored array is shaped (n_mels, F) or (1, n_mels, F); ``num_mels``, when given, is
    the band count the model expects. Nothing is executed while loading: ``.npy`` files are
    read with ``allow_pickle=False`` and ``.pt`` files with ``weights_only=True``.

    Raises ``ValueError`` naming the file for an unknown suffix, a file that cannot be
    decoded, a shape other than the above, the wrong band count, zero frames or
    non-finite values; ``FileNotFoundError`` when it does not exist.

    Shape: file (n_mels, F) or (1, n_mels, F) -> float32 (n_mels, F).
    """
    path = Path(path)
    mel = _load_array(path)
    if mel.dim() == 3 and mel.shape[0] == 1:
        mel = mel[0]  # (1, n_mels, F) -> (n_mels, F)
    if mel.dim() != 2:
        raise ValueError(
            f"{path}: expected a mel spectrogram shaped (n_mels, F) or (1, n_mels, F), got shape {tuple(mel.shape)}"
        )
    bands, frames = mel.shape
    if num_mels is not None and bands != num_mels:
        hint = f" (shape {tuple(mel.shape)} looks transposed: store it as (n_mels, F))" if frames == num_mels else ""
        raise ValueError(f"{path} has {bands} mel bands, the model expects {num_mels}{hint}")
    if frames == 0:
        raise ValueError(f"{path} holds no frames (shape {tuple(mel.shape)})")
    mel = mel.to(torch.float32).contiguous()
    bad = int((~torch.isfinite(mel)).sum())
    if bad:
        raise ValueError(f"{path} contains {bad} NaN or infinite values among {mel.numel()}")
    return mel


def write_wav(path: str | Path, audio: Tensor, sample_rate: int) -> None:
    """Write mono audio in [-1, 1] as a 16-bit PCM wav, atomically.

    The samples go to a temporary file in the target's folder, which then replaces
    ``path`` in one step: readers never see a half-written file, and a failed write leaves
    an existing file as it was. Missing parent folders are created. Samples beyond [-1, 1]
    are clipped, with a warning.

    Shape: (T,) or (1, T).
    """
    path = Path(path)
    if not isinstance(audio, Tensor):
        raise TypeError(f"expected the audio as a torch.Tensor, got {type(audio).__name__}")
    if not (audio.dim() == 1 or (audio.dim() == 2 and audio.shape[0] == 1)):
        raise ValueError(f"expected mono audio shaped (T,) or (1, T), got shape {tuple(audio.shape)}")
    if not audio.is_floating_point():
        raise ValueError(f"expected floating-point audio in [-1, 1], got dtype {audio.dtype}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), got {sample_rate!r}")
    samples = audio.detach().to(device="cpu", dtype=torch.float32).reshape(-1)  # (1, T) -> (T,)
    if not bool(torch.isfinite(samples).all()):
        raise ValueError(f"the audio for {path} contains NaN or infinite samples")
    peak = float(samples.abs().max()) if samples.numel() else 0.0
    if peak > 1.0:
        warnings.warn(f"{path}: peak {peak:.3f} exceeds full scale; samples beyond [-1, 1] are clipped", stacklevel=2)
        samples = samples.clamp(-1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: sf.write(str(tmp), samples.numpy(), int(sample_rate), format="WAV", subtype="PCM_16"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> None:
    """Call ``write(temporary)`` on a hidden file in ``path``'s folder, then rename it to
    ``path`` in one step: readers never see a half-written file, and a failed or interrupted
    write leaves an existing ``path`` as it was (the temporary file is removed)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # as a plain open() would (some writers use 0600)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
