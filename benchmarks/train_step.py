"""Training steps on CPU: our generator against the same one built with BigVGAN's torch activation.

Both trainers use the same configuration, initial weights, discriminators, optimiser and
batches; only the generator's anti-aliased activations differ (snakeaudio's fused
``AntiAliasedActivation1d`` vs BigVGAN's ``Activation1d`` wrapping its ``SnakeBeta``).
Steps per second are measured side by side in one process; peak memory of one step in a
fresh subprocess per variant (growth of the peak RSS during the step, with large allocations
returned to the system when freed).

Run: python benchmarks/train_step.py [--steps 5] [--preset small_24khz_100band]
     python benchmarks/train_step.py --config recipes/tones/config_waveform.json   # a recipe's generator and batch

The default is the ``speech_small`` generator with batch 4 × 8192 samples and MPD + MRD at
half width; ``--config`` takes the generator and training settings of a recipe instead (the
step always includes the discriminators, whatever the recipe's ``discriminator_start``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch
from bigvgan.activations import SnakeBeta as BigVGANSnakeBeta
from bigvgan.alias_free_activation.torch.act import Activation1d
from common import mib, peak_memory_in_child, peak_rss_growth, time_side_by_side

from snakeaudio.models import Generator
from snakeaudio.train import TrainConfig, Trainer


def benchmark_config(preset_name: str, recipe: Path | None) -> TrainConfig:
    """The recipe's config on synthetic tones with adversarial steps from the start, or the preset's."""
    if recipe is None:
        raw = {"generator": {"preset": preset_name}, "training": {"batch_size": 4, "segment_size": 8192, "discriminator_channel_mult": 0.5}}
    else:
        raw = json.loads(recipe.read_text())
    raw["data"] = {"kind": "tones"}
    raw["training"] = {**raw["training"], "discriminator_start": 0, "num_workers": 0}
    config = TrainConfig.from_dict(raw)
    if config.generator.activation != "snakebeta" or not config.generator.anti_alias:
        raise SystemExit("the comparison needs a generator with anti-aliased SnakeBeta, BigVGAN's activation")
    return config


def make_trainer(variant: str, config: TrainConfig, folder: str) -> Trainer:
    trainer = Trainer(config, folder, device="cpu")
    if variant in ("bigvgan", "identity"):
        log_scale = config.generator.snake_logscale
        torch.manual_seed(config.training.seed)
        if variant == "bigvgan":
            g = Generator(config.generator, activation=lambda c: Activation1d(BigVGANSnakeBeta(c, alpha_logscale=log_scale)))
        else:  # no activation at all: what the step costs without it, whatever its implementation
            g = Generator(config.generator, activation=lambda c: torch.nn.Identity())
        missing, unexpected = g.load_state_dict(trainer.generator.state_dict(), strict=False)
        assert all(k.endswith(".filter") for k in missing)  # BigVGAN also stores its filters
        assert not unexpected or variant == "identity"
        trainer.generator = trainer._g = g
        trainer.opt_g = torch.optim.AdamW(
            g.parameters(), config.training.learning_rate, betas=(config.training.adam_b1, config.training.adam_b2)
        )
        trainer.sched_g = torch.optim.lr_scheduler.ExponentialLR(trainer.opt_g, config.training.lr_decay)
    return trainer


def batch(trainer: Trainer) -> torch.Tensor:
    return torch.stack([trainer.train_set[i] for i in range(trainer.config.training.batch_size)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--preset", default="small_24khz_100band")
    parser.add_argument("--config", type=Path, help="a recipe's training config (overrides --preset)")
    parser.add_argument("--peak-memory-child", metavar="VARIANT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    config = benchmark_config(args.preset, args.config)
    with tempfile.TemporaryDirectory() as tmp:
        if args.peak_memory_child:
            trainer = make_trainer(args.peak_memory_child, config, tmp)
            wav = batch(trainer)
            trainer.train_step(wav)  # warm up
            print(peak_rss_growth(lambda: trainer.train_step(wav)))
            return 0
        trainers = {name: make_trainer(name, config, f"{tmp}/{name}") for name in ("bigvgan", "snakeaudio", "identity")}
        wav = batch(trainers["snakeaudio"])
        t = time_side_by_side({name: (lambda tr=tr: tr.train_step(wav)) for name, tr in trainers.items()}, repeats=args.steps, warmup=1)
    opt = config.training
    print(
        f"{args.config or args.preset}: {sum(p.numel() for p in trainers['snakeaudio'].generator.parameters()) / 1e6:.2f} M generator "
        f"parameters, batch {opt.batch_size} × {opt.segment_size} samples, {' + '.join(d.upper() for d in opt.discriminators)} "
        f"at width {opt.discriminator_channel_mult:g}, float32, {torch.get_num_threads()} threads"
    )
    print(f"{'':<18} {'bigvgan act':>12} {'snakeaudio':>11} {'ratio':>7}")
    print(f"{'steps/s':<18} {1 / t['bigvgan']:12.2f} {1 / t['snakeaudio']:11.2f} {t['bigvgan'] / t['snakeaudio']:6.2f}x")
    print(f"without any activation: {1 / t['identity']:.2f} steps/s, so no activation can make this step more than "
          f"{t['bigvgan'] / t['identity']:.2f}x faster than BigVGAN's; the activations take "
          f"{1 - t['identity'] / t['bigvgan']:.0%} of its step and {max(0.0, 1 - t['identity'] / t['snakeaudio']):.0%} of ours")
    source = ["--config", str(args.config)] if args.config else ["--preset", args.preset]
    peaks = {v: peak_memory_in_child(__file__, *source, "--peak-memory-child", v) for v in ("bigvgan", "snakeaudio")}
    print(f"{'peak memory/step':<18} {mib(peaks['bigvgan']):>12} {mib(peaks['snakeaudio']):>11} "
          f"{peaks['bigvgan'] / peaks['snakeaudio']:6.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
