import json
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from snakeaudio.dsp.quality import log_mel_l1, pesq_wideband
from snakeaudio.inference.evaluate import INPUT_METRICS, METRICS, FailuresWarning, audio_files, evaluate, griffin_lim
from snakeaudio.inference.scores import copy_synthesis_scores
from snakeaudio.models import Generator, preset
from snakeaudio.train.data import read_audio

CLIP = Path(__file__).parent / "data" / "audio" / "libritts_24k.wav"


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """1.5 s of LibriTTS speech at 24 kHz."""
    wav = read_audio(CLIP, 24000)[24000:60000]
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    sf.write(str(path), wav.numpy(), 24000)
    return path


@pytest.fixture(scope="module")
def generator() -> Generator:
    torch.manual_seed(0)
    return Generator(preset("tiny_16khz_80band").replace(upsample_initial_channel=32)).prepare_for_inference()


@pytest.fixture(scope="module")
def speech(clip, generator) -> torch.Tensor:
    return read_audio(clip, generator.sample_rate)  # (T,) at 16 kHz


# --- quality scores --------------------------------------------------------------------


def test_pesq_wideband_ranks_a_copy_above_noise(speech):
    noise = torch.randn(speech.shape, generator=torch.Generator().manual_seed(0)) * speech.pow(2).mean().sqrt()
    assert pesq_wideband(speech, speech, 16000) > 4.0
    assert pesq_wideband(speech, speech + noise, 16000) < 2.0  # 0 dB SNR


def test_pesq_wideband_resamples(speech):
    import torchaudio.functional as AF

    speech_24k = AF.resample(speech, 16000, 24000)
    assert pesq_wideband(speech_24k, speech_24k, 24000) == pytest.approx(pesq_wideband(speech, speech, 16000), abs=0.05)


def test_pesq_wideband_gives_none_when_unscorable(speech, monkeypatch):
    assert pesq_wideband(torch.zeros(16000), torch.zeros(16000), 16000) is None  # silent
    assert pesq_wideband(speech[:800], speech[:800], 16000) is None  # 50 ms
    monkeypatch.setitem(sys.modules, "pesq", None)  # the package is not installed
    assert pesq_wideband(speech, speech, 16000) is None


def test_log_mel_l1_is_zero_for_identical_signals(speech, generator):
    assert log_mel_l1(speech, speech, generator.mel) == 0.0
    assert log_mel_l1(speech, 0.5 * speech[:-100], generator.mel) == pytest.approx(
        abs(torch.log(torch.tensor(0.5)).item()), rel=0.1
    )


def test_copy_synthesis_scores_of_a_copy_and_of_a_quieter_copy(speech, generator):
    same = copy_synthesis_scores(speech, speech.clone(), generator, dnsmos=False)
    assert same.log_mel_l1 == same.log_mel_l1_shifted == 0.0 and same.mr_stft == pytest.approx(0.0, abs=1e-6)
    assert same.cents_error == same.cents_error_p90 == 0.0 and same.vuv_f1 == 1.0 and same.hop_comb == 0.0
    quieter = copy_synthesis_scores(speech, 0.5 * speech, generator, dnsmos=False)
    for l1 in (quieter.log_mel_l1, quieter.log_mel_l1_shifted):
        assert l1 == pytest.approx(abs(torch.log(torch.tensor(0.5)).item()), rel=0.1)
    assert quieter.mr_stft > 0.5 and quieter.cents_error == pytest.approx(0.0, abs=1e-6)
    assert quieter.hop_comb == pytest.approx(0.0, abs=1e-6)  # the comb score is level-independent
    with pytest.raises(ValueError, match="equal length"):
        copy_synthesis_scores(speech, speech[:-1], generator)


# --- Griffin-Lim -----------------------------------------------------------------------


def test_griffin_lim_reconstructs_the_mel_in_place(speech, generator):
    hop = generator.hop_length
    mel = generator.mel(speech)[0]  # (80, F)
    frames = mel.shape[-1]
    wav = griffin_lim(mel, generator.config)
    assert wav.shape == (frames * hop,) and wav.dtype == torch.float32
    assert wav.abs().max() <= 1.0

    def l1(estimate):
        return log_mel_l1(speech[: frames * hop], estimate, generator.mel)

    noise = torch.randn(wav.shape, generator=torch.Generator().manual_seed(0)) * speech.pow(2).mean().sqrt()
    assert l1(wav) < 0.2 * l1(noise)
    # Aligned: shifting the output by a frame either way matches the input's mel worse.
    assert l1(wav) < 0.6 * l1(torch.roll(wav, hop)) and l1(wav) < 0.6 * l1(torch.roll(wav, -hop))


def test_griffin_lim_rejects_a_batched_mel(generator):
    with pytest.raises(ValueError, match=r"shaped \(80, F\).*mel\[0\]"):
        griffin_lim(torch.zeros(1, 80, 10), generator.config)


# --- evaluation ------------------------------------------------------------------------


def test_evaluate_reports_both_systems(clip, generator):
    report = evaluate(generator, [clip], dnsmos=False)
    assert report.systems == ["vocoder", "griffin-lim"] and report.sample_rate == 16000
    (result,) = report.files
    assert result.path == str(clip) and result.duration == pytest.approx(1.5, abs=0.02)
    vocoder, baseline = result.scores["vocoder"], result.scores["griffin-lim"]
    # An untrained vocoder is far from the recording; Griffin-Lim is close to it.
    assert baseline.log_mel_l1 < 0.5 < vocoder.log_mel_l1
    assert baseline.mr_stft < vocoder.mr_stft
    assert baseline.pesq is not None and 1.0 < baseline.pesq < 4.7
    assert baseline.vuv_f1 > 0.7 and baseline.cents_error < 50 and baseline.cents_error <= baseline.cents_error_p90
    # Griffin-Lim is fitted on the very frames log-mel L1 compares; half a hop later it is worse
    assert baseline.log_mel_l1_shifted > baseline.log_mel_l1
    assert baseline.hop_comb < vocoder.hop_comb  # an untrained generator buzzes at the frame rate
    assert report.means()["griffin-lim"]["log_mel_l1"] == pytest.approx(baseline.log_mel_l1)

    summary = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert set(summary["means"]) == {"vocoder", "griffin-lim"}
    assert set(summary["files"][0]["scores"]["vocoder"]) == set(METRICS) and summary["failures"] == {}
    assert summary["input"] == dict.fromkeys(INPUT_METRICS) and summary["means"]["vocoder"]["dnsmos_p808"] is None

    table = report.format_table(per_file=True)
    lines = table.splitlines()
    assert "1 file," in lines[0] and "16000 Hz" in lines[0]
    assert all(label in lines[1] for label in METRICS.values())
    assert len({len(line) for line in lines[1:]}) == 1  # fixed width
    assert [line.split()[0] for line in lines[3:5]] == ["vocoder", "griffin-lim"]  # no input row without DNSMOS
    assert lines[5].startswith("speech.wav vocoder") and len(lines) == 7
    assert lines[3].split()[-4:] == ["–"] * 4  # the DNSMOS columns


def test_evaluate_reports_the_inputs_dnsmos(clip, generator):
    report = evaluate(generator, [clip], griffin_lim_baseline=False)
    (result,) = report.files
    vocoder = result.scores["vocoder"]
    # DNSMOS needs no reference: the input has its own, and the clean input rates above the vocoder
    assert result.input is not None and 1.0 <= vocoder.dnsmos_p808 <= 5.0
    assert result.input.ovrl > vocoder.dnsmos_ovrl and result.input.p808 > vocoder.dnsmos_p808

    summary = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert set(summary["means"]) == {"vocoder"}
    assert summary["input"]["dnsmos_ovrl"] == pytest.approx(result.input.ovrl)
    assert summary["files"][0]["input"] == {f"dnsmos_{k}": v for k, v in result.input.to_dict().items()}

    lines = report.format_table(per_file=True).splitlines()
    assert len({len(line) for line in lines[1:]}) == 1  # fixed width
    assert [line.split()[0] for line in lines[3:5]] == ["vocoder", "input"]
    assert lines[5].startswith("speech.wav vocoder") and lines[6].startswith("speech.wav input")
    input_cells = lines[4].split()[1:]  # DNSMOS only: the scores against a reference mean nothing for the input
    assert input_cells[:-4] == ["–"] * (len(METRICS) - 4) and "–" not in input_cells[-4:]


def test_evaluate_names_an_unreadable_file(tmp_path, generator):
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio")
    with pytest.raises(ValueError, match="broken.wav"):
        evaluate(generator, [bad], griffin_lim_baseline=False)
    with pytest.warns(FailuresWarning, match="1 of 1 file"):
        report = evaluate(generator, [bad], skip_failures=True)
    assert report.files == [] and list(report.failures) == [str(bad)]
    assert "could not be evaluated" in report.format_table()
    json.dumps(report.to_dict(), allow_nan=False)


def test_evaluate_leaves_a_silent_file_out_of_the_means(tmp_path, clip, generator):
    silent = tmp_path / "silent.wav"
    sf.write(str(silent), torch.zeros(16000).numpy(), 16000)
    with pytest.raises(ValueError, match=r"silent\.wav is silent \(peak 0 < 0\.0001\)"):
        evaluate(generator, [silent], griffin_lim_baseline=False, dnsmos=False)
    alone = evaluate(generator, [clip], griffin_lim_baseline=False, dnsmos=False)
    with pytest.warns(UserWarning, match="1 of 2 files could not be evaluated"):
        both = evaluate(generator, [clip, silent], griffin_lim_baseline=False, dnsmos=False, skip_failures=True)
    assert list(both.failures) == [str(silent)] and [r.path for r in both.files] == [str(clip)]
    assert both.means() == alone.means()  # a silent file once made the mean MR-STFT 23


@pytest.mark.parametrize("cents", [7.0, 33.0])
def test_pitch_error_is_not_quantised(generator, cents):
    """A tone against the same tone shifted by a number of cents off any 10- or 20-cent grid."""
    t = torch.arange(16000, dtype=torch.float64) / 16000
    reference = 0.5 * torch.sin(2 * torch.pi * 220 * t)
    shifted = 0.5 * torch.sin(2 * torch.pi * 220 * 2 ** (cents / 1200) * t)
    scores = copy_synthesis_scores(reference.float(), shifted.float(), generator, dnsmos=False)
    assert scores.cents_error == pytest.approx(cents, abs=1.0) and scores.vuv_f1 == 1.0


def test_evaluate_names_a_too_short_file(tmp_path, generator):
    short = tmp_path / "short.wav"
    sf.write(str(short), torch.zeros(200).numpy(), 16000)
    with pytest.raises(ValueError, match="short.wav"):
        evaluate(generator, [short])


def test_audio_files_finds_audio_recursively(tmp_path):
    for name in ["b.wav", "sub/a.FLAC", "sub/deeper/c.ogg", "notes.txt", "sub/d.npy"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).touch()
    assert audio_files(tmp_path) == [tmp_path / "b.wav", tmp_path / "sub/a.FLAC", tmp_path / "sub/deeper/c.ogg"]
    with pytest.raises(FileNotFoundError, match="missing"):
        audio_files(tmp_path / "missing")
