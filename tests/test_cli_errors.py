"""A user's mistake ends in one ``error:`` line and an exit status, never a traceback.

Each case runs the command as a user would, in a fresh process, with tiny models.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from snakeaudio.cli import main
from snakeaudio.models import Generator, preset, save_pretrained

SR = 16000
TINY = {"upsample_initial_channel": 32, "resblock_kernel_sizes": (3,), "resblock_dilation_sizes": ((1, 3),)}
TRAIN = {
    "generator": {"preset": "tiny_16khz_80band", **TINY},
    "data": {"kind": "tones", "f0_min": 100, "f0_max": 1000},
    "training": {"discriminator_channel_mult": 0.125, "batch_size": 2, "segment_size": 4096, "max_steps": 1},
}


def snakeaudio(*args: object, cwd: Path, env: dict[str, str] | None = None, importtime: bool = False) -> subprocess.CompletedProcess:
    """The command in a fresh process, checked for tracebacks; with ``importtime`` its stderr
    also lists the modules it imports."""
    python = [sys.executable, "-X", "importtime"] if importtime else [sys.executable]
    result = subprocess.run(
        [*python, "-m", "snakeaudio.cli", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    return result


def imported(result: subprocess.CompletedProcess) -> set[str]:
    """The modules ``python -X importtime`` reported."""
    return {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def errors(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def fails_with(result: subprocess.CompletedProcess, status: int, *texts: str) -> str:
    """The one error line, checked: exit status and every text in it."""
    (line,) = errors(result)
    assert result.returncode == status, result.stderr
    assert all(text in line for text in texts), line
    return line


def tone(seconds: float, amplitude: float = 0.3) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * 220 * np.arange(round(seconds * SR)) / SR)).astype(np.float32)


def truncate(path: Path) -> None:
    """Cut a 16-bit PCM wav's data to half of what its header says."""
    data = path.read_bytes()
    path.write_bytes(data[: 44 + (len(data) - 44) // 2])


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """A folder with a tiny model, a wider one, a folder that is not a model, audio and training configs."""
    folder = tmp_path_factory.mktemp("cli_errors")
    torch.manual_seed(0)
    save_pretrained(Generator(preset("tiny_16khz_80band").replace(**TINY)), folder / "tiny")
    save_pretrained(Generator(preset("tiny_16khz_80band").replace(**{**TINY, "upsample_initial_channel": 64})), folder / "wide")
    (folder / "not_a_model").mkdir()
    sf.write(folder / "good.wav", tone(0.5), SR)
    (folder / "train.json").write_text(json.dumps(TRAIN))
    return folder


# --- the command line itself: status 2, before any work --------------------------------


def test_unknown_model(work):
    fails_with(snakeaudio("synthesize", "good.wav", "--model", "no_such_model", cwd=work), 2,
               "'no_such_model' is neither a model folder nor a bundled model", "bundled: ")  # fmt: skip


def test_model_folder_without_config(work):
    fails_with(snakeaudio("synthesize", "good.wav", "--model", "not_a_model", cwd=work), 2,
               "not_a_model has no config.json", "a model folder holds config.json and model.safetensors")  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu(work):
    line = fails_with(snakeaudio("synthesize", "good.wav", "--model", "tiny", "--device", "cuda", cwd=work), 2,
                      "CUDA is not available", "--device cpu")  # fmt: skip
    assert "model" not in line


@pytest.mark.parametrize(
    "option, value, expected",
    [("--batch-size", "0", "expected a whole number >= 1, got '0'"),
     ("--chunk-seconds", "-1", "expected a length in seconds > 0, or 0 to vocode inputs whole, got '-1'")],
)  # fmt: skip
def test_option_values(work, option, value, expected):
    fails_with(snakeaudio("synthesize", "good.wav", "--model", "tiny", option, value, cwd=work), 2,
               f"argument {option}: {expected}", "see snakeaudio synthesize --help")  # fmt: skip


def test_one_wav_output_for_several_inputs(work):
    result = snakeaudio("synthesize", "good.wav", "good.wav", "--model", "tiny", "-o", "both.wav", cwd=work)
    fails_with(result, 2, "the output both.wav names one wav file, but there are 2 inputs; give an output folder")
    assert not (work / "both.wav").exists()


def test_train_with_an_unknown_preset(work):
    (work / "preset.json").write_text(json.dumps({**TRAIN, "generator": {**TRAIN["generator"], "preset": "tiny_8khz"}}))
    fails_with(snakeaudio("train", "preset.json", "-o", "run", cwd=work), 2,
               "preset.json: unknown preset 'tiny_8khz'; expected one of", "tiny_16khz_80band")  # fmt: skip


def test_train_with_a_misspelt_key(work):
    (work / "typo.json").write_text(json.dumps({**TRAIN, "training": {**TRAIN["training"], "max_step": 3}}))
    fails_with(snakeaudio("train", "typo.json", "-o", "run", cwd=work), 2,
               "typo.json: unknown keys in the 'training' section: max_step")  # fmt: skip


def test_train_init_from_a_model_that_does_not_fit(work):
    fails_with(snakeaudio("train", "train.json", "-o", "run", "--init-from", "wide", cwd=work), 2,
               "--init-from wide does not fit train.json", "conv_pre.weight is (64, 80, 7) there, (32, 80, 7) here")  # fmt: skip
    assert not (work / "run" / "checkpoints").exists()


def test_debug_shows_the_traceback(work):
    result = subprocess.run(
        [sys.executable, "-m", "snakeaudio.cli", "synthesize", "good.wav", "--model", "no_such_model", "--debug"],
        cwd=work, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert result.returncode != 0 and "Traceback" in result.stderr and "no_such_model" in result.stderr


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        raise KeyError("a bug")

    monkeypatch.setattr("snakeaudio.cli._models", broken)
    with pytest.raises(KeyError):
        main(["models"])


# --- failed work: status 1 ------------------------------------------------------------


def test_missing_export_extra(work, tmp_path):
    stand_in = tmp_path / "site" / "onnx"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text("raise ImportError('onnx is not installed (a test stand-in)')")
    path = os.pathsep.join(filter(None, [str(tmp_path / "site"), os.environ.get("PYTHONPATH")]))
    result = snakeaudio("export", "tiny", "--onnx", tmp_path / "tiny.onnx", cwd=work, env={"PYTHONPATH": path})
    fails_with(result, 1, "ONNX export needs the packages onnx", 'pip install "snakeaudio[export]"', 'pip install -e ".[export]"')
    assert not (tmp_path / "tiny.onnx").exists()


def test_a_batch_with_missing_short_truncated_and_loud_inputs(work):
    """Every bad input is reported by name and the others finish; the exit status counts the failures."""
    folder = work / "batch"
    folder.mkdir()
    sf.write(folder / "a.wav", tone(0.5), SR)
    sf.write(folder / "loud.wav", tone(0.5, amplitude=1.5), SR, subtype="FLOAT")
    sf.write(folder / "cut.wav", tone(1.0), SR, subtype="PCM_16")
    truncate(folder / "cut.wav")
    # tiny_16khz_80band: hop 256, n_fft 1024: the mel needs more than (1024 - 256) / 2 = 384 samples
    for n in (1, 255, 383, 385):
        sf.write(folder / f"short_{n}.wav", np.full(n, 0.1, dtype=np.float32), SR)
    for name in ("notes.txt", "cover.png", "labels.json"):
        (folder / name).write_text("not audio")
    result = snakeaudio("synthesize", "batch", "missing.wav", "--model", "tiny", "-o", "out", "--no-plot", cwd=work, importtime=True)
    assert result.returncode == 1
    needs = "the model needs at least 385 samples (24.1 ms)"
    assert errors(result) == [
        f"error: batch/short_1.wav is too short to synthesize: 1 sample (0.1 ms at 16000 Hz); {needs}",
        f"error: batch/short_255.wav is too short to synthesize: 255 samples (15.9 ms at 16000 Hz); {needs}",
        f"error: batch/short_383.wav is too short to synthesize: 383 samples (23.9 ms at 16000 Hz); {needs}",
        "error: missing.wav does not exist",
        "error: 4 of 8 inputs failed",
    ]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert "warning: skipped 3 files under batch not ending in .wav / .flac / .ogg / .npy / .pt" in warnings
    truncated = "batch/cut.wav is truncated: its header promises 1.00 s of audio, the file holds 0.50 s"
    assert f"warning: {truncated}; reading what is there" in warnings
    assert any(line.startswith("warning: batch/loud.wav: waveform exceeds [-1, 1]") for line in warnings)
    assert sorted(p.name for p in (work / "out").iterdir()) == ["a.wav", "cut.wav", "loud.wav", "short_385.wav"]
    assert len(sf.read(work / "out" / "cut.wav")[0]) == SR // 2  # what the file holds
    modules = imported(result)  # short clips: nothing for training, plotting or export is loaded
    assert "snakeaudio.inference.files" in modules and not modules & {"snakeaudio.train", "matplotlib", "onnx", "onnxruntime"}

    strict = snakeaudio("synthesize", "batch/cut.wav", "--model", "tiny", "-o", "strict", "--strict", cwd=work)
    assert strict.returncode == 1 and errors(strict) == [f"error: {truncated}", "error: 1 of 1 input failed"]


def test_evaluate_files_leaves_a_silent_one_out(work):
    sf.write(work / "silent.wav", np.zeros(SR // 2, dtype=np.float32), SR)
    result = snakeaudio("evaluate", "good.wav", "silent.wav", "--model", "tiny", "--no-dnsmos", "--no-griffin-lim", "--json", cwd=work)
    fails_with(result, 1, "silent.wav is silent (peak 0 < 0.0001)")
    report = json.loads(result.stdout)
    assert [f["path"] for f in report["files"]] == ["good.wav"] and list(report["failures"]) == ["silent.wav"]
    assert report["means"]["vocoder"]["mr_stft"] == report["files"][0]["scores"]["vocoder"]["mr_stft"]


# --- start-up -------------------------------------------------------------------------


def test_help_imports_only_what_it_uses(work):
    result = snakeaudio("--help", cwd=work, importtime=True)
    assert result.returncode == 0 and "synthesize" in result.stdout
    assert not imported(result) & {"snakeaudio.models", "snakeaudio.inference", "snakeaudio.train", "soundfile", "librosa", "matplotlib"}


def test_receptive_field_only_for_chunked_inputs_and_once_per_model(work, tmp_path, monkeypatch):
    from snakeaudio.inference import chunked

    monkeypatch.setattr(chunked, "cache_root", lambda: tmp_path)  # not measured by an earlier run
    measured = []
    measure = chunked._measure
    monkeypatch.setattr(chunked, "_measure", lambda generator: measured.append(generator) or measure(generator))
    assert main(["synthesize", str(work / "good.wav"), "--model", str(work / "tiny"), "-o", str(work / "one"), "--no-plot"]) == 0
    assert measured == []  # 0.5 s fit in one chunk of 10 s
    sf.write(work / "long.wav", tone(1.0), SR)
    inputs = [str(work / "good.wav"), str(work / "long.wav")]
    assert main(["synthesize", *inputs, "--model", str(work / "tiny"), "-o", str(work / "two"), "--chunk-seconds", "0.2", "--no-plot"]) == 0
    assert len(measured) == 1
