"""Speech with music as a minority: the speech_small training clips plus clips of game music.

The music comes from the Debian packages of ``recipes/tones/prepare_music.py`` (Fish Fillets'
tracker tunes, GPL-2, and Wesnoth's orchestral tracks, GPL-2+), leaving out every track that a
held-out music evaluation picks (the tones recipe's 8 per package, the model card's 4), so the
music scores stay on tracks the model never heard. From each remaining track ``--clips`` clips
of ``--seconds`` are cut, evenly spaced between 10 % and 90 % of it, mixed to mono, resampled
and peak-normalised to −1 dBFS (the speech clips peak at a random 0.3–0.95, and the config's
gain augmentation varies the level of both); clips quieter than −40 dBFS RMS are skipped.
The trainer samples files uniformly, so the music's share of the training segments is its share
of the files (about a fifth with the defaults).

Run: python recipes/speech_small/prepare_mixed.py --speech data/speech_small/train --output data/speech_music
Writes OUTPUT/train/: the speech files, hard-linked (copied where links are not possible), and
music_<package>_<track>_<k>.wav (16-bit), plus OUTPUT/LICENSES.tsv for the music (file, package, license).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tones"))
from prepare_music import QUIET_DBFS, SOURCES, pick, unpack  # noqa: E402

HELD_OUT = (8, 4)  # tracks per package that the held-out music evaluations pick


def clips(path: Path, sample_rate: int, count: int, seconds: float) -> list[np.ndarray]:
    """Up to ``count`` clips of the track, mono at ``sample_rate``, peak −1 dBFS; quiet ones left out."""
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    track = AF.resample(torch.from_numpy(audio.mean(1)), rate, sample_rate).numpy()
    length = int(seconds * sample_rate)
    if track.size < 2 * length:
        return []
    found = []
    for start in np.linspace(0.1 * track.size, 0.9 * track.size - length, count).astype(int):
        clip = track[start : start + length]
        if 20 * np.log10(np.sqrt(np.mean(clip**2)) + 1e-12) >= QUIET_DBFS:
            found.append(clip * (10 ** (-1 / 20) / np.abs(clip).max()))
    return found


def held_out(tracks: list[Path]) -> set[Path]:
    """The tracks that the held-out music evaluations pick, which training leaves out."""
    return {track for count in HELD_OUT for track in pick(tracks, count)}


def link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speech", type=Path, default=Path("data/speech_small/train"), help="speech clips (default: %(default)s)")
    parser.add_argument("--output", type=Path, default=Path("data/speech_music"), help="default: %(default)s")
    parser.add_argument("--debs", type=Path, default=Path("data/debs"), help="folder of the .deb files (default: %(default)s)")
    parser.add_argument("--sample-rate", type=int, default=24000, help="default: %(default)s")
    parser.add_argument("--clips", type=int, default=40, help="clips per track (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of a clip (default: %(default)s)")
    args = parser.parse_args(argv)
    speech = sorted(args.speech.glob("*.wav"))
    if not speech:
        raise SystemExit(f"no speech clips (*.wav) in {args.speech}: run recipes/speech_small/prepare_data.py first")
    train = args.output / "train"
    if train.exists():
        shutil.rmtree(train)
    train.mkdir(parents=True)
    for path in speech:
        link(path, train / path.name)
    licenses, written = ["file\tpackage\tlicense"], 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, (package, folder, license_) in SOURCES.items():
            tracks = sorted((unpack(package, args.debs, Path(tmp) / package) / folder).glob("*.ogg"))
            kept_out = held_out(tracks)
            for track in (t for t in tracks if t not in kept_out):
                for k, clip in enumerate(clips(track, args.sample_rate, args.clips, args.seconds)):
                    target = train / f"music_{name}_{track.stem}_{k:02d}.wav"
                    sf.write(str(target), clip, args.sample_rate, subtype="PCM_16")
                    licenses.append(f"{target.name}\t{package}\t{license_}")
                    written += 1
            names = ", ".join(t.stem for t in sorted(kept_out))
            print(f"{name}: {len(tracks) - len(kept_out)} of {len(tracks)} tracks (held out: {names})")
    (args.output / "LICENSES.tsv").write_text("\n".join(licenses) + "\n")
    print(f"wrote {written} music clips beside {len(speech)} speech clips to {train} ({written / (written + len(speech)):.0%} music)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
