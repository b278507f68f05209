"""Neural-network layers: the Snake family and its functional form."""

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
from .functional import snake, snake_reference

__all__ = [
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
