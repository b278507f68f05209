"""Generate the speech_small training corpus offline from Debian packages: synthetic and real speech.

Synthetic voices: festival's HTS voice cmu_us_slt_arctic_hts (trained on real recordings) and the
diphone voices kal and ked (real recorded diphones), flite's slt/rms/awb/kal16, and
espeak-ng's formant voices with +m1..+f4 variants, each with varied pitch and rate. Texts
come from the ``fortunes-min`` package (one-liners), so every utterance is different.

Real recordings (unless ``--no-real``), unpacked from Debian packages without installing them
(``apt-get download`` into ``--debs`` when the .deb is not there yet):
``asterisk-core-sounds-en-g722`` (Allison Smith's 568 US English telephony prompts, 16 kHz G.722,
CC BY-SA 3.0) and ``klettres-data``/``ktuberling-data`` (KDE's letters, syllables and words spoken
by many people in ~25 languages, GPL-2+). Each clip is mixed to mono, resampled, trimmed of leading
and trailing silence and peak-normalised; the short KDE clips are joined, per language, into
utterances of a few seconds with short pauses.

Needs (Debian): festival festvox-us-slt-hts festvox-kallpc16k festvox-kdlpc16k flite espeak-ng fortunes-min
Needs (PyPI, for the real part): G722

Run: python recipes/speech_small/prepare_data.py --output data/speech_small --count 800
Writes OUTPUT/train/*.wav and OUTPUT/valid/*.wav at --sample-rate, mono, peak-normalised (real
recordings as real_<source>_<name>.wav), plus OUTPUT/manifest.tsv (file, engine, voice, pitch,
rate, source, license, text).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
# voice or engine -> (Debian package, its license)
SYNTH_SOURCES = {
    "cmu_us_slt_arctic_hts": ("festvox-us-slt-hts", "BSD-style"),
    "kal_diphone": ("festvox-kallpc16k", "BSD-style"),
    "ked_diphone": ("festvox-kdlpc16k", "BSD-style"),
    "flite": ("flite", "BSD-style"),
    "espeak": ("espeak-ng", "GPL-3+"),
}
MANIFEST_COLUMNS = ["file", "engine", "voice", "pitch", "rate", "source", "license", "bandwidth", "text"]
BANDWIDTH_FLOOR_DB = 60.0  # a clip's bandwidth: the highest frequency within this many dB of its loudest


@dataclass(frozen=True)
class RealSource:
    """Recordings inside a Debian package: ``folder/[voice/]...`` holds the clips."""

    package: str
    folder: str
    license: str
    join: bool  # short clips: join them, per voice, into utterances of a few seconds
    skip: tuple[str, ...] = ()  # sub-folders left out
    pattern: str = "*"  # which files under ``folder`` (rglob pattern)
    speaker_prefix: bool = False  # the speaker is the file name up to its first "-"


FILLETS = "usr/share/games/fillets-ng/sound"
REAL_SOURCES = {
    # Fish Fillets NG's spoken dialogue (Czech, English, Dutch voice actors), 22.05 kHz; the base
    # package also holds music and effects, left out by taking only its en/ folders.
    "fillets_cs": RealSource("fillets-ng-data-cs", FILLETS, "GPL-2", join=False, pattern="*.ogg", speaker_prefix=True),
    "fillets_en": RealSource("fillets-ng-data", FILLETS, "GPL-2", join=False, pattern="en/*.ogg", speaker_prefix=True),
    "fillets_nl": RealSource("fillets-ng-data-nl", FILLETS, "GPL-2", join=False, pattern="*.ogg", speaker_prefix=True),
    "asterisk": RealSource("asterisk-core-sounds-en-g722", "usr/share/asterisk/sounds/en_US_f_Allison", "CC-BY-SA-3.0",
                           join=False, skip=("silence",)),
    "klettres": RealSource("klettres-data", "usr/share/klettres", "GPL-2+", join=True),
    "ktuberling": RealSource("ktuberling-data", "usr/share/ktuberling/sounds", "GPL-2+", join=True),
}  # fmt: skip
AUDIO_SUFFIXES = {".g722", ".ogg", ".opus", ".wav"}
MIN_SOURCE_RATE = 16000  # leave out narrowband (8 kHz) clips
MIN_CLIP_SECONDS = 0.3
JOIN_SECONDS = (2.5, 4.0)  # joined utterances: target and maximum length
GAP_SECONDS = 0.15


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


def unpack(package: str, debs: Path, dest: Path) -> Path:
    """Unpack Debian ``package`` from ``debs/package_*.deb`` into ``dest``, downloading it there if missing."""
    debs.mkdir(parents=True, exist_ok=True)
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        try:
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True, capture_output=True, text=True, timeout=600)
        except (subprocess.SubprocessError, OSError) as err:
            detail = getattr(err, "stderr", None) or str(err)
            raise SystemExit(f"cannot get the Debian package {package}: no {package}_*.deb in {debs} and "
                             f"`apt-get download {package}` failed: {detail.strip()[-300:]}") from err  # fmt: skip
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            raise SystemExit(f"cannot get the Debian package {package}: `apt-get download` left no {package}_*.deb in {debs}")
    dest.mkdir(parents=True, exist_ok=True)
    unpacked = subprocess.run(["dpkg", "-x", str(found[-1]), str(dest)], check=False, capture_output=True, text=True, timeout=600)
    if unpacked.returncode != 0:
        raise SystemExit(f"cannot unpack the Debian package {package} from {found[-1]}: {unpacked.stderr.strip()[-300:]}")
    return dest


def read_clip(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate; ``.g722`` is a raw 64 kbit/s G.722 stream at 16 kHz."""
    if path.suffix == ".g722":
        try:
            from G722 import G722
        except ImportError as err:
            raise SystemExit("decoding the G.722 prompts needs the PyPI package G722: pip install G722") from err
        pcm = np.asarray(G722(16000, 64000).decode(path.read_bytes()), dtype=np.int16)
        return pcm.astype(np.float32) / 32768, 16000
    wav, sr = sf.read(path, dtype="float32", always_2d=True)
    return wav.mean(1), sr


def trim(wav: torch.Tensor, sample_rate: int, top_db: float = 40.0, margin: float = 0.05) -> torch.Tensor:
    """Cut leading and trailing 10 ms frames quieter than ``top_db`` below the loudest, keeping ``margin`` seconds."""
    hop = sample_rate // 100
    frames = wav[: len(wav) // hop * hop].reshape(-1, hop)  # (T,) -> (frames, hop)
    if len(frames) == 0:
        return wav[:0]
    rms = frames.pow(2).mean(1).sqrt()
    active = torch.nonzero(rms > rms.max() * 10 ** (-top_db / 20)).flatten()
    pad = int(margin * sample_rate)
    start = max(active[0].item() * hop - pad, 0)
    stop = min((active[-1].item() + 1) * hop + pad, len(wav))
    return wav[start:stop]


def speech_seconds(path: Path) -> tuple[float, int]:
    """Length after trimming (0 when silent) and native rate."""
    wav, sr = read_clip(path)
    wav = trim(torch.from_numpy(wav), sr)
    return (len(wav) / sr if len(wav) and wav.abs().max() >= 1e-3 else 0.0), sr


def plan_real(debs: Path, unpacked: Path, valid_fraction: float, output: Path, seed: int) -> list[dict]:
    """Utterances of real speech: one per clip, or per group of clips joined (same voice)."""
    jobs = []
    for name, source in REAL_SOURCES.items():
        root = unpack(source.package, debs, unpacked / source.package) / source.folder
        seen: set[str] = set()
        by_voice: dict[str, list[tuple[Path, float]]] = {}
        for path in sorted(root.rglob(source.pattern)):
            rel = path.relative_to(root)
            if path.suffix not in AUDIO_SUFFIXES or not path.is_file() or set(rel.parts[:-1]) & set(source.skip):
                continue
            digest = hashlib.md5(path.read_bytes()).hexdigest()  # some clips ship twice (language variants)
            if digest in seen:
                continue
            seen.add(digest)
            try:
                seconds, sr = speech_seconds(path)
            except (RuntimeError, OSError):  # unreadable: left out
                continue
            if sr < MIN_SOURCE_RATE or seconds < MIN_CLIP_SECONDS:
                continue
            voice = path.stem.split("-")[0] if source.speaker_prefix else rel.parts[0] if source.join else root.name
            by_voice.setdefault(voice, []).append((path, seconds))
        rng = random.Random(f"{seed}-{name}")
        utterances = []  # (voice, name, clips)
        for voice, clips in by_voice.items():
            if not source.join:
                utterances += [(voice, "_".join(p.relative_to(root).with_suffix("").parts), [p]) for p, _ in clips]
                continue
            rng.shuffle(clips)
            groups, total = [[]], 0.0
            for path, seconds in clips:
                if groups[-1] and (total >= JOIN_SECONDS[0] or total + seconds > JOIN_SECONDS[1]):
                    groups.append([])
                    total = 0.0
                groups[-1].append(path)
                total += seconds + GAP_SECONDS
            tag = voice.replace("@", "_")  # sr@latin -> sr_latin
            utterances += [(voice, f"{tag}_{i:03d}", group) for i, group in enumerate(groups)]
        rng.shuffle(utterances)
        n_valid = max(1, int(len(utterances) * valid_fraction))
        for i, (voice, utt, clips) in enumerate(utterances):
            split = "valid" if i < n_valid else "train"
            jobs.append({
                "name": f"real_{name}_{utt}", "engine": "recording", "voice": voice, "pitch": 1, "rate": 1,
                "text": " ".join(p.stem for p in clips), "source": source.package, "license": source.license,
                "clips": clips, "level": round(rng.uniform(0.3, 0.95), 3),
                "path": str(output / split / f"real_{name}_{utt}.wav"),
            })  # fmt: skip
    return jobs


def render_real(job: dict, sample_rate: int) -> dict | None:
    """Decode, resample, trim and peak-normalise each clip; join them with short pauses."""
    parts = []
    for path in job["clips"]:
        try:
            wav, sr = read_clip(path)
        except (RuntimeError, OSError) as err:
            return {**job, "error": f"{path.name}: {str(err)[:200]}"}
        wav = torch.from_numpy(wav)
        if sr != sample_rate:
            wav = AF.resample(wav, sr, sample_rate)
        wav = trim(wav, sample_rate)
        peak = wav.abs().max().item() if len(wav) else 0.0
        if len(wav) < MIN_CLIP_SECONDS * sample_rate or peak < 1e-3:
            continue  # too short or silent
        parts += [wav / peak, torch.zeros(int(GAP_SECONDS * sample_rate))]
    if not parts:
        return {**job, "error": "no clip long and loud enough"}
    wav = torch.cat(parts[:-1]) * job["level"]
    sf.write(job["path"], wav.numpy().astype(np.float32), sample_rate, subtype="PCM_16")
    return job


def plan(count: int, valid_fraction: float, output: Path, seed: int) -> list[dict]:
    rng = random.Random(seed)
    texts = sentences(count, rng)
    voices = [("festival", v) for v in FESTIVAL_VOICES] + [("flite", v) for v in FLITE_VOICES] + [("espeak", v) for v in ESPEAK_VARIANTS]
    jobs = []
    for i, text in enumerate(texts):
        engine, voice = voices[i % len(voices)]
        package, terms = SYNTH_SOURCES.get(voice) or SYNTH_SOURCES[engine]
        split = "valid" if i < int(count * valid_fraction) else "train"
        jobs.append({
            "name": f"{i:05d}_{engine}_{voice.replace('+', '_')}", "engine": engine, "voice": voice, "text": text,
            "pitch": round(rng.uniform(0.8, 1.25), 3), "rate": round(rng.uniform(0.8, 1.2), 3),
            "level": round(rng.uniform(0.3, 0.95), 3), "source": package, "license": terms,
            "path": str(output / split / f"{i:05d}_{engine}_{voice.replace('+', '_')}.wav"),
        })  # fmt: skip
    return jobs


def effective_bandwidth(path: Path) -> int:
    """The highest frequency (Hz, to 100 Hz) at which the clip's long-term spectrum, smoothed
    over 1/3 octave, comes within ``BANDWIDTH_FLOOR_DB`` of its loudest: where the content of a
    16 kHz recording or of a low-passed one ends, whatever rate the file is at."""
    wav, sr = sf.read(path, dtype="float32")
    wav = torch.from_numpy(np.pad(wav, (0, max(0, 2048 - len(wav)))))
    frames = wav.unfold(0, 2048, 512)  # (T,) -> (frames, 2048)
    power = torch.fft.rfft(frames * torch.hann_window(2048), dim=-1).abs().pow(2).mean(0)  # (1025,)
    freqs = torch.fft.rfftfreq(2048, 1 / sr)
    centre = freqs.clamp(min=freqs[1])[:, None]
    band = ((freqs[None] >= centre / 2 ** (1 / 6)) & (freqs[None] <= centre * 2 ** (1 / 6))).float()  # (1025, 1025)
    level = 10 * torch.log10(band @ power / band.sum(1) + 1e-20)
    audible = torch.nonzero(level > level.max() - BANDWIDTH_FLOOR_DB).flatten()
    return int(round(freqs[audible[-1]].item() / 100) * 100)


def write_manifest(output: Path, jobs: list[dict]) -> None:
    """List every written file with its effective bandwidth; rows of files not planned this run
    (e.g. with ``--no-real``) are kept."""
    path = output / "manifest.tsv"
    rows: dict[str, dict[str, str]] = {}
    if path.is_file():
        header, *lines = path.read_text().splitlines()
        for line in lines:
            row = dict(zip(header.split("\t"), line.split("\t")))
            rows[row["file"]] = {column: row.get(column, "") for column in MANIFEST_COLUMNS}
    for job in jobs:
        rows[str(Path(job["path"]).relative_to(output))] = {column: str(job.get(column, "")) for column in MANIFEST_COLUMNS}
    rows = {file: row | {"file": file} for file, row in sorted(rows.items()) if (output / file).is_file()}
    for file, row in tqdm(rows.items(), desc="bandwidths", unit="file"):
        if not row["bandwidth"]:
            row["bandwidth"] = str(effective_bandwidth(output / file))
    with open(path, "w") as f:
        f.write("\t".join(MANIFEST_COLUMNS) + "\n")
        for row in rows.values():
            f.write("\t".join(row[column] for column in MANIFEST_COLUMNS) + "\n")


def run_jobs(jobs: list[dict], work: Callable[[dict], dict | None], desc: str, workers: int) -> list[dict]:
    """Run ``work`` on the jobs whose file is missing (rerunning resumes); return the failures."""
    todo = [j for j in jobs if not Path(j["path"]).is_file()]
    failures = []
    with ThreadPoolExecutor(workers) as pool:
        for result in tqdm(pool.map(work, todo), total=len(todo), desc=desc, unit="utt"):
            if result and "error" in result:
                failures.append(result)
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("data/speech_small"))
    parser.add_argument("--count", type=int, default=0, help="synthetic utterances, besides the recordings (default: %(default)s)")
    parser.add_argument("--valid-fraction", type=float, default=0.05)
    parser.add_argument("--sample-rate", type=int, default=24000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--no-real", dest="real", action="store_false", help="synthetic speech only")
    parser.add_argument("--debs", type=Path, default=Path("data/debs"),
                        help="folder of the .deb files with the real recordings; "
                             "missing ones are downloaded there (default: %(default)s)")  # fmt: skip
    args = parser.parse_args(argv)
    missing = [tool for tool in TOOLS.values() if shutil.which(tool) is None] if args.count else []
    if missing:
        print(f"missing programs: {', '.join(missing)}; install the Debian packages listed in this script's docstring", file=sys.stderr)
        return 2
    jobs = plan(args.count, args.valid_fraction, args.output, args.seed) if args.count else []
    for split in ("train", "valid"):
        (args.output / split).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        failures = run_jobs(jobs, lambda j: render(j, args.sample_rate, Path(tmp)), "synthesizing", args.workers)
        real = plan_real(args.debs, Path(tmp), args.valid_fraction, args.output, args.seed) if args.real else []
        failures += run_jobs(real, lambda j: render_real(j, args.sample_rate), "recordings", args.workers)
    write_manifest(args.output, jobs + real)
    for source in sorted({j["source"] for j in jobs + real}):
        written = [Path(j["path"]) for j in jobs + real if j["source"] == source and Path(j["path"]).is_file()]
        splits = {split: [p for p in written if p.parent.name == split] for split in ("train", "valid")}
        print(f"  {source}: " + ", ".join(f"{split} {len(ps)} ({sum(sf.info(p).duration for p in ps) / 60:.1f} min)"
                                          for split, ps in splits.items()))  # fmt: skip
    done = sum(Path(j["path"]).is_file() for j in jobs + real)
    seconds = sum(sf.info(j["path"]).duration for j in jobs + real if Path(j["path"]).is_file())
    print(f"{done} of {len(jobs) + len(real)} utterances ({seconds / 60:.1f} min) in {args.output}; {len(failures)} failed")
    for failure in failures[:5]:
        print(f"  {failure['name']}: {failure['error']}", file=sys.stderr)
    return 0 if done else 1


if __name__ == "__main__":
    raise SystemExit(main())
