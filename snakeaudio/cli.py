"""The ``snakeaudio`` command. Thin: parses arguments, calls the library, prints."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from . import __version__
from .kernels.cpu import cpu_library
from .nn import Snake


def _demo(args: argparse.Namespace) -> int:
    """Pass a pure tone through Snake at several α and report the harmonics it adds."""
    sr, f0, seconds = 16_000, 220.0, 1.0
    t = torch.arange(int(sr * seconds)) / sr
    tone = 0.5 * torch.sin(2 * math.pi * f0 * t)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    print(f"snakeaudio {__version__}: fused CPU kernels {'on' if cpu_library() is not None else 'off'}")
    print(f"a {f0:.0f} Hz tone through Snake, y = x + sin²(αx)/α; level of the harmonics relative to the fundamental:")
    print(f"{'alpha':>6} " + " ".join(f"{k * f0:>7.0f}Hz" for k in range(1, 5)) + "  file")
    for alpha in args.alpha:
        with torch.no_grad():
            y = Snake(alpha=alpha)(tone)
        y = y - y.mean()
        spectrum = torch.fft.rfft(y * torch.hann_window(len(y), periodic=False)).abs()
        bins = [int(round(k * f0 * seconds)) for k in range(1, 5)]
        levels = [20 * math.log10(spectrum[b].item() / spectrum[bins[0]].item() + 1e-12) for b in bins]
        path = out / f"snake_alpha_{alpha:g}.wav"
        sf.write(path, (y / y.abs().max()).numpy().astype(np.float32) * 0.5, sr)
        print(f"{alpha:>6g} " + " ".join(f"{lv:>7.1f}dB" for lv in levels) + f"  {path}")
    return 0


def _train(args: argparse.Namespace) -> int:
    import logging

    from .train.config import TrainConfig
    from .train.trainer import Trainer

    # Before any parallel torch op: worker threads inherit the flush-to-zero mode of the
    # thread that starts them (see Trainer on denormals).
    torch.set_flush_denormal(True)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    config = TrainConfig.from_json(args.config).with_overrides(
        max_steps=args.max_steps, checkpoint_every=args.checkpoint_every, batch_size=args.batch_size
    )
    trainer = Trainer(config, args.output, device=args.device)
    if trainer.step and trainer.dist.main:
        print(f"resuming {args.output} from step {trainer.step}")
    elif args.init_from:
        trainer.initialize_from(args.init_from)
    step = trainer.fit()
    if trainer.dist.main:
        print(f"trained to step {step}; the generator is in {args.output} (snakeaudio.from_pretrained)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="snakeaudio", description="Snake activations and vocoders for periodic audio.")
    parser.add_argument("--version", action="version", version=f"snakeaudio {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="pass a tone through Snake and write the results as wav files")
    demo.add_argument("-o", "--output", default="snakeaudio_demo", help="output folder (default: %(default)s)")
    demo.add_argument("--alpha", type=float, nargs="+", default=[0.5, 5.0, 20.0], help="α values to try")
    demo.set_defaults(run=_demo)
    train = sub.add_parser("train", help="train a vocoder from a recipe config; running it again resumes")
    train.add_argument("config", help="training config JSON (see recipes/)")
    train.add_argument("-o", "--output", required=True, help="run folder (created, or resumed when it exists)")
    train.add_argument("--max-steps", type=int, help="override training.max_steps")
    train.add_argument("--checkpoint-every", type=int, help="override training.checkpoint_every")
    train.add_argument("--batch-size", type=int, help="override training.batch_size")
    train.add_argument("--device", help="torch device (default: CUDA when available, else CPU)")
    train.add_argument("--init-from", metavar="FOLDER", help="fine-tune: start from a run or pretrained folder (ignored when resuming)")
    train.set_defaults(run=_train)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
