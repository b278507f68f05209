"""Score several vocoders on the same held-out real speech, side by side, as ``snakeaudio evaluate`` does.

    python recipes/speech_small/compare.py speech_small_24khz runs/snapshots/speech_small/step_00002000 \
        --clips tests/data/audio --valid data/speech_small/valid --count 12

Each MODEL is a bundled name, a vocoder folder (``config.json`` + ``model.safetensors``) or a
training checkpoint folder (``generator.safetensors``, with the run's ``config.json`` beside or
above it); ``MODEL=LABEL`` names its row. The clips are every file under ``--clips`` plus
``--count`` files spread evenly over ``--valid`` (sorted by name, so the choice is fixed).
Griffin-Lim is scored once, on the first model's features. ``--griffin-lim-iterations N ...``
scores every model once per count of fast Griffin-Lim rounds at synthesis (an iSTFT-headed
model; the weights do not change). Prints one Markdown table of the means over clips, and with
``--json`` writes every score.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from snakeaudio.dsp.io import audio_files
from snakeaudio.inference.evaluate import METRICS, evaluate
from snakeaudio.models import Generator, GeneratorConfig, from_pretrained


def load(spec: str) -> tuple[str, Generator]:
    """A vocoder ready for inference, and its row label."""
    path, _, label = spec.partition("=")
    folder = Path(path)
    checkpoint = folder / "generator.safetensors"
    if checkpoint.is_file():
        config_path = next((p / "config.json" for p in (folder, *folder.parents) if (p / "config.json").is_file()), None)
        if config_path is None:
            raise SystemExit(f"{folder}: no config.json beside or above the checkpoint")
        model = Generator(GeneratorConfig.from_json(config_path))
        model.load_state_dict(load_file(str(checkpoint)))
        model = model.prepare_for_inference()
    else:
        model = from_pretrained(path)
    return label or folder.name, model


def with_rounds(model: Generator, rounds: int) -> Generator:
    """The same weights, synthesising with ``rounds`` fast Griffin-Lim rounds."""
    variant = Generator(model.config.replace(griffin_lim_iterations=rounds)).prepare_for_inference()
    variant.load_state_dict(model.state_dict())
    return variant.eval()


def clips(folders: list[Path], valid: Path | None, count: int) -> list[Path]:
    files = [f for folder in folders for f in audio_files(folder)]
    if valid is not None and count:
        pool = audio_files(valid)
        files += [pool[i] for i in np.linspace(0, len(pool) - 1, min(count, len(pool))).round().astype(int)]
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="MODEL[=LABEL]")
    parser.add_argument("--clips", type=Path, nargs="*", default=[Path("tests/data/audio")])
    parser.add_argument("--valid", type=Path, default=None, help="the recipe's held-out folder")
    parser.add_argument("--count", type=int, default=12, help="clips taken from --valid (default: %(default)s)")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--griffin-lim-iterations", type=int, nargs="+", metavar="N", help="rounds at synthesis to score each model with")
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    files = clips(args.clips, args.valid, args.count)
    models = [load(spec) for spec in args.models]
    if args.griffin_lim_iterations:
        models = [(f"{label}, {n} rounds", with_rounds(model, n)) for label, model in models for n in args.griffin_lim_iterations]
    rows, everything = {}, {}
    for i, (label, model) in enumerate(models):
        report = evaluate(model, files, griffin_lim_baseline=i == 0, progress=True)
        means = report.means()
        rows[label] = means["vocoder"]
        if i == 0:
            rows["griffin-lim"] = means["griffin-lim"]
            rows["input"] = report.input_means()  # its own DNSMOS
        everything[label] = report.to_dict()
    metrics = list(METRICS)
    print(f"{len(files)} clips: " + ", ".join(f.name for f in files))
    print("| model | " + " | ".join(METRICS[m] for m in metrics) + " |")
    print("|---" * (len(metrics) + 1) + "|")
    for label, means in rows.items():
        cells = ["–" if means.get(m) is None or np.isnan(means[m]) else f"{means[m]:.3g}" for m in metrics]
        print(f"| {label} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
