"""The ``snakeaudio`` command. Thin: parses arguments, calls the library, prints."""

from __future__ import annotations

import argparse
import math
import sys
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


def _load_model(name_or_path: str, device: str | None):
    from .models import from_pretrained

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return from_pretrained(name_or_path, map_location=device)


def _synthesize(args: argparse.Namespace) -> int:
    """Copy-synthesise audio files and vocode mel files; exit code 1 when any input failed."""
    from tqdm import tqdm

    from .dsp.io import write_wav
    from .inference.files import EXAMPLE_INPUT, Synthesized, plan_jobs, synthesize_files
    from .inference.plot import save_spectrogram_comparison

    inputs = args.inputs or [EXAMPLE_INPUT]
    try:
        jobs = plan_jobs(inputs, args.output)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    vocoder = _load_model(args.model, args.device)
    sr = vocoder.sample_rate
    chunk_frames = max(1, round(args.chunk_seconds * sr / vocoder.hop_length)) if args.chunk_seconds > 0 else None
    failures = 0
    results = synthesize_files(vocoder, jobs, batch_size=args.batch_size, chunk_frames=chunk_frames)
    for result in tqdm(results, total=len(jobs), desc="synthesizing", unit="file", disable=len(jobs) < 2):
        if not isinstance(result, Synthesized):
            job, err = result
            failures += 1
            tqdm.write(f"error: {job.source}: {err}", file=sys.stderr)
            continue
        target = result.job.target
        write_wav(target, result.audio, sr)  # creates missing folders
        line = f"{result.job.source} -> {target} ({result.audio.numel() / sr:.2f} s at {sr} Hz)"
        if not args.no_plot:
            with torch.no_grad():
                output_mel = vocoder.mel(result.audio[None, None].to(next(vocoder.parameters()).device))[0]
            png = save_spectrogram_comparison(
                target.with_suffix(".png"), {f"input: {result.job.source.name}": result.input_mel, f"synthesised: {args.model}": output_mel},
                sr, vocoder.hop_length,
            )  # fmt: skip
            line += f", spectrograms in {png}"
        tqdm.write(line)
    if failures:
        print(f"{failures} of {len(jobs)} inputs failed", file=sys.stderr)
    return 1 if failures else 0


def _models(args: argparse.Namespace) -> int:
    from .models import DEFAULT_MODEL, available_models
    from .models.checkpoint import CONFIG_FILE, WEIGHTS_FILE, bundled_model_path
    from .models.config import GeneratorConfig

    names = available_models()
    if not names:
        print("no bundled models")
        return 1
    for name in names:
        folder = bundled_model_path(name)
        config = GeneratorConfig.from_json(folder / CONFIG_FILE)
        size = (folder / WEIGHTS_FILE).stat().st_size / 2**20
        card = (folder / "README.md").read_text().splitlines() if (folder / "README.md").is_file() else []
        summary = next((line.strip() for line in card[1:] if line.strip() and not line.startswith("#")), "")
        default = " (default)" if name == DEFAULT_MODEL else ""
        print(f"{name}{default}: {config.sampling_rate} Hz, {config.num_mels} mel bands, hop {config.hop_size}, {size:.1f} MiB")
        if summary:
            print(f"    {summary}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from .inference.export import export_onnx

    vocoder = _load_model(args.model, "cpu")
    difference = export_onnx(vocoder, args.onnx, check=not args.no_check)
    checked = f"; onnxruntime vs PyTorch max |diff| {difference:.2e}" if difference is not None else ""
    print(f"wrote {args.onnx} (input 'mel' (B, {vocoder.num_mels}, F), output 'audio' (B, 1, F·{vocoder.hop_length})){checked}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json
    import warnings

    from .dsp.io import audio_files
    from .inference.evaluate import evaluate

    try:
        files = audio_files(args.folder)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not files:
        print(f"error: no audio files under {args.folder}", file=sys.stderr)
        return 2
    vocoder = _load_model(args.model, args.device)
    with warnings.catch_warnings():  # failures are reported below, by name
        warnings.simplefilter("ignore", UserWarning)
        report = evaluate(
            vocoder, files, griffin_lim_baseline=not args.no_griffin_lim, dnsmos=not args.no_dnsmos,
            skip_failures=True, progress=not args.json,
        )  # fmt: skip
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format_table(per_file=args.per_file))
    for path, reason in report.failures.items():
        print(f"error: {path}: {reason}", file=sys.stderr)
    return 1 if report.failures else 0


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

    from .models import DEFAULT_MODEL

    synth = sub.add_parser("synthesize", help="vocode audio files (copy synthesis) and mel files (.npy/.pt) to wav")
    synth.add_argument("inputs", nargs="*", help="audio/mel files or folders (default: a bundled speech example)")
    synth.add_argument("-o", "--output", default="snakeaudio_output", help="output folder, or a .wav path for one input (default: %(default)s)")
    synth.add_argument("--model", default=DEFAULT_MODEL, help="bundled model name or model folder (default: %(default)s)")
    synth.add_argument("--device", help="torch device (default: CUDA when available, else CPU)")
    synth.add_argument("--chunk-seconds", type=float, default=10.0, help="synthesise long inputs in exact chunks of this length; 0: whole (default: %(default)s)")
    synth.add_argument("--batch-size", type=int, default=1, help="inputs per padded batch (default: %(default)s)")
    synth.add_argument("--no-plot", action="store_true", help="do not write the spectrogram comparison PNG next to each wav")
    synth.set_defaults(run=_synthesize)
    models = sub.add_parser("models", help="list the bundled models")
    models.set_defaults(run=_models)
    export = sub.add_parser("export", help="export a vocoder to ONNX, checked against PyTorch with onnxruntime")
    export.add_argument("model", nargs="?", default=DEFAULT_MODEL, help="bundled model name or model folder (default: %(default)s)")
    export.add_argument("--onnx", required=True, metavar="OUT.onnx", help="output file")
    export.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    export.set_defaults(run=_export)
    evaluate = sub.add_parser("evaluate", help="copy-synthesis metrics on recordings, with Griffin-Lim as a baseline")
    evaluate.add_argument("folder", help="folder of audio files (wav/flac/ogg)")
    evaluate.add_argument("--model", default=DEFAULT_MODEL, help="bundled model name or model folder (default: %(default)s)")
    evaluate.add_argument("--device", help="torch device (default: CUDA when available, else CPU)")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument("--no-griffin-lim", action="store_true", help="skip the Griffin-Lim baseline")
    evaluate.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS, the slowest score (about 0.7 s per clip and system)")
    evaluate.add_argument("--per-file", action="store_true", help="also print one row per file and system")
    evaluate.set_defaults(run=_evaluate)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    raise SystemExit(main())
