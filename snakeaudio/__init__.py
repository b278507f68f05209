"""snakeaudio: Snake activations and vocoder building blocks for periodic audio."""

from .nn import (
    AntiAliasedActivation1d,
    PERIODIC_ALPHA,
    STANDARD_ALPHA,
    FlexibleSnake,
    FlexibleSnakeActivation,
    Snake,
    SnakeActivation,
    SnakeBeta,
    init_snake_,
    snake,
)
from .models import DEFAULT_MODEL, Generator, GeneratorConfig, available_models, from_pretrained, save_pretrained

__version__ = "0.1.0"

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
    "Generator",
    "GeneratorConfig",
    "from_pretrained",
    "available_models",
    "DEFAULT_MODEL",
    "save_pretrained",
    "__version__",
]
