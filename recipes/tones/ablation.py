"""Snake variants on synthetic tones and real music, at equal CPU time, over several seeds.

Trains one generator per variant and seed from the recipe's config (each by a subprocess call
of the ``snakeaudio train`` CLI into its own folder; a rerun skips finished runs and resumes
unfinished ones), each for the number of steps its variant takes in ``--budget`` seconds of CPU
time (measured once, in this process, with the same thread count, and kept in
``OUTPUT/calibration.json``). Then evaluates every run by copy-synthesis (wav →
``model.mel(wav)`` → ``model(mel)``) on held-out tones inside the training f0 range and an
octave below and above it, on steady band-limited sawtooth probes (inharmonic energy), and on
real music clips (``--music``, from ``prepare_music.py``)::

    python recipes/tones/ablation.py -o outputs/tones --music data/music   # full run
    python recipes/tones/ablation.py -o /tmp/tones --quick                  # seconds, for tests

Writes ``OUTPUT/configs/`` (one config per run), ``OUTPUT/<variant>_s<seed>/`` (the runs),
``OUTPUT/results.md`` (the table: mean ± standard deviation over seeds, and the differences
that exceed the spread), ``OUTPUT/results.json`` (every run's scores) and
``OUTPUT/spectrograms.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

import snakeaudio
from snakeaudio.dsp.comb import hop_comb_db
from snakeaudio.dsp.io import audio_files, read_audio
from snakeaudio.dsp.pitch import PitchTrack, compare_pitch, pitch_track
from snakeaudio.dsp.quality import log_mel_l1
from snakeaudio.inference.scores import PITCH_FMAX, PITCH_FMIN
from snakeaudio.models.generator import Generator
from snakeaudio.train import TrainConfig
from snakeaudio.train.data import PeriodicToneDataset, ToneSpec
from snakeaudio.train.trainer import Trainer, latest_checkpoint

CONFIG = Path(__file__).with_name("config.json")

SNAKE = {"activation": "snake", "anti_alias": False}
VARIANTS: dict[str, dict[str, dict]] = {
    "snake_aa": {"generator": {"activation": "snake", "anti_alias": True}},
    "snake": {"generator": SNAKE},
    "snakebeta": {"generator": {"activation": "snakebeta", "anti_alias": False}},
    "leakyrelu": {"generator": {"activation": "leakyrelu", "anti_alias": False, "snake_logscale": False}},  # HiFi-GAN's
    "snake_alpha_standard": {"generator": SNAKE, "training": {"snake_init": "standard"}},  # α ~ U(0.2, 0.5)
    "snake_alpha_periodic": {"generator": SNAKE, "training": {"snake_init": "periodic"}},  # α ~ U(5, 50)
}
"""Config sections and keys each variant overrides in the recipe's config (``snake``: α = 1)."""

METRICS = {  # key -> (column title, format, lower is better)
    "cents": ("pitch error, median (cents)", "{:.1f}", True),
    "cents_p90": ("pitch error, p90 (cents)", "{:.1f}", True),
    "vuv_f1": ("V/UV F1", "{:.3f}", False),
    "hop_comb": ("hop comb (dB, out − in)", "{:+.2f}", True),
    "inharmonic": ("inharmonic energy (dB)", "{:.1f}", True),
    "mel_l1": ("log-mel L1", "{:.3f}", True),
}


@dataclass(frozen=True)
class Band:
    name: str
    f0_min: float
    f0_max: float

    @property
    def pitch_range(self) -> tuple[float, float]:
        """pYIN's search range: the band with half an octave of margin on each side."""
        return self.f0_min / 2**0.5, self.f0_max * 2**0.5


def default_bands(f0_min: float, f0_max: float) -> list[Band]:
    """The training range and an octave on each side of it, with a gap."""
    return [Band("below", f0_min / 2, f0_min / 1.1), Band("inside", f0_min, f0_max), Band("above", f0_max * 1.15, f0_max * 2.3)]


# -- runs ---------------------------------------------------------------------------------


def variant_config(base: dict, variant: dict[str, dict], seed: int, max_steps: int | None = None) -> dict:
    """The base training config with a variant's overrides, training seed ``seed`` and ``max_steps``."""
    config = json.loads(json.dumps(base))
    for section, overrides in variant.items():
        config.setdefault(section, {}).update(overrides)
    config["training"]["seed"] = seed
    if max_steps is not None:
        config["training"]["max_steps"] = max_steps
        config["training"]["checkpoint_every"] = min(config["training"].get("checkpoint_every", max_steps), max_steps)
    TrainConfig.from_dict(config)  # validates
    return config


def seconds_per_step(config: dict, steps: int = 8) -> float:
    """CPU time of one training step of ``config``, with this process's thread count (after 2 warm-up steps)."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(TrainConfig.from_dict(config), tmp)
        size = trainer.config.training.batch_size
        batch = torch.stack([trainer.train_set[i] for i in range(size)])  # (B, 1, segment)
        for _ in range(2):
            trainer.train_step(batch)
        start = time.process_time()
        for _ in range(steps):
            trainer.train_step(batch)
        trainer.close()
    return (time.process_time() - start) / steps


def trained_steps(run: Path) -> int:
    checkpoint = latest_checkpoint(run)
    return int(checkpoint.name.split("_")[1]) if checkpoint else 0


def train_runs(runs: dict[Path, tuple[Path, int]], jobs: int = 1) -> dict[Path, float]:
    """Train (or resume) each run folder from its (config, max_steps) with the CLI, up to ``jobs``
    at once (each with ``OMP_NUM_THREADS`` = the CPU count // ``jobs``, unless set, and its
    progress bar in ``run/train.log`` instead of the terminal when ``jobs`` > 1); returns this
    call's wall time per run in s, 0 for runs already finished.

    The wall time of all calls is accumulated in ``run/wall_time_s.txt``.
    """
    environment = dict(os.environ)
    environment.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // jobs)))
    pending = [(run, config, steps) for run, (config, steps) in runs.items() if trained_steps(run) < steps]
    elapsed = {run: 0.0 for run in runs}
    running: dict[Path, tuple[subprocess.Popen, float]] = {}
    while pending or running:
        while pending and len(running) < jobs:
            run, config, steps = pending.pop(0)
            command = [sys.executable, "-m", "snakeaudio.cli", "train", str(config), "-o", str(run), "--max-steps", str(steps)]
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
            print(f"{run.name}: trained to step {runs[run][1]} in {elapsed[run]:.0f} s", flush=True)
            record = run / "wall_time_s.txt"
            total = float(record.read_text()) if record.is_file() else 0.0
            record.write_text(f"{total + elapsed[run]:.1f}\n")
    return elapsed


def wall_time(run: Path) -> float:
    record = run / "wall_time_s.txt"
    return float(record.read_text()) if record.is_file() else math.nan


# -- evaluation ---------------------------------------------------------------------------


@dataclass
class Clip:
    """One held-out input and what is known of it: pYIN's track, its own hop comb, and for a
    steady probe its f0."""

    wav: torch.Tensor  # (1, 1, T)
    track: PitchTrack | None
    hop_comb: float
    f0: float | None = None


@dataclass
class Reference:
    """The held-out clips of one band (tones and steady probes) or of the music (computed once, shared by every run)."""

    name: str
    pitch_range: tuple[float, float]
    clips: list[Clip]
    probes: list[Clip]


def sawtooth(f0: float, sample_rate: int, samples: int) -> torch.Tensor:
    """A steady band-limited sawtooth (harmonics k·f0 < 0.45·rate, amplitude 0.5/k). Shape: (T,)."""
    t = torch.arange(samples, dtype=torch.float64) / sample_rate
    k = torch.arange(1, int(0.45 * sample_rate / f0) + 1, dtype=torch.float64)
    return (0.5 * torch.sin(2 * math.pi * f0 * k[:, None] * t) / k[:, None]).sum(0).float()


def inharmonic_db(wav: torch.Tensor, f0: float, sample_rate: int) -> float:
    """Energy off the harmonics of ``f0`` relative to the total, in dB, over the middle half of
    ``wav`` (Hann window; ±4 bins around each k·f0 count as harmonic; below f0/2 is left out).

    On a steady tone this is what a vocoder adds between the harmonics: folded (aliased)
    harmonics, but also noise and lines on the hop lattice.

    Shape: (..., T) -> float.
    """
    x = wav.reshape(-1).double()
    x = x[len(x) // 4 : 3 * len(x) // 4]
    power = torch.fft.rfft(x * torch.hann_window(len(x), periodic=False, dtype=x.dtype)).abs().square()
    bins = torch.arange(len(power), dtype=torch.float64) * sample_rate / len(x)
    distance = torch.remainder(bins + f0 / 2, f0) - f0 / 2  # Hz to the nearest harmonic
    harmonic = distance.abs() <= 4 * sample_rate / len(x)
    counted = bins >= f0 / 2
    total = power[counted].sum()
    return float(10 * torch.log10(power[counted & ~harmonic].sum().clamp_min(1e-30) / total)) if total > 0 else math.nan


def analyse(wav: torch.Tensor, sample_rate: int, hop: int, pitch_range: tuple[float, float]) -> Clip:
    return Clip(wav[None, None], pitch_track(wav, sample_rate, *pitch_range), hop_comb_db(wav, sample_rate, hop))


def tone_reference(band: Band, sample_rate: int, hop: int, clips: int, seconds: float, seed: int) -> Reference:
    """``clips`` single-note tones with f0 log-uniform in ``band`` (vibrato, envelopes, four
    timbres) and 4 steady sawtooth probes log-spaced across it."""
    spec = ToneSpec(band.f0_min, band.f0_max, max_notes=1)
    tones = PeriodicToneDataset(sample_rate, int(seconds * sample_rate), size=clips, spec=spec, seed=seed)
    probes = [
        Clip(sawtooth(f0, sample_rate, int(seconds * sample_rate))[None, None], None, math.nan, f0)
        for f0 in np.geomspace(band.f0_min, band.f0_max, 4)
    ]
    return Reference(band.name, band.pitch_range, [analyse(tones[i][0], sample_rate, hop, band.pitch_range) for i in range(clips)], probes)


def music_reference(folder: Path, sample_rate: int, hop: int) -> Reference:
    """The music clips of ``folder``, pitch searched in 50–1000 Hz as ``snakeaudio evaluate`` does."""
    pitch_range = (PITCH_FMIN, min(PITCH_FMAX, sample_rate / 4))
    clips = [analyse(read_audio(path, sample_rate), sample_rate, hop, pitch_range) for path in audio_files(folder)]
    return Reference("music", pitch_range, clips, [])


def evaluate(synthesize: Callable[[torch.Tensor], torch.Tensor], mel: Callable[[torch.Tensor], torch.Tensor],
             reference: Reference, sample_rate: int, hop: int) -> dict[str, float]:  # fmt: skip
    """Means over the reference's clips of the metrics in :data:`METRICS` (NaN where a metric has
    no clips: inharmonic energy without probes, pitch error where no frame is voiced in both)."""
    scores: dict[str, list[float]] = {key: [] for key in METRICS}
    with torch.inference_mode():
        for clip in reference.clips:
            out = synthesize(clip.wav)[..., : clip.wav.shape[-1]]  # (1, 1, T) -> (1, 1, ≤T)
            pitch = compare_pitch(clip.track, pitch_track(out, sample_rate, *reference.pitch_range))
            scores["cents"].append(pitch.cents_error)
            scores["cents_p90"].append(pitch.cents_error_p90)
            scores["vuv_f1"].append(pitch.vuv_f1)
            scores["hop_comb"].append(hop_comb_db(out, sample_rate, hop) - clip.hop_comb)
            scores["mel_l1"].append(log_mel_l1(clip.wav, out, mel))
        for probe in reference.probes:
            scores["inharmonic"].append(inharmonic_db(synthesize(probe.wav), probe.f0, sample_rate))
    return {key: float(np.nanmean(values)) if np.isfinite(values).any() else math.nan for key, values in scores.items()}


def evaluate_model(model: Generator, references: Sequence[Reference]) -> dict[str, dict[str, float]]:
    model = model.eval()
    return {r.name: evaluate(lambda w: model(model.mel(w)), model.mel, r, model.sample_rate, model.hop_length) for r in references}


# -- report -------------------------------------------------------------------------------


def summarise(runs: dict[str, list[dict]]) -> dict[str, dict[str, dict[str, list[float]]]]:
    """variant -> band -> metric -> the values of its seeds."""
    summary: dict[str, dict[str, dict[str, list[float]]]] = {}
    for name, results in runs.items():
        for result in results:
            for band, metrics in result["bands"].items():
                for key, value in metrics.items():
                    summary.setdefault(name, {}).setdefault(band, {}).setdefault(key, []).append(value)
    return summary


def mean_sd(values: list[float], fmt: str) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "–"
    text = fmt.format(np.mean(finite))
    return text + (f" ± {fmt.format(np.std(finite, ddof=1)).lstrip('+')}" if len(finite) > 1 else "")


def separations(summary: dict, bands: Sequence[str]) -> tuple[list[str], int]:
    """Per band and metric, the pairs of variants whose seeds' ranges do not overlap, better one
    first; and how many pairs were compared."""
    lines, compared = [], 0
    for band, key in itertools.product(bands, METRICS):
        title, _, lower_better = METRICS[key]
        pairs = []
        for a, b in itertools.combinations([n for n in summary if band in summary[n]], 2):
            va, vb = (np.array([v for v in summary[n][band][key] if math.isfinite(v)]) for n in (a, b))
            if len(va) < 2 or len(vb) < 2:
                continue
            compared += 1
            if va.max() < vb.min() or vb.max() < va.min():
                better, worse = (a, b) if (va.mean() < vb.mean()) == lower_better else (b, a)
                pairs.append(f"{better} > {worse}")
        if pairs:
            lines.append(f"- {band}, {title}: " + "; ".join(pairs))
    return lines, compared


def chance_of_separation(seeds: int) -> float:
    """The probability that two sets of ``seeds`` values from one distribution have disjoint
    ranges: 2 of the C(2s, s) equally likely orderings put one set wholly below the other."""
    return 2 / math.comb(2 * seeds, seeds)


def format_table(summary: dict, steps: dict[str, int], times: dict[str, float], bands: Sequence[str]) -> str:
    header = "| variant | steps | train time | band | " + " | ".join(t for t, _, _ in METRICS.values()) + " |"
    lines = [header, "|" + "---|" * (4 + len(METRICS))]
    for name, per_band in summary.items():
        for band in bands:
            if band not in per_band:
                continue
            cells = [mean_sd(per_band[band][key], fmt) for key, (_, fmt, _) in METRICS.items()]
            trained = f"{steps[name]} | {times[name]:.0f} s" if name in steps else "0 | –"
            lines.append(f"| {name} | {trained} | {band} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_spectrograms(models: dict[str, Generator], clips: dict[str, torch.Tensor], sample_rate: int, path: Path) -> None:
    """Log-magnitude spectrograms of each clip (columns) as input and through each model (rows)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {"input": None, **models}
    figure, axes = plt.subplots(len(rows), len(clips), figsize=(3.2 * len(clips), 1.3 * len(rows)), squeeze=False, sharex=True)
    for (row, model), line in zip(rows.items(), axes):
        for (title, wav), ax in zip(clips.items(), line):
            with torch.inference_mode():
                out = wav if model is None else model(model.mel(wav))
            spec = torch.stft(out.reshape(-1), 1024, 128, window=torch.hann_window(1024), return_complex=True).abs()
            ax.imshow(20 * torch.log10(spec + 1e-5).numpy(), origin="lower", aspect="auto", vmin=-80, vmax=30, cmap="magma",
                      extent=(0, out.shape[-1] / sample_rate, 0, sample_rate / 2000))  # fmt: skip
            ax.set_title(f"{row}: {title}", fontsize=7)
            ax.tick_params(labelsize=6)
    for ax in axes[:, 0]:
        ax.set_ylabel("kHz", fontsize=6)
    figure.tight_layout()
    figure.savefig(path, dpi=72)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=CONFIG, help="training config (default: %(default)s)")
    parser.add_argument("-o", "--output", type=Path, default=Path("outputs/tones"), help="folder of the runs (default: %(default)s)")
    parser.add_argument("--budget", type=float, default=240.0, help="CPU seconds of training per run (default: %(default)s)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per variant (default: %(default)s)")
    parser.add_argument("--music", type=Path, help="folder of real music clips to evaluate on too (prepare_music.py)")
    parser.add_argument("--clips", type=int, default=8, help="evaluation tones per band (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of an evaluation tone (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=2024, help="seed of the held-out tones (default: %(default)s)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once, sharing the CPU cores (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="3 steps, 1 seed, 2 tones of 0.6 s per band: a smoke test")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.seeds < 1:
        parser.error(f"--jobs and --seeds must be >= 1, got {args.jobs} and {args.seeds}")
    if args.music is not None and not audio_files(args.music):
        parser.error(f"--music {args.music} holds no audio files; make them with recipes/tones/prepare_music.py")
    if args.quick:
        args.seeds, args.clips, args.seconds = 1, 2, 0.6

    base = json.loads(args.config.read_text())
    train_config = TrainConfig.from_dict(base)
    if args.seed == train_config.data.seed:
        parser.error(f"--seed must differ from the training data seed ({train_config.data.seed}) to hold tones out")
    bands = default_bands(train_config.data.f0_min, train_config.data.f0_max)
    seeds = [train_config.training.seed + k for k in range(args.seeds)]
    (args.output / "configs").mkdir(parents=True, exist_ok=True)

    calibration_path = args.output / "calibration.json"
    calibration = json.loads(calibration_path.read_text()) if calibration_path.is_file() else {}
    for name in args.variants:  # the steps of a run are fixed once measured: reruns resume to the same point
        if name not in calibration and not args.quick:
            torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", max(1, (os.cpu_count() or 1) // args.jobs))))
            calibration[name] = seconds_per_step(variant_config(base, VARIANTS[name], seeds[0]))
            print(f"{name}: {calibration[name] * 1000:.0f} ms of CPU per step", flush=True)
            calibration_path.write_text(json.dumps(calibration, indent=2) + "\n")
    steps = {name: 3 if args.quick else max(1, round(args.budget / calibration[name])) for name in args.variants}

    runs = {}
    for name, seed in itertools.product(args.variants, seeds):  # train everything first: a crash in evaluation loses no training
        config_path = args.output / "configs" / f"{name}_s{seed}.json"
        config_path.write_text(json.dumps(variant_config(base, VARIANTS[name], seed, steps[name]), indent=2) + "\n")
        runs[args.output / f"{name}_s{seed}"] = (config_path, steps[name])
    print(f"training {len(runs)} runs in {args.output}, {args.jobs} at a time", flush=True)
    train_runs(runs, args.jobs)

    sr, hop = train_config.generator.sampling_rate, train_config.generator.hop_size
    print(f"analysing {args.clips} held-out tones per band" + (f" and the clips of {args.music}" if args.music else ""), flush=True)
    references = [tone_reference(band, sr, hop, args.clips, args.seconds, args.seed) for band in bands]
    if args.music:
        references.append(music_reference(args.music, sr, hop))

    results: dict[str, list[dict]] = {}
    torch.manual_seed(seeds[0])
    untrained = Generator(train_config.generator)  # what the phase vocoder and the mel prior give before any training
    results["untrained"] = [{"seed": seeds[0], "bands": evaluate_model(untrained, references)}]
    for name, seed in itertools.product(args.variants, seeds):
        run = args.output / f"{name}_s{seed}"
        print(f"{run.name}: evaluating", flush=True)
        model = snakeaudio.from_pretrained(run)
        results.setdefault(name, []).append({"seed": seed, "steps": trained_steps(run), "wall_time_s": wall_time(run),
                                             "bands": evaluate_model(model, references)})  # fmt: skip

    summary = summarise(results)
    names = [r.name for r in references]
    times = {name: float(np.mean([r["wall_time_s"] for r in results[name]])) for name in args.variants}
    table = format_table(summary, steps, times, names)
    separated, compared = separations({n: s for n, s in summary.items() if n != "untrained"}, names)
    header = (
        f"Copy-synthesis of {args.clips} held-out single-note tones of {args.seconds:g} s per band (seed {args.seed}), 4 steady "
        f"sawtooth probes per band{' and the music clips of ' + str(args.music) if args.music else ''}; trained on f0 "
        f"{train_config.data.f0_min:g}–{train_config.data.f0_max:g} Hz for {args.budget:g} CPU-seconds per run "
        f"(train time: wall time, mean over seeds); mean ± standard deviation over {args.seeds} seed(s).\n\n"
    )
    chance = chance_of_separation(args.seeds)
    footer = "\n\nOne seed per variant: no spread, so no difference is claimed." if args.seeds < 2 else (
        f"\n\nDifferences larger than the spread (the seeds' ranges do not overlap; `a > b`: a is better): "
        f"{sum(line.count(' > ') for line in separated)} of {compared} pairs compared. Variants that did not differ at all "
        f"would give disjoint ranges in {chance:.0%} of comparisons with {args.seeds} seeds each, "
        f"about {chance * compared:.0f} here by chance.\n\n" + ("\n".join(separated) or "- none")
    )
    (args.output / "results.md").write_text(header + table + footer + "\n")
    (args.output / "results.json").write_text(json.dumps({
        "bands": [asdict(b) for b in bands], "clips": args.clips, "seconds": args.seconds, "budget_s": args.budget,
        "calibration_s_per_step": calibration, "runs": results,
    }, indent=2) + "\n")  # fmt: skip
    inside, above = (next(r for r in references if r.name == band).clips[0].wav for band in ("inside", "above"))
    plot_spectrograms(
        {name: snakeaudio.from_pretrained(args.output / f"{name}_s{seeds[0]}").eval() for name in args.variants},
        {"inside": inside, "above": above}, sr, args.output / "spectrograms.png",
    )  # fmt: skip
    print(table + footer)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
