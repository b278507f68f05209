"""Vocoder models: generator configuration and presets, the generator, discriminators, checkpoints."""

from .checkpoint import (
    DEFAULT_MODEL,
    CheckpointError,
    available_models,
    convert_bigvgan_state_dict,
    from_pretrained,
    save_pretrained,
)
from .config import PRESETS, GeneratorConfig, activation_factory, preset
from .discriminators import (
    CombinedDiscriminator,
    MultiPeriodDiscriminator,
    MultiResolutionDiscriminator,
    MultiScaleSubbandCQTDiscriminator,
    PeriodDiscriminator,
    ResolutionDiscriminator,
    SubbandCQTDiscriminator,
)
from .generator import Generator

__all__ = [
    "GeneratorConfig",
    "PRESETS",
    "preset",
    "activation_factory",
    "Generator",
    "from_pretrained",
    "available_models",
    "DEFAULT_MODEL",
    "save_pretrained",
    "convert_bigvgan_state_dict",
    "CheckpointError",
    "PeriodDiscriminator",
    "MultiPeriodDiscriminator",
    "ResolutionDiscriminator",
    "MultiResolutionDiscriminator",
    "SubbandCQTDiscriminator",
    "MultiScaleSubbandCQTDiscriminator",
    "CombinedDiscriminator",
]
