import json
from pathlib import Path

import pytest
import soundfile as sf
import torch
from _reference import needs_bigvgan, reference
from torch.nn.utils import parametrize

from snakeaudio import Snake
from snakeaudio.dsp import MelConfig, mel_basis, mel_spectrogram
from snakeaudio.models import (
    PRESETS,
    CheckpointError,
    Generator,
    GeneratorConfig,
    convert_bigvgan_state_dict,
    from_pretrained,
    preset,
    save_pretrained,
)
from snakeaudio.nn import AMPBlock

bigvgan, bigvgan_mel, bigvgan_env = reference("bigvgan"), reference("meldataset"), reference("env")

DATA = Path(__file__).resolve().parent / "data"  # copies of NVIDIA's configs and the speech clips, with their licenses
OFFICIAL = sorted((DATA / "bigvgan-configs").glob("*.json"))
AUDIO = DATA / "audio"


def official_config(path: Path) -> dict:
    return json.loads(path.read_text())


def test_all_official_configs_are_found():
    assert len(OFFICIAL) == 9


@pytest.mark.parametrize("path", OFFICIAL, ids=lambda p: p.stem)
def test_official_config_loads_equals_preset_and_round_trips(path):
    config = GeneratorConfig.from_json(path)
    assert config == preset(path.stem)
    assert config.training["segment_size"] == official_config(path)["segment_size"]  # training keys kept
    again = GeneratorConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.training == config.training
    written = config.to_dict()
    for key, value in official_config(path).items():
        assert json.loads(json.dumps(written[key])) == value, key


def test_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown generator config keys: colour, loudness"):
        GeneratorConfig.from_dict({"colour": 1, "loudness": 2, "num_mels": 80})
    with pytest.raises(ValueError, match=r"Expected hop_size == prod\(upsample_rates\), got 256 != 240"):
        GeneratorConfig(upsample_rates=(4, 4, 5, 3), upsample_kernel_sizes=(8, 8, 10, 6))
    with pytest.raises(ValueError, match="unknown activation 'gelu'; expected one of snake, snakebeta, leakyrelu"):
        GeneratorConfig(activation="gelu")
    with pytest.raises(ValueError, match="resblock must be '1' or '2'"):
        GeneratorConfig(resblock="3")
    with pytest.raises(ValueError, match="unknown preset 'huge'; expected one of"):
        preset("huge")
    with pytest.raises(ValueError, match="fmax"):
        GeneratorConfig(fmax=20000)


def random_bigvgan(h: dict, seed: int = 0):
    """NVIDIA's generator with random weights and distinct Snake parameters per channel."""
    torch.manual_seed(seed)
    ref = bigvgan.BigVGAN(bigvgan_env.AttrDict(h))
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith((".alpha", ".beta")):
                p.uniform_(-0.6, 0.6) if h["snake_logscale"] else p.uniform_(0.3, 1.8)
    return ref


def official_folder(tmp_path: Path, h: dict, ref) -> Path:
    folder = tmp_path / "official"
    folder.mkdir()
    torch.save({"generator": ref.state_dict()}, folder / "bigvgan_generator.pt")
    (folder / "config.json").write_text(json.dumps(h))
    return folder


@needs_bigvgan
@pytest.mark.parametrize("path", OFFICIAL, ids=lambda p: p.stem)
def test_official_checkpoint_gives_nvidias_waveform(path, tmp_path):
    h = official_config(path)
    ref = random_bigvgan(h)
    if path.stem == "bigvgan_base_22khz_80band":  # one through the whole folder path; the rest in memory
        ours = from_pretrained(official_folder(tmp_path, h, ref))
    else:
        config = GeneratorConfig.from_dict(h)
        ours = Generator(config, weight_norm=False)
        ours.load_state_dict(convert_bigvgan_state_dict(ref.state_dict(), config), strict=True)
        ours.prepare_for_inference()
    assert not ours.training and ours.sample_rate == h["sampling_rate"] and ours.hop_length == h["hop_size"]
    ref.remove_weight_norm()
    ref.eval()
    mel = torch.randn(1, h["num_mels"], 3)
    with torch.inference_mode():
        ours_wav, ref_wav = ours(mel), ref(mel)
    assert ours_wav.shape == (1, 1, 3 * h["hop_size"])
    torch.testing.assert_close(ours_wav, ref_wav, atol=1e-4, rtol=0)


@needs_bigvgan
def test_resblock2_snake_plain_config_matches_nvidia(tmp_path):
    h = {
        "resblock": "2", "upsample_rates": [4, 4], "upsample_kernel_sizes": [8, 8], "upsample_initial_channel": 32,
        "resblock_kernel_sizes": [3, 5], "resblock_dilation_sizes": [[1, 2], [2, 6]], "activation": "snake",
        "snake_logscale": False, "num_mels": 20, "sampling_rate": 8000, "hop_size": 16, "n_fft": 64, "win_size": 64,
        "fmin": 0, "fmax": None, "use_tanh_at_final": True, "use_bias_at_final": True,
    }  # fmt: skip
    ref = random_bigvgan(h, seed=3)
    ours = from_pretrained(official_folder(tmp_path, h, ref))
    ref.remove_weight_norm()
    mel = torch.randn(2, 20, 11)
    torch.testing.assert_close(ours(mel), ref.eval()(mel), atol=1e-5, rtol=0)


@needs_bigvgan
@pytest.mark.parametrize("path", OFFICIAL, ids=lambda p: p.stem)
def test_mel_equals_bigvgan_on_real_speech(path):
    h = official_config(path)
    config = GeneratorConfig.from_dict(h).mel_config
    wav, sr = sf.read(AUDIO / ("hifitts_44k.wav" if h["sampling_rate"] == 44100 else "libritts_24k.wav"), dtype="float32")
    wav = torch.from_numpy(wav)[None]
    if sr != config.sample_rate:
        import torchaudio.functional as AF

        wav = AF.resample(wav, sr, config.sample_rate)
    ref = bigvgan_mel.mel_spectrogram(
        wav, h["n_fft"], h["num_mels"], h["sampling_rate"], h["hop_size"], h["win_size"], h["fmin"], h["fmax"]
    )
    torch.testing.assert_close(mel_spectrogram(wav, config), ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("sr", "n_fft", "n_mels", "fmin", "fmax"),
    [
        (24000, 1024, 100, 0, None), (22050, 1024, 80, 0, 8000), (44100, 2048, 128, 0, None),
        (22050, 512, 80, 20, 8000), (48000, 2048, 128, 30, None),
    ],  # fmt: skip
)
def test_mel_basis_is_librosas(sr, n_fft, n_mels, fmin, fmax):
    import librosa

    config = MelConfig(sample_rate=sr, n_fft=n_fft, num_mels=n_mels, hop_length=n_fft // 4, win_length=n_fft, fmin=fmin, fmax=fmax)
    reference = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
    assert torch.equal(mel_basis(config), torch.from_numpy(reference))


def test_mel_module_buffers_and_warnings():
    config = MelConfig(16000, 512, 40, 128, 512)
    g = Generator(preset("tiny_16khz_80band"))
    assert set(g.state_dict()).isdisjoint(k for k, _ in g.features.named_buffers(prefix="features"))
    with pytest.warns(UserWarning, match=r"exceeds \[-1, 1\]"):
        mel_spectrogram(torch.full((1, 4000), 1.5), config)
    with pytest.raises(ValueError, match="NaN or infinite"):
        mel_spectrogram(torch.full((1, 4000), float("nan")), config)
    with pytest.raises(ValueError, match=r"mono waveform shaped \(B, 1, T\)"):
        mel_spectrogram(torch.zeros(1, 2, 4000), config)


def tiny_model(**changes) -> Generator:
    torch.manual_seed(0)
    return Generator(preset("tiny_16khz_80band").replace(**changes))


def test_save_and_load_round_trip(tmp_path):
    model = tiny_model()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".alpha"):
                p.uniform_(-0.5, 0.5)
    mel = torch.randn(2, 80, 6)
    expected = model.eval()(mel)
    folder = save_pretrained(model, tmp_path / "tiny")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    loaded = from_pretrained(folder)
    assert loaded.config == model.config and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    torch.testing.assert_close(loaded(mel), expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(loaded.mel(torch.zeros(1, 1, 2560)), model.mel(torch.zeros(2560)))


def test_weight_norm_folding_keeps_the_function():
    model = tiny_model().eval()
    mel = torch.randn(1, 80, 5)
    before = model(mel)
    model.remove_weight_norm()
    assert not any("parametrizations" in k for k in model.state_dict())
    torch.testing.assert_close(model(mel), before, atol=1e-6, rtol=1e-6)


def test_checkpoint_mismatch_names_keys(tmp_path):
    folder = save_pretrained(tiny_model(), tmp_path / "a")
    config = json.loads((folder / "config.json").read_text())
    config["upsample_initial_channel"] = 64
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"mis-shaped .*conv_pre\.weight: checkpoint \(128, 80, 7\) vs model \(64, 80, 7\)"):
        from_pretrained(folder)
    config["upsample_initial_channel"] = 128
    config["resblock"] = "1"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"missing \(\d+\): resblocks\.0\.activations\.3\.act\.alpha"):
        from_pretrained(folder)


def test_corrupt_and_unsafe_checkpoints_are_refused(tmp_path):
    folder = save_pretrained(tiny_model(), tmp_path / "a")
    (folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="cannot read"):
        from_pretrained(folder)
    official = tmp_path / "b"
    official.mkdir()
    (official / "config.json").write_text((folder / "config.json").read_text())
    torch.save({"generator": {}, "payload": Snake(2)}, official / "bigvgan_generator.pt")  # a pickled module
    with pytest.raises(CheckpointError, match="cannot read"):
        from_pretrained(official)
    with pytest.raises(FileNotFoundError, match="neither a model folder nor a bundled model"):
        from_pretrained(tmp_path / "nowhere")


def test_generator_input_errors():
    model = tiny_model().eval()
    with pytest.raises(ValueError, match=r"shaped \(B, 80, F\), got shape \(80, 5\) \(add a batch axis"):
        model(torch.randn(80, 5))
    with pytest.raises(ValueError, match="expects 80 mel bands, got 100"):
        model(torch.randn(1, 100, 5))
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(torch.full((1, 80, 5), float("inf")))


def test_hifigan_preset_and_injected_activation():
    config = preset("hifigan_v1_22khz_80band").replace(upsample_initial_channel=32)
    model = Generator(config)
    assert not any("alpha" in k for k in model.state_dict())
    assert model(torch.randn(1, 80, 2)).shape == (1, 1, 512)
    custom = Generator(config, activation=lambda c: Snake(c, alpha=5.0))
    assert isinstance(custom.activation_post, Snake)


def test_amp_block_variants_and_gradients():
    block1 = AMPBlock(6, 3, (1, 3), activation=lambda c: Snake(c))
    block2 = AMPBlock(6, 3, (1, 3), activation=lambda c: Snake(c), second_convs=False)
    assert len(block1.activations) == 4 and len(block2.activations) == 2 and len(block2.convs2) == 0
    x = torch.randn(2, 6, 40, requires_grad=True)
    block1(x).sum().backward()
    assert all(p.grad is not None for p in block1.parameters())
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        AMPBlock(6, 4, activation=lambda c: Snake(c))


@pytest.mark.parametrize("name", sorted(set(PRESETS) - {p.stem for p in OFFICIAL}))
def test_own_presets_build_and_run(name):
    config = preset(name)
    model = Generator(config.replace(upsample_initial_channel=min(config.upsample_initial_channel, 64))).eval()
    assert model(torch.randn(1, config.num_mels, 2)).shape == (1, 1, 2 * config.hop_size)


def test_folding_weight_norm_on_a_deep_copy_leaves_the_original_intact():
    import copy

    model = tiny_model()
    mel = torch.randn(1, 80, 5)
    with torch.no_grad():
        expected = model(mel)
        folded = copy.deepcopy(model).prepare_for_inference()
        torch.testing.assert_close(folded(mel), expected)
        torch.testing.assert_close(model(mel), expected)  # still weight-normalised and working
    assert parametrize.is_parametrized(model.conv_pre, "weight") and not parametrize.is_parametrized(folded.conv_pre, "weight")


@pytest.mark.parametrize("overrides", [{}, {"anti_alias": False}, {"activation": "leakyrelu", "anti_alias": False}])
def test_the_generator_is_shift_equivariant_by_whole_frames(overrides):
    # Dropping the first mel frame drops the first hop of audio (away from the edges). So a
    # steady mel, all frames equal, gives audio with period hop whatever the weights: a steady
    # tone comes out with harmonics of sample_rate / hop unless the frames differ (recipes/tones).
    config = preset("tiny_16khz_80band").replace(upsample_initial_channel=32, **overrides)
    model = Generator(config).eval().double()
    hop, edge = config.hop_size, 12  # frames left out at each end: more than the receptive field reaches
    mel = torch.randn(1, 80, 40, dtype=torch.float64)
    steady = torch.randn(1, 80, 1, dtype=torch.float64).expand(1, 80, 40)
    with torch.no_grad():
        audio, later = model(mel)[0, 0], model(mel[..., 1:])[0, 0]
        torch.testing.assert_close(later[edge * hop : -edge * hop], audio[(edge + 1) * hop : -edge * hop])
        buzz = model(steady)[0, 0, edge * hop : -edge * hop]

    def mismatch(lag: int) -> float:
        return (buzz[lag:] - buzz[:-lag]).abs().max().item()

    assert mismatch(hop) <= 1e-9 * mismatch(hop // 2)  # exactly periodic in the hop (to float64 rounding), not in half of it
    assert mismatch(hop // 2) > 0
