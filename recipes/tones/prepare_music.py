"""Real music clips for the tones ablation's out-of-distribution evaluation, offline from Debian packages.

``fillets-ng-data`` holds the game's music (tracker-style tunes of sampled instruments, GPL-2)
and ``wesnoth-1.16-music`` 41 orchestral tracks (GPL-2+). From ``--tracks`` tracks of each,
evenly spaced in name order, one clip of ``--seconds`` is cut at 40 % of the track, mixed to
mono, resampled and peak-normalised to −1 dBFS; clips quieter than −40 dBFS RMS are skipped.
The packages are downloaded into ``--debs`` (``apt-get download``) when not there already.

Run: python recipes/tones/prepare_music.py --output data/music
Writes OUTPUT/<source>_<track>.wav (16-bit) and OUTPUT/LICENSES.tsv (file, package, license).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "speech_small"))
from prepare_data import unpack  # noqa: E402

SOURCES = {  # name -> (Debian package, folder of its tracks, license)
    "fillets": ("fillets-ng-data", "usr/share/games/fillets-ng/music", "GPL-2"),
    "wesnoth": ("wesnoth-1.16-music", "usr/share/games/wesnoth/1.16/data/core/music", "GPL-2+"),
}
START = 0.4  # where in a track its clip starts, as a fraction of its length
QUIET_DBFS = -40.0


def pick(tracks: list[Path], count: int) -> list[Path]:
    """``count`` of ``tracks``, evenly spaced in their order (all of them when there are fewer)."""
    return [tracks[i] for i in np.linspace(0, len(tracks) - 1, min(count, len(tracks))).round().astype(int)]


def cut_clip(path: Path, sample_rate: int, seconds: float) -> np.ndarray | None:
    """The track's clip, mono at ``sample_rate`` and peak −1 dBFS, or None when the clip is too quiet or the track too short."""
    info = sf.info(str(path))
    length = int(seconds * info.samplerate)
    start = int(START * info.frames)
    if start + length > info.frames:
        return None
    audio, rate = sf.read(str(path), start=start, frames=length, dtype="float32", always_2d=True)
    clip = AF.resample(torch.from_numpy(audio.mean(1)), rate, sample_rate).numpy()
    if 20 * np.log10(np.sqrt(np.mean(clip**2)) + 1e-12) < QUIET_DBFS:
        return None
    return clip * (10 ** (-1 / 20) / np.abs(clip).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=Path("data/music"), help="folder of the clips (default: %(default)s)")
    parser.add_argument("--debs", type=Path, default=Path("data/debs"), help="folder of the .deb files (default: %(default)s)")
    parser.add_argument("--sample-rate", type=int, default=16000, help="default: %(default)s")
    parser.add_argument("--tracks", type=int, default=8, help="tracks per source (default: %(default)s)")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of a clip (default: %(default)s)")
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    licenses = ["file\tpackage\tlicense"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, (package, folder, license_) in SOURCES.items():
            tracks = sorted((unpack(package, args.debs, Path(tmp) / package) / folder).glob("*.ogg"))
            if not tracks:
                raise SystemExit(f"{package} holds no .ogg tracks under {folder}")
            for track in pick(tracks, args.tracks):
                clip = cut_clip(track, args.sample_rate, args.seconds)
                if clip is None:
                    why = f"shorter than {args.seconds:g} s from {START:.0%} on, or quieter than {QUIET_DBFS:g} dBFS"
                    print(f"skipped {name}/{track.name}: {why}")
                    continue
                target = args.output / f"{name}_{track.stem}.wav"
                sf.write(str(target), clip, args.sample_rate, subtype="PCM_16")
                licenses.append(f"{target.name}\t{package}\t{license_}")
    (args.output / "LICENSES.tsv").write_text("\n".join(licenses) + "\n")
    print(f"wrote {len(licenses) - 1} clips to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
