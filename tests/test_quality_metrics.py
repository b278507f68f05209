"""Known answers for the listener-oriented scores: hop comb, pitch error off pYIN's grid, DNSMOS,
half-hop-shifted log-mel L1, and how copy-synthesis scores report them."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snakeaudio.dsp.comb import hop_comb_db, hop_comb_window
from snakeaudio.dsp.io import read_audio
from snakeaudio.dsp.pitch import pitch_metrics
from snakeaudio.dsp.quality import DNSMOSScores, dnsmos, log_mel_l1
from snakeaudio.inference.evaluate import griffin_lim
from snakeaudio.inference.scores import VALIDATION_KEYS, Scores, copy_synthesis_scores
from snakeaudio.models import Generator, preset

CLIP = Path(__file__).parent / "data" / "audio" / "libritts_24k.wav"


@pytest.fixture(scope="module")
def speech_24k() -> torch.Tensor:
    """3 s of LibriTTS speech at 24 kHz."""
    return read_audio(CLIP, 24000)[: 3 * 24000]


@pytest.fixture(scope="module")
def generator() -> Generator:
    torch.manual_seed(0)
    return Generator(preset("tiny_16khz_80band").replace(upsample_initial_channel=32)).prepare_for_inference()


@pytest.fixture(scope="module")
def pyin_compiled() -> None:
    """librosa's pYIN is compiled by numba on its first call in a process (seconds): do it once, here."""
    pitch_metrics(np.zeros(4096), np.zeros(4096), 16000, fmin=100, fmax=400)


def _noise(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _at_level(x: torch.Tensor, reference: torch.Tensor, db: float) -> torch.Tensor:
    """``x`` scaled to ``db`` relative to ``reference`` in mean power."""
    return x * (reference.square().mean() / x.square().mean() * 10 ** (db / 10)).sqrt()


# --- hop comb ----------------------------------------------------------------------------


@pytest.mark.parametrize(("sample_rate", "hop"), [(24000, 256), (16000, 256), (44100, 512), (22050, 300)])
def test_hop_comb_of_noise_is_near_zero_and_a_hop_periodic_pattern_raises_it(sample_rate, hop):
    noise = _noise(3 * sample_rate)
    assert abs(hop_comb_db(noise, sample_rate, hop)) < 0.5
    # any waveform that repeats every hop puts its power on the lines k · sr / hop
    pattern = _noise(hop, seed=1).repeat(noise.numel() // hop + 1)[: noise.numel()]
    pulses = torch.zeros_like(noise)
    pulses[::hop] = 1.0
    for periodic in (pattern, pulses):
        assert hop_comb_db(noise + _at_level(periodic, noise, -10.0), sample_rate, hop) > 3.0


def test_hop_comb_of_speech_against_itself_and_with_a_quiet_click_train(speech_24k):
    clean = hop_comb_db(speech_24k, 24000, 256)
    assert abs(clean) < 1.0 and hop_comb_db(speech_24k.clone(), 24000, 256) - clean == 0.0
    clicks = torch.zeros_like(speech_24k)
    clicks[::256] = 1.0
    assert hop_comb_db(speech_24k + _at_level(clicks, speech_24k, -20.0), 24000, 256) - clean > 3.0


def test_hop_comb_of_random_phase_noise_with_the_speech_envelope_is_near_zero(speech_24k):
    x = speech_24k.double()
    window = torch.hann_window(1024, dtype=torch.float64)
    spectrum = torch.stft(x, 1024, hop_length=300, window=window, return_complex=True)  # a hop unrelated to 256
    phase = torch.rand(spectrum.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    random_phase = spectrum.abs() * torch.exp(2j * math.pi * phase)
    shaped = torch.istft(random_phase, 1024, hop_length=300, window=window, length=x.numel())  # (T,)
    assert abs(hop_comb_db(shaped, 24000, 256) - hop_comb_db(x, 24000, 256)) < 1.0


def test_hop_comb_band_selects_the_lines():
    sr, hop = 24000, 256
    noise = _noise(3 * sr)
    t = torch.arange(noise.numel(), dtype=torch.float64) / sr
    # one line per harmonic of sr / hop, only between 3 and 5 kHz
    lines = sum(torch.sin(2 * math.pi * k * sr / hop * t) for k in range(33, 53))
    with_lines = noise + _at_level(lines, noise, -5.0)
    assert hop_comb_db(with_lines, sr, hop, band=(3200, 4800)) > 10.0
    assert abs(hop_comb_db(with_lines, sr, hop, band=(6000, 11000))) < 0.5


def test_hop_comb_rejects_what_it_cannot_score():
    assert hop_comb_window(24000) == 8192 and hop_comb_window(24000, resolution_hz=1.0) == 32768
    with pytest.raises(ValueError, match=r"8192-sample Welch window .* got 8000 samples"):
        hop_comb_db(torch.zeros(8000), 24000, 256)
    with pytest.raises(ValueError, match="hop_length ≤ n_fft / 6"):
        hop_comb_db(torch.zeros(24000), 24000, 2048)
    with pytest.raises(ValueError, match="no multiple of sr/hop"):
        hop_comb_db(torch.zeros(24000), 24000, 256, band=(1000, 1020))
    with pytest.raises(ValueError, match="band must be"):
        hop_comb_db(torch.zeros(24000), 24000, 256, band=(5000, 1000))
    with pytest.raises(ValueError, match=r"mono waveform .* got shape \(2, 24000\)"):
        hop_comb_db(torch.zeros(2, 24000), 24000, 256)


# --- pitch ---------------------------------------------------------------------------------


def _harmonic_tone(f0: float, sample_rate: int = 16000, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    return 0.2 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 12) if k * f0 < sample_rate / 2)


@pytest.mark.parametrize("cents", [0.0, 7.0, 50.0])
def test_pitch_error_measures_a_shift_off_the_pyin_grid(cents, pyin_compiled):
    f0 = 180.0  # 2217.6 cents above fmin: off pYIN's 10-cent grid
    m = pitch_metrics(_harmonic_tone(f0), _harmonic_tone(f0 * 2 ** (cents / 1200)), 16000, fmin=100, fmax=400)
    assert m.cents_error == pytest.approx(cents, abs=2.0)  # a 10-cent grid would give 0, 10 or 50 ± 10
    assert m.cents_error <= m.cents_error_p90 <= cents + 5
    assert m.vuv_f1 == 1.0


def test_pitch_error_is_nan_without_common_voiced_frames(pyin_compiled):
    silence = np.zeros(16000)
    m = pitch_metrics(silence, _harmonic_tone(200.0), 16000, fmin=100, fmax=400)
    assert math.isnan(m.cents_error) and math.isnan(m.cents_error_p90) and m.vuv_f1 == 0.0


# --- DNSMOS --------------------------------------------------------------------------------


def test_dnsmos_ranks_clean_speech_above_noisy_speech(speech_24k):
    clean = dnsmos(speech_24k, 24000)
    assert isinstance(clean, DNSMOSScores)
    noisy = dnsmos(speech_24k + _at_level(_noise(speech_24k.numel()), speech_24k, 0.0).float(), 24000)  # 0 dB SNR
    assert clean.ovrl > noisy.ovrl + 0.5 and clean.bak > noisy.bak + 1.0
    assert all(1.0 <= v <= 5.0 for v in (*clean.to_dict().values(), *noisy.to_dict().values()))


def test_dnsmos_gives_none_when_unavailable(monkeypatch):
    assert dnsmos(torch.zeros(0), 16000) is None
    assert dnsmos(torch.full((16000,), float("nan")), 16000) is None
    monkeypatch.setitem(sys.modules, "speechmos", None)  # the package is not installed
    assert dnsmos(torch.zeros(16000), 16000) is None
    with pytest.raises(ValueError, match="sample_rate"):
        dnsmos(torch.zeros(16000), 0)


# --- log-mel L1 shifted by half a hop ------------------------------------------------------


def test_log_mel_l1_shifted_by_half_a_hop(generator):
    speech = read_audio(CLIP, 16000)[16000:40000]  # 1.5 s
    half = generator.hop_length // 2
    assert log_mel_l1(speech, speech, generator.mel) == log_mel_l1(speech, speech, generator.mel, shift=half) == 0.0
    # a shift-equivariant estimate scores the same either way
    quieter = 0.5 * speech
    assert log_mel_l1(speech, quieter, generator.mel, shift=half) == pytest.approx(math.log(2), rel=0.1)
    # Griffin-Lim was fitted on the unshifted frames: between them it matches the input worse
    frames = generator.mel(speech).shape[-1]
    baseline = griffin_lim(generator.mel(speech)[0], generator.config)
    n = min(speech.numel(), frames * generator.hop_length)
    on_frames = log_mel_l1(speech[:n], baseline[:n], generator.mel)
    assert log_mel_l1(speech[:n], baseline[:n], generator.mel, shift=half) > 1.1 * on_frames
    with pytest.raises(ValueError, match="shift must be"):
        log_mel_l1(speech, speech, generator.mel, shift=speech.numel())


# --- copy-synthesis scores -----------------------------------------------------------------


def test_copy_synthesis_scores_report_every_score(generator, pyin_compiled):
    speech = read_audio(CLIP, 16000)[16000:32000]  # 1 s
    same = copy_synthesis_scores(speech, speech.clone(), generator)
    assert same.log_mel_l1 == same.log_mel_l1_shifted == 0.0 and same.hop_comb == 0.0
    assert same.cents_error == same.cents_error_p90 == 0.0
    assert same.dnsmos_ovrl is not None and 1.0 <= same.dnsmos_p808 <= 5.0
    assert list(same.as_dict()) == list(VALIDATION_KEYS)  # every score defined, in field order

    noisy = speech + _at_level(_noise(speech.numel()), speech, -10.0).float()
    scores = copy_synthesis_scores(speech, noisy, generator, dnsmos=False)
    assert scores.log_mel_l1 > 0.1 and scores.log_mel_l1_shifted > 0.1
    assert scores.dnsmos_p808 is None and scores.dnsmos_ovrl is None
    assert not {"dnsmos_p808", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl"} & set(scores.as_dict())
    assert all(math.isfinite(v) for v in scores.as_dict().values())


def test_scores_as_dict_drops_undefined_values():
    scores = Scores(
        log_mel_l1=0.4, log_mel_l1_shifted=0.5, mr_stft=1.0, pesq=None, cents_error=float("nan"),
        cents_error_p90=float("nan"), periodicity_error=0.1, vuv_f1=0.9, hop_comb=2.0, dnsmos_p808=3.0,
    )  # fmt: skip
    assert scores.as_dict() == {
        "log_mel_l1": 0.4, "log_mel_l1_shifted": 0.5, "mr_stft": 1.0, "periodicity_error": 0.1, "vuv_f1": 0.9,
        "hop_comb": 2.0, "dnsmos_p808": 3.0,
    }  # fmt: skip
    assert {VALIDATION_KEYS[k] for k in ("log_mel_l1", "mr_stft", "pesq", "cents_error")} == {
        "val_mel_l1", "val_mrstft", "val_pesq", "val_cents_error",
    }  # fmt: skip the names validation logged before
