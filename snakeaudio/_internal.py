"""Argument checks shared across snakeaudio's packages (not public API).

The discriminators (:mod:`snakeaudio.models`), the constant-Q transform and the quality
scores (:mod:`snakeaudio.dsp`) and the losses (:mod:`snakeaudio.train`) check waveforms the
same way; each check raises ``TypeError`` or ``ValueError`` naming what it was handed.
Imports torch alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    import numpy as np

__all__ = ["as_mono", "check_positive", "check_waveform", "check_waveform_pair"]


def check_positive(**values: float) -> None:
    """Raise a ValueError naming the first of ``values`` that is not positive.

    >>> check_positive(sample_rate=16000, fmin=0.0)
    Traceback (most recent call last):
    ...
    ValueError: fmin must be positive, got 0.0
    """
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")


def check_waveform(wav: Tensor, min_length: int, owner: str, why: str) -> None:
    """Raise a TypeError or ValueError unless ``wav`` is a float (B, 1, T) tensor with T >= min_length.

    ``owner`` names the caller in the message and ``why`` the reason for ``min_length``.

    >>> check_waveform(torch.zeros(2, 100), 1, "Model", "one sample")
    Traceback (most recent call last):
    ...
    ValueError: Model expects a mono waveform shaped (B, 1, T), got shape (2, 100) (add the channel axis with wav[:, None])
    """
    if not isinstance(wav, Tensor):
        raise TypeError(f"{owner} expects a torch.Tensor shaped (B, 1, T), got {type(wav).__name__}")
    if wav.dim() != 3 or wav.shape[1] != 1:
        hint = " (add the channel axis with wav[:, None])" if wav.dim() == 2 else ""
        raise ValueError(f"{owner} expects a mono waveform shaped (B, 1, T), got shape {tuple(wav.shape)}{hint}")
    if not wav.is_floating_point():
        raise ValueError(f"{owner} expects a floating-point waveform, got dtype {wav.dtype}")
    if wav.shape[-1] < min_length:
        raise ValueError(f"{owner} needs at least {min_length} samples ({why}), got T={wav.shape[-1]}")


def check_waveform_pair(a: Tensor, b: Tensor, names: tuple[str, str], min_length: int, why: str) -> None:
    """Raise a TypeError or ValueError unless ``a`` and ``b`` are float waveforms of one shape,
    (T,), (B, T) or (B, C, T), with T >= min_length.

    ``names`` name the two arguments in the message and ``why`` the reason for ``min_length``.
    """
    for name, x in zip(names, (a, b)):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise ValueError(f"{name} must be a floating-point waveform, got dtype {x.dtype}")
        if x.dim() not in (1, 2, 3):
            raise ValueError(f"{name} must be shaped (T,), (B, T) or (B, C, T), got shape {tuple(x.shape)}")
    if a.shape != b.shape:
        raise ValueError(f"{names[0]} and {names[1]} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.shape[-1] < min_length:
        raise ValueError(f"the waveforms need at least {min_length} samples ({why}), got T={a.shape[-1]}")


def as_mono(wav: Tensor | np.ndarray, name: str) -> Tensor:
    """A float32 CPU tensor (T,) from one waveform (T,), (1, T) or (1, 1, T); ``name`` names it in the error.

    >>> as_mono(torch.zeros(1, 1, 4, dtype=torch.float64), "reference")
    tensor([0., 0., 0., 0.])
    """
    wav = torch.as_tensor(wav).detach()
    if wav.dim() > 1 and any(size != 1 for size in wav.shape[:-1]):
        raise ValueError(
            f"{name} must be one mono waveform shaped (T,), (1, T) or (1, 1, T), got shape {tuple(wav.shape)}"
        )
    return wav.reshape(-1).float().cpu()
