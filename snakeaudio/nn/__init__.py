"""Neural-network layers: the Snake family, its functional form, the anti-aliased activation, AMP blocks."""

from .activations import (
    PERIODIC_ALPHA,
    STANDARD_ALPHA,
    FlexibleSnake,
    FlexibleSnakeActivation,
    Snake,
    SnakeActivation,
    SnakeBeta,
    init_snake_,
)
from .antialias import AntiAliasedActivation1d
from .blocks import ActivationFactory, AMPBlock, ChannelNorm, ConvNeXtBlock, conv1d, remove_weight_norm
from .functional import snake, snake_reference

__all__ = [
    "AMPBlock",
    "ChannelNorm",
    "ConvNeXtBlock",
    "ActivationFactory",
    "conv1d",
    "remove_weight_norm",
    "AntiAliasedActivation1d",
    "Snake",
    "SnakeBeta",
    "FlexibleSnake",
    "SnakeActivation",
    "FlexibleSnakeActivation",
    "STANDARD_ALPHA",
    "PERIODIC_ALPHA",
    "init_snake_",
    "snake",
    "snake_reference",
]
