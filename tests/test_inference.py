import copy
import functools
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from snakeaudio.dsp import read_audio, read_mel, write_wav
from snakeaudio.inference import (
    Synthesized,
    chunked,
    copy_synthesize,
    plan_jobs,
    receptive_field,
    stream_synthesis,
    streaming,
    streaming_latency,
    synthesize_batch,
    synthesize_chunked,
    synthesize_files,
)
from snakeaudio.models import Generator, preset


@pytest.fixture(scope="module")
def generator():
    """A random tiny generator whose output really depends on the mel, unclipped.

    The training init (conv weights ~ N(0, 0.01)) all but ignores the input at random weights,
    which would let a wrong context pass unnoticed: variance-preserving weights instead,
    varied Snake parameters, and the last conv scaled to a peak of 0.5.
    """
    torch.manual_seed(0)
    config = preset("tiny_16khz_80band").replace(upsample_initial_channel=32)
    g = Generator(config).prepare_for_inference()
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith((".alpha", ".beta")):
                p.uniform_(-0.5, 0.5)  # log-scale: α, β in [0.6, 1.6]
            elif name.endswith("weight"):
                fan_in = p.shape[0] * p.shape[2] if name.startswith("ups.") else p[0].numel()
                p.normal_(0, fan_in**-0.5)
        peaks = []
        hook = g.conv_post.register_forward_hook(lambda module, args, out: peaks.append(out.abs().max()))
        g(torch.randn(4, 80, 64))
        hook.remove()
        g.conv_post.weight.mul_(0.5 / peaks[0])
    return g


@pytest.fixture(scope="module")
def generator64(generator):
    """The same generator in float64: rounding drops to ~1e-16, so context a few frames short shows."""
    return copy.deepcopy(generator).double()


def test_receptive_field_is_finite_and_stable(generator):
    field = receptive_field(generator)
    assert 2 <= field < 96
    assert receptive_field(generator) == field


def test_receptive_field_of_any_copy(generator):
    field = receptive_field(generator)
    fresh = copy.deepcopy(generator)
    with torch.inference_mode():  # measured by backprop all the same
        assert receptive_field(fresh) == field
    assert receptive_field(copy.deepcopy(generator).to(torch.bfloat16)) == field  # on a float32 copy
    training = copy.deepcopy(generator).train().requires_grad_(True)
    assert receptive_field(training) == field
    assert training.training and all(p.grad is None for p in training.parameters())


def test_measurements_do_not_depend_on_flushing_denormals(generator, tmp_path, monkeypatch):
    """The CLI flushes denormals to zero for speed; the weakest dependence at the edge of this
    generator's receptive field is a denormal, which the measurement must not lose."""
    monkeypatch.setenv("SNAKEAUDIO_CACHE", str(tmp_path))
    flushing = bool((torch.tensor([2e-38]) / 4)[0] == 0)
    measured = {}
    try:
        for flush in (False, True):
            torch.set_flush_denormal(flush)
            measured[flush] = chunked._measure(copy.deepcopy(generator).eval()), streaming._measure(copy.deepcopy(generator).eval())
    finally:
        torch.set_flush_denormal(flushing)
    assert measured[True] == measured[False]


def test_generator_made_under_inference_mode_is_measured_on_a_copy(generator, tmp_path, monkeypatch):
    """Loading a model under inference mode is common; its tensors rule out the measuring
    backprop, so it is measured on a copy made outside inference mode (an empty cache folder
    makes it really measure)."""
    monkeypatch.setenv("SNAKEAUDIO_CACHE", str(tmp_path))
    expected = chunked._measure(copy.deepcopy(generator).eval()), streaming._measure(copy.deepcopy(generator).eval())
    with torch.inference_mode():
        made = copy.deepcopy(generator)
        assert made.conv_pre.weight.is_inference()
        assert (receptive_field(made), streaming._supports(made)) == expected
        mel = torch.randn(1, 80, 40)
        torch.testing.assert_close(synthesize_chunked(made, mel, 7), made(mel), atol=1e-5, rtol=0)
    assert made.conv_pre.weight.is_inference() and not made.training


def test_measurements_are_kept_on_disk_for_the_next_process(generator, tmp_path, monkeypatch):
    """A new generator object with the same weights reads its receptive field and stage
    supports from the cache folder; other weights, or an unreadable file, are measured again."""
    monkeypatch.setenv("SNAKEAUDIO_CACHE", str(tmp_path))
    field, supports = receptive_field(copy.deepcopy(generator)), streaming._supports(copy.deepcopy(generator))
    files = sorted((tmp_path / "measured").glob("*.json"))
    assert len(files) == 2
    measured = []
    for module in (chunked, streaming):
        original = module._measure
        monkeypatch.setattr(module, "_measure", functools.wraps(original)(lambda g, f=original: measured.append(1) or f(g)))
    assert receptive_field(copy.deepcopy(generator)) == field
    assert streaming._supports(copy.deepcopy(generator)) == supports
    assert measured == []
    other = copy.deepcopy(generator)
    with torch.no_grad():
        other.conv_pre.weight.mul_(2)
    assert receptive_field(other) == field and measured == [1]
    for file in files:
        file.write_text("[1, 2")
    assert receptive_field(copy.deepcopy(generator)) == field
    assert streaming._supports(copy.deepcopy(generator)) == supports
    assert measured == [1, 1, 1]


@pytest.mark.parametrize("chunk", [1, 7, 50])
def test_chunked_equals_whole(generator, chunk):
    mel = torch.randn(2, 80, 123)
    with torch.inference_mode():
        whole = generator(mel)
    chunked = synthesize_chunked(generator, mel, chunk)
    assert chunked.shape == whole.shape
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)


def test_too_little_context_leaves_seams(generator):
    mel = torch.randn(1, 80, 60)
    with torch.inference_mode():
        whole = generator(mel)
    short = synthesize_chunked(generator, mel, 10, context=0)
    assert (short - whole).abs().max() > 1e-3
    with pytest.raises(ValueError, match="chunk_frames must be >= 1"):
        synthesize_chunked(generator, mel, 0)


# Padded batches, streams and copy synthesis: exact against whole-input synthesis.


def _whole(generator, mel):
    with torch.inference_mode():
        return generator(mel[None])[0]  # (n_mels, F) -> (1, F·hop)


def test_synthesize_batch_equals_one_by_one(generator):
    field = receptive_field(generator)
    lengths = [40, 1, 97, 7, 97, 2 * field]
    mels = [torch.randn(80, n) for n in lengths]
    audios = synthesize_batch(generator, mels)
    assert len(audios) == len(mels)
    for mel, audio in zip(mels, audios):
        assert audio.shape == (1, mel.shape[-1] * generator.hop_length)
        torch.testing.assert_close(audio, _whole(generator, mel), atol=1e-5, rtol=0)
    # Without the recomputed tails, the padding would leak into the shorter items.
    padded = torch.stack([torch.nn.functional.pad(m, (0, 97 - m.shape[-1])) for m in mels])
    with torch.inference_mode():
        leaky = generator(padded)[0, :, : 40 * generator.hop_length]
    assert (leaky - _whole(generator, mels[0])).abs().max() > 1e-3


def test_synthesize_batch_edge_cases(generator):
    assert synthesize_batch(generator, []) == []
    mel = torch.randn(80, 13, dtype=torch.float64)
    (audio,) = synthesize_batch(generator, [mel])
    assert audio.dtype == torch.float32
    torch.testing.assert_close(audio, _whole(generator, mel.float()), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match=r"mels\[1\]: expected a mel spectrogram shaped \(80, F\), got \(100, 5\)"):
        synthesize_batch(generator, [mel, torch.randn(100, 5)])
    with pytest.raises(ValueError, match=r"mels\[0\] has no frames"):
        synthesize_batch(generator, [torch.randn(80, 0), mel])


def test_batch_and_stream_are_exact_in_float64(generator64):
    """At float64 rounding, three frames too few of context would show (about 1e-9)."""
    field = receptive_field(generator64)
    mels = [torch.randn(80, n, dtype=torch.float64) for n in (50, 3, 2 * field + 1)]
    for mel, audio in zip(mels, synthesize_batch(generator64, mels)):
        torch.testing.assert_close(audio, _whole(generator64, mel), atol=1e-12, rtol=0)
    streamed = torch.cat(list(stream_synthesis(generator64, mels[0].split(3, dim=-1))), dim=-1)
    torch.testing.assert_close(streamed, _whole(generator64, mels[0]), atol=1e-12, rtol=0)
    supports = streaming._supports(generator64)
    try:  # the AMP blocks of the first resolution streamed with 8 samples too few of left context
        streaming._SUPPORTS[generator64] = [replace(s, left=s.left - 8) if i == 2 else s for i, s in enumerate(supports)]
        short = torch.cat(list(stream_synthesis(generator64, mels[0].split(3, dim=-1))), dim=-1)
    finally:
        streaming._SUPPORTS[generator64] = supports
    assert (short - _whole(generator64, mels[0])).abs().max() > 1e-11
    short = synthesize_chunked(generator64, mels[0][None], 5, context=field - 3)
    assert (short[0] - _whole(generator64, mels[0])).abs().max() > 1e-11


def _chunks(mel, sizes):
    start = 0
    for size in sizes:
        yield mel[:, start : start + size]
        start += size
    assert start >= mel.shape[-1]


@pytest.mark.parametrize(
    "sizes",
    [[1] * 45, [45], [3, 0, 17, 1, 2, 22], [30, 15], [1, 1, 40, 1, 2], [7] * 7],
    ids=["1-frame", "single", "mixed", "two", "bursty", "7-frame"],
)
def test_stream_equals_whole(generator, sizes):
    mel = torch.randn(80, 45)
    pieces = list(stream_synthesis(generator, _chunks(mel, sizes)))
    assert all(p.dim() == 2 and p.shape[0] == 1 and p.shape[1] > 0 for p in pieces)
    torch.testing.assert_close(torch.cat(pieces, dim=-1), _whole(generator, mel), atol=1e-5, rtol=0)


def _lookahead_frames(generator, stagewise=True):
    return round(streaming_latency(generator, stagewise=stagewise) * generator.sample_rate / generator.hop_length)


@pytest.mark.parametrize("stagewise", [True, False])
def test_stream_yields_audio_as_soon_as_final(generator, stagewise):
    field, hop = _lookahead_frames(generator, stagewise), generator.hop_length
    mel = torch.randn(1, 80, 30)
    received, ended = 0, False

    def source():
        nonlocal received, ended
        for start in range(0, 30, 4):
            chunk = mel[..., start : start + 4]  # (1, n_mels, f) chunks are accepted too
            received += chunk.shape[-1]
            yield chunk
        ended = True

    produced = []
    for piece in stream_synthesis(generator, source(), stagewise=stagewise):
        produced.append(sum(produced[-1:]) + piece.shape[-1] // hop)
        assert produced[-1] == (30 if ended else received - field)  # every frame that is final, and no more
    assert produced[-1] == 30 and len(produced) > 2
    assert list(stream_synthesis(generator, iter([]))) == []
    with pytest.raises(ValueError, match=r"mel chunk 1: expected a mel spectrogram shaped \(80, F\) or \(1, 80, F\)"):
        list(stream_synthesis(generator, [mel[0, :, :3], torch.randn(2, 80, 3)]))


def test_streaming_latency(generator):
    field, upsamplings = receptive_field(generator), len(generator.config.upsample_rates)
    # Stage by stage, each upsampling step rounds its look-ahead up to whole input samples.
    assert field <= _lookahead_frames(generator) <= field + upsamplings
    whole = streaming_latency(generator, stagewise=False)
    assert whole == pytest.approx(field * generator.hop_length / generator.sample_rate)
    assert 0 < whole <= streaming_latency(generator) < 1
    # The stage supports are measured like the receptive field: on a float32 copy.
    assert streaming_latency(copy.deepcopy(generator).to(torch.bfloat16)) == streaming_latency(generator)


def test_stream_of_the_whole_generator_equals_whole(generator):
    mel = torch.randn(80, 30)
    pieces = list(stream_synthesis(generator, _chunks(mel, [4, 1, 0, 20, 5]), stagewise=False))
    torch.testing.assert_close(torch.cat(pieces, dim=-1), _whole(generator, mel), atol=1e-5, rtol=0)


def test_stream_keeps_only_each_stage_context(generator):
    """One frame at a time, the first convolution sees its own 3 + 3 frames of context,
    not the whole network's receptive field."""
    seen = []
    hook = generator.conv_pre.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[-1]))
    try:
        list(stream_synthesis(generator, torch.randn(80, 40).split(1, dim=-1)))
    finally:
        hook.remove()
    assert len(seen) == 40 - 3 + 1 and max(seen) == 7 < 2 * receptive_field(generator)  # from the 4th frame, and at the end


@pytest.mark.parametrize("chunk_frames", [None, 9])
def test_copy_synthesize_keeps_the_length(generator, chunk_frames):
    hop = generator.hop_length
    n = 50 * hop + 77  # not a whole number of frames
    wav = 0.5 * torch.sin(2 * torch.pi * 220 * torch.arange(n) / generator.sample_rate)
    audio = copy_synthesize(generator, wav, chunk_frames=chunk_frames)
    assert audio.shape == (n,)
    with torch.inference_mode():
        whole = generator(generator.mel(wav[None])).reshape(-1)
    torch.testing.assert_close(audio[: whole.numel()], whole, atol=1e-5, rtol=0)
    assert torch.count_nonzero(audio[whole.numel() :]) == 0
    with pytest.raises(ValueError, match=r"mono waveform shaped \(T,\), got \(1, 1, 100\)"):
        copy_synthesize(generator, torch.zeros(1, 1, 100))


@pytest.mark.parametrize("chunk_frames", [None, 9])
def test_synthesize_files_moves_a_mel_file_to_the_generator(generator64, tmp_path, chunk_frames):
    """A mel file is read as float32 on the CPU; one input alone goes to the generator in its dtype (and device)."""
    mel = torch.randn(80, 30)
    np.save(tmp_path / "a.npy", mel.numpy())
    (result,) = synthesize_files(generator64, plan_jobs([tmp_path / "a.npy"], tmp_path / "out"), chunk_frames=chunk_frames)
    assert isinstance(result, Synthesized)
    torch.testing.assert_close(result.audio, _whole(generator64, mel.double()).reshape(-1), atol=1e-9, rtol=0)


# Mel and wav files.


class _Payload:
    """Would create a folder if unpickled without restriction."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


@pytest.mark.parametrize("suffix", [".npy", ".pt"])
def test_read_mel_round_trip(tmp_path, suffix):
    mel = torch.randn(80, 11)
    path = tmp_path / f"mel{suffix}"
    for stored in (mel, mel[None]):  # (n_mels, F) and (1, n_mels, F)
        if suffix == ".npy":
            np.save(path, stored.double().numpy())
        else:
            torch.save(stored, path)
        loaded = read_mel(path, 80)
        assert loaded.dtype == torch.float32
        torch.testing.assert_close(loaded, mel)


def test_read_mel_errors(tmp_path):
    def fails(name, match, num_mels=80, error=ValueError):
        with pytest.raises(error, match=match):
            read_mel(tmp_path / name, num_mels)

    np.save(tmp_path / "bands.npy", np.zeros((80, 5), np.float32))
    fails("bands.npy", r"bands\.npy has 80 mel bands, the model expects 100", num_mels=100)
    np.save(tmp_path / "transposed.npy", np.zeros((5, 80), np.float32))
    fails("transposed.npy", r"has 5 mel bands, the model expects 80 \(shape \(5, 80\) looks transposed")
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan]] * 80, np.float32))
    fails("nan.npy", r"nan\.npy contains 80 NaN or infinite values")
    np.save(tmp_path / "empty.npy", np.zeros((80, 0), np.float32))
    fails("empty.npy", r"empty\.npy holds no frames")
    torch.save(torch.zeros(2, 80, 5), tmp_path / "rank.pt")
    fails(
        "rank.pt",
        r"rank\.pt: expected a mel spectrogram shaped \(n_mels, F\) or \(1, n_mels, F\), got shape \(2, 80, 5\)",
    )
    np.save(tmp_path / "objects.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    fails("objects.npy", r"cannot read mel file .*objects\.npy")
    torch.save(torch.zeros(80, 5), tmp_path / "truncated.pt")
    data = (tmp_path / "truncated.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    fails("truncated.pt", r"cannot read mel file .*truncated\.pt")
    (tmp_path / "noise.pt").write_bytes(bytes(range(256)) * 4)
    fails("noise.pt", r"cannot read mel file .*noise\.pt")
    (tmp_path / "zero.npy").write_bytes(b"")
    fails("zero.npy", r"zero\.npy is empty")
    torch.save({"mel": torch.zeros(80, 5)}, tmp_path / "dict.pt")
    fails("dict.pt", r"dict\.pt holds a dict, expected a real-valued tensor")
    (tmp_path / "mel.txt").write_text("0 1 2")
    fails("mel.txt", r"mel\.txt: unsupported mel file type '\.txt'; expected one of \.npy, \.pt")
    fails("missing.npy", r"missing\.npy does not exist", error=FileNotFoundError)


def test_read_mel_refuses_pickled_objects(tmp_path):
    marker = tmp_path / "code_ran"
    torch.save(_Payload(marker), tmp_path / "payload.pt")
    with pytest.raises(ValueError, match=r"payload\.pt holds a pickled .*makedirs; only tensors are loaded"):
        read_mel(tmp_path / "payload.pt", 80)
    assert not marker.exists()


def test_write_wav_round_trip_and_atomic(tmp_path, monkeypatch):
    sr = 16000
    audio = 0.8 * torch.sin(2 * torch.pi * 440 * torch.arange(1234) / sr)
    path = tmp_path / "out" / "tone.wav"
    write_wav(path, audio[None], sr)  # (1, T); the missing folder is created
    data, rate = sf.read(path, dtype="float32")
    assert rate == sr and sf.info(path).subtype == "PCM_16"
    torch.testing.assert_close(torch.from_numpy(data), audio, atol=1 / 32768, rtol=0)
    assert os.listdir(path.parent) == ["tone.wav"]

    before = path.read_bytes()
    with pytest.raises(ValueError, match="NaN or infinite"):
        write_wav(path, torch.full((10,), float("nan")), sr)

    def interrupted(file, *args, **kwargs):
        Path(file).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(sf, "write", interrupted)
    with pytest.raises(OSError, match="disk full"):
        write_wav(path, torch.zeros(100), sr)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(path.parent) == ["tone.wav"]  # no temporary file left behind

    with pytest.warns(UserWarning, match="clipped"):
        write_wav(path, torch.tensor([0.0, 2.0, -3.0]), sr)
    assert sf.read(path, dtype="float32")[0].tolist() == pytest.approx([0.0, 32767 / 32768, -1.0])
    with pytest.raises(ValueError, match=r"mono audio shaped \(T,\) or \(1, T\), got shape \(2, 3\)"):
        write_wav(path, torch.zeros(2, 3), sr)


def test_read_audio_lives_in_dsp():
    from snakeaudio.train.data import read_audio as from_train

    assert from_train is read_audio


@pytest.mark.parametrize("clip", sorted(Path(__file__).parent.joinpath("data", "audio").glob("*.wav")), ids=lambda p: p.stem)
def test_the_bundled_default_chunks_to_within_what_its_griffin_lim_rounds_make_of_rounding(clip):
    """Chunked synthesis is whole synthesis: in float64 they agree to 210–220 dB on 300 frames.
    In float32 the 8 Griffin-Lim rounds amplify the rounding by which a chunk's convolutions
    differ from the whole input's: 64–75 dB on these clips, by machine and thread count."""
    from snakeaudio import DEFAULT_MODEL, from_pretrained

    model = from_pretrained(DEFAULT_MODEL)
    with torch.no_grad():
        mel = model.mel(read_audio(clip, model.sample_rate)[None, None])
        for generator, frames, floor_db in ((copy.deepcopy(model).double(), mel[..., :300].double(), 180), (model, mel, 55)):
            whole = generator(frames)
            for chunk_frames in (7, 40):
                error = synthesize_chunked(generator, frames, chunk_frames) - whole
                assert 10 * torch.log10(whole.square().sum() / error.square().sum()) > floor_db, (frames.dtype, chunk_frames)
