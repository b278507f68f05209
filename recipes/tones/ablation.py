"""Snake + anti-aliasing vs Snake alone vs LeakyReLU on synthetic tones, at equal steps.

Trains three generators from one config (each by a subprocess call of the ``snakeaudio train``
CLI, into its own folder; a rerun skips finished runs and resumes unfinished ones), then
evaluates them by copy-synthesis (wav → ``model.mel(wav)`` → ``model(mel)``) on held-out
single-note tones, inside the training f0 range and below/above it::

    python recipes/tones/ablation.py -o outputs/tones            # full run
    python recipes/tones/ablation.py -o outputs/tones --jobs 3   # the three trainings at once
    python recipes/tones/ablation.py -o /tmp/tones --quick       # seconds, for tests

Writes ``OUTPUT/<variant>.json`` (the variant configs), ``OUTPUT/<variant>/`` (the runs),
``OUTPUT/results.md`` (the table) and ``OUTPUT/results.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import librosa
import numpy as np
import torch

import snakeaudio
from snakeaudio.train import TrainConfig
from snakeaudio.train.data import PeriodicToneDataset, ToneSpec
from snakeaudio.train.trainer import latest_checkpoint

CONFIG = Path(__file__).with_name("config.json")

VARIANTS: dict[str, dict] = {
    "snake_aa": {},  # the recipe's config as is: SnakeBeta inside anti-aliased activations
    "snake_noaa": {"anti_alias": False},
    "leakyrelu": {"activation": "leakyrelu", "anti_alias": False, "snake_logscale": False},  # HiFi-GAN style
}
"""Generator keys each variant overrides in the recipe's config."""


@dataclass(frozen=True)
class Band:
    name: str
    f0_min: float
    f0_max: float


def default_bands(f0_min: float, f0_max: float) -> list[Band]:
    """The training range and one octave-ish band on each side of it, with a gap."""
    return [Band("below", f0_min / 2, f0_min / 1.1), Band("inside", f0_min, f0_max), Band("above", f0_max * 1.15, f0_max * 2.3)]


@dataclass(frozen=True)
class BandMetrics:
    """Averages over the clips of one band.

    cents: per clip, median |1200·log2(f0_out/f0_in)| over frames pYIN finds voiced in both;
    then the mean over clips that have such frames (NaN when none has).
    gross_error: fraction of those frames off by more than 50 cents (pooled over clips).
    periodicity: mean |voiced_prob_out − voiced_prob_in| over all frames.
    voicing_f1: F1 of the output's voiced decisions against the input's (pooled).
    mel_l1: L1 between the log-mels of input and output.
    compared: fraction of input-voiced frames that are voiced in the output too.
    hop_correlation_in, hop_correlation_out: normalised autocorrelation at a lag of one hop
    of input and output; near 1 for the output while well below for the input means the output
    repeats every hop, whatever the tone's period (see the README).
    """

    cents: float
    gross_error: float
    periodicity: float
    voicing_f1: float
    mel_l1: float
    compared: float
    hop_correlation_in: float
    hop_correlation_out: float


def variant_config(base: dict, overrides: dict, max_steps: int | None = None) -> dict:
    """The base training config with generator ``overrides`` (and ``max_steps``) applied."""
    config = json.loads(json.dumps(base))
    config["generator"].update(overrides)
    if max_steps is not None:
        config["training"]["max_steps"] = max_steps
        config["training"]["checkpoint_every"] = min(config["training"].get("checkpoint_every", max_steps), max_steps)
    TrainConfig.from_dict(config)  # validates
    return config


def trained_steps(run: Path) -> int:
    checkpoint = latest_checkpoint(run)
    return int(checkpoint.name.split("_")[1]) if checkpoint else 0


def train_variants(runs: dict[Path, Path], max_steps: int, jobs: int = 1) -> dict[Path, float]:
    """Train (or resume) each run folder from its config to ``max_steps`` with the CLI, up to
    ``jobs`` at once (each with ``OMP_NUM_THREADS`` = the CPU count // ``jobs``, unless set,
    and its progress bar in ``run/train.log`` instead of the terminal when ``jobs`` > 1);
    returns this call's wall time per run in s, 0 for runs already finished.

    The wall time of all calls is accumulated in ``run/wall_time_s.txt``.
    """
    environment = dict(os.environ)
    environment.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    pending = [(config, run) for run, config in runs.items() if trained_steps(run) < max_steps]
    elapsed = {run: 0.0 for run in runs}
    running: dict[Path, tuple[subprocess.Popen, float]] = {}
    while pending or running:
        while pending and len(running) < jobs:
            config, run = pending.pop(0)
            command = [sys.executable, "-m", "snakeaudio.cli", "train", str(config), "-o", str(run), "--max-steps", str(max_steps)]
            run.mkdir(parents=True, exist_ok=True)
            with open(run / "train.log", "a") if jobs > 1 else contextlib.nullcontext() as log:  # the child keeps its own copy
                running[run] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=environment), time.perf_counter()
        time.sleep(0.2)
        for run, (process, start) in list(running.items()):
            if process.poll() is None:
                continue
            del running[run]
            if process.returncode:
                for other, _ in running.values():
                    other.terminate()
                where = f" (see {run / 'train.log'})" if jobs > 1 else ""
                raise RuntimeError(f"training {run} failed with exit status {process.returncode}{where}")
            elapsed[run] = time.perf_counter() - start
            print(f"{run.name}: trained to step {max_steps} in {elapsed[run]:.0f} s", flush=True)
            record = run / "wall_time_s.txt"
            total = float(record.read_text()) if record.is_file() else 0.0
            record.write_text(f"{total + elapsed[run]:.1f}\n")
    return elapsed


def wall_time(run: Path) -> float:
    """Training wall time: the ablation's record, else the trainer's last logged time."""
    record = run / "wall_time_s.txt"
    if record.is_file():
        return float(record.read_text())
    metrics = run / "metrics.jsonl"
    times = [json.loads(line).get("time") for line in metrics.read_text().splitlines()] if metrics.is_file() else []
    times = [t for t in times if t is not None]
    return times[-1] if times else math.nan


@dataclass
class Reference:
    """Held-out clips of one band and pYIN's analysis of them (computed once, shared by the variants)."""

    band: Band
    sample_rate: int
    clips: list[torch.Tensor]  # each (1, 1, T)
    pyin: list[tuple[np.ndarray, np.ndarray, np.ndarray]]  # (f0, voiced_flag, voiced_prob) per clip

    @property
    def fmin_fmax(self) -> tuple[float, float]:
        """pYIN's search range: the band with half an octave of margin on each side."""
        return self.band.f0_min / 2**0.5, min(self.band.f0_max * 2**0.5, self.sample_rate / 2 - 1)


def _pyin(wav: torch.Tensor, reference: Reference) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    fmin, fmax = reference.fmin_fmax
    samples = wav.reshape(-1).double().numpy()  # (1, 1, T) -> (T,)
    return librosa.pyin(samples, fmin=fmin, fmax=fmax, sr=reference.sample_rate, frame_length=2048, hop_length=256)


def make_reference(band: Band, sample_rate: int, clips: int, seconds: float, seed: int) -> Reference:
    """``clips`` single-note tones with f0 log-uniform in ``band`` (vibrato, envelopes, four timbres)."""
    spec = ToneSpec(band.f0_min, band.f0_max, max_notes=1)
    tones = PeriodicToneDataset(sample_rate, int(seconds * sample_rate), size=clips, spec=spec, seed=seed)
    reference = Reference(band, sample_rate, [tones[i][None] for i in range(clips)], [])
    reference.pyin.extend(_pyin(wav, reference) for wav in reference.clips)
    return reference


def lag_correlation(wav: torch.Tensor, lag: int) -> float:
    """Normalised correlation of ``wav`` with itself ``lag`` samples later (0 for silence).

    Shape: (..., T) with T > lag -> float.
    """
    x = wav.reshape(-1).double()
    a, b = x[:-lag], x[lag:]
    energy = float(torch.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / energy if energy > 0 else 0.0


@torch.inference_mode()
def evaluate_band(model: torch.nn.Module, reference: Reference) -> BandMetrics:
    """Copy-synthesis metrics of ``model`` on the clips of ``reference``."""
    cents, errors, periodicity, mel_l1, hop_in, hop_out = [], [], [], [], [], []
    tp = fp = fn = 0
    for wav, (f0_in, voiced_in, prob_in) in zip(reference.clips, reference.pyin):
        mel = model.mel(wav)  # (1, 1, T) -> (1, n_mels, F)
        out = model(mel)  # (1, n_mels, F) -> (1, 1, F·hop)
        n = min(wav.shape[-1], out.shape[-1])
        mel_l1.append(torch.nn.functional.l1_loss(model.mel(out[..., :n]), model.mel(wav[..., :n])).item())
        hop_in.append(lag_correlation(wav, model.hop_length))
        hop_out.append(lag_correlation(out, model.hop_length))
        f0_out, voiced_out, prob_out = _pyin(out, reference)
        frames = min(len(f0_in), len(f0_out))
        f0_in, voiced_in, prob_in = f0_in[:frames], voiced_in[:frames], prob_in[:frames]
        f0_out, voiced_out, prob_out = f0_out[:frames], voiced_out[:frames], prob_out[:frames]
        both = voiced_in & voiced_out
        if both.any():
            deviation = np.abs(1200 * np.log2(f0_out[both] / f0_in[both]))
            cents.append(float(np.median(deviation)))
            errors.append(deviation > 50)
        periodicity.append(float(np.mean(np.abs(prob_out - prob_in))))
        tp, fp, fn = tp + int(both.sum()), fp + int((voiced_out & ~voiced_in).sum()), fn + int((voiced_in & ~voiced_out).sum())
    pooled = np.concatenate(errors) if errors else np.zeros(0, dtype=bool)
    return BandMetrics(
        cents=float(np.mean(cents)) if cents else math.nan,
        gross_error=float(pooled.mean()) if pooled.size else math.nan,
        periodicity=float(np.mean(periodicity)),
        voicing_f1=2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan,
        mel_l1=float(np.mean(mel_l1)),
        compared=tp / (tp + fn) if tp + fn else math.nan,
        hop_correlation_in=float(np.mean(hop_in)),
        hop_correlation_out=float(np.mean(hop_out)),
    )


def evaluate_model(path_or_name: str | Path, references_at: Callable[[int], Sequence[Reference]]) -> dict[str, BandMetrics]:
    """Metrics per band of a run folder, model folder or bundled model, on the held-out clips
    ``references_at(sample_rate)`` renders at the model's rate."""
    model = snakeaudio.from_pretrained(path_or_name).eval()
    return {reference.band.name: evaluate_band(model, reference) for reference in references_at(model.sample_rate)}


def format_table(results: dict[str, dict], bands: Sequence[Band]) -> str:
    """Markdown: one row per variant and band."""
    lines = [
        "| variant | steps | train time | band | f0 (Hz) | pitch error (cents) | >50 cents | periodicity error | voicing F1 "
        "| log-mel L1 | hop-lag correlation, in → out |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        steps, time_s = result["steps"], result["wall_time_s"]
        trained = f"{steps} | {time_s:.0f} s" if steps is not None else "– | –"
        for band in bands:
            m = result["bands"][band.name]
            lines.append(
                f"| {name} | {trained} | {band.name} | {band.f0_min:.0f}–{band.f0_max:.0f} "
                f"| {m['cents']:.1f} | {100 * m['gross_error']:.1f}% | {m['periodicity']:.3f} | {m['voicing_f1']:.3f} | {m['mel_l1']:.3f} "
                f"| {m['hop_correlation_in']:.2f} → {m['hop_correlation_out']:.2f} |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG, help="training config (default: %(default)s)")
    parser.add_argument("-o", "--output", type=Path, default=Path("outputs/tones"), help="folder of the runs (default: %(default)s)")
    parser.add_argument("--steps", type=int, help="training steps of every variant (default: the config's max_steps)")
    parser.add_argument("--clips", type=int, default=16, help="evaluation clips per band (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of an evaluation clip (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the held-out tones (default: %(default)s)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--jobs", type=int, default=1, help="variants trained at once, sharing the CPU cores (default: %(default)s)")
    parser.add_argument(
        "--also", nargs="+", default=[], metavar="MODEL",
        help="also evaluate these vocoders (bundled names or model folders) on the same tones, rendered at their sample rates",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="3 steps, 2 clips of 0.5 s: a smoke test")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.quick:
        args.steps, args.clips, args.seconds = args.steps or 3, 2, 0.5

    base = json.loads(args.config.read_text())
    train_config = TrainConfig.from_dict(base)
    if args.seed == train_config.data.seed:
        parser.error(f"--seed must differ from the training data seed ({train_config.data.seed}) to hold tones out")
    steps = args.steps or train_config.training.max_steps
    bands = default_bands(train_config.data.f0_min, train_config.data.f0_max)
    args.output.mkdir(parents=True, exist_ok=True)

    runs = {}
    for name in args.variants:  # train everything first: a crash in evaluation loses no training
        config_path = args.output / f"{name}.json"
        config_path.write_text(json.dumps(variant_config(base, VARIANTS[name], steps), indent=2) + "\n")
        runs[args.output / name] = config_path
    print(f"training {', '.join(args.variants)} to step {steps} in {args.output}, {args.jobs} at a time", flush=True)
    train_variants(runs, steps, args.jobs)

    print(f"analysing {args.clips} held-out clips per band", flush=True)

    @functools.cache
    def references_at(sample_rate: int) -> list[Reference]:
        return [make_reference(band, sample_rate, args.clips, args.seconds, args.seed) for band in bands]

    results: dict[str, dict] = {}
    for name in [*args.variants, *args.also]:
        run = args.output / name if name in args.variants else None
        print(f"{name}: evaluating", flush=True)
        metrics = evaluate_model(run or name, references_at)
        results[name] = {
            "steps": trained_steps(run) if run else None, "wall_time_s": wall_time(run) if run else None,
            "bands": {band: asdict(m) for band, m in metrics.items()},
        }  # fmt: skip

    table = format_table(results, bands)
    header = (
        f"Copy-synthesis of held-out single-note tones ({args.clips} clips of {args.seconds:g} s per band, seed {args.seed}); "
        f"trained on f0 {train_config.data.f0_min:g}–{train_config.data.f0_max:g} Hz for {steps} steps.\n\n"
    )
    (args.output / "results.md").write_text(header + table + "\n")
    (args.output / "results.json").write_text(
        json.dumps(
            {"bands": [asdict(b) for b in bands], "clips": args.clips, "seconds": args.seconds, "variants": results}, indent=2
        )
        + "\n"
    )
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
