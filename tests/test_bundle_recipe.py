import importlib.util
import sys
from pathlib import Path

from snakeaudio.inference.evaluate import METRICS

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "speech_small"


def load():
    sys.path.insert(0, str(RECIPE))  # bundle.py imports compare.py beside it
    try:
        spec = importlib.util.spec_from_file_location("bundle", RECIPE / "bundle.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(RECIPE))
    return module


def test_the_music_note_names_the_scores_behind_griffin_lim_by_their_evaluate_keys():
    bundle = load()
    assert {key for key, _, _ in bundle.MUSIC_SCORES} <= set(METRICS)
    theirs = {key: 1.0 for key in METRICS}
    ours = {**theirs, "mr_stft": 1.1, "pesq": 1.2, "log_mel_l1_shifted": 0.9}
    note = bundle.behind_griffin_lim({"vocoder": ours, "griffin-lim": theirs})
    assert note == " On the music above it is behind Griffin-Lim in MR-STFT."
    ours["mr_stft"] = 0.9
    assert bundle.behind_griffin_lim({"vocoder": ours, "griffin-lim": theirs}) == " On the music above it is not behind Griffin-Lim."
    ours["pesq"] = 0.8
    assert bundle.behind_griffin_lim({"vocoder": ours, "griffin-lim": theirs}) == " On the music above it is behind Griffin-Lim in PESQ."
