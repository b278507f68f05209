"""Training data: audio files on disk, and synthetic periodic signals generated on the fly.

Every dataset yields mono waveform segments shaped (1, segment_length) in [-1, 1]; the
trainer computes mel features batch-wise with the model's own mel module.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm import tqdm

from ..dsp.io import AUDIO_FILE_SUFFIXES, SILENCE_PEAK, audio_files, read_audio, read_mel

__all__ = ["SILENCE_PEAK", "AudioDataset", "MelAudioDataset", "PeriodicToneDataset", "ToneSpec", "read_audio"]


def _usable(path: Path) -> str | None:
    """Why a file cannot be used (None when it can)."""
    try:
        info = sf.info(str(path))
        if info.frames == 0:
            return "empty"
        with sf.SoundFile(str(path)) as f:
            for block in f.blocks(blocksize=1 << 16, dtype="float32"):
                if np.abs(block).max() >= SILENCE_PEAK:
                    return None
        return "silent"
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return "unreadable"


class AudioDataset(Dataset):
    """Random segments of audio files (wav/flac/ogg), mono, resampled to ``sample_rate``.

    Unreadable, empty and silent files are skipped with one warning that counts them;
    clips shorter than a segment are zero-padded. With ``random_segments=False`` every item
    is the start of its file (for validation).

    Args:
        files: audio file paths.
        sample_rate: the rate every file is resampled to.
        segment_length: samples per item (None: whole files, batch size 1).
        gain_db: augmentation: scale each random segment by a gain drawn uniformly from
            this range (dB), then clip to [-1, 1]; None: as recorded.
        noise_db: augmentation: add white noise at an RMS level drawn uniformly from this
            range (dB full scale); None: none.

    Item: (1, segment_length) float32.
    """

    def __init__(
        self,
        files: Sequence[str | Path],
        sample_rate: int,
        segment_length: int | None,
        random_segments: bool = True,
        source: str = "the file list",
        progress: bool = False,
        gain_db: tuple[float, float] | None = None,
        noise_db: tuple[float, float] | None = None,
    ) -> None:
        paths = [Path(f) for f in files]
        problems: dict[str, int] = {}
        self.files: list[Path] = []
        for path in tqdm(paths, desc="checking audio files", unit="file", disable=not progress):
            why = _usable(path)
            if why is None:
                self.files.append(path)
            else:
                problems[why] = problems.get(why, 0) + 1
        if problems:
            counts = ", ".join(f"{n} {why}" for why, n in sorted(problems.items()))
            warnings.warn(f"skipped {sum(problems.values())} of {len(paths)} audio files in {source}: {counts}", stacklevel=2)
        if not self.files:
            raise ValueError(f"no readable audio file in {source} ({len(paths)} candidates, extensions {', '.join(AUDIO_FILE_SUFFIXES)})")
        self.sample_rate = sample_rate
        self.segment_length = segment_length
        self.random_segments = random_segments
        self.gain_db, self.noise_db = gain_db, noise_db

    @classmethod
    def from_folder(cls, folder: str | Path, sample_rate: int, segment_length: int | None, **kwargs) -> AudioDataset:
        """Every wav/flac/ogg file under ``folder``, recursively."""
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"data folder {folder} does not exist")
        return cls(audio_files(folder), sample_rate, segment_length, source=str(folder), **kwargs)

    @classmethod
    def from_filelist(
        cls, filelist: str | Path, root: str | Path, sample_rate: int, segment_length: int | None, **kwargs
    ) -> AudioDataset:
        """BigVGAN's LibriTTS list format: one ``relative/id|text...`` per line, audio at ``root/relative/id.wav``.

        An entry that already ends in an audio extension is taken as is.
        """
        filelist, root = Path(filelist), Path(root)
        if not filelist.is_file():
            raise FileNotFoundError(f"file list {filelist} does not exist")
        if not root.is_dir():
            raise FileNotFoundError(f"audio folder {root} does not exist")
        files = []
        for line in filelist.read_text().splitlines():
            entry = line.split("|")[0].strip()
            if entry:
                files.append(root / (entry if entry.lower().endswith(AUDIO_FILE_SUFFIXES) else entry + ".wav"))
        return cls(files, sample_rate, segment_length, source=str(filelist), **kwargs)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        wav = read_audio(self.files[index], self.sample_rate)
        n = self.segment_length
        if n is None:
            return wav[None]
        if wav.numel() >= n:
            start = int(torch.randint(0, wav.numel() - n + 1, ())) if self.random_segments else 0
            wav = wav[start : start + n]
        else:
            wav = torch.nn.functional.pad(wav, (0, n - wav.numel()))
        return self._augment(wav)[None]

    def _augment(self, wav: Tensor) -> Tensor:
        """Random gain and noise floor (when configured). Shape: (T,) -> (T,)."""
        if self.gain_db is not None:
            wav = (wav * 10 ** (_uniform(*self.gain_db) / 20)).clamp(-1.0, 1.0)
        if self.noise_db is not None:
            wav = (wav + torch.randn_like(wav) * 10 ** (_uniform(*self.noise_db) / 20)).clamp(-1.0, 1.0)
        return wav


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


class MelAudioDataset(Dataset):
    """Pairs of mel files and their audio, for fine-tuning on mels predicted by another model.

    ``folder`` holds ``NAME.npy`` (or ``NAME.pt``) mels shaped (num_mels, F) next to
    ``NAME.wav`` (or .flac/.ogg) audio of about F·hop samples. Items are aligned random
    windows: (mel (num_mels, segment_frames), wav (1, segment_frames·hop)).
    """

    def __init__(self, folder: str | Path, sample_rate: int, hop_length: int, num_mels: int, segment_frames: int) -> None:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(f"data folder {folder} does not exist")
        self.pairs: list[tuple[Path, Path]] = []
        for mel in sorted([*folder.rglob("*.npy"), *folder.rglob("*.pt")]):
            audio = next((mel.with_suffix(ext) for ext in AUDIO_FILE_SUFFIXES if mel.with_suffix(ext).is_file()), None)
            if audio is not None:
                self.pairs.append((mel, audio))
        if not self.pairs:
            raise ValueError(f"no mel file with matching audio in {folder} (NAME.npy or NAME.pt next to NAME.wav)")
        self.sample_rate, self.hop_length, self.num_mels, self.segment_frames = sample_rate, hop_length, num_mels, segment_frames

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        mel_path, audio_path = self.pairs[index]
        mel = read_mel(mel_path, self.num_mels)  # (num_mels, F)
        wav = read_audio(audio_path, self.sample_rate)
        frames, hop, n = mel.shape[1], self.hop_length, self.segment_frames
        start = int(torch.randint(0, frames - n + 1, ())) if frames > n else 0
        mel = mel[:, start : start + n]
        wav = wav[start * hop : (start + n) * hop]
        mel = torch.nn.functional.pad(mel, (0, n - mel.shape[1]), mode="replicate") if mel.shape[1] < n else mel
        return mel, torch.nn.functional.pad(wav, (0, n * hop - wav.numel()))[None]


@dataclass(frozen=True)
class ToneSpec:
    """Ranges the synthetic tones are drawn from."""

    f0_min: float = 55.0
    f0_max: float = 880.0
    max_notes: int = 3
    vibrato_max_depth: float = 0.03  # fraction of f0
    vibrato_rate: tuple[float, float] = (3.0, 7.0)  # Hz
    amplitude: tuple[float, float] = (0.1, 0.9)

    def __post_init__(self) -> None:
        if not 0 < self.f0_min < self.f0_max:
            raise ValueError(f"expected 0 < f0_min < f0_max, got {self.f0_min}, {self.f0_max}")
        if self.max_notes < 1:
            raise ValueError(f"max_notes must be >= 1, got {self.max_notes}")


_WAVEFORMS = ("sine", "saw", "square", "tilted")


class PeriodicToneDataset(Dataset):
    """Harmonic tones generated on the fly, reproducible by seed.

    Each item is a chord of 1–``max_notes`` notes with log-uniform f0 in ``[f0_min, f0_max]``,
    vibrato, an attack/decay envelope and a spectrum drawn from sine, saw-like (1/k),
    square-like (odd harmonics, 1/k) or a random spectral tilt; harmonics stay below Nyquist.

    Item: (1, segment_length) float32. ``dataset.describe(i)`` returns what item i holds.
    """

    def __init__(
        self, sample_rate: int, segment_length: int, size: int = 10_000, spec: ToneSpec = ToneSpec(), seed: int = 0
    ) -> None:
        if spec.f0_max >= sample_rate / 2:
            raise ValueError(f"f0_max ({spec.f0_max} Hz) must be below Nyquist ({sample_rate / 2} Hz)")
        self.sample_rate = sample_rate
        self.segment_length = segment_length
        self.size = size
        self.spec = spec
        self.seed = seed

    def __len__(self) -> int:
        return self.size

    def describe(self, index: int) -> list[dict]:
        """The notes of item ``index``: f0, waveform, vibrato, amplitude."""
        rng = np.random.default_rng([self.seed, index])
        s = self.spec
        notes = []
        for _ in range(int(rng.integers(1, s.max_notes + 1))):
            notes.append(
                {
                    "f0": float(math.exp(rng.uniform(math.log(s.f0_min), math.log(s.f0_max)))),
                    "waveform": _WAVEFORMS[int(rng.integers(len(_WAVEFORMS)))],
                    "tilt": float(rng.uniform(0.5, 2.5)),
                    "vibrato_depth": float(rng.uniform(0, s.vibrato_max_depth)),
                    "vibrato_rate": float(rng.uniform(*s.vibrato_rate)),
                    "phase": float(rng.uniform(0, 2 * math.pi)),
                    "attack": float(rng.uniform(0.002, 0.1)),
                    "decay": float(rng.uniform(0.2, 3.0)),
                }
            )
        amplitude = float(rng.uniform(*s.amplitude))
        return [dict(n, amplitude=amplitude) for n in notes]

    def __getitem__(self, index: int) -> Tensor:
        notes = self.describe(index)
        t = np.arange(self.segment_length) / self.sample_rate
        out = np.zeros(self.segment_length)
        for note in notes:
            f0 = note["f0"] * (1 + note["vibrato_depth"] * np.sin(2 * np.pi * note["vibrato_rate"] * t))
            phase = 2 * np.pi * np.cumsum(f0) / self.sample_rate + note["phase"]
            n_harmonics = max(1, int((self.sample_rate / 2) / (note["f0"] * (1 + note["vibrato_depth"]))))
            k = np.arange(1, n_harmonics + 1)
            if note["waveform"] == "sine":
                gains = (k == 1).astype(float)
            elif note["waveform"] == "saw":
                gains = 1 / k
            elif note["waveform"] == "square":
                gains = (k % 2 == 1) / k
            else:
                gains = k ** -note["tilt"]
            tone = (gains[:, None] * np.sin(k[:, None] * phase[None])).sum(0)
            envelope = np.minimum(t / note["attack"], 1.0) * np.exp(-t / note["decay"])
            out += tone * envelope
        peak = np.abs(out).max()
        out = out / peak * notes[0]["amplitude"] if peak > 0 else out
        return torch.from_numpy(out.astype(np.float32))[None]
