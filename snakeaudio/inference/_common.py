"""Helpers that the synthesis modules of :mod:`snakeaudio.inference` share (not public API).

:mod:`.synthesis`, :mod:`.files` and :mod:`.streaming` hand mels to a generator the same way:
checked, on the generator's device and in its dtype; and cut its audio to the input's length.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["checked_mel", "fit_length", "like_parameters"]


def like_parameters(generator: nn.Module, x: Tensor) -> Tensor:
    """``x`` on the generator's device, in its dtype."""
    first = next(generator.parameters())
    return x.to(device=first.device, dtype=first.dtype)


def fit_length(audio: Tensor, length: int) -> Tensor:
    """(..., F · hop) -> (length,): cut, or zero-padded over an audio input's last part-frame.

    >>> import torch
    >>> fit_length(torch.ones(1, 1, 4), 6)
    tensor([1., 1., 1., 1., 0., 0.])
    """
    audio = audio.reshape(-1)[:length]
    return F.pad(audio, (0, length - audio.numel()))


def checked_mel(generator: nn.Module, mel: object, name: str, *, batched: bool) -> Tensor:
    """Check one mel (num_mels, F) (or (1, num_mels, F) when ``batched``) and return it as
    (num_mels, F) on the generator's device, in its dtype; ``name`` names it in the error."""
    shape = tuple(mel.shape) if isinstance(mel, Tensor) else type(mel).__name__
    if isinstance(mel, Tensor) and batched and mel.dim() == 3 and mel.shape[0] == 1:
        mel = mel[0]  # (1, num_mels, f) -> (num_mels, f)
    if not isinstance(mel, Tensor) or mel.dim() != 2 or mel.shape[0] != generator.num_mels:
        expected = f"({generator.num_mels}, F)" + (f" or (1, {generator.num_mels}, F)" if batched else "")
        raise ValueError(f"{name}: expected a mel spectrogram shaped {expected}, got {shape}")
    if not mel.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point mel spectrogram, got dtype {mel.dtype}")
    return like_parameters(generator, mel)
