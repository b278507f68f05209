"""snakeaudio: Snake activations and vocoder building blocks for periodic audio.

The activations import with torch alone; the vocoder names (``Generator``, ``from_pretrained``,
...) load :mod:`snakeaudio.models`, and with it the audio packages, on first use.
"""

from __future__ import annotations

import importlib

from .nn import (
    PERIODIC_ALPHA,
    STANDARD_ALPHA,
    AntiAliasedActivation1d,
    FlexibleSnake,
    FlexibleSnakeActivation,
    Snake,
    SnakeActivation,
    SnakeBeta,
    init_snake_,
    snake,
)

_MODELS = ("DEFAULT_MODEL", "Generator", "GeneratorConfig", "available_models", "from_pretrained", "save_pretrained")

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


def __getattr__(name: str) -> object:
    if name not in _MODELS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(".models", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
