"""Bundle a speech_small run as a package model: weights, config and a model card with measured metrics.

    python recipes/speech_small/bundle.py runs/speech_small --evaluate tests/data/audio --valid data/speech_small/valid \
        --griffin-lim-iterations 8 --griffin-lim-momentum 0.9 --music data/music44k

Copies the run's generator (``config.json``, ``model.safetensors``) to
``snakeaudio/pretrained/<name>/`` and writes its ``README.md``: architecture, training data,
losses, steps, training time, the last validation metrics, and copy-synthesis metrics on real
recordings the model never saw, against Griffin-Lim, as ``snakeaudio evaluate`` prints them:
every file of ``--evaluate`` one by one, ``--count`` clips spread over the recipe's
held-out folder ``--valid`` (as ``compare.py`` picks them), and the music clips of ``--music``,
out of the model's domain (``python recipes/tones/prepare_music.py --output data/music44k
--sample-rate 44100 --tracks 4 --seconds 6``: Fish Fillets NG's tunes and Wesnoth's orchestral
tracks), without DNSMOS, a speech score.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch
from compare import clips

from snakeaudio.dsp.io import audio_files
from snakeaudio.inference.evaluate import evaluate
from snakeaudio.models import DEFAULT_MODEL, PRESETS, GeneratorConfig, from_pretrained
from snakeaudio.models.checkpoint import BUNDLED, CONFIG_FILE, WEIGHTS_FILE

GOALS = "hop comb ≤ 1 dB, F0 error ≤ 20 cents (90th percentile ≤ 50), V/UV F1 ≥ 0.93, PESQ ≥ 3.0, DNSMOS P.808 ≥ Griffin-Lim's"


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


def architecture(config: GeneratorConfig, trained: GeneratorConfig) -> str:
    """The model in words; ``trained``: the configuration it was trained with (its Griffin-Lim rounds and momentum)."""
    trained_rounds, trained_momentum = trained.griffin_lim_iterations, trained.griffin_lim_momentum
    as_trained = config.replace(training={}, griffin_lim_iterations=trained_rounds, griffin_lim_momentum=trained_momentum)
    name = next((n for n, c in PRESETS.items() if c == as_trained), None)
    preset = f"Preset `{name}`: " if name else ""
    if config.head == "istft":
        body = (
            f"{config.convnext_layers} ConvNeXt blocks with log-scale SnakeBeta at the frame rate "
            f"({config.upsample_initial_channel} channels) and an iSTFT head ({config.istft_n_fft}-point spectrum, hop "
            f"{config.istft_hop_size})" + (", the log-magnitude a residual on the mel's pseudo-inverse" if config.mel_prior else "")
        )
        if config.istft_phase == "vocoder":
            body += ", the phase a learned offset on a phase-locked vocoder's (each partial turns at its own frequency)"
        rounds = config.griffin_lim_iterations
        if rounds:
            body += f", then {rounds} rounds of fast Griffin-Lim (momentum {config.griffin_lim_momentum:g}) on the predicted magnitude"
            if (rounds, config.griffin_lim_momentum) == (trained_rounds, trained_momentum):
                body += " (trained through)"
            else:
                body += f" (trained through {trained_rounds} at momentum {trained_momentum:g}; chosen for synthesis by `compare.py`)"
        if config.upsample_rates:
            body = f"AMP stages upsampling ×{'·'.join(map(str, config.upsample_rates))}, then " + body
    else:
        body = "a BigVGAN-v2-style generator (anti-aliased log-scale SnakeBeta, AMP blocks)"
    return f"{preset}{body}"


def losses(opt: dict) -> str:
    weight = f"×{opt.get('lambda_mel', 45):g}"
    terms = [f"BigVGAN-v2's multi-scale mel loss ({weight})" if opt.get("mel_loss") == "multiscale" else f"mel L1 ({weight})"]
    if opt.get("lambda_stft"):
        terms.append(f"multi-resolution STFT loss (×{opt['lambda_stft']:g})")
    if opt.get("lambda_phase"):
        terms.append(f"APNet's phase losses (×{opt['lambda_phase']:g})")  # instantaneous frequency alone for a phase vocoder
    return ", ".join(terms)


def music_share(data: dict) -> tuple[int, float]:
    """Music clips (``music_*``, from ``prepare_mixed.py``) in the run's training folder, and their share of its files."""
    folder = Path(data.get("path") or "")
    files = audio_files(folder) if folder.is_dir() else []
    music = sum(f.name.startswith("music_") for f in files)
    return music, music / max(len(files), 1)


MUSIC_SCORES = (("log_mel_l1_shifted", "log-mel L1 half a hop off", 1), ("mr_stft", "MR-STFT", 1), ("pesq", "PESQ", -1))
"""Scores the card compares with Griffin-Lim's on music: key, name, sign (1: lower is better)."""


def behind_griffin_lim(means: dict[str, dict]) -> str:
    """The model card's sentence on the music scores where the vocoder is behind Griffin-Lim."""
    ours, theirs = means["vocoder"], means["griffin-lim"]
    behind = [name for key, name, sign in MUSIC_SCORES if sign * ours[key] > sign * theirs[key]]
    return f" On the music above it is behind Griffin-Lim in {', '.join(behind)}." if behind else " On the music above it is not behind Griffin-Lim."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="speech_small run folder")
    parser.add_argument("--config", type=Path, default=Path("recipes/speech_small/config.json"), help="the run's training config (default: %(default)s)")
    parser.add_argument("--name", default=DEFAULT_MODEL)
    parser.add_argument("--evaluate", type=Path, required=True, help="folder of real recordings the model never saw")
    parser.add_argument("--valid", type=Path, default=None, help="the recipe's held-out folder")
    parser.add_argument("--count", type=int, default=12, help="clips taken from --valid (default: %(default)s)")
    parser.add_argument("--music", type=Path, default=None, help="folder of music clips (see above)")
    parser.add_argument(
        "--griffin-lim-iterations", type=int, metavar="N",
        help="fast Griffin-Lim rounds the bundled model runs (default: as many as it was trained through)",
    )  # fmt: skip
    parser.add_argument(
        "--griffin-lim-momentum", type=float, metavar="M", help="their momentum (default: the one it was trained with)"
    )
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    target = BUNDLED / args.name
    target.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        shutil.copyfile(args.run / name, target / name)
    training = json.loads((args.run / "training.json").read_text())
    trained = GeneratorConfig.from_json(target / CONFIG_FILE).replace(**training["generator"])
    trained.replace(
        griffin_lim_iterations=trained.griffin_lim_iterations if args.griffin_lim_iterations is None else args.griffin_lim_iterations,
        griffin_lim_momentum=trained.griffin_lim_momentum if args.griffin_lim_momentum is None else args.griffin_lim_momentum,
    ).to_json(target / CONFIG_FILE)
    step, hours, validation = training_summary(args.run)
    opt = training["training"]
    model = from_pretrained(target)
    report = evaluate(model, audio_files(args.evaluate), progress=True)
    held_out = evaluate(model, clips([], args.valid, args.count), progress=True) if args.valid else None
    music = evaluate(model, audio_files(args.music), dnsmos=False, progress=True) if args.music else None
    means = report.means()
    beats = {
        "PESQ": means["vocoder"]["pesq"] > means["griffin-lim"]["pesq"],
        "log-mel L1 half a hop off": means["vocoder"]["log_mel_l1_shifted"] < means["griffin-lim"]["log_mel_l1_shifted"],
        "DNSMOS P.808": (means["vocoder"]["dnsmos_p808"] or 0) >= (means["griffin-lim"]["dnsmos_p808"] or 0),
    }
    valid_section = "" if held_out is None else f"""
On {len(held_out.files)} clips spread over the recipe's held-out real speech (`{args.valid.as_posix()}`:
Fish Fillets NG dialogue, telephony prompts, KDE words; {held_out.duration:.1f} s; never trained on):

```
{held_out.format_table()}
```
"""
    music_clips, music_fraction = music_share(training["data"])
    music_note = "" if music is None else behind_griffin_lim(music.means())
    music_section = "" if music is None else f"""
## Out of its domain: music
{len(music.files)} clips of game music {"from tracks " if music_clips else ""}it was never trained on (`{args.music.as_posix()}`, {music.duration:.1f} s: Fish Fillets
NG's tunes of sampled instruments and Wesnoth's orchestral tracks, 44.1 kHz, GPL; made by
`python recipes/tones/prepare_music.py --output {args.music.as_posix()} --sample-rate 44100 --tracks 4 --seconds 6`).
PESQ is a speech score and pYIN follows one voice: read those columns loosely here.

```
{music.format_table()}
```
"""
    adversarial = max(0, step - opt.get("discriminator_start", 0))
    mixed = (
        f", with {music_clips} clips of game music as a minority ({music_fraction:.0%} of the files; "
        "`recipes/speech_small/prepare_mixed.py`, Fish Fillets NG's and Wesnoth's tracks other than those scored below)"
        if music_clips
        else ""
    )
    card = f"""# {args.name}

The default vocoder of snakeaudio: {model.sample_rate // 1000} kHz speech from {model.num_mels}-band log-mel spectrograms (hop {model.hop_length}), {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters.

## Model
{architecture(model.config, trained)}, with BigVGAN's mel features (n_fft {model.config.n_fft}, window {model.config.win_size},
fmin {model.config.fmin:g} Hz, fmax {model.config.fmax or model.sample_rate / 2:g} Hz). Weights: `model.safetensors`
(weight norm folded); `config.json` uses BigVGAN's keys{" and snakeaudio's for the iSTFT head" if model.config.head == "istft" else ""}.

## Training
Recipe `recipes/speech_small` (`snakeaudio train {args.config.as_posix()} --output {args.run.as_posix()}`),
on 2 CPU cores: {step} steps of batch {opt['batch_size']} × {opt['segment_size']} samples, {hours:.1f} h of training (wall clock, including any time the process was paused).
The generator trains on {losses(opt)};
{f"the adversarial stage (MPD + MRD, from step {opt.get('discriminator_start', 0)}) has not started yet" if not adversarial else f'then {adversarial} steps add MPD + MRD discriminators (width ×{opt["discriminator_channel_mult"]:g}' + (f', on {opt["discriminator_segment"]}-sample windows' if opt.get("discriminator_segment") else '') + ')'}.
Data: the recipe's offline corpus (`recipes/speech_small/prepare_data.py`; see its README for the voices,
recordings and licenses){mixed}.
Last validation (step {validation.get('step', '–')}, held-out corpus clips): log-mel L1 {validation.get('val_mel_l1', float('nan')):.3f},
MR-STFT {validation.get('val_mrstft', float('nan')):.3f}, PESQ {validation.get('val_pesq', float('nan')):.2f}.

## Copy synthesis on real recordings it never saw
`snakeaudio evaluate {args.evaluate.as_posix()}` ({len(report.files)} clips, {report.duration:.1f} s; read English
speech from LibriTTS and Hi-Fi TTS, CC BY 4.0), with Griffin-Lim (librosa, 32 iterations) as the baseline:

```
{report.format_table(per_file=True)}
```
{valid_section}
Against Griffin-Lim on the first set: {', '.join(f"{k} {'better' if v else 'NOT better'}" for k, v in beats.items())}.
Griffin-Lim inverts the very mel that `mel L1` compares, which flatters it there; `mel L1 ½hop`
compares frames half a hop away, where no system was fitted. The project's goals for this
model: {GOALS}.
{music_section}
## Limits
Trained on 4.4 h of real speech (many voices, Czech, English, Dutch and ~25 other
languages), much of it band-limited below 8 kHz: expect a duller top octave. Without
adversarial training, noise-like sounds (fricatives, breath) can come out slightly tonal.
{"Trained on some instrumental game music (above), not on singing" if music_clips else "Not trained on music or singing"}.{music_note}
Training continues in later releases (`snakeaudio train` on the same run folder resumes; see the
recipe's README).
"""
    (target / "README.md").write_text(card)
    print(card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
