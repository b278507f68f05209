"""Exact synthesis of long inputs in bounded memory: chunks with a receptive-field overlap.

A generator's output sample depends on a finite window of mel frames (its receptive
field). Synthesising a chunk together with that many context frames on each side and
keeping only the chunk's own samples therefore reproduces whole-input synthesis, up to
float rounding: there are no seams to cross-fade.
"""

from __future__ import annotations

import weakref

import torch
from torch import Tensor, nn

__all__ = ["receptive_field", "synthesize_chunked"]


_FIELDS: weakref.WeakKeyDictionary[nn.Module, int] = weakref.WeakKeyDictionary()


def _measure(generator: nn.Module) -> int:
    hop, frames = generator.hop_length, 96
    while True:
        mel = torch.zeros(1, generator.num_mels, frames, requires_grad=True)
        centre = frames // 2
        with torch.enable_grad():
            out = generator(mel)
            # Gradient of the two output samples at the ends of the centre frame: which frames reach them.
            (out[0, 0, centre * hop] + out[0, 0, (centre + 1) * hop - 1]).backward()
        used = (mel.grad[0].abs().sum(0) > 0).nonzero().flatten()
        if used.min() > 0 and used.max() < frames - 1:
            return int(max(centre - used.min(), used.max() - centre))
        frames *= 2  # the field reached the edges: measure on a longer input


def receptive_field(generator: nn.Module) -> int:
    """Mel frames of context on each side that an output frame depends on, measured once
    per generator by back-propagating from one output frame (weights do not change the
    support: a frame either reaches the output through the convolutions or it does not)."""
    if generator not in _FIELDS:
        first = next(generator.parameters(), None)
        if first is not None and first.device.type != "cpu":
            raise ValueError("measure the receptive field of a CPU copy of the generator")
        was_training = generator.training
        generator.eval()
        try:
            _FIELDS[generator] = _measure(generator)
        finally:
            generator.train(was_training)
    return _FIELDS[generator]


@torch.no_grad()
def synthesize_chunked(generator: nn.Module, mel: Tensor, chunk_frames: int, context: int | None = None) -> Tensor:
    """Vocode ``mel`` (B, num_mels, F) chunk by chunk; equals ``generator(mel)`` to float rounding.

    Args:
        chunk_frames: mel frames synthesised per step (memory grows with chunk + 2·context).
        context: frames of overlap on each side; default: the measured receptive field.

    Shape: (B, num_mels, F) -> (B, 1, F · hop).
    """
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    hop = generator.hop_length
    context = receptive_field(generator) if context is None else context
    frames = mel.shape[-1]
    pieces = []
    for start in range(0, frames, chunk_frames):
        stop = min(start + chunk_frames, frames)
        left, right = max(0, start - context), min(frames, stop + context)
        audio = generator(mel[..., left:right])  # (B, 1, (right - left) · hop)
        pieces.append(audio[..., (start - left) * hop : (stop - left) * hop])
    return torch.cat(pieces, dim=-1)
