import importlib.util
from pathlib import Path

import numpy as np
import soundfile as sf

SCRIPT = Path(__file__).resolve().parents[1] / "recipes" / "speech_small" / "prepare_mixed.py"


def load():
    spec = importlib.util.spec_from_file_location("prepare_mixed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_music_clips_are_cut_evenly_normalised_and_quiet_ones_left_out(tmp_path):
    mixed = load()
    rate = 8000
    t = np.arange(20 * rate) / rate
    track = 0.2 * np.sin(2 * np.pi * 220 * t)
    track[10 * rate :] *= 1e-4  # the second half is 80 dB down, far below the −40 dBFS floor
    sf.write(tmp_path / "track.wav", np.stack([track, track], 1), rate)
    found = mixed.clips(tmp_path / "track.wav", 16000, count=8, seconds=1.0)
    assert 3 <= len(found) < 8  # the clips starting in the quiet half are gone
    for clip in found:
        assert clip.shape == (16000,)
        assert np.isclose(np.abs(clip).max(), 10 ** (-1 / 20), rtol=1e-5)
    sf.write(tmp_path / "short.wav", track[: rate // 2], rate)
    assert mixed.clips(tmp_path / "short.wav", 16000, count=8, seconds=1.0) == []


def test_held_out_tracks_are_the_ones_the_music_evaluations_score():
    mixed = load()
    tracks = [Path(f"{i:02d}.ogg") for i in range(41)]
    held_out = mixed.held_out(tracks)
    for count in (4, 8):  # the model card's clips and the tones ablation's
        assert set(mixed.pick(tracks, count)) <= held_out
    assert len(held_out) < len(tracks) // 3
