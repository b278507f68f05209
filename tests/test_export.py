import sys
from pathlib import Path

import pytest
import torch
from torch.nn.utils import parametrize

from snakeaudio.inference import export
from snakeaudio.inference.export import ExportMismatchError, export_onnx
from snakeaudio.models import Generator, preset

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("onnxscript")


def small_generator(activation: str) -> Generator:
    """A two-stage 16 kHz generator (hop 256) with random Snake frequencies and magnitudes, weight norm kept."""
    torch.manual_seed(0)
    config = preset("tiny_16khz_80band").replace(
        upsample_initial_channel=32, upsample_rates=(16, 16), upsample_kernel_sizes=(32, 32),
        resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1, 3),), activation=activation,
    )  # fmt: skip
    g = Generator(config)
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith((".alpha", ".beta")):
                p.uniform_(-0.7, 0.7)  # log-scale: frequencies and magnitudes within e^±0.7
    return g


@pytest.fixture(scope="module", params=["snake", "snakebeta"])
def exported(request, tmp_path_factory):
    g = small_generator(request.param)
    path = tmp_path_factory.mktemp("onnx") / "vocoder.onnx"
    difference = export_onnx(g, path, example_frames=12)
    return g, path, difference


def test_export_matches_pytorch(exported):
    g, path, difference = exported
    assert path.is_file()
    assert difference is not None and 0 <= difference <= 1e-3
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (mel_input,), (audio_output,) = session.get_inputs(), session.get_outputs()
    assert (mel_input.name, audio_output.name) == ("mel", "audio")
    batch, bands, frames = mel_input.shape
    assert bands == 80 and isinstance(batch, str) and isinstance(frames, str)  # dynamic batch and frame axes
    for shape in [(3, 80, 7), (1, 80, 1)]:
        mel = torch.randn(shape) - 4
        (audio,) = session.run(["audio"], {"mel": mel.numpy()})
        with torch.no_grad():
            expected = g.eval()(mel)
        assert audio.shape == (shape[0], 1, shape[2] * 256)
        torch.testing.assert_close(torch.from_numpy(audio), expected, atol=1e-4, rtol=0)


def test_export_leaves_the_generator_as_it_was(exported):
    g, _, _ = exported
    assert parametrize.is_parametrized(g.conv_pre, "weight")
    assert g.conv_pre.parametrizations.weight.original0.requires_grad
    g(torch.zeros(1, 80, 3))  # weight norm still works on the original


def test_onnx_max_difference_sees_a_changed_generator(exported):
    g, path, _ = exported
    changed = small_generator(g.config.activation)
    with torch.no_grad():
        changed.conv_post.parametrizations.weight.original0.mul_(1.5)
    assert export.onnx_max_difference(changed, path, frames=(5,)) > 1e-3


def test_mismatch_raises_and_writes_nothing(monkeypatch, tmp_path):
    run = export._run_onnxruntime
    monkeypatch.setattr(export, "_run_onnxruntime", lambda path, mel: run(path, mel) + 0.01)
    target = tmp_path / "vocoder.onnx"
    with pytest.raises(ExportMismatchError, match=r"up to 0\.01.* > atol=0\.001.*was not written"):
        export_onnx(small_generator("snakebeta"), target, example_frames=4)
    assert list(tmp_path.iterdir()) == []


def test_missing_packages_name_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # makes `import onnxscript` raise ImportError
    with pytest.raises(
        ImportError, match=r"onnxscript.*pip install \"snakeaudio\[export\]\", or in a clone: pip install -e \"\.\[export\]\""
    ):
        export_onnx(small_generator("snake"), tmp_path / "vocoder.onnx")
    assert not (tmp_path / "vocoder.onnx").exists()


@pytest.mark.parametrize("kwargs", [{"example_frames": 0}, {"atol": -1.0}, {"atol": float("nan")}])
def test_invalid_arguments(kwargs, tmp_path):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        export_onnx(small_generator("snake"), tmp_path / "vocoder.onnx", **kwargs)


@pytest.mark.parametrize("name", ["istft_24khz_100band", "istft_pv_24khz_100band"])
def test_export_of_an_istft_generator(name, tmp_path):
    """The iSTFT head (matrix inverse DFT + overlap-add, a phase vocoder) exports with dynamic frames."""
    sys.path.insert(0, str(Path(__file__).parent))
    from test_istft_generator import _small

    g = _small(name)
    path = tmp_path / "vocoder.onnx"
    assert export_onnx(g, path, example_frames=12) <= 1e-4
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    mel = torch.randn(2, 100, 30) - 5
    (audio,) = session.run(["audio"], {"mel": mel.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(audio), g(mel), atol=1e-4, rtol=0)
