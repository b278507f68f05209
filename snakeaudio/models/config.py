"""Generator configuration: a frozen, self-validating dataclass speaking BigVGAN's ``config.json``.

Field names are BigVGAN's JSON keys, so official configuration files load unchanged and
files we write load in NVIDIA's code. Keys that only matter for training (optimiser,
discriminators, data) are accepted and kept in :attr:`GeneratorConfig.training`; any
other key is an error that lists it.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

from torch import nn

from ..dsp.mel import MelConfig
from ..nn.activations import Snake, SnakeBeta
from ..nn.antialias import AntiAliasedActivation1d
from ..nn.blocks import ActivationFactory

__all__ = ["GeneratorConfig", "TRAINING_KEYS", "ACTIVATIONS", "PRESETS", "preset", "activation_factory"]

TRAINING_KEYS = frozenset(
    {
        "num_gpus", "batch_size", "learning_rate", "adam_b1", "adam_b2", "lr_decay", "seed", "segment_size",
        "num_freq", "fmax_for_loss", "num_workers", "dist_config", "clip_grad_norm", "resolutions", "mpd_reshapes",
        "use_spectral_norm", "discriminator_channel_mult", "use_multiscale_melloss", "lambda_melloss",
        "use_cqtd_instead_of_mrd", "cqtd_filters", "cqtd_max_filters", "cqtd_filters_scale", "cqtd_dilations",
        "cqtd_hop_lengths", "cqtd_n_octaves", "cqtd_bins_per_octaves",
        "use_cuda_kernel",  # written by BigVGAN's save_pretrained; our kernels are chosen automatically
    }
)  # fmt: skip
"""BigVGAN keys that do not shape the generator (training, data, runtime): accepted and kept."""

ACTIVATIONS = ("snake", "snakebeta", "leakyrelu")


@dataclass(frozen=True)
class GeneratorConfig:
    """A generator: conv_pre → [ConvTranspose1d ↑r_i → mean of AMP blocks]×N → [ConvNeXt blocks] → head.

    ``anti_alias`` (snakeaudio's key, default True) wraps every activation in
    :class:`~snakeaudio.nn.AntiAliasedActivation1d`; ``activation="leakyrelu"`` with
    ``anti_alias=False`` gives a HiFi-GAN V1 style generator. ``use_tanh_at_final`` and
    ``use_bias_at_final`` default to True when absent, as in BigVGAN.

    snakeaudio's keys for CPU-efficient generators (absent from BigVGAN's files, where
    their defaults give BigVGAN's architecture):

    - ``convnext_layers``: ConvNeXt blocks with the config's activation after the
      upsampling stages (Vocos' backbone), ``convnext_kernel_size`` depthwise,
      ``convnext_expansion`` × wider inside.
    - ``head``: ``"waveform"`` (activation → conv_post → tanh/clamp, BigVGAN's) or
      ``"istft"``: a 1×1 convolution to log-magnitude and phase of an
      ``istft_n_fft``-point spectrum, inverted with hop ``istft_hop_size``, so that
      ``prod(upsample_rates) · istft_hop_size == hop_size`` (iSTFTNet's pattern; Vocos' with
      no upsampling).
    - ``istft_phase``: ``"frame"`` (each frame's phase from its own features) or
      ``"vocoder"`` (a learned offset on a phase-locked vocoder's phase, which turns
      each partial at its own frequency: see :class:`~snakeaudio.models.generator.PhaseVocoder`).
    - ``griffin_lim_iterations``: rounds of fast Griffin-Lim that make the head's spectrum
      consistent before the last inverse STFT, keeping its magnitude (trained through), with
      ``griffin_lim_momentum`` (Perraudin et al.'s α, in [0, 1]; 0 is plain Griffin-Lim).
    - ``mel_prior``: the log-magnitude is a residual on the pseudo-inverse of the input mel
      (FreeV's prior); needs the head at the mel's own STFT (no upsampling,
      ``istft_n_fft == n_fft``).
    """

    num_mels: int = 100
    sampling_rate: int = 24000
    hop_size: int = 256
    n_fft: int = 1024
    win_size: int = 1024
    fmin: float = 0
    fmax: float | None = None
    upsample_rates: tuple[int, ...] = (4, 4, 2, 2, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (8, 8, 4, 4, 4, 4)
    upsample_initial_channel: int = 1536
    resblock: str = "1"
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))
    activation: str = "snakebeta"
    snake_logscale: bool = True
    anti_alias: bool = True
    use_tanh_at_final: bool = True
    use_bias_at_final: bool = True
    convnext_layers: int = 0
    convnext_kernel_size: int = 7
    convnext_expansion: int = 3
    head: str = "waveform"
    istft_n_fft: int = 16
    istft_hop_size: int = 4
    istft_phase: str = "frame"
    griffin_lim_iterations: int = 0
    griffin_lim_momentum: float = 0.99
    mel_prior: bool = False
    training: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        # Normalise JSON lists to tuples so that configs compare and hash by value.
        for name in ("upsample_rates", "upsample_kernel_sizes", "resblock_kernel_sizes"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        object.__setattr__(self, "resblock_dilation_sizes", tuple(tuple(int(d) for d in ds) for ds in self.resblock_dilation_sizes))
        object.__setattr__(self, "resblock", str(self.resblock))
        if self.resblock not in ("1", "2"):
            raise ValueError(f"resblock must be '1' or '2', got {self.resblock!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; expected one of {', '.join(ACTIVATIONS)}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ValueError(
                f"upsample_rates and upsample_kernel_sizes must have the same length, got "
                f"{len(self.upsample_rates)} != {len(self.upsample_kernel_sizes)}"
            )
        if self.head not in ("waveform", "istft"):
            raise ValueError(f"head must be 'waveform' or 'istft', got {self.head!r}")
        if self.head == "waveform" and math.prod(self.upsample_rates) != self.hop_size:
            raise ValueError(
                f"Expected hop_size == prod(upsample_rates), got {self.hop_size} != {math.prod(self.upsample_rates)}"
            )
        if self.griffin_lim_iterations < 0 or (self.griffin_lim_iterations and self.head != "istft"):
            raise ValueError(f"griffin_lim_iterations needs head 'istft' and must be >= 0, got {self.griffin_lim_iterations}")
        if not 0 <= self.griffin_lim_momentum <= 1:
            raise ValueError(f"griffin_lim_momentum must be in [0, 1], got {self.griffin_lim_momentum}")
        if self.istft_phase not in ("frame", "vocoder"):
            raise ValueError(f"istft_phase must be 'frame' or 'vocoder', got {self.istft_phase!r}")
        if self.head == "istft":
            if math.prod(self.upsample_rates) * self.istft_hop_size != self.hop_size:
                raise ValueError(
                    f"Expected hop_size == prod(upsample_rates) · istft_hop_size, got {self.hop_size} != "
                    f"{math.prod(self.upsample_rates)} · {self.istft_hop_size}"
                )
            if (
                self.istft_n_fft % self.istft_hop_size
                or self.istft_n_fft < 2 * self.istft_hop_size
                or (self.istft_n_fft - self.istft_hop_size) % 2
            ):
                raise ValueError(
                    "istft_n_fft must be a multiple of istft_hop_size, at least twice it, with an even difference, "
                    f"got {self.istft_n_fft} and {self.istft_hop_size}"
                )
        if self.mel_prior and (self.head != "istft" or self.upsample_rates or self.istft_n_fft != self.n_fft):
            raise ValueError(
                "mel_prior needs head 'istft' at the mel's own STFT: no upsample_rates and istft_n_fft == n_fft "
                f"(got head={self.head!r}, upsample_rates={self.upsample_rates}, istft_n_fft={self.istft_n_fft}, n_fft={self.n_fft})"
            )
        if self.convnext_layers < 0 or self.convnext_kernel_size % 2 == 0 or self.convnext_expansion < 1:
            raise ValueError(
                f"expected convnext_layers >= 0, an odd convnext_kernel_size and convnext_expansion >= 1, got "
                f"{self.convnext_layers}, {self.convnext_kernel_size}, {self.convnext_expansion}"
            )
        for rate, kernel in zip(self.upsample_rates, self.upsample_kernel_sizes):
            if kernel < rate or (kernel - rate) % 2:
                raise ValueError(
                    "each upsample kernel must be >= its rate with an even difference (exact ×rate lengths), "
                    f"got kernel {kernel} for rate {rate}"
                )
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ValueError(
                f"resblock_kernel_sizes and resblock_dilation_sizes must have the same length, got "
                f"{len(self.resblock_kernel_sizes)} != {len(self.resblock_dilation_sizes)}"
            )
        if self.upsample_initial_channel % 2 ** len(self.upsample_rates):
            raise ValueError(
                f"upsample_initial_channel ({self.upsample_initial_channel}) must be divisible by 2^{len(self.upsample_rates)}: "
                "it halves at each upsampling"
            )
        _ = self.mel_config  # validates the feature parameters

    @property
    def mel_config(self) -> MelConfig:
        """The log-mel features this generator consumes."""
        return MelConfig(self.sampling_rate, self.n_fft, self.num_mels, self.hop_size, self.win_size, self.fmin, self.fmax)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        """Build from BigVGAN-style keys; training keys are kept, unknown keys are an error."""
        model_keys = {f.name for f in fields(cls)} - {"training"}
        unknown = sorted(set(data) - model_keys - TRAINING_KEYS - {"training"})
        if unknown:
            raise ValueError(f"unknown generator config keys: {', '.join(unknown)}")
        training = {**data.get("training", {}), **{k: v for k, v in data.items() if k in TRAINING_KEYS}}
        return cls(**{k: v for k, v in data.items() if k in model_keys}, training=training)

    def to_dict(self) -> dict[str, Any]:
        """Flat BigVGAN-style dictionary (training keys included), JSON-serialisable."""
        data = asdict(self)
        training = data.pop("training")
        return {**data, **training}

    @classmethod
    def from_json(cls, path: str | Path) -> GeneratorConfig:
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        return cls.from_dict(data)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    def replace(self, **changes: Any) -> GeneratorConfig:
        return replace(self, **changes)


def _anti_aliased(make: ActivationFactory, channels: int) -> nn.Module:
    return AntiAliasedActivation1d(make(channels))


def activation_factory(config: GeneratorConfig) -> ActivationFactory:
    """Resolve the config's activation names into a factory ``channels -> module``."""
    if config.activation == "leakyrelu":
        make: ActivationFactory = lambda channels: nn.LeakyReLU(0.1)  # noqa: E731
    else:
        cls = Snake if config.activation == "snake" else SnakeBeta
        make = partial(cls, log_scale=config.snake_logscale)
    return partial(_anti_aliased, make) if config.anti_alias else make



def _v2(num_mels: int, sampling_rate: int, fmax: float | None = None, hop: int = 256) -> GeneratorConfig:
    rates, kernels = ((4, 4, 2, 2, 2, 2), (8, 8, 4, 4, 4, 4)) if hop == 256 else ((8, 4, 2, 2, 2, 2), (16, 8, 4, 4, 4, 4))
    return GeneratorConfig(
        num_mels=num_mels, sampling_rate=sampling_rate, hop_size=hop, n_fft=4 * hop, win_size=4 * hop, fmax=fmax,
        upsample_rates=rates, upsample_kernel_sizes=kernels, use_tanh_at_final=False, use_bias_at_final=False,
    )  # fmt: skip


def _v1(num_mels: int, sampling_rate: int, fmax: float, base: bool) -> GeneratorConfig:
    if base:
        return GeneratorConfig(
            num_mels=num_mels, sampling_rate=sampling_rate, fmax=fmax, upsample_rates=(8, 8, 2, 2),
            upsample_kernel_sizes=(16, 16, 4, 4), upsample_initial_channel=512,
        )  # fmt: skip
    return GeneratorConfig(num_mels=num_mels, sampling_rate=sampling_rate, fmax=fmax)


PRESETS: dict[str, GeneratorConfig] = {
    # NVIDIA's official configurations (generator part).
    "bigvgan_v2_24khz_100band_256x": _v2(100, 24000),
    "bigvgan_v2_22khz_80band_256x": _v2(80, 22050),
    "bigvgan_v2_22khz_80band_fmax8k_256x": _v2(80, 22050, fmax=8000),
    "bigvgan_v2_44khz_128band_256x": _v2(128, 44100),
    "bigvgan_v2_44khz_128band_512x": _v2(128, 44100, hop=512),
    "bigvgan_24khz_100band": _v1(100, 24000, 12000, base=False),
    "bigvgan_22khz_80band": _v1(80, 22050, 8000, base=False),
    "bigvgan_base_24khz_100band": _v1(100, 24000, 12000, base=True),
    "bigvgan_base_22khz_80band": _v1(80, 22050, 8000, base=True),
    # HiFi-GAN V1 sized generator with LeakyReLU(0.1) and no anti-aliasing, for ablations.
    "hifigan_v1_22khz_80band": GeneratorConfig(
        num_mels=80, sampling_rate=22050, fmax=8000, upsample_rates=(8, 8, 2, 2), upsample_kernel_sizes=(16, 16, 4, 4),
        upsample_initial_channel=512, activation="leakyrelu", anti_alias=False, snake_logscale=False,
    ),  # fmt: skip
    # CPU-efficient generators with an iSTFT head: Snake ConvNeXt blocks at the frame rate on
    # the mel's pseudo-inverse (Vocos + FreeV), the same with a phase vocoder's phase,
    # or AMP stages to 1/4 of the rate (iSTFTNet).
    "istft_24khz_100band": GeneratorConfig(
        upsample_rates=(), upsample_kernel_sizes=(), upsample_initial_channel=256, resblock_kernel_sizes=(),
        resblock_dilation_sizes=(), anti_alias=False, convnext_layers=8, head="istft", istft_n_fft=1024,
        istft_hop_size=256, mel_prior=True,
    ),  # fmt: skip
    "istft_pv_24khz_100band": GeneratorConfig(
        upsample_rates=(), upsample_kernel_sizes=(), upsample_initial_channel=256, resblock_kernel_sizes=(),
        resblock_dilation_sizes=(), anti_alias=False, convnext_layers=8, head="istft", istft_n_fft=1024,
        istft_hop_size=256, istft_phase="vocoder", griffin_lim_iterations=4, mel_prior=True,
    ),  # fmt: skip
    "amp_istft_24khz_100band": GeneratorConfig(
        upsample_rates=(8, 8), upsample_kernel_sizes=(16, 16), upsample_initial_channel=256,
        resblock_kernel_sizes=(3, 7), resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)), head="istft",
        istft_n_fft=16, istft_hop_size=4,
    ),  # fmt: skip
    # Small CPU-friendly generators (16 kHz / 24 kHz speech, periodic tones).
    "tiny_16khz_80band": GeneratorConfig(
        num_mels=80, sampling_rate=16000, hop_size=256, n_fft=1024, win_size=1024, fmax=8000,
        upsample_rates=(8, 4, 2, 2, 2), upsample_kernel_sizes=(16, 8, 4, 4, 4), upsample_initial_channel=128,
        resblock="2", resblock_kernel_sizes=(3, 7), resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)),
        use_tanh_at_final=False, use_bias_at_final=False,
    ),  # fmt: skip
    "small_24khz_100band": GeneratorConfig(
        upsample_rates=(8, 4, 2, 2, 2), upsample_kernel_sizes=(16, 8, 4, 4, 4), upsample_initial_channel=256,
        resblock_kernel_sizes=(3, 7), resblock_dilation_sizes=((1, 3, 5), (1, 3, 5)),
        use_tanh_at_final=False, use_bias_at_final=False,
    ),  # fmt: skip
}


def preset(name: str) -> GeneratorConfig:
    """A named configuration; the error lists the valid names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; expected one of {', '.join(sorted(PRESETS))}") from None
