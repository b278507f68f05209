"""Score several vocoders on the same held-out real speech, side by side, as ``snakeaudio evaluate`` does.

    python recipes/speech_small/compare.py speech_small_24khz runs/snapshots/speech_small/step_00002000 \
        --clips tests/data/audio --valid data/speech_small/valid --count 12

Each MODEL is a bundled name, a vocoder folder (``config.json`` + ``model.safetensors``) or a
training checkpoint folder (``generator.safetensors``, with the run's ``config.json`` beside or
above it); ``MODEL=LABEL`` names its row. The clips are every file under ``--clips`` plus
``--count`` files spread evenly over ``--valid`` (sorted by name, so the choice is fixed).
Griffin-Lim is scored once, on the first model's features. ``--griffin-lim-iterations N ...``
and ``--griffin-lim-momentum M ...`` score every model once per count of fast Griffin-Lim rounds
and momentum at synthesis (an iSTFT-headed model; the weights do not change). Prints one
Markdown table of the means over clips, with a last column for how closely chunked synthesis
(40-frame chunks, as ``synthesize_chunked``) agrees with whole synthesis on the first clip, in
dB of signal to difference (Griffin-Lim rounds amplify float rounding), and with ``--json``
writes every score.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from snakeaudio.dsp.io import audio_files, read_audio
from snakeaudio.inference import synthesize_chunked
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


def variant(model: Generator, rounds: int | None = None, momentum: float | None = None) -> Generator:
    """The same weights, synthesising with ``rounds`` fast Griffin-Lim rounds at ``momentum`` (None: the model's own)."""
    config = model.config
    config = config.replace(
        griffin_lim_iterations=config.griffin_lim_iterations if rounds is None else rounds,
        griffin_lim_momentum=config.griffin_lim_momentum if momentum is None else momentum,
    )
    new = Generator(config).prepare_for_inference()
    new.load_state_dict(model.state_dict())
    return new.eval()


def chunk_agreement_db(model: Generator, clip: Path) -> float:
    """Signal-to-difference ratio (dB) of 40-frame chunked synthesis against whole synthesis of ``clip``."""
    with torch.no_grad():
        mel = model.mel(read_audio(clip, model.sample_rate)[None, None])
        whole = model(mel)
        difference = synthesize_chunked(model, mel, 40) - whole
    return float(10 * torch.log10(whole.square().sum() / difference.square().sum()))


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
    parser.add_argument("--griffin-lim-momentum", type=float, nargs="+", metavar="M", help="momenta at synthesis to score each model with")
    args = parser.parse_args(argv)
    torch.set_flush_denormal(True)
    files = clips(args.clips, args.valid, args.count)
    models = [load(spec) for spec in args.models]
    if args.griffin_lim_iterations or args.griffin_lim_momentum:
        models = [
            (label + (f", {n} rounds" if n is not None else "") + (f", momentum {m:g}" if m is not None else ""), variant(model, n, m))
            for label, model in models
            for n in args.griffin_lim_iterations or [None]
            for m in args.griffin_lim_momentum or [None]
        ]  # fmt: skip
    rows, everything = {}, {}
    for i, (label, model) in enumerate(models):
        report = evaluate(model, files, griffin_lim_baseline=i == 0, progress=True)
        means = report.means()
        rows[label] = {**means["vocoder"], "chunks": chunk_agreement_db(model, files[0])}
        if i == 0:
            rows["griffin-lim"] = means["griffin-lim"]
            rows["input"] = report.input_means()  # its own DNSMOS
        everything[label] = report.to_dict()
    metrics = [*METRICS, "chunks"]
    names = {**METRICS, "chunks": "chunks vs whole dB ↑"}
    print(f"{len(files)} clips: " + ", ".join(f.name for f in files))
    print("| model | " + " | ".join(names[m] for m in metrics) + " |")
    print("|---" * (len(metrics) + 1) + "|")
    for label, means in rows.items():
        cells = ["–" if means.get(m) is None or np.isnan(means[m]) else f"{means[m]:.3g}" for m in metrics]
        print(f"| {label} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
