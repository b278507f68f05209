import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from snakeaudio import DEFAULT_MODEL, available_models, from_pretrained
from snakeaudio.cli import main


def test_demo_writes_wavs(tmp_path, capsys):
    assert main(["demo", "-o", str(tmp_path), "--alpha", "0.5", "20"]) == 0
    out = capsys.readouterr().out
    assert "440Hz" in out
    for alpha in ("0.5", "20"):
        audio, sr = sf.read(tmp_path / f"snake_alpha_{alpha}.wav")
        assert sr == 16000 and len(audio) == 16000 and 0 < abs(audio).max() <= 0.5 + 1e-6


CLIPS = Path(__file__).resolve().parent / "data" / "audio"


@pytest.fixture(scope="module")
def short_clips(tmp_path_factory):
    """1.5 s excerpts of the real clips (24 kHz mono and 44.1 kHz), plus a stereo 16 kHz copy."""
    folder = tmp_path_factory.mktemp("clips")
    for name in ("libritts_24k.wav", "hifitts_44k.wav"):
        audio, sr = sf.read(CLIPS / name, dtype="float32")
        sf.write(folder / name, audio[int(0.5 * sr) : int(2.0 * sr)], sr)
    audio, sr = sf.read(folder / "libritts_24k.wav", dtype="float32")
    stereo = np.stack([audio[::3], 0.5 * audio[::3]], axis=1)  # 8 kHz stereo
    sf.write(folder / "stereo_8k.flac", stereo, sr // 3)
    return folder


def test_a_default_model_is_bundled():
    assert DEFAULT_MODEL in available_models()
    model = from_pretrained(DEFAULT_MODEL)
    assert (model.sample_rate, model.num_mels, model.hop_length) == (24000, 100, 256)
    folder = Path(__import__("snakeaudio").__file__).parent / "pretrained" / DEFAULT_MODEL
    assert (folder / "model.safetensors").stat().st_size <= 20 * 2**20
    card = (folder / "README.md").read_text()
    assert "griffin-lim" in card and "PESQ" in card
    with pytest.raises(FileNotFoundError, match=f"bundled: {DEFAULT_MODEL}"):
        from_pretrained("no_such_model")


def test_models_lists_the_default(capsys):
    assert main(["models"]) == 0
    assert f"{DEFAULT_MODEL} (default): 24000 Hz, 100 mel bands" in capsys.readouterr().out


def test_synthesize_audio_files_and_folders(short_clips, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["synthesize", str(short_clips), "-o", str(out)]) == 0
    for name, seconds in (("libritts_24k", 1.5), ("hifitts_44k", 1.5), ("stereo_8k", 1.5)):
        audio, sr = sf.read(out / f"{name}.wav", dtype="float32")
        assert sr == 24000 and audio.ndim == 1  # the model's rate, mono
        assert len(audio) == round(seconds * 24000)  # the input's duration
        assert np.isfinite(audio).all() and 0 < np.abs(audio).max() <= 1
        assert (out / f"{name}.png").stat().st_size > 10_000
    assert "spectrograms in" in capsys.readouterr().out


def test_chunked_cli_output_equals_whole(short_clips, tmp_path):
    clip = short_clips / "libritts_24k.wav"
    assert main(["synthesize", str(clip), "-o", str(tmp_path / "whole.wav"), "--chunk-seconds", "0", "--no-plot"]) == 0
    assert main(["synthesize", str(clip), "-o", str(tmp_path / "chunks.wav"), "--chunk-seconds", "0.2", "--no-plot"]) == 0
    whole, _ = sf.read(tmp_path / "whole.wav", dtype="float32")
    chunks, _ = sf.read(tmp_path / "chunks.wav", dtype="float32")
    # Equal up to what the default model's Griffin-Lim rounds make of float rounding (see
    # test_inference.py): a few 16-bit steps at most, about -75 dB overall.
    error = whole - chunks
    assert np.abs(error).max() <= 16 / 32768
    assert 10 * np.log10(np.sum(whole.astype(np.float64) ** 2) / max(np.sum(error.astype(np.float64) ** 2), 1e-30)) > 70
    assert not list(tmp_path.glob(".*"))  # no temporary files left


def test_batches_equal_one_by_one(short_clips, tmp_path):
    assert main(["synthesize", str(short_clips), "-o", str(tmp_path / "one"), "--no-plot"]) == 0
    assert main(["synthesize", str(short_clips), "-o", str(tmp_path / "batch"), "--batch-size", "3", "--no-plot"]) == 0
    for path in (tmp_path / "one").glob("*.wav"):
        a, _ = sf.read(path, dtype="float32")
        b, _ = sf.read(tmp_path / "batch" / path.name, dtype="float32")
        assert np.abs(a - b).max() <= 1 / 32768


def test_mel_inputs_and_band_count_errors(tmp_path, capsys):
    model = from_pretrained(DEFAULT_MODEL)
    audio, _ = sf.read(CLIPS / "libritts_24k.wav", dtype="float32")
    mel = model.mel(torch.from_numpy(audio[:24000])[None, None])[0]  # (100, F)
    np.save(tmp_path / "good.npy", mel.numpy())
    torch.save(mel[:80].clone(), tmp_path / "bands80.pt")
    code = main(["synthesize", str(tmp_path / "good.npy"), str(tmp_path / "bands80.pt"), "-o", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert "bands80.pt" in err and "80 mel bands, the model expects 100" in err and "1 of 2 inputs failed" in err
    audio, sr = sf.read(tmp_path / "out" / "good.wav")
    assert sr == 24000 and len(audio) == mel.shape[-1] * 256


def test_bad_files_fail_alone_and_inputs_are_never_overwritten(short_clips, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "corrupt.wav").write_bytes(b"RIFF not really a wav file")
    sf.write(folder / "empty.wav", np.zeros(0, dtype="float32"), 24000)
    sf.write(folder / "silent.wav", np.zeros(12000, dtype="float32"), 24000)
    sf.write(folder / "nan.wav", np.full(12000, np.nan, dtype="float32"), 24000, subtype="FLOAT")
    (folder / "good.wav").write_bytes((short_clips / "libritts_24k.wav").read_bytes())
    assert main(["synthesize", str(folder), "-o", str(tmp_path / "out"), "--no-plot"]) == 1
    err = capsys.readouterr().err
    assert "corrupt.wav" in err and "empty.wav" in err and "3 of 5 inputs failed" in err
    assert "nan.wav contains NaN or infinite samples" in err
    assert (tmp_path / "out" / "good.wav").is_file()
    silent, _ = sf.read(tmp_path / "out" / "silent.wav")
    assert len(silent) == 12000 and np.abs(silent).max() < 0.05  # silence stays (near) silent
    before = (folder / "good.wav").read_bytes()
    assert main(["synthesize", str(folder / "good.wav"), "-o", str(folder / "good.wav")]) == 2
    assert "would overwrite an input" in capsys.readouterr().err
    assert (folder / "good.wav").read_bytes() == before
    assert main(["synthesize", str(tmp_path / "missing.wav")]) == 1
    assert "missing.wav does not exist" in capsys.readouterr().err


def test_synthesize_the_bundled_example_as_a_subprocess(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "snakeaudio.cli", "synthesize"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    audio, sr = sf.read(tmp_path / "snakeaudio_output" / "example_speech.wav")
    assert sr == 24000 and abs(len(audio) / sr - 5.87) < 0.01 and np.isfinite(audio).all()
    assert (tmp_path / "snakeaudio_output" / "example_speech.png").is_file()


def test_export_onnx_checks_parity(tmp_path, capsys):
    from snakeaudio.models import Generator, preset, save_pretrained

    torch.manual_seed(0)
    save_pretrained(Generator(preset("tiny_16khz_80band").replace(upsample_initial_channel=32)), tmp_path / "tiny")
    assert main(["export", str(tmp_path / "tiny"), "--onnx", str(tmp_path / "tiny.onnx")]) == 0
    out = capsys.readouterr().out
    assert "max |diff|" in out and (tmp_path / "tiny.onnx").stat().st_size > 0
    assert float(out.rsplit("max |diff| ", 1)[1].split()[0]) <= 1e-3


def test_evaluate_reports_vocoder_and_griffin_lim(short_clips, tmp_path, capsys):
    assert main(["evaluate", str(short_clips), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["means"]) == {"vocoder", "griffin-lim"}
    assert len(report["files"]) == 3
    for system in report["means"].values():
        assert system["log_mel_l1"] > 0 and system["mr_stft"] > 0
    folder = tmp_path / "with_a_bad_file"
    folder.mkdir()
    (folder / "good.wav").write_bytes((short_clips / "libritts_24k.wav").read_bytes())
    (folder / "broken.wav").write_bytes(b"RIFF....")
    assert main(["evaluate", str(folder), "--no-griffin-lim"]) == 1
    captured = capsys.readouterr()
    assert "1 file," in captured.out and "vocoder" in captured.out
    assert "broken.wav" in captured.err


def test_synthesize_with_an_official_bigvgan_folder(tmp_path):
    from bigvgan.bigvgan import BigVGAN
    from bigvgan.env import AttrDict

    from snakeaudio.models import preset

    h = preset("tiny_16khz_80band").replace(upsample_initial_channel=32).to_dict()
    torch.manual_seed(0)
    ref = BigVGAN(AttrDict(h))
    folder = tmp_path / "official"
    folder.mkdir()
    torch.save({"generator": ref.state_dict()}, folder / "bigvgan_generator.pt")
    (folder / "config.json").write_text(json.dumps(h))
    mel = torch.randn(80, 20) - 4
    np.save(tmp_path / "mel.npy", mel.numpy())
    assert main(["synthesize", str(tmp_path / "mel.npy"), "--model", str(folder), "-o", str(tmp_path / "out.wav"), "--no-plot"]) == 0
    ref.remove_weight_norm()
    with torch.inference_mode():
        expected = ref.eval()(mel[None])[0, 0].numpy()
    audio, sr = sf.read(tmp_path / "out.wav", dtype="float32")
    assert sr == 16000 and audio.shape == expected.shape and np.abs(expected).max() > 0.05
    assert np.abs(audio - expected).max() <= 1 / 32768 + 1e-6


def test_the_wheel_ships_the_bundled_model_and_example(tmp_path):
    import zipfile

    root = Path(__file__).resolve().parents[1]
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("snakeaudio-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("config.json", "model.safetensors", "README.md"):
        assert f"snakeaudio/pretrained/{DEFAULT_MODEL}/{name}" in names
    assert "snakeaudio/data/example_speech.wav" in names and "snakeaudio/kernels/snake_cpu.cpp" in names
