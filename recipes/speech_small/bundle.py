"""Bundle a speech_small run as a package model: weights, config and a model card with measured metrics.

    python recipes/speech_small/bundle.py runs/speech_small --evaluate tests/data/audio

Copies the run's generator (``config.json``, ``model.safetensors``) to
``snakeaudio/pretrained/<name>/`` and writes its ``README.md``: training data, recipe,
steps, training time, the last validation metrics, and copy-synthesis metrics on real
recordings the model never saw, against Griffin-Lim, as ``snakeaudio evaluate`` measures them.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from snakeaudio.dsp.io import audio_files
from snakeaudio.inference.evaluate import evaluate
from snakeaudio.models import DEFAULT_MODEL, from_pretrained
from snakeaudio.models.checkpoint import BUNDLED, CONFIG_FILE, WEIGHTS_FILE


def training_summary(run: Path) -> tuple[int, float, dict]:
    """Last step, wall-clock hours over every (resumed) segment, and the last validation record."""
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    seconds, segment, previous = 0.0, 0.0, -1.0
    for record in records:
        if "time" in record:
            if record["time"] < previous:  # the clock restarts when a run resumes
                seconds += segment
            segment = previous = record["time"]
    validation = [r for r in records if "val_mel_l1" in r]
    return max(r["step"] for r in records), (seconds + segment) / 3600, validation[-1] if validation else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="speech_small run folder")
    parser.add_argument("--name", default=DEFAULT_MODEL)
    parser.add_argument("--evaluate", type=Path, required=True, help="folder of real recordings the model never saw")
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    target = BUNDLED / args.name
    target.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        shutil.copyfile(args.run / name, target / name)
    training = json.loads((args.run / "training.json").read_text())
    step, hours, validation = training_summary(args.run)
    opt = training["training"]
    model = from_pretrained(target)
    report = evaluate(model, audio_files(args.evaluate), progress=True)
    means = report.means()
    beats = {
        "PESQ": means["vocoder"]["pesq"] > means["griffin-lim"]["pesq"],
        "log-mel L1": means["vocoder"]["log_mel_l1"] < means["griffin-lim"]["log_mel_l1"],
    }
    adversarial = max(0, step - opt.get("discriminator_start", 0))
    card = f"""# {args.name}

The default vocoder of snakeaudio: {model.sample_rate // 1000} kHz speech from {model.num_mels}-band log-mel spectrograms (hop {model.hop_length}), {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters.

## Model
Preset `small_24khz_100band`: a BigVGAN-v2-style generator (anti-aliased log-scale SnakeBeta,
AMP blocks) with BigVGAN's mel features (n_fft {model.config.n_fft}, window {model.config.win_size},
fmin {model.config.fmin:g} Hz, fmax {model.config.fmax or model.sample_rate / 2:g} Hz). Weights: `model.safetensors`
(weight norm folded); `config.json` uses BigVGAN's keys.

## Training
Recipe `recipes/speech_small` (`snakeaudio train recipes/speech_small/config.json --output runs/speech_small`),
on 2 CPU cores: {step} steps of batch {opt['batch_size']} × {opt['segment_size']} samples, {hours:.1f} h of training (wall clock, including any time the process was paused).
The first {opt.get('discriminator_start', 0)} steps train the generator on BigVGAN-v2's multi-scale mel loss alone;
{'the adversarial stage (MPD + MRD) has not started yet' if not adversarial else f'then {adversarial} steps with MPD + MRD discriminators (width ×{opt["discriminator_channel_mult"]:g})'}.
Data: the recipe's offline corpus (`recipes/speech_small/prepare_data.py`; see its README for the voices,
recordings and licenses).
Last validation (step {validation.get('step', '–')}, held-out corpus clips): log-mel L1 {validation.get('val_mel_l1', float('nan')):.3f},
MR-STFT {validation.get('val_mrstft', float('nan')):.3f}, PESQ {validation.get('val_pesq', float('nan')):.2f}.

## Copy synthesis on real recordings it never saw
`snakeaudio evaluate {args.evaluate.as_posix()}` ({len(report.files)} clips, {report.duration:.1f} s; read English
speech from LibriTTS and Hi-Fi TTS, CC BY 4.0), with Griffin-Lim (librosa, 32 iterations) as the baseline:

```
{report.format_table(per_file=True)}
```

Against Griffin-Lim: PESQ {'better' if beats['PESQ'] else 'NOT better'}, log-mel L1 {'better' if beats['log-mel L1'] else 'NOT better'}.
Griffin-Lim inverts the very mel the metric compares, so log-mel L1 favours it by construction.

## Limits
Trained on a small corpus (2.4 h: synthetic speech, telephony prompts, words recorded by many
speakers), mostly band-limited below 8 kHz: expect muffled high frequencies and buzz; not for
music or singing. Training continues in later releases
(`snakeaudio train` on the same run folder resumes; see the recipe's README).
"""
    (target / "README.md").write_text(card)
    print(card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
