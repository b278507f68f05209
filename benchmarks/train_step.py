"""Training steps on CPU: our generator against the same one built with BigVGAN's torch activation.

Both trainers use the same configuration, initial weights, discriminators, optimiser and
batches; only the generator's anti-aliased activations differ (snakeaudio's fused
``AntiAliasedActivation1d`` vs BigVGAN's ``Activation1d`` wrapping its ``SnakeBeta``).
Steps per second are measured side by side in one process; peak memory of one step in a
fresh subprocess per variant (growth of the peak RSS during the step).

Run: python benchmarks/train_step.py [--steps 5] [--preset small_24khz_100band]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile

import torch
from bigvgan.activations import SnakeBeta as BigVGANSnakeBeta
from bigvgan.alias_free_activation.torch.act import Activation1d
from common import mib, peak_rss_growth, time_side_by_side

from snakeaudio.models import Generator
from snakeaudio.train import TrainConfig, Trainer


def make_trainer(variant: str, preset_name: str, folder: str) -> Trainer:
    config = TrainConfig.from_dict(
        {
            "generator": {"preset": preset_name},
            "data": {"kind": "tones"},
            "training": {"batch_size": 4, "segment_size": 8192, "discriminator_channel_mult": 0.5},
        }
    )
    trainer = Trainer(config, folder, device="cpu")
    if variant == "bigvgan":
        log_scale = config.generator.snake_logscale
        torch.manual_seed(config.training.seed)
        g = Generator(config.generator, activation=lambda c: Activation1d(BigVGANSnakeBeta(c, alpha_logscale=log_scale)))
        missing, unexpected = g.load_state_dict(trainer.generator.state_dict(), strict=False)
        assert not unexpected and all(k.endswith(".filter") for k in missing)  # BigVGAN also stores its filters
        trainer.generator = trainer._g = g
        trainer.opt_g = torch.optim.AdamW(g.parameters(), config.training.learning_rate, betas=(0.8, 0.99))
        trainer.sched_g = torch.optim.lr_scheduler.ExponentialLR(trainer.opt_g, config.training.lr_decay)
    return trainer


def batch(trainer: Trainer) -> torch.Tensor:
    return torch.stack([trainer.train_set[i] for i in range(trainer.config.training.batch_size)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--preset", default="small_24khz_100band")
    parser.add_argument("--peak-memory-child", metavar="VARIANT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory() as tmp:
        if args.peak_memory_child:
            trainer = make_trainer(args.peak_memory_child, args.preset, tmp)
            wav = batch(trainer)
            trainer.train_step(wav)  # warm up
            print(peak_rss_growth(lambda: trainer.train_step(wav)))
            return 0
        ours, ref = make_trainer("snakeaudio", args.preset, tmp + "/a"), make_trainer("bigvgan", args.preset, tmp + "/b")
        wav = batch(ours)
        t = time_side_by_side({"ref": lambda: ref.train_step(wav), "ours": lambda: ours.train_step(wav)}, repeats=args.steps, warmup=1)
    print(f"{args.preset}, batch 4 × 8192 samples, MPD + MRD at half width, float32, {torch.get_num_threads()} threads")
    print(f"{'':<18} {'bigvgan act':>12} {'snakeaudio':>11} {'ratio':>7}")
    print(f"{'steps/s':<18} {1 / t['ref']:12.2f} {1 / t['ours']:11.2f} {t['ref'] / t['ours']:6.2f}x")
    peaks = {}
    for variant in ("bigvgan", "snakeaudio"):
        out = subprocess.run([sys.executable, __file__, "--preset", args.preset, "--peak-memory-child", variant],
                             capture_output=True, text=True, check=True)  # fmt: skip
        peaks[variant] = int(out.stdout.strip().splitlines()[-1])
    print(f"{'peak memory/step':<18} {mib(peaks['bigvgan']):>12} {mib(peaks['snakeaudio']):>11} {peaks['bigvgan'] / peaks['snakeaudio']:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
