"""Generate the speech_small training corpus offline from Debian's speech synthesisers.

Voices: festival's HTS voice cmu_us_slt_arctic_hts (trained on real recordings) and the
diphone voices kal and ked (real recorded diphones), flite's slt/rms/awb/kal16, and
espeak-ng's formant voices with +m1..+f4 variants, each with varied pitch and rate. Texts
come from the ``fortunes-min`` package (one-liners), so every utterance is different.

Needs (Debian): festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k flite espeak-ng fortunes-min

Run: python recipes/speech_small/prepare_data.py --output data/speech_small --count 800
Writes OUTPUT/train/*.wav and OUTPUT/valid/*.wav at --sample-rate, mono, peak-normalised,
plus OUTPUT/manifest.tsv (file, engine, voice, pitch, rate, text).
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from tqdm import tqdm

FORTUNES = Path("/usr/share/games/fortunes")
FESTIVAL_VOICES = ["cmu_us_slt_arctic_hts", "kal_diphone", "ked_diphone"]
FLITE_VOICES = ["slt", "rms", "awb", "kal16"]
ESPEAK_VARIANTS = ["en-us", "en-us+m1", "en-us+m3", "en-us+f2", "en-us+f4", "en", "en+m2", "en+f3"]
TOOLS = {"festival": "text2wave", "flite": "flite", "espeak": "espeak-ng"}


def sentences(limit: int, rng: random.Random) -> list[str]:
    """One-line sentences of 30–160 characters from the fortune files."""
    texts: set[str] = set()
    for name in ("fortunes", "literature", "riddles"):
        path = FORTUNES / name
        if not path.is_file():
            continue
        for chunk in path.read_text(errors="ignore").split("\n%\n"):
            text = " ".join(chunk.split())
            text = re.sub(r"--.*$", "", text).strip()  # drop attributions
            if 30 <= len(text) <= 160 and re.fullmatch(r"[A-Za-z0-9 ,.;:'!?\-]+", text):
                texts.add(text)
    if not texts:
        raise SystemExit(f"no sentences found under {FORTUNES}: install the Debian package fortunes-min")
    ordered = sorted(texts)
    rng.shuffle(ordered)
    return ordered[:limit]


def synthesize(engine: str, voice: str, text: str, pitch: float, rate: float, out: Path) -> None:
    """One utterance to ``out`` (native rate). ``pitch`` and ``rate`` are relative factors around 1."""
    if engine == "festival":
        scheme = (
            f"(voice_{voice})"
            f"(Parameter.set 'Duration_Stretch {1 / rate:.3f})"
        )
        subprocess.run(["text2wave", "-eval", scheme, "-o", str(out)], input=text, text=True, check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        if abs(pitch - 1) > 1e-3:  # festival voices keep their own intonation: shift by resampling
            wav, sr = sf.read(out, dtype="float32")
            shifted = AF.resample(torch.from_numpy(wav), int(round(sr * pitch)), sr).numpy()
            sf.write(out, shifted, int(round(sr)))
    elif engine == "flite":
        subprocess.run(["flite", "-voice", voice, "--setf", f"duration_stretch={1 / rate:.3f}",
                        "--setf", f"int_f0_target_mean={110 * pitch if voice in ('rms', 'awb', 'kal16') else 170 * pitch:.0f}",
                        "-t", text, "-o", str(out)], check=True, capture_output=True, timeout=120)  # fmt: skip
    else:
        subprocess.run(["espeak-ng", "-v", voice, "-p", str(int(50 * pitch)), "-s", str(int(165 * rate)),
                        "-w", str(out), text], check=True, capture_output=True, timeout=120)  # fmt: skip


def render(job: dict, sample_rate: int, tmp: Path) -> dict | None:
    raw = tmp / f"{job['name']}.raw.wav"
    try:
        synthesize(job["engine"], job["voice"], job["text"], job["pitch"], job["rate"], raw)
        wav, sr = sf.read(raw, dtype="float32", always_2d=True)
    except (subprocess.SubprocessError, OSError, RuntimeError) as err:
        return {**job, "error": str(err)[:200]}
    wav = torch.from_numpy(wav.mean(1))
    if sr != sample_rate:
        wav = AF.resample(wav, sr, sample_rate)
    peak = wav.abs().max().item()
    if peak < 1e-3:
        return {**job, "error": "silent output"}
    wav = wav / peak * job["level"]
    sf.write(job["path"], wav.numpy().astype(np.float32), sample_rate, subtype="PCM_16")
    raw.unlink(missing_ok=True)
    return job


def plan(count: int, valid_fraction: float, output: Path, seed: int) -> list[dict]:
    rng = random.Random(seed)
    texts = sentences(count, rng)
    voices = [("festival", v) for v in FESTIVAL_VOICES] + [("flite", v) for v in FLITE_VOICES] + [("espeak", v) for v in ESPEAK_VARIANTS]
    jobs = []
    for i, text in enumerate(texts):
        engine, voice = voices[i % len(voices)]
        split = "valid" if i < int(count * valid_fraction) else "train"
        jobs.append({
            "name": f"{i:05d}_{engine}_{voice.replace('+', '_')}", "engine": engine, "voice": voice, "text": text,
            "pitch": round(rng.uniform(0.8, 1.25), 3), "rate": round(rng.uniform(0.8, 1.2), 3),
            "level": round(rng.uniform(0.3, 0.95), 3),
            "path": str(output / split / f"{i:05d}_{engine}_{voice.replace('+', '_')}.wav"),
        })  # fmt: skip
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("data/speech_small"))
    parser.add_argument("--count", type=int, default=800, help="number of utterances (default: %(default)s)")
    parser.add_argument("--valid-fraction", type=float, default=0.05)
    parser.add_argument("--sample-rate", type=int, default=24000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    missing = [tool for tool in TOOLS.values() if shutil.which(tool) is None]
    if missing:
        print(f"missing programs: {', '.join(missing)}; install the Debian packages listed in this script's docstring", file=sys.stderr)
        return 2
    jobs = plan(args.count, args.valid_fraction, args.output, args.seed)
    todo = [j for j in jobs if not Path(j["path"]).is_file()]  # rerunning resumes
    for split in ("train", "valid"):
        (args.output / split).mkdir(parents=True, exist_ok=True)
    failures = []
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(args.workers) as pool:
        results = pool.map(lambda j: render(j, args.sample_rate, Path(tmp)), todo)
        for result in tqdm(results, total=len(todo), desc="synthesizing", unit="utt"):
            if result and "error" in result:
                failures.append(result)
    with open(args.output / "manifest.tsv", "w") as f:
        f.write("file\tengine\tvoice\tpitch\trate\ttext\n")
        for j in jobs:
            if Path(j["path"]).is_file():
                f.write(f"{Path(j['path']).relative_to(args.output)}\t{j['engine']}\t{j['voice']}\t{j['pitch']}\t{j['rate']}\t{j['text']}\n")
    done = sum(Path(j["path"]).is_file() for j in jobs)
    seconds = sum(sf.info(j["path"]).duration for j in jobs if Path(j["path"]).is_file())
    print(f"{done} of {len(jobs)} utterances ({seconds / 60:.1f} min) in {args.output}; {len(failures)} failed")
    for failure in failures[:5]:
        print(f"  {failure['name']}: {failure['error']}", file=sys.stderr)
    return 0 if done else 1


if __name__ == "__main__":
    raise SystemExit(main())
