"""Snake / SnakeBeta on CPU against BigVGAN's activations, measured side by side.

Run: python benchmarks/snake.py [--shape 8 256 8192] [--repeats 7]
Needs the reference: pip install --no-deps bigvgan==2.4.1 huggingface_hub
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
from bigvgan.activations import Snake as BigVGANSnake
from bigvgan.activations import SnakeBeta as BigVGANSnakeBeta
from common import forward_backward, inference, mib, saved_bytes, time_side_by_side

from snakeaudio import Snake, SnakeBeta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=(8, 256, 8192), metavar=("B", "C", "T"))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    x = torch.randn(*args.shape)
    xg = x.clone().requires_grad_()
    channels = args.shape[1]
    print(f"shape {tuple(args.shape)}, float32, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'activation':<10} {'pass':<17} {'bigvgan':>10} {'snakeaudio':>11} {'ratio':>7}")
    pairs = {
        "Snake": (BigVGANSnake(channels), Snake(channels)),
        "SnakeBeta": (BigVGANSnakeBeta(channels), SnakeBeta(channels)),
    }
    for name, (ref, ours) in pairs.items():
        ours.load_state_dict(ref.state_dict())
        torch.testing.assert_close(ours(x[:1]), ref(x[:1]), atol=1e-5, rtol=1e-5)
        for label, make in (("forward", inference), ("forward+backward", forward_backward)):
            t = time_side_by_side({"ref": make(ref, xg), "ours": make(ours, xg)}, repeats=args.repeats)
            print(f"{name:<10} {label:<17} {t['ref'] * 1e3:8.1f}ms {t['ours'] * 1e3:9.1f}ms {t['ref'] / t['ours']:6.2f}x")
        ref_bytes, our_bytes = saved_bytes(partial(ref, xg)), saved_bytes(partial(ours, xg))
        print(f"{name:<10} {'saved for bwd':<17} {mib(ref_bytes):>10} {mib(our_bytes):>11} {ref_bytes / our_bytes:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
