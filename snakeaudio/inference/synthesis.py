"""Exact synthesis beyond one mel at a time: padded batches, streams of mel chunks, copy synthesis.

All of it rests on the generator's receptive field R (:func:`receptive_field`): the audio
of mel frame t depends on frames t − R … t + R only. So

- in a batch padded to the longest item, an item's frames t < F − R never see the
  padding; only its last R frames are recomputed alone (with R frames of left context);
- in a stream, once frames up to N have arrived, the audio of frames t < N − R is final
  and can be handed out; the last R frames wait for more input or for the end.

Both reproduce ``generator(mel)`` to float rounding. Zero-masking the padding inside the
network would not: the anti-aliased activations replicate-pad at the signal's ends.

>>> from snakeaudio.models import Generator, preset
>>> generator = Generator(preset("tiny_16khz_80band")).prepare_for_inference()
>>> mel = torch.randn(1, 80, 40)
>>> whole = generator(mel)  # (1, 80, 40) -> (1, 1, 40 · 256)
>>> streamed = torch.cat(list(stream_synthesis(generator, mel.split(7, dim=-1))), dim=-1)
>>> torch.allclose(streamed, whole[0], atol=1e-5)
True
>>> [a.shape for a in synthesize_batch(generator, [mel[0, :, :9], mel[0]])]
[torch.Size([1, 2304]), torch.Size([1, 10240])]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .chunked import receptive_field, synthesize_chunked

__all__ = ["copy_synthesize", "stream_synthesis", "streaming_latency", "synthesize_batch"]


def _like_parameters(generator: nn.Module, x: Tensor) -> Tensor:
    """``x`` on the generator's device, in its dtype."""
    first = next(generator.parameters())
    return x.to(device=first.device, dtype=first.dtype)


def _frames(generator: nn.Module, mel: object, name: str, *, batched: bool) -> Tensor:
    """Check one mel (num_mels, F) (or (1, num_mels, F) when ``batched``) and return it as (num_mels, F)."""
    shape = tuple(mel.shape) if isinstance(mel, Tensor) else type(mel).__name__
    if isinstance(mel, Tensor) and batched and mel.dim() == 3 and mel.shape[0] == 1:
        mel = mel[0]  # (1, num_mels, f) -> (num_mels, f)
    if not isinstance(mel, Tensor) or mel.dim() != 2 or mel.shape[0] != generator.num_mels:
        expected = f"({generator.num_mels}, F)" + (f" or (1, {generator.num_mels}, F)" if batched else "")
        raise ValueError(f"{name}: expected a mel spectrogram shaped {expected}, got {shape}")
    if not mel.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point mel spectrogram, got dtype {mel.dtype}")
    return _like_parameters(generator, mel)


@torch.no_grad()
def synthesize_batch(generator: nn.Module, mels: Sequence[Tensor]) -> list[Tensor]:
    """Vocode mels of different lengths as one padded batch; each result equals
    ``generator(mel[None])[0]`` to float rounding: the padding never leaks into the audio.

    The batch is padded to the longest mel (repeating its last frame). Every shorter item
    then has its last R = :func:`receptive_field` frames, the only ones the padding can
    reach, recomputed from a window of its last 2R frames (all of it when shorter); these
    windows go through the generator as one more batch per window length.

    Returns a list of tensors on the generator's device.

    Shape: [(num_mels, F_i)] -> [(1, F_i · hop)].
    """
    items = [_frames(generator, mel, f"mels[{i}]", batched=False) for i, mel in enumerate(mels)]
    if not items:
        return []
    hop = generator.hop_length
    lengths = [mel.shape[-1] for mel in items]
    if min(lengths) == 0:
        raise ValueError(f"mels[{lengths.index(0)}] has no frames; every mel needs at least one")
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
def stream_synthesis(generator: nn.Module, mel_chunks: Iterable[Tensor]) -> Iterator[Tensor]:
    """Vocode a mel that arrives in chunks, yielding audio as soon as it is final.

    Chunks may have any number of frames (zero included). After frames up to N have
    arrived, the audio of frames t < N − R (R = :func:`receptive_field`) cannot change any
    more: it is computed with R frames of left context and yielded. The remaining R frames
    are yielded when ``mel_chunks`` ends. Concatenated along the last axis, the yielded
    pieces equal ``generator(mel)[0]`` for the whole mel, to float rounding.

    A chunk of f frames costs one generator call on at most 2R + f frames; 2R frames are
    kept between chunks. The look-ahead this costs is :func:`streaming_latency`.

    Shape: chunks (num_mels, f) or (1, num_mels, f) -> pieces (1, f' · hop), on the
    generator's device.
    """
    field, hop = receptive_field(generator), generator.hop_length
    kept: Tensor | None = None  # (num_mels, n): received frames still needed as context
    offset = 0  # index of the first kept frame in the whole stream
    received = emitted = 0  # frames received; frames whose audio has been yielded

    def audio_until(stop: int) -> Tensor:
        """The audio of frames emitted … stop − 1, from the kept frames."""
        start = max(0, emitted - field) - offset  # R frames of left context, or the stream's start
        audio = generator(kept[None, :, start:])  # (1, num_mels, W) -> (1, 1, W · hop)
        first = (emitted - offset - start) * hop
        return audio[0, :, first : first + (stop - emitted) * hop].clone()  # (1, (stop - emitted) · hop)

    for index, chunk in enumerate(mel_chunks):
        chunk = _frames(generator, chunk, f"mel chunk {index}", batched=True)  # (num_mels, f)
        if chunk.shape[-1] == 0:
            continue
        kept = chunk if kept is None else torch.cat([kept, chunk], dim=-1)
        received += chunk.shape[-1]
        final = received - field  # frames t < final have all R frames of right context
        if final > emitted:
            yield audio_until(final)
            emitted = final
            drop = max(0, emitted - field) - offset  # context the next step no longer needs
            kept, offset = kept[:, drop:], offset + drop
    if received > emitted:
        yield audio_until(received)  # the stream's end: the last frames see the signal end, as in whole synthesis


def streaming_latency(generator: nn.Module) -> float:
    """Seconds of algorithmic look-ahead of :func:`stream_synthesis`.

    The audio of a frame is final only once the R = :func:`receptive_field` frames after it
    have arrived, so a stream lags its input by R · hop / sample_rate seconds. Compute time
    and the duration of the chunks themselves come on top.

    >>> from snakeaudio.models import Generator, preset
    >>> generator = Generator(preset("tiny_16khz_80band"))
    >>> generator.hop_length, generator.sample_rate
    (256, 16000)
    >>> streaming_latency(generator) == receptive_field(generator) * 256 / 16000
    True
    """
    return receptive_field(generator) * generator.hop_length / generator.sample_rate


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
    mel = _like_parameters(generator, mel)
    audio = generator(mel) if chunk_frames is None else synthesize_chunked(generator, mel, chunk_frames)
    audio = audio.reshape(-1)[: wav.numel()]  # (1, 1, F · hop) -> (min(F · hop, T),)
    return F.pad(audio, (0, wav.numel() - audio.numel()))
