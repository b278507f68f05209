"""Training configuration: what to train (generator), on what (data) and how (optimisation).

A recipe's JSON file has three sections, each checked for unknown keys::

    {"generator": {"preset": "tiny_16khz_80band", ...BigVGAN keys overriding it...},
     "data": {"kind": "tones" | "folder" | "filelist", ...},
     "training": {"batch_size": 16, "max_steps": 2000, ...}}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from ..models.config import TRAINING_KEYS, GeneratorConfig, preset

__all__ = ["DataConfig", "OptimConfig", "TrainConfig", "DISCRIMINATORS"]

DISCRIMINATORS = ("mpd", "mrd", "cqtd")


def _check_keys(data: dict[str, Any], known: set[str], section: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        named = [f"{key} (did you mean {close[0]}?)" if (close := get_close_matches(key, known, 1)) else key for key in unknown]
        raise ValueError(f"unknown keys in the '{section}' section: {', '.join(named)} (known: {', '.join(sorted(known))})")


def _from_dict(cls, data: dict[str, Any], section: str):
    _check_keys(data, {f.name for f in fields(cls)}, section)
    return cls(**data)


@dataclass(frozen=True)
class DataConfig:
    """Where the training audio comes from.

    kind "tones": synthetic periodic signals (``f0_min``/``f0_max`` in Hz);
    kind "folder": every audio file under ``path``; kind "filelist": BigVGAN's list format
    (``filelist`` of ids relative to ``path``); kind "mels": mel files (.npy/.pt, e.g.
    predicted by an acoustic model) next to their audio under ``path``, for fine-tuning. ``validation`` is a folder of held-out audio.
    For "folder" and "filelist", ``gain_db`` and ``noise_db`` ([low, high] in dB) augment each
    training segment with a random gain and a white-noise floor.
    """

    kind: str = "tones"
    path: str | None = None
    filelist: str | None = None
    validation: str | None = None
    validation_filelist: str | None = None
    f0_min: float = 55.0
    f0_max: float = 880.0
    seed: int = 0
    gain_db: tuple[float, float] | None = None
    noise_db: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("gain_db", "noise_db"):
            value = getattr(self, name)
            if value is not None:
                if not isinstance(value, (list, tuple)) or len(value) != 2 or value[0] > value[1]:
                    raise ValueError(f"{name} must be a range [low, high] in dB with low <= high, got {value}")
                object.__setattr__(self, name, (float(value[0]), float(value[1])))
        if self.kind not in ("tones", "folder", "filelist", "mels"):
            raise ValueError(f"unknown data kind {self.kind!r}; expected tones, folder, filelist or mels")
        if self.kind != "tones" and not self.path:
            raise ValueError(f"data kind {self.kind!r} needs a 'path'")
        if self.kind == "filelist" and not self.filelist:
            raise ValueError("data kind 'filelist' needs a 'filelist'")


@dataclass(frozen=True)
class OptimConfig:
    """Optimisation and bookkeeping (BigVGAN's defaults where it has them)."""

    batch_size: int = 16
    segment_size: int = 8192
    learning_rate: float = 1e-4
    adam_b1: float = 0.8
    adam_b2: float = 0.99
    lr_decay: float = 0.999996  # per step
    clip_grad_norm: float = 500.0
    mel_loss: str = "single"  # "single": L1 on the model's own log-mel (HiFi-GAN); "multiscale": BigVGAN-v2's 7 scales
    lambda_mel: float = 45.0
    lambda_stft: float = 0.0  # multi-resolution STFT loss (spectral convergence + log magnitude), off by default
    lambda_phase: float = 0.0  # APNet's phase losses at the generator's own n_fft and hop, off by default
    lambda_feature: float = 1.0  # on top of the ×2 inside feature_matching_loss, as in HiFi-GAN
    gan_loss: str = "lsgan"
    discriminators: tuple[str, ...] = ("mpd", "mrd")
    discriminator_channel_mult: float = 1.0  # width of every discriminator; < 1 for small CPU runs
    discriminator_segment: int = 0  # samples the discriminators see, a random window of each segment (0: all of it)
    discriminator_start: int = 0  # steps of mel-loss-only warm-up before the discriminators join (about 5x cheaper on CPU)
    max_steps: int = 100_000
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    validate_every: int = 1000
    validation_clips: int = 4
    validation_seconds: float = 3.0  # each validation clip is cut to this length
    log_every: int = 50
    num_workers: int = 0
    seed: int = 1234
    snake_init: str | None = None  # "standard" | "periodic": α of every Snake drawn by init_snake_ when a run starts from scratch

    def __post_init__(self) -> None:
        object.__setattr__(self, "discriminators", tuple(self.discriminators))
        unknown = sorted(set(self.discriminators) - set(DISCRIMINATORS))
        if unknown or not self.discriminators:
            raise ValueError(f"discriminators must be a non-empty subset of {', '.join(DISCRIMINATORS)}, got {list(self.discriminators)}")
        if self.mel_loss not in ("single", "multiscale"):
            raise ValueError(f"mel_loss must be 'single' or 'multiscale', got {self.mel_loss!r}")
        if self.snake_init not in (None, "standard", "periodic"):
            raise ValueError(f"snake_init must be 'standard', 'periodic' or null, got {self.snake_init!r}")
        if self.gan_loss not in ("lsgan", "hinge"):
            raise ValueError(f"gan_loss must be 'lsgan' or 'hinge', got {self.gan_loss!r}")
        if self.lambda_stft < 0 or self.lambda_phase < 0:
            raise ValueError(f"loss weights must be >= 0, got lambda_stft={self.lambda_stft}, lambda_phase={self.lambda_phase}")
        if self.discriminator_start < 0 or self.discriminator_segment < 0:
            raise ValueError(
                "discriminator_start and discriminator_segment must be >= 0, "
                f"got {self.discriminator_start} and {self.discriminator_segment}"
            )
        for name in ("batch_size", "segment_size", "max_steps", "checkpoint_every", "keep_checkpoints", "validate_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class TrainConfig:
    generator: GeneratorConfig
    data: DataConfig = field(default_factory=DataConfig)
    training: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        if self.training.segment_size % self.generator.hop_size:
            raise ValueError(
                f"segment_size must be a multiple of hop_size, got {self.training.segment_size} and {self.generator.hop_size}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        unknown = sorted(set(data) - {"generator", "data", "training"})
        if unknown:
            raise ValueError(f"unknown sections in the training config: {', '.join(unknown)} (expected generator, data, training)")
        gen = dict(data.get("generator", {}))
        _check_keys(gen, {"preset", *(f.name for f in fields(GeneratorConfig)), *TRAINING_KEYS}, "generator")
        base = preset(gen.pop("preset")).to_dict() if "preset" in gen else {}
        return cls(
            generator=GeneratorConfig.from_dict({**base, **gen}),
            data=_from_dict(DataConfig, data.get("data", {}), "data"),
            training=_from_dict(OptimConfig, data.get("training", {}), "training"),
        )

    @classmethod
    def from_json(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config {path} does not exist")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err

    @classmethod
    def from_bigvgan(cls, path: str | Path, data: DataConfig, **training: Any) -> TrainConfig:
        """An official BigVGAN ``config.json`` as a training config: its generator, and its
        optimiser, segment, loss and discriminator settings (MPD + CQT-D or MRD)."""
        generator = GeneratorConfig.from_json(path)
        t = generator.training
        optim = {
            "batch_size": t.get("batch_size"), "segment_size": t.get("segment_size"),
            "learning_rate": t.get("learning_rate"), "adam_b1": t.get("adam_b1"), "adam_b2": t.get("adam_b2"),
            "clip_grad_norm": t.get("clip_grad_norm"), "lambda_mel": t.get("lambda_melloss"),
            "mel_loss": "multiscale" if t.get("use_multiscale_melloss") else "single",
            "discriminators": ("mpd", "cqtd") if t.get("use_cqtd_instead_of_mrd") else ("mpd", "mrd"),
            "discriminator_channel_mult": t.get("discriminator_channel_mult"), "seed": t.get("seed"),
        }  # fmt: skip
        optim = {k: v for k, v in optim.items() if v is not None}
        return cls(generator, data, _from_dict(OptimConfig, {**optim, **training}, "training"))

    def to_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.to_dict(), "data": asdict(self.data), "training": asdict(self.training)}

    def with_overrides(self, **training: Any) -> TrainConfig:
        """A copy with some ``training`` fields replaced (None values are ignored)."""
        changes = {k: v for k, v in training.items() if v is not None}
        return TrainConfig(self.generator, self.data, _from_dict(OptimConfig, {**asdict(self.training), **changes}, "training"))
