"""CPU real-time factor of a vocoder (default: the bundled default model), against the same
weights run by NVIDIA's BigVGAN code, side by side in one process. A model BigVGAN's code
cannot run (an iSTFT head) is compared with BigVGAN's code running the previous default
architecture (``small_24khz_100band``, random weights, 2.1 M parameters) instead.

RTF = seconds of compute per second of audio (< 1 is faster than real time). Measured for
whole-input synthesis, for the exact chunked synthesis the `snakeaudio synthesize` command
uses, and for streaming in chunks of one mel frame, 0.1 s and 0.5 s: stage by stage (each
stage recomputing only its own few samples of left context per chunk) and whole (each chunk
recomputing the receptive field of left context through every layer; the shorter look-ahead).
Last, the `snakeaudio synthesize` command itself on a clip of ``--cli-seconds`` (30 s): wall
time of a fresh process, start-up included, per second of audio, without and with the
spectrogram PNG the command writes by default, beside a process that only imports torch (the
floor for any command built on torch).

Run: python benchmarks/inference.py [--model NAME_OR_FOLDER] [--seconds 10] [--repeats 3] [--cli-seconds 30]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from bigvgan.bigvgan import BigVGAN
from bigvgan.env import AttrDict
from common import time_side_by_side

from snakeaudio.inference import EXAMPLE_INPUT, stream_synthesis, streaming_latency, synthesize_chunked
from snakeaudio.inference.chunked import has_state
from snakeaudio.models import DEFAULT_MODEL, Generator, from_pretrained, preset
from snakeaudio.models.checkpoint import inference_state_dict


def bigvgan_with_weights_of(model) -> BigVGAN:
    """NVIDIA's generator built from our config, holding our (weight-norm folded) weights."""
    ref = BigVGAN(AttrDict(model.config.to_dict()))
    ref.remove_weight_norm()
    state = {re.sub(r"^ups\.(\d+)\.", r"ups.\1.0.", k): v for k, v in inference_state_dict(model).items()}
    if model.config.resblock == "2":
        state = {re.sub(r"^(resblocks\.\d+)\.convs1\.", r"\1.convs.", k): v for k, v in state.items()}
    missing, unexpected = ref.load_state_dict(state, strict=False)
    not_filters = [k for k in missing if not k.endswith(("upsample.filter", "lowpass.filter"))]
    if not_filters or unexpected:
        raise RuntimeError(f"weights do not map onto BigVGAN: missing {not_filters[:4]}, unexpected {unexpected[:4]}")
    return ref.eval()


def stream(model, mel, chunk: int, stagewise: bool) -> None:
    for _ in stream_synthesis(model, mel.split(chunk, dim=-1), stagewise=stagewise):
        pass


def cli_seconds_per_run(model: str, seconds: float, repeats: int) -> dict[str, float]:
    """Median wall time of ``snakeaudio synthesize`` in a fresh process on a ``seconds`` clip (the
    bundled example, repeated), with as many threads as this process, after one untimed run
    (which leaves the model's stream supports in the cache folder, as any earlier use would),
    and of a fresh process that only imports torch, in turn with them; keys: "no plot", "plot", "torch"."""
    audio, sr = sf.read(EXAMPLE_INPUT, dtype="float32")
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    times: dict[str, list[float]] = {"no plot": [], "plot": [], "torch": []}
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.wav"
        sf.write(clip, np.resize(audio, round(seconds * sr)), sr)
        output = Path(folder) / "out.wav"
        synthesize = [sys.executable, "-m", "snakeaudio.cli", "synthesize", str(clip), "-o", str(output), "--model", model]
        commands = {"no plot": [*synthesize, "--no-plot"], "plot": synthesize, "torch": [sys.executable, "-c", "import torch"]}
        subprocess.run(commands["no plot"], env=env, check=True, capture_output=True)
        for _ in range(repeats):
            for name, command in commands.items():
                start = time.perf_counter()
                subprocess.run(command, env=env, check=True, capture_output=True)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cli-seconds", type=float, default=30.0, help="length of the clip for the CLI's real-time factor")
    args = parser.parse_args(argv)
    ours = from_pretrained(args.model)
    same_weights = ours.config.head == "waveform"
    ref = bigvgan_with_weights_of(ours if same_weights else Generator(preset("small_24khz_100band")).prepare_for_inference())
    sr, hop = ours.sample_rate, ours.hop_length
    frames = round(args.seconds * sr / hop)
    mel = torch.randn(1, ours.num_mels, frames, generator=torch.Generator().manual_seed(0)) - 4
    chunk = round(10 * sr / hop)
    stream_chunks = [1, *(round(s * sr / hop) for s in (0.1, 0.5))]
    modes = (True,) if has_state(ours) else (True, False)  # a model with state streams stage by stage only
    with torch.inference_mode():
        difference = (ours(mel) - ref(mel)).abs().max().item() if same_weights else float("nan")
        t = time_side_by_side(
            {
                "bigvgan": lambda: ref(mel),
                "whole": lambda: ours(mel),
                "chunked": lambda: synthesize_chunked(ours, mel, chunk),
                **{f"stream {n} {w}": (lambda n=n, w=w: stream(ours, mel, n, w)) for n in stream_chunks for w in modes},
            },
            repeats=args.repeats,
            warmup=1,
        )
    seconds = frames * hop / sr
    print(f"{args.model}: {sum(p.numel() for p in ours.parameters()) / 1e6:.2f} M parameters, {sr} Hz; "
          f"{seconds:.1f} s of audio, float32, {torch.get_num_threads()} threads, torch {torch.__version__}")  # fmt: skip
    print(f"max |snakeaudio - bigvgan| = {difference:.1e} (nan: not the same model); "
          f"streaming look-ahead {streaming_latency(ours) * 1000:.0f} ms stagewise"
          + ("" if has_state(ours) else f", {streaming_latency(ours, stagewise=False) * 1000:.0f} ms whole"))  # fmt: skip
    print(f"{'synthesis':<50} {'RTF':>6} {'vs bigvgan':>11}")
    rows = {
        f"bigvgan ({'same weights' if same_weights else 'small_24khz_100band'}, whole)": t["bigvgan"],
        "snakeaudio whole": t["whole"],
        f"snakeaudio chunked ({chunk} frames)": t["chunked"],
        **{
            f"snakeaudio streaming {'stagewise' if w else 'whole'} ({n}-frame chunks)": t[f"stream {n} {w}"]
            for w in modes for n in stream_chunks
        },
    }
    for name, value in rows.items():
        print(f"{name:<50} {value / seconds:6.3f} {t['bigvgan'] / value:10.2f}x")
    cli = cli_seconds_per_run(args.model, args.cli_seconds, args.repeats)
    print(f"snakeaudio synthesize, a {args.cli_seconds:g} s clip, fresh process (start-up included): RTF "
          f"{cli['no plot'] / args.cli_seconds:.3f} with --no-plot, {cli['plot'] / args.cli_seconds:.3f} writing the PNG; "
          f"a process that only imports torch: {cli['torch']:.2f} s, RTF {cli['torch'] / args.cli_seconds:.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
