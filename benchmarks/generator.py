"""CPU inference of the bigvgan_v2_24khz_100band_256x generator against NVIDIA's, same weights.

Both models get the same random weights (distinct Snake parameters per channel); NVIDIA's is
run as its README runs it: weight norm removed, eval mode, inference mode. Speed is measured
side by side in one process; peak memory in a fresh subprocess per model (peak RSS during
inference minus RSS before it).

Run: python benchmarks/generator.py [--seconds 1 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import torch
from bigvgan.bigvgan import BigVGAN
from bigvgan.env import AttrDict
from common import mib, peak_memory_in_child, peak_rss_growth, time_side_by_side

from snakeaudio.models import Generator, GeneratorConfig, convert_bigvgan_state_dict

CONFIG = Path(__file__).resolve().parents[1] / "tests" / "data" / "bigvgan-configs" / "bigvgan_v2_24khz_100band_256x.json"


def build(which: str, h: dict):
    torch.manual_seed(0)
    ref = BigVGAN(AttrDict(h))
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith((".alpha", ".beta")):
                p.uniform_(-0.6, 0.6)
    if which == "snakeaudio":
        config = GeneratorConfig.from_dict(h)
        ours = Generator(config, weight_norm=False)
        ours.load_state_dict(convert_bigvgan_state_dict(ref.state_dict(), config), strict=True)
        return ours.prepare_for_inference()
    ref.remove_weight_norm()
    return ref.eval()


def peak_memory_child(which: str, frames: int) -> None:
    """Print the peak RSS growth (bytes) of one inference."""
    model = build(which, json.loads(CONFIG.read_text()))
    mel = torch.randn(1, 100, frames)
    with torch.inference_mode():
        model(mel[..., :4])  # warm up: kernels compiled, allocator primed
        print(peak_rss_growth(lambda: model(mel)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also print where snakeaudio's time goes (1 s of audio)")
    parser.add_argument("--peak-memory-child", nargs=2, metavar=("MODEL", "FRAMES"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peak_memory_child:
        peak_memory_child(args.peak_memory_child[0], int(args.peak_memory_child[1]))
        return 0
    h = json.loads(CONFIG.read_text())
    ref, ours = build("bigvgan", h), build("snakeaudio", h)
    print(f"{CONFIG.stem}, float32, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'audio':>6} {'pass':<12} {'bigvgan':>10} {'snakeaudio':>11} {'ratio':>7}")
    for seconds in args.seconds:
        frames = round(seconds * h["sampling_rate"] / h["hop_size"])
        mel = torch.randn(1, h["num_mels"], frames, generator=torch.Generator().manual_seed(1))
        with torch.inference_mode():
            diff = (ours(mel) - ref(mel)).abs().max().item()
            repeats = args.repeats if seconds <= 2 else 1
            t = time_side_by_side({"ref": partial(ref, mel), "ours": partial(ours, mel)}, repeats=repeats, warmup=0)
        print(f"{seconds:>5g}s {'inference':<12} {t['ref']:9.2f}s {t['ours']:10.2f}s {t['ref'] / t['ours']:6.2f}x"
              f"  (RTF {t['ref'] / seconds:.2f} vs {t['ours'] / seconds:.2f}; max |difference| {diff:.1e})")  # fmt: skip
        peaks = {which: peak_memory_in_child(__file__, "--peak-memory-child", which, str(frames)) for which in ("bigvgan", "snakeaudio")}
        print(f"{seconds:>5g}s {'peak memory':<12} {mib(peaks['bigvgan']):>10} {mib(peaks['snakeaudio']):>11}"
              f" {peaks['bigvgan'] / peaks['snakeaudio']:6.2f}x")
    if args.profile:
        profile(ours, h)
    return 0


def profile(model, h: dict) -> None:
    """Share of inference time in convolutions and in the anti-aliased activations."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    mel = torch.randn(1, h["num_mels"], round(h["sampling_rate"] / h["hop_size"]))
    with torch.inference_mode(), torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        model(mel)
    self_us = {e.key: e.self_cpu_time_total for e in prof.key_averages()}
    total = sum(self_us.values())
    convs = sum(v for k, v in self_us.items() if "convolution" in k)
    acts = sum(v for k, v in self_us.items() if k.startswith("snakeaudio::"))
    print(f"snakeaudio, 1 s: {total / 1e3:.0f} ms profiled; convolutions {convs / total:.0%}, "
          f"anti-aliased activations {acts / total:.0%}; bound on the ratio with free activations: "
          f"time_bigvgan / {convs / 1e3:.0f} ms")


if __name__ == "__main__":
    raise SystemExit(main())
