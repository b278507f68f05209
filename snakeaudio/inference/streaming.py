"""Streaming synthesis: audio out as mel frames arrive, equal to whole-input synthesis.

A generator with :meth:`~snakeaudio.models.Generator.stages` is streamed stage by stage.
Each stage (a convolution, an upsampling step, the AMP blocks of one resolution, the
output layer) keeps only the few samples of left context its own kernels need, and hands
on an output sample once every input sample it depends on has arrived. A chunk therefore
costs about what it would cost inside whole-input synthesis, plus each stage's context.

Other generators, or any generator with ``stagewise=False``, are streamed whole: every
chunk is vocoded again with the generator's receptive field of left context, which is exact
too and has the shortest look-ahead, but recomputes that context at every layer.

The supports (how many input samples to the left and right an output of a stage depends
on) are measured once per generator by back-propagation, like the receptive field. A stage
with a ``scan(x, carry) -> (y, carry)`` method (a phase vocoder) instead carries its
state from chunk to chunk: it needs no context and has no finite receptive field.

>>> from snakeaudio.models import Generator, preset
>>> generator = Generator(preset("tiny_16khz_80band")).prepare_for_inference()
>>> mel = torch.randn(1, 80, 40)
>>> whole = generator(mel)  # (1, 80, 40) -> (1, 1, 40 · 256)
>>> streamed = torch.cat(list(stream_synthesis(generator, mel.split(7, dim=-1))), dim=-1)
>>> torch.allclose(streamed, whole[0], atol=1e-5)
True
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ._common import checked_mel as _frames
from .chunked import GRADIENT_SCALE, has_state, measure_once, receptive_field

__all__ = ["stream_synthesis", "streaming_latency"]

Stage = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class _Support:
    """An output block (the ``ratio`` outputs of input sample q) depends on inputs q − left … q + right."""

    ratio: int
    left: int
    right: int


_SUPPORTS: weakref.WeakKeyDictionary[nn.Module, list[_Support]] = weakref.WeakKeyDictionary()


def _dependence(stage: Stage, ratio: int, probe: Tensor) -> Tensor:
    """Which input samples of ``probe`` (1, C, N) the outputs of input samples N/2 … N/2 + 3
    depend on, each block on its own: (4, N) bool. Four neighbours, because a stage
    with inner resampling (the anti-aliased activations) can reach further at some phases."""
    probe = probe.detach().requires_grad_(True)
    out = stage(probe)  # (1, C, N) -> (1, C', N · ratio)
    n = probe.shape[-1]
    if out.shape[-1] != n * ratio:
        raise ValueError(f"a stage of ratio {ratio} mapped {n} samples to {out.shape[-1]}")
    rows = []
    for q in range(n // 2, n // 2 + 4):
        block = out[..., q * ratio : (q + 1) * ratio]
        weights = torch.randn(block.shape, generator=torch.Generator().manual_seed(q))  # no cancellation
        (grad,) = torch.autograd.grad((block * weights).sum() * GRADIENT_SCALE, probe, retain_graph=True)
        rows.append(grad[0].abs().sum(0) > 0)
    return torch.stack(rows)


def _measure(generator: nn.Module) -> list[_Support]:
    """The support of every stage of a float32 CPU generator in eval mode, probed with
    zeros and with the previous stage's response to a noise mel (so that an output clipped
    at one of them cannot hide an input), on longer probes until it fits."""
    supports = []
    with torch.inference_mode(False), torch.enable_grad():
        x = torch.randn(1, generator.num_mels, 64, generator=torch.Generator().manual_seed(0))
        for stage, ratio in generator.stages():
            if hasattr(stage, "scan"):
                supports.append(_Support(ratio, 0, 0))
                with torch.no_grad():
                    x = stage(x)
                continue
            length = 64
            while True:
                used = _dependence(stage, ratio, torch.zeros(1, x.shape[1], length))
                used |= _dependence(stage, ratio, _tile(x, length))
                if not used.any(dim=1).all():
                    raise ValueError("cannot measure a stage's support: its output does not depend on its input at the probes")
                if not (used[:, 0].any() or used[:, -1].any()):
                    break
                if length >= 1 << 20:
                    raise ValueError("a stage's support exceeds 2^20 samples: it is not a finite-context convolution")
                length *= 2
            left = right = 0
            for offset, row in enumerate(used):  # row: what input sample length/2 + offset's outputs depend on
                indices, q = row.nonzero().flatten(), length // 2 + offset
                left, right = max(left, q - int(indices.min())), max(right, int(indices.max()) - q)
            supports.append(_Support(ratio, left, right))
            with torch.no_grad():
                x = stage(x)  # (1, C, n) -> (1, C', n · ratio): the next stage's noise probe
    return supports


def _tile(x: Tensor, length: int) -> Tensor:
    """``x`` (1, C, N) repeated or cut to ``length`` samples."""
    return x.repeat(1, 1, math.ceil(length / x.shape[-1]))[..., :length]


def _supports(generator: nn.Module) -> list[_Support]:
    """The measured supports of ``generator.stages()``, once per generator."""
    return measure_once(_SUPPORTS, generator, _measure, _stored_supports)


def _stored_supports(stored: Any) -> list[_Support]:
    if not isinstance(stored, list) or not all(
        isinstance(row, list) and len(row) == 3 and all(type(v) is int and v >= 0 for v in row) for row in stored
    ):
        raise ValueError(f"not a list of stage supports: {stored!r}")
    return [_Support(*row) for row in stored]


def _chain(generator: nn.Module, stagewise: bool) -> list[tuple[Stage, _Support]]:
    """The stages a stream runs: the generator's own, or the whole generator as one stage
    whose support is its receptive field."""
    if stagewise and hasattr(generator, "stages"):
        return [(stage, support) for (stage, _), support in zip(generator.stages(), _supports(generator))]
    if has_state(generator):
        raise ValueError("this generator carries state across frames: stream it stage by stage (stagewise=True)")
    field = receptive_field(generator)
    return [(generator, _Support(generator.hop_length, field, field))]


class _StageStream:
    """One stage fed in pieces: hands on each output once every input it depends on has arrived."""

    def __init__(self, stage: Stage, support: _Support) -> None:
        self.stage, self.support = stage, support
        self.kept: Tensor | None = None  # (B, C, n): received inputs still needed as context
        self.offset = 0  # index of the first kept input in the whole stream
        self.received = self.emitted = 0  # inputs received; inputs whose outputs were handed on

    def push(self, x: Tensor | None, end: bool) -> Tensor | None:
        """New inputs (B, C, n) or None; ``end``: no more will come -> the outputs now final (or None)."""
        if x is not None and x.shape[-1] > 0:
            self.kept = x if self.kept is None else torch.cat([self.kept, x], dim=-1)
            self.received += x.shape[-1]
        stop = self.received if end else self.received - self.support.right  # outputs of inputs < stop are final
        if stop <= self.emitted:
            return None
        ratio, left = self.support.ratio, self.support.left
        start = max(0, self.emitted - left)  # the left context, or the stream's start
        out = self.stage(self.kept[..., start - self.offset :])  # up to the newest input (or the stream's end)
        out = out[..., (self.emitted - start) * ratio : (stop - start) * ratio]
        self.emitted = stop
        drop = max(0, stop - left) - self.offset  # context no later output needs
        self.kept, self.offset = self.kept[..., drop:], self.offset + drop
        return out


class _ScanStream:
    """A stage that carries its state (``scan``) fed in pieces: every input is final at once."""

    def __init__(self, stage: Stage, support: _Support) -> None:
        self.stage, self.carry = stage, None

    def push(self, x: Tensor | None, end: bool) -> Tensor | None:
        if x is None or x.shape[-1] == 0:
            return None
        out, self.carry = self.stage.scan(x, self.carry)
        return out


def _lookahead(generator: nn.Module, stagewise: bool) -> int:
    """Mel frames after a frame that must arrive before its audio is final."""
    hop = generator.hop_length
    received = 1 << 16  # frames: far more than the context of any stage
    final = received
    for _, support in _chain(generator, stagewise):
        final = (final - support.right) * support.ratio  # each stage's final outputs
    return math.ceil((received * hop - final) / hop)


@torch.no_grad()
def stream_synthesis(generator: nn.Module, mel_chunks: Iterable[Tensor], *, stagewise: bool = True) -> Iterator[Tensor]:
    """Vocode a mel that arrives in chunks, yielding audio as soon as it is final.

    Chunks may have any number of frames (zero included). After frames up to N have
    arrived, the audio of frames t < N − L is final and is yielded, L being the look-ahead
    of :func:`streaming_latency` in frames; the rest follows when ``mel_chunks`` ends.
    Concatenated along the last axis, the pieces equal ``generator(mel)[0]`` for the
    whole mel, to float rounding.

    Two ways to get there:

    - ``stagewise=True`` (a generator with ``stages()``, such as
      :class:`~snakeaudio.models.Generator`): stage by stage, each stage keeping only its own
      context. Each chunk costs little more than its share of whole-input synthesis; the
      look-ahead is a few frames longer than the receptive field, as every upsampling step
      rounds it up to whole input samples.
    - ``stagewise=False`` (and any other generator): the whole generator is re-run on each
      chunk with the receptive field R of context on the left. The look-ahead is R itself,
      the shortest possible, but every chunk recomputes 2R frames' worth of every layer.

    Shape: chunks (num_mels, f) or (1, num_mels, f) -> pieces (1, f' · hop), on the
    generator's device.
    """
    hop = generator.hop_length
    streams = [
        (_ScanStream if hasattr(stage, "scan") else _StageStream)(stage, support)
        for stage, support in _chain(generator, stagewise)
    ]

    def push(x: Tensor | None, end: bool) -> Tensor | None:
        for stream in streams:
            x = stream.push(x, end)
            if x is None and not end:
                return None
        return x

    pending: Tensor | None = None  # (1, n): final audio not yet yielded, less than a frame between chunks
    received = 0
    for index, chunk in enumerate(mel_chunks):
        chunk = _frames(generator, chunk, f"mel chunk {index}", batched=True)  # (num_mels, f)
        received += chunk.shape[-1]
        out = push(chunk[None], end=False)  # (1, 1, n) or None
        if out is not None:
            pending = out[0] if pending is None else torch.cat([pending, out[0]], dim=-1)
            ready = pending.shape[-1] // hop * hop
            if ready:
                yield pending[:, :ready].clone()
                pending = pending[:, ready:]
    if received:
        out = push(None, end=True)
        tail = [p for p in (pending, None if out is None else out[0]) if p is not None and p.shape[-1]]
        if tail:
            yield torch.cat(tail, dim=-1)


def streaming_latency(generator: nn.Module, *, stagewise: bool = True) -> float:
    """Seconds of algorithmic look-ahead of :func:`stream_synthesis` (with the same ``stagewise``).

    The audio of a frame is final only once the L frames after it have arrived, so a
    stream lags its input by L · hop / sample_rate seconds. Compute time and the duration
    of the chunks themselves come on top.
    """
    return _lookahead(generator, stagewise) * generator.hop_length / generator.sample_rate
