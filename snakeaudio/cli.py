"""The ``snakeaudio`` command. Thin: parses arguments, calls the library, prints.

One error boundary, in :func:`main`: an expected failure ends in one ``error: ...`` line on
stderr and exit status 2 when the command line asks for something that cannot be done (an
option value, an unknown model, a training config with a mistake, an ``--init-from`` that
does not fit), or 1 when the work failed (inputs that could not be read, a broken model
file, a missing optional extra). ``--debug`` shows their traceback; any other exception is a
bug and keeps it. Library warnings show as one ``warning: ...`` line each.
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path
from typing import NoReturn

from . import __version__


class CommandError(Exception):
    """A failure the command reports in one line, with exit status ``status`` (2: the command
    line asks for something that cannot be done; 1: the work failed)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors go through :func:`main`'s boundary, as one line."""

    def error(self, message: str) -> NoReturn:
        raise CommandError(f"{message} (see {self.prog} --help)")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _chunk_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a length in seconds > 0, or 0 to vocode inputs whole, got {text!r}")
    return value


def _device(text: str) -> str:
    """A torch device this machine has."""
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"expected a torch device such as cpu, cuda or cuda:1, got {text!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        build = "" if torch.version.cuda else ", a build without CUDA"
        raise argparse.ArgumentTypeError(
            f"{text!r}: CUDA is not available on this machine (torch {torch.__version__}{build}); use --device cpu, or leave --device out"
        )
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        from .dsp.io import counted

        raise argparse.ArgumentTypeError(f"{text!r}: this machine has {counted(torch.cuda.device_count(), 'CUDA device')}, numbered from 0")
    return text


def _about(path: object, message: object) -> str:
    """``message``, with ``path`` in front unless it names the path already."""
    return str(message) if str(path) in str(message) else f"{path}: {message}"


def _demo(args: argparse.Namespace) -> int:
    """Pass a pure tone through Snake at several α and report the harmonics it adds."""
    import numpy as np
    import soundfile as sf
    import torch

    from .kernels.cpu import cpu_library
    from .nn import Snake

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


def _misfits(source: str, config) -> list[str]:
    """The tensors of the model in ``source`` whose shapes differ from a generator built from ``config``."""
    from .models import Generator, from_pretrained
    from .models.checkpoint import inference_state_dict

    ours = inference_state_dict(Generator(config))
    theirs = from_pretrained(source).state_dict()
    return [
        f"{name} is {tuple(t.shape)} there, {tuple(ours[name].shape)} here"
        for name, t in theirs.items()
        if name in ours and t.shape != ours[name].shape
    ]


def _train(args: argparse.Namespace) -> int:
    import logging

    import torch

    from .train.config import TrainConfig
    from .train.trainer import Trainer

    # Before any parallel torch op: worker threads inherit the flush-to-zero mode of the
    # thread that starts them (see Trainer on denormals).
    torch.set_flush_denormal(True)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = TrainConfig.from_json(args.config).with_overrides(
            max_steps=args.max_steps, checkpoint_every=args.checkpoint_every, batch_size=args.batch_size
        )
    except (ValueError, FileNotFoundError) as err:
        raise CommandError(_about(args.config, err)) from err
    try:
        trainer = Trainer(config, args.output, device=args.device, init_from=args.init_from)
    except RuntimeError as err:  # torch's load_state_dict: an --init-from whose tensors do not fit
        from .dsp.io import counted

        misfits = _misfits(args.init_from, config.generator) if args.init_from else []
        if not misfits:
            raise
        raise CommandError(
            f"--init-from {args.init_from} does not fit {args.config}: {counted(len(misfits), 'tensor')} differ in shape, "
            f"e.g. {misfits[0]}; train with the generator settings it was trained with, or leave --init-from out"
        ) from err
    if trainer.step and trainer.dist.main:
        print(f"resuming {args.output} from step {trainer.step}")
    step = trainer.fit()
    if trainer.stopped_by is not None:
        return 128 + trainer.stopped_by  # the trainer said where the checkpoint is
    if trainer.dist.main:
        print(f"trained to step {step}; the generator is in {args.output} (snakeaudio.from_pretrained)")
    return 0


def _load_model(name: str | None, device: str | None):
    """A vocoder by bundled name or folder (None: the default model) on ``device`` (None: CUDA when available)."""
    import torch

    from .models import DEFAULT_MODEL, from_pretrained

    name = name or DEFAULT_MODEL
    try:
        return from_pretrained(name, map_location=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except FileNotFoundError as err:  # an unknown name, or a folder that is not a model
        hint = "; a model folder holds config.json and model.safetensors, as save_pretrained and train write them"
        raise CommandError(f"{err}{hint if Path(name).is_dir() else ''}") from err


def _synthesize(args: argparse.Namespace) -> int:
    """Copy-synthesise audio files and vocode mel files; exit code 1 when any input failed."""
    import torch
    from tqdm import tqdm

    from .dsp.io import counted, write_wav
    from .inference.files import EXAMPLE_INPUT, Synthesized, plan_jobs, synthesize_files
    from .models import DEFAULT_MODEL

    try:
        jobs = plan_jobs(args.inputs or [EXAMPLE_INPUT], args.output)
    except ValueError as err:
        raise CommandError(str(err)) from err
    vocoder = _load_model(args.model, args.device)
    sr = vocoder.sample_rate
    chunk_frames = max(1, round(args.chunk_seconds * sr / vocoder.hop_length)) if args.chunk_seconds > 0 else None
    failures = 0
    results = synthesize_files(vocoder, jobs, batch_size=args.batch_size, chunk_frames=chunk_frames, strict=args.strict)
    for result in tqdm(results, total=len(jobs), desc="synthesizing", unit="file", disable=len(jobs) < 2):
        if not isinstance(result, Synthesized):
            job, err = result
            failures += 1
            tqdm.write(f"error: {_about(job.source, err)}", file=sys.stderr)
            continue
        target = result.job.target
        write_wav(target, result.audio, sr)  # creates missing folders
        line = f"{result.job.source} -> {target} ({result.audio.numel() / sr:.2f} s at {sr} Hz)"
        if not args.no_plot:
            from .inference.plot import save_spectrogram_comparison

            with torch.no_grad():
                output_mel = vocoder.mel(result.audio[None, None].to(next(vocoder.parameters()).device))[0]
            png = save_spectrogram_comparison(
                target.with_suffix(".png"),
                {f"input: {result.job.source.name}": result.input_mel, f"synthesised: {args.model or DEFAULT_MODEL}": output_mel},
                sr, vocoder.hop_length,
            )  # fmt: skip
            line += f", spectrograms in {png}"
        tqdm.write(line)
    if failures:
        print(f"error: {failures} of {counted(len(jobs), 'input')} failed", file=sys.stderr)
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
    try:
        difference = export_onnx(vocoder, args.onnx, check=not args.no_check)
    except ImportError as err:  # the export extra is missing: the library names the packages and the install command
        raise CommandError(str(err), 1) from err
    checked = f"; onnxruntime vs PyTorch max |diff| {difference:.2e}" if difference is not None else ""
    print(f"wrote {args.onnx} (input 'mel' (B, {vocoder.num_mels}, F), output 'audio' (B, 1, F·{vocoder.hop_length})){checked}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from .dsp.io import AUDIO_FILE_SUFFIXES, audio_files
    from .inference.evaluate import FailuresWarning, evaluate

    files: list[Path] = []
    for item in map(Path, args.inputs):
        found = audio_files(item, warn_skipped=True) if item.is_dir() else [item]  # a missing file fails below, by name
        if not found:
            raise CommandError(f"no audio files ({', '.join(AUDIO_FILE_SUFFIXES)}) under {item}")
        files += found
    vocoder = _load_model(args.model, args.device)
    with warnings.catch_warnings():  # failures are reported below, by name
        warnings.simplefilter("ignore", FailuresWarning)
        report = evaluate(
            vocoder, files, griffin_lim_baseline=not args.no_griffin_lim, dnsmos=not args.no_dnsmos,
            skip_failures=True, progress=not args.json, strict=args.strict,
        )  # fmt: skip
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format_table(per_file=args.per_file))
    for path, reason in report.failures.items():
        print(f"error: {_about(path, reason)}", file=sys.stderr)
    return 1 if report.failures else 0


def _parser() -> argparse.ArgumentParser:
    model_help = "bundled model name or model folder (default: the bundled default, marked in `snakeaudio models`)"
    device_help = "torch device (default: CUDA when available, else CPU)"
    strict_help = "treat a truncated audio file as an error, not a warning"
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an error")
    parser = _Parser(prog="snakeaudio", description="Snake activations and vocoders for periodic audio.")
    parser.add_argument("--version", action="version", version=f"snakeaudio {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", parents=[debug], help="pass a tone through Snake and write the results as wav files")
    demo.add_argument("-o", "--output", default="snakeaudio_demo", help="output folder (default: %(default)s)")
    demo.add_argument("--alpha", type=float, nargs="+", default=[0.5, 5.0, 20.0], help="α values to try")
    demo.set_defaults(run=_demo)
    train = sub.add_parser("train", parents=[debug], help="train a vocoder from a recipe config; running it again resumes")
    train.add_argument("config", help="training config JSON (see recipes/)")
    train.add_argument("-o", "--output", required=True, help="run folder (created, or resumed when it exists)")
    train.add_argument("--max-steps", type=_positive_int, help="override training.max_steps")
    train.add_argument("--checkpoint-every", type=_positive_int, help="override training.checkpoint_every")
    train.add_argument("--batch-size", type=_positive_int, help="override training.batch_size")
    train.add_argument("--device", type=_device, help=device_help)
    train.add_argument("--init-from", metavar="FOLDER", help="fine-tune: start from a run or pretrained folder (ignored when resuming)")
    train.set_defaults(run=_train)
    synth = sub.add_parser("synthesize", parents=[debug], help="vocode audio files (copy synthesis) and mel files (.npy/.pt) to wav")
    synth.add_argument("inputs", nargs="*", help="audio/mel files or folders (default: a bundled speech example)")
    synth.add_argument(
        "-o", "--output", default="snakeaudio_output", help="output folder, or a .wav path for one input file (default: %(default)s)"
    )
    synth.add_argument("--model", help=model_help)
    synth.add_argument("--device", type=_device, help=device_help)
    synth.add_argument(
        "--chunk-seconds", type=_chunk_seconds, default=10.0,
        help="synthesise long inputs in exact chunks of this length; 0: whole (default: %(default)s)",
    )  # fmt: skip
    synth.add_argument("--batch-size", type=_positive_int, default=1, help="inputs per padded batch (default: %(default)s)")
    synth.add_argument("--no-plot", action="store_true", help="do not write the spectrogram comparison PNG next to each wav")
    synth.add_argument("--strict", action="store_true", help=strict_help)
    synth.set_defaults(run=_synthesize)
    models = sub.add_parser("models", parents=[debug], help="list the bundled models")
    models.set_defaults(run=_models)
    export = sub.add_parser("export", parents=[debug], help="export a vocoder to ONNX, checked against PyTorch with onnxruntime")
    export.add_argument("model", nargs="?", help=model_help)
    export.add_argument("--onnx", required=True, metavar="OUT.onnx", help="output file")
    export.add_argument("--no-check", action="store_true", help="skip the onnxruntime comparison")
    export.set_defaults(run=_export)
    evaluate = sub.add_parser("evaluate", parents=[debug], help="copy-synthesis metrics on recordings, with Griffin-Lim as a baseline")
    evaluate.add_argument("inputs", nargs="+", help="audio files (wav/flac/ogg) or folders of them")
    evaluate.add_argument("--model", help=model_help)
    evaluate.add_argument("--device", type=_device, help=device_help)
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.add_argument("--no-griffin-lim", action="store_true", help="skip the Griffin-Lim baseline")
    evaluate.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS, the slowest score (about 0.7 s per clip and system)")
    evaluate.add_argument("--per-file", action="store_true", help="also print one row per file and system")
    evaluate.add_argument("--strict", action="store_true", help=strict_help)
    evaluate.set_defaults(run=_evaluate)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from tqdm import tqdm

    tqdm.write(f"warning: {message}", file=sys.stderr)  # above a progress bar, when there is one


def _one_line(err: Exception) -> str:
    return "; ".join(line.strip() for line in str(err).splitlines() if line.strip())


def main(argv: list[str] | None = None) -> int:
    """Run the command in ``argv`` (default: the process's arguments); returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except CommandError as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return err.status
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.run(args)
    except (CommandError, ValueError, OSError) as err:
        if args.debug:
            raise
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return err.status if isinstance(err, CommandError) else 1


if __name__ == "__main__":
    raise SystemExit(main())
