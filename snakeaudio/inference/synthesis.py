"""Exact synthesis beyond one mel at a time: padded batches and copy synthesis.

Padded batches rest on the generator's receptive field R (:func:`receptive_field`): the
audio of mel frame t depends on frames t − R … t + R only, so in a batch padded to the
longest item an item's frames t < F − R never see the padding; only its last R frames
are recomputed alone (with R frames of left context). This reproduces ``generator(mel)``
to float rounding. Zero-masking the padding inside the network would not: the
anti-aliased activations replicate-pad at the signal's ends. Streams of mel chunks are in
:mod:`snakeaudio.inference.streaming`.

>>> from snakeaudio.models import Generator, preset
>>> generator = Generator(preset("tiny_16khz_80band")).prepare_for_inference()
>>> mel = torch.randn(80, 40)
>>> [a.shape for a in synthesize_batch(generator, [mel[:, :9], mel])]
[torch.Size([1, 2304]), torch.Size([1, 10240])]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._common import checked_mel, fit_length, like_parameters
from .chunked import has_state, receptive_field, synthesize_chunked

__all__ = ["copy_synthesize", "synthesize_batch"]


@torch.no_grad()
def synthesize_batch(generator: nn.Module, mels: Sequence[Tensor]) -> list[Tensor]:
    """Vocode mels of different lengths as one padded batch; each result equals
    ``generator(mel[None])[0]`` to float rounding: the padding never leaks into the audio.

    The batch is padded to the longest mel (repeating its last frame). Every shorter item
    then has its last R = :func:`receptive_field` frames, the only ones the padding can
    reach, recomputed from a window of its last 2R frames (all of it when shorter); these
    windows go through the generator as one more batch per window length. A generator that
    carries state across frames (:func:`has_state`) vocodes each mel on its own instead.

    Returns a list of tensors on the generator's device.

    Shape: [(num_mels, F_i)] -> [(1, F_i · hop)].
    """
    items = [checked_mel(generator, mel, f"mels[{i}]", batched=False) for i, mel in enumerate(mels)]
    if not items:
        return []
    hop = generator.hop_length
    lengths = [mel.shape[-1] for mel in items]
    if min(lengths) == 0:
        raise ValueError(f"mels[{lengths.index(0)}] has no frames; every mel needs at least one")
    if has_state(generator):
        return [generator(mel[None])[0] for mel in items]
    longest = max(lengths)
    batch = torch.stack([F.pad(mel[None], (0, longest - n), mode="replicate")[0] for mel, n in zip(items, lengths)])
    audio = generator(batch)  # (B, num_mels, F_max) -> (B, 1, F_max · hop)
    results = [audio[i, :, : n * hop] for i, n in enumerate(lengths)]  # (1, F_i · hop)

    field = receptive_field(generator)
    windows: dict[int, list[int]] = {}  # window length -> the items recomputed with it
    for i, n in enumerate(lengths):
        if n < longest and field > 0:
            windows.setdefault(min(n, 2 * field), []).append(i)
    for width, group in windows.items():
        tails = generator(torch.stack([items[i][:, -width:] for i in group]))  # (G, num_mels, W) -> (G, 1, W · hop)
        for tail, i in zip(tails, group):
            redo = min(lengths[i], field)  # frames the padding can reach
            head = results[i][:, : (lengths[i] - redo) * hop]  # frames t < F_i - R: exact in the batch
            results[i] = torch.cat([head, tail[:, (width - redo) * hop :]], dim=-1)
    return results


@torch.no_grad()
def copy_synthesize(generator: nn.Module, wav: Tensor, chunk_frames: int | None = None) -> Tensor:
    """Copy synthesis: the generator's own mel of ``wav``, vocoded back to audio of the same length.

    ``wav`` is mono at the generator's sample rate. With ``chunk_frames`` the mel is
    vocoded in exact chunks of that many frames (:func:`synthesize_chunked`, bounded
    memory), otherwise whole. The F = T // hop frames of the mel give F · hop samples; the
    last T − F · hop samples (less than one frame) are zeros, so the output has exactly T.

    Shape: (T,) -> (T,), on the generator's device.
    """
    if not isinstance(wav, Tensor) or wav.dim() != 1:
        shape = tuple(wav.shape) if isinstance(wav, Tensor) else type(wav).__name__
        raise ValueError(f"expected a mono waveform shaped (T,), got {shape}")
    first = next(generator.parameters())
    mel = generator.mel(wav.to(first.device)[None])  # (T,) -> (1, num_mels, F)
    mel = like_parameters(generator, mel)
    audio = generator(mel) if chunk_frames is None else synthesize_chunked(generator, mel, chunk_frames)
    return fit_length(audio, wav.numel())
