"""Where a vocoder's hop comb comes from, and how its discriminators and generator balance.

    python recipes/speech_small/diagnose.py --model speech_small_24khz --clip tests/data/audio/libritts_24k.wav \
        --metrics recipes/speech_small/resume/metrics.jsonl

1. The comb through the generator: for every stage of ``model.stages()`` the hop comb
   (:func:`snakeaudio.dsp.hop_comb_db`) of each channel of the stage's output, at that
   stage's own rate (the lines stay at multiples of the frame rate, sr/hop), mean over
   channels, on the copy synthesis of ``--clip``; then the output's comb minus the clip's.
2. The comb of the output for inputs that hold no comb: the mel of white noise, and the
   mel of the clip with each frame's position moved by half a hop (shifted audio).
3. With ``--metrics`` (a run's ``metrics.jsonl``): the discriminator and generator losses,
   the feature-matching loss and both gradient norms, averaged per 1000 steps of the
   adversarial stage.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import torch

from snakeaudio.dsp import hop_comb_db, read_audio
from snakeaudio.models import from_pretrained


def stage_combs(model, wav: torch.Tensor) -> list[tuple[str, float, float]]:
    """(stage, its rate in Hz, mean comb over channels in dB) for each stage of the copy synthesis of ``wav``."""
    frame_rate = model.sample_rate / model.hop_length
    x = model.mel(wav[None])  # (1, n_mels, F)
    frames = x.shape[-1]
    rows = []
    for i, (stage, ratio) in enumerate(model.stages()):
        x = stage(x)  # (1, C, F · r)
        per_frame = x.shape[-1] // frames
        rate = frame_rate * per_frame
        function = getattr(stage, "func", stage)  # a partial's function
        name = f"{i}: {getattr(function, '__name__', type(function).__name__).strip('_')}" + (f" ×{ratio}" if ratio > 1 else "")
        if per_frame < 2:
            rows.append((name, rate, math.nan))  # at the frame rate a comb has no room
            continue
        band = (1000.0, 12000.0) if per_frame == model.hop_length else (0.5 * frame_rate, 0.95 * rate / 2)
        combs = [hop_comb_db(channel, round(rate), per_frame, band=band) for channel in x[0]]
        rows.append((name, rate, float(np.mean(combs))))
    return rows


def balance(metrics: Path, start: int) -> list[str]:
    records = [json.loads(line) for line in metrics.read_text().splitlines() if line]
    steps = [r for r in records if "loss_d" in r and r["step"] > start]
    lines = ["| steps | D loss | G adversarial | feature matching | mel | ‖∇D‖ | ‖∇G‖ |", "|---|---|---|---|---|---|---|"]
    for low in range(start, max(r["step"] for r in steps), 1000):
        block = [r for r in steps if low < r["step"] <= low + 1000]
        if block:
            mean = {k: np.mean([r[k] for r in block]) for k in ("loss_d", "loss_adv", "loss_fm", "loss_mel", "grad_norm_d", "grad_norm_g")}
            lines.append(
                f"| {low}–{low + 1000} | {mean['loss_d']:.2f} | {mean['loss_adv']:.2f} | {mean['loss_fm']:.2f} | "
                f"{mean['loss_mel']:.3f} | {mean['grad_norm_d']:.1f} | {mean['grad_norm_g']:.0f} |"
            )
    return lines


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="speech_small_24khz")
    parser.add_argument("--clip", type=Path, default=Path("tests/data/audio/libritts_24k.wav"))
    parser.add_argument("--metrics", type=Path, default=None)
    parser.add_argument("--discriminator-start", type=int, default=12500)
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    model = from_pretrained(args.model)
    sr, hop = model.sample_rate, model.hop_length
    wav = read_audio(args.clip, sr)
    wav = wav[: wav.numel() // hop * hop]
    print(f"## Hop comb through {args.model} on {args.clip.name} (lines at multiples of {sr / hop:.2f} Hz)\n")
    print("| stage | rate (Hz) | comb (dB, mean over channels) |\n|---|---|---|")
    for name, rate, comb in stage_combs(model, wav):
        print(f"| {name} | {rate:.0f} | {'–' if math.isnan(comb) else f'{comb:.2f}'} |")
    out = model(model.mel(wav[None]))[0, 0]
    print(f"\noutput {hop_comb_db(out, sr, hop):.2f} dB, input {hop_comb_db(wav, sr, hop):.2f} dB\n")
    noise = torch.randn(wav.numel(), generator=torch.Generator().manual_seed(0)) * 0.05
    shifted = wav[hop // 2 :]
    for label, x in (("white noise", noise), ("the clip, half a hop later", shifted)):
        y = model(model.mel(x[None]))[0, 0]
        print(f"{label}: output {hop_comb_db(y, sr, hop):.2f} dB, input {hop_comb_db(x, sr, hop):.2f} dB")
    if args.metrics:
        print(f"\n## Adversarial balance ({args.metrics})\n")
        print("\n".join(balance(args.metrics, args.discriminator_start)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
