"""The iSTFT-headed generators: inverse STFT, ConvNeXt blocks, presets, and that they load,
save, chunk, stream and export exactly like the BigVGAN family."""

import copy

import pytest
import torch
import torch.nn.functional as F

from snakeaudio import SnakeBeta
from snakeaudio.dsp.istft import STFT, InverseSTFT, fast_griffin_lim
from snakeaudio.inference import receptive_field, stream_synthesis, synthesize_batch, synthesize_chunked
from snakeaudio.models import Generator, GeneratorConfig, from_pretrained, preset, save_pretrained
from snakeaudio.models.generator import ISTFTHead, PhaseVocoder
from snakeaudio.nn.blocks import ConvNeXtBlock
from snakeaudio.train.losses import phase_loss


def _stft(x: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """The mel's framing: reflect padding of (n_fft − hop)/2, no centring. Shape: (B, T) -> (B, K, T / hop)."""
    pad = (n_fft - hop) // 2
    x = F.pad(x[:, None], (pad, pad), mode="reflect")[:, 0]
    window = torch.hann_window(n_fft, dtype=x.dtype)
    return torch.stft(x, n_fft, hop, window=window, center=False, return_complex=True)


@pytest.mark.parametrize(("n_fft", "hop"), [(1024, 256), (16, 4), (12, 4), (8, 4)])
def test_inverse_stft_inverts_the_mel_framing(n_fft, hop):
    x = torch.randn(2, 37 * hop, dtype=torch.float64)
    spec = _stft(x, n_fft, hop)
    y = InverseSTFT(n_fft, hop).double()(spec.real, spec.imag)
    assert y.shape == (2, 1, 37 * hop)
    torch.testing.assert_close(y[:, 0], x, atol=1e-5, rtol=0)  # the basis is stored in float32


def test_stft_is_torch_stft_with_the_mel_framing():
    x = torch.randn(2, 1, 37 * 4, dtype=torch.float64)
    real, imag = STFT(16, 4).double()(x)
    reference = _stft(x[:, 0], 16, 4)
    torch.testing.assert_close(real, reference.real, atol=1e-6, rtol=0)  # the basis is stored in float32
    torch.testing.assert_close(imag, reference.imag, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("n_fft", "hop", "frames"), [(1024, 256, 37), (16, 4, 2), (12, 4, 5), (8, 4, 1)])
def test_the_fft_paths_equal_the_matrix_references(n_fft, hop, frames, dtype):
    stft, istft = STFT(n_fft, hop).to(dtype), InverseSTFT(n_fft, hop).to(dtype)
    wav = torch.randn(3, 1, 2 * frames * hop, dtype=dtype)[..., ::2]  # a strided view
    spectrum = stft(wav)
    for fast, reference in zip(spectrum, stft.reference(wav)):
        torch.testing.assert_close(fast, reference, atol=1e-5 * n_fft**0.5, rtol=1e-5)
    real, imag = (part.transpose(0, 2).contiguous().transpose(0, 2) for part in spectrum)  # another memory layout
    torch.testing.assert_close(istft(real, imag), istft.reference(real, imag), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(istft(*spectrum), wav, atol=1e-5, rtol=0)  # and they still invert each other

    wav = wav.detach().requires_grad_()
    grads = [torch.autograd.grad(istft_(*stft_(wav)).square().sum() + stft_(wav)[1].sum(), wav)[0]
             for stft_, istft_ in ((stft, istft), (stft.reference, istft.reference))]  # fmt: skip
    torch.testing.assert_close(grads[0], grads[1], atol=1e-4 * n_fft**0.5, rtol=1e-4)


def test_the_reference_backend_and_half_precision_take_the_matrix_path(monkeypatch):
    stft = STFT(16, 4)
    calls = []
    monkeypatch.setattr(torch.fft, "rfft", lambda *a, **k: calls.append(1))
    for half in (torch.float16, torch.bfloat16):
        stft.to(half)(torch.randn(1, 1, 40, dtype=half))
    STFT(16, 4, backend="reference")(torch.randn(1, 1, 40))
    monkeypatch.setenv("SNAKEAUDIO_BACKEND", "reference")
    STFT(16, 4)(torch.randn(1, 1, 40))
    assert calls == []
    monkeypatch.setenv("SNAKEAUDIO_BACKEND", "fft")
    with pytest.raises(ValueError, match="unknown SNAKEAUDIO_BACKEND 'fft'; expected one of auto, reference, cpu, triton"):
        InverseSTFT(16, 4)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_the_inverse_stft_sums_half_precision_in_float32_on_both_paths(dtype):
    """Under .to(dtype) the module keeps its window and basis in float32 and both paths sum in
    float32: half-precision spectra give a float32 module's output to float32 rounding."""
    istft = InverseSTFT(1024, 256).to(dtype)
    assert {t.dtype for t in istft.buffers()} == {torch.float32}
    real, imag = (x.to(dtype) for x in STFT(1024, 256)(torch.randn(2, 1, 256 * 20, generator=torch.Generator().manual_seed(0))))
    exact = InverseSTFT(1024, 256)(real.float(), imag.float())
    for output in (istft(real, imag), istft.reference(real, imag)):
        assert output.dtype == torch.float32
        torch.testing.assert_close(output, exact, atol=1e-5, rtol=1e-5)


def test_the_tables_stay_float32_through_dtype_conversions():
    """The STFTs' windows and bases and the head's mel prior, as the anti-aliased activation's
    filters: half-precision models compute their spectra with exact tables."""
    head = _small("istft_pv_24khz_100band").to(torch.bfloat16).head
    assert head.prior.dtype == head.stft.basis.dtype == head.istft.window_power.dtype == torch.float32
    assert head.proj.weight.dtype == torch.bfloat16


def test_fast_griffin_lim_makes_a_spectrum_consistent_and_keeps_its_magnitude():
    """From a random phase on a speech-like magnitude, each round brings the output's STFT
    magnitude closer to the target; no rounds is the plain inverse STFT."""
    torch.manual_seed(0)
    n_fft, hop = 64, 16
    t = torch.arange(200 * hop, dtype=torch.float64) / 8000
    x = (torch.sin(2 * torch.pi * 440 * t) + 0.5 * torch.sin(2 * torch.pi * 1250 * t))[None, None]
    stft, istft = STFT(n_fft, hop).double(), InverseSTFT(n_fft, hop).double()
    magnitude = torch.sqrt(sum(part.square() for part in stft(x)))
    phase = torch.rand(magnitude.shape, dtype=torch.float64) * 2 * torch.pi
    real, imag = magnitude * torch.cos(phase), magnitude * torch.sin(phase)
    assert torch.equal(fast_griffin_lim(magnitude, real, imag, None, istft, 0), istft(real, imag))
    errors = []
    for iterations in (0, 2, 8, 32):
        out = fast_griffin_lim(magnitude, real, imag, stft, istft, iterations)
        errors.append(float((torch.sqrt(sum(p.square() for p in stft(out))) - magnitude).norm() / magnitude.norm()))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.3 * errors[0], errors


def test_inverse_stft_errors():
    for n_fft, hop in [(1000, 256), (256, 256), (6, 3)]:
        with pytest.raises(ValueError, match="multiple of hop_length"):
            InverseSTFT(n_fft, hop)
    with pytest.raises(ValueError, match=r"shaped \(B, 9, F\)"):
        InverseSTFT(16, 4)(torch.zeros(1, 8, 3), torch.zeros(1, 8, 3))


def test_convnext_block_is_local_and_keeps_the_shape():
    torch.manual_seed(0)
    block = ConvNeXtBlock(8, kernel_size=5, activation=SnakeBeta).eval()
    x = torch.randn(1, 8, 40, requires_grad=True)
    out = block(x)
    assert out.shape == x.shape
    (grad,) = torch.autograd.grad(out[0, :, 20].sum(), x)
    used = (grad[0].abs().sum(0) > 0).nonzero().flatten()
    assert used.min() == 18 and used.max() == 22  # kernel 5: two frames each side, the rest per frame
    with pytest.raises(ValueError, match="odd"):
        ConvNeXtBlock(8, kernel_size=4, activation=SnakeBeta)


def test_config_validation():
    with pytest.raises(ValueError, match=r"prod\(upsample_rates\) · istft_hop_size"):
        preset("amp_istft_24khz_100band").replace(istft_hop_size=8)
    with pytest.raises(ValueError, match="mel_prior needs head 'istft'"):
        preset("amp_istft_24khz_100band").replace(mel_prior=True)
    with pytest.raises(ValueError, match="head must be"):
        preset("istft_24khz_100band").replace(head="griffin")
    with pytest.raises(ValueError, match="istft_phase must be 'frame' or 'vocoder', got 'wrapped'"):
        preset("istft_24khz_100band").replace(istft_phase="wrapped")
    config = preset("istft_24khz_100band")
    assert GeneratorConfig.from_dict(config.to_dict()) == config


def _small(name: str) -> Generator:
    """A narrow random version of a preset whose output depends on the mel (non-trivial phase and magnitude)."""
    torch.manual_seed(0)
    config = preset(name)
    config = config.replace(upsample_initial_channel=32, convnext_layers=min(config.convnext_layers, 2))
    g = Generator(config).prepare_for_inference()
    with torch.no_grad():
        g.head.proj.weight.normal_(0, 0.3 / config.upsample_initial_channel**0.5)
    return g


PRESETS = ["istft_24khz_100band", "istft_pv_24khz_100band", "amp_istft_24khz_100band"]


@pytest.fixture(scope="module", params=PRESETS)
def generator(request):
    return _small(request.param)


def test_output_shape_and_receptive_field(generator):
    mel = torch.randn(2, 100, 9) - 5
    assert generator(mel).shape == (2, 1, 9 * 256)
    if generator.config.istft_phase == "vocoder":
        with pytest.raises(ValueError, match="no finite receptive field"):
            receptive_field(generator)
        with pytest.raises(ValueError, match="stream it stage by stage"):
            next(stream_synthesis(generator, [mel[0]], stagewise=False))
    else:
        assert 2 <= receptive_field(generator) < 40


def test_save_and_load_round_trip(generator, tmp_path):
    save_pretrained(generator, tmp_path)
    loaded = from_pretrained(tmp_path)
    mel = torch.randn(1, 100, 12) - 5
    torch.testing.assert_close(loaded(mel), generator(mel), atol=0, rtol=0)


def test_chunked_and_streamed_equal_whole(generator):
    g = copy.deepcopy(generator).double()
    mel = torch.randn(1, 100, 45, dtype=torch.float64) - 5
    whole = g(mel)
    torch.testing.assert_close(synthesize_chunked(g, mel, 7), whole, atol=1e-10, rtol=0)
    streamed = torch.cat(list(stream_synthesis(g, mel[0].split([3, 1, 20, 21], dim=-1))), dim=-1)
    torch.testing.assert_close(streamed, whole[0], atol=1e-10, rtol=0)
    short = mel[0, :, :30]
    batch = synthesize_batch(g, [mel[0], short])
    torch.testing.assert_close(batch[1], g(short[None])[0], atol=1e-10, rtol=0)


def _steady_partial(phase: str, frequency: float, seconds: float = 2.0) -> float:
    """The strongest frequency (Hz) of what a 24 kHz iSTFT head makes of a steady spectrum:
    a parabola in log-magnitude peaking at ``frequency``, phase (offset) 0."""
    sr, n_fft, hop = 24000, 1024, 256
    head = ISTFTHead(1, n_fft, hop, vocoder=phase == "vocoder")
    centre = frequency * n_fft / sr
    bins = torch.arange(n_fft // 2 + 1, dtype=torch.float32)
    bias = torch.zeros(head.proj.out_channels)
    bias[: n_fft // 2 + 1] = (3.0 - (bins - centre) ** 2).clamp(min=-20.0)
    with torch.no_grad():
        head.proj.weight.zero_()
        head.proj.bias.copy_(bias)
        wav = head(torch.zeros(1, 1, int(seconds * sr / hop)))[0, 0]  # (T,)
    spectrum = torch.fft.rfft(wav * torch.hann_window(wav.numel())).abs()
    return float(spectrum.argmax()) * sr / wav.numel()


def test_vocoder_phase_keeps_a_steady_partial_off_the_hop_grid():
    """A frame-wise constant phase repeats every hop, so a steady partial lands on a
    multiple of sr / hop = 93.75 Hz (the hop buzz); a phase vocoder keeps it at its own frequency."""
    for frequency in (250.0, 1234.5):
        assert _steady_partial("vocoder", frequency) == pytest.approx(frequency, abs=1.0)
    assert _steady_partial("frame", 250.0) % 93.75 == pytest.approx(0.0, abs=1.0)


def test_vocoder_peaks_climb_to_the_local_maximum():
    log_magnitude = torch.tensor([0.0, 1.0, 3.0, 2.0, 0.0, -1.0, 0.5, 0.5, 0.0])[None, None]  # (B, F, K)
    peak, frequency = PhaseVocoder.peaks(log_magnitude)
    assert peak.flatten().tolist() == [2, 2, 2, 2, 2, 6, 6, 7, 7]  # a plateau: each of its bins is a peak
    assert float(frequency[0, 0, 2]) == pytest.approx(2 + 0.5 * (1 - 2) / (1 - 6 + 2))


def test_mel_prior_alone_gives_the_pseudo_inverse_magnitude():
    """With the head's projection at zero the magnitude is the mel's pseudo-inverse: the
    output's mel then follows the input's (the phase, all zero, smears it: loosely)."""
    torch.manual_seed(0)
    g = Generator(preset("istft_24khz_100band").replace(upsample_initial_channel=32, convnext_layers=1)).eval()
    with torch.no_grad():
        g.head.proj.weight.zero_()
        g.head.proj.bias.zero_()
        wav = torch.randn(1, 1, 24000) * torch.linspace(0.005, 0.15, 24000)  # noise rising 30 dB
        mel = g.mel(wav)
        out_mel = g.mel(g(mel))
    loudness_in, loudness_out = mel.exp().mean(1).log(), out_mel.exp().mean(1).log()  # (1, F)
    assert torch.corrcoef(torch.cat([loudness_in, loudness_out]))[0, 1] > 0.95


def test_half_precision_output_is_finite():
    g = _small("istft_24khz_100band").to(torch.bfloat16)
    out = g(torch.randn(1, 100, 8, dtype=torch.bfloat16) - 5)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_phase_loss_sees_phase_not_magnitude():
    torch.manual_seed(0)
    t = torch.arange(24000) / 24000
    wav = (0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.01 * torch.randn(24000))[None, None]
    assert float(phase_loss(wav, wav)) == 0.0
    spec = torch.stft(wav[0], 1024, 256, window=torch.hann_window(1024), return_complex=True)
    random_phase = torch.polar(spec.abs(), torch.rand(spec.shape) * 2 * torch.pi)
    scrambled = torch.istft(random_phase, 1024, 256, window=torch.hann_window(1024), length=24000)[None]
    delayed = torch.roll(wav, 3, dims=-1)
    assert float(phase_loss(wav, scrambled)) > 3 * float(phase_loss(wav, delayed)) > 0
    # The instantaneous frequency alone does not see a constant phase shift of a steady tone.
    shifted = wav + 0.3 * (torch.sin(2 * torch.pi * 220 * t + 1.0) - torch.sin(2 * torch.pi * 220 * t))
    assert float(phase_loss(wav, shifted, absolute=False)) < 0.1 * float(phase_loss(wav, shifted))
    assert float(phase_loss(wav, scrambled, absolute=False)) > 3 * float(phase_loss(wav, shifted, absolute=False))


def test_griffin_lim_rounds_name_an_input_too_short_for_their_stft():
    g = _small("istft_pv_24khz_100band")
    with pytest.raises(ValueError, match="reflect padding needs more than 384 samples, got 256"):
        g(torch.randn(1, 100, 1) - 5)
    assert g(torch.randn(1, 100, 2) - 5).shape == (1, 1, 512)


def test_griffin_lim_rounds_are_fixed_once_the_head_is_built():
    """Chunked and streamed synthesis measure their context with the rounds, so changing them
    on a built model would leave that measurement stale: refused, with the way to do it."""
    g = _small("istft_pv_24khz_100band")
    with pytest.raises(AttributeError, match=r"build Generator\(generator.config.replace\(griffin_lim_iterations=N\)\)"):
        g.head.griffin_lim_iterations = 8
    assert g.head.griffin_lim_iterations == 4


def test_griffin_lim_momentum_is_a_config_setting():
    g = _small("istft_pv_24khz_100band")
    plain = Generator(g.config.replace(griffin_lim_momentum=0.0)).prepare_for_inference()
    plain.load_state_dict(g.state_dict())
    mel = torch.randn(1, 100, 12) - 5
    with torch.no_grad():
        head_input = g.head.vocoder(g.head.spectrum(g._frame_features(mel)))
        log_magnitude, phase = head_input.chunk(2, dim=1)
        magnitude = log_magnitude.exp()
        expected = fast_griffin_lim(magnitude, magnitude * phase.cos(), magnitude * phase.sin(), g.head.stft, g.head.istft, 4, 0.0)
        torch.testing.assert_close(plain(mel), expected.clamp(-1, 1))
        assert not torch.allclose(g(mel), plain(mel))
    with pytest.raises(ValueError, match=r"griffin_lim_momentum must be in \[0, 1\], got 1.5"):
        g.config.replace(griffin_lim_momentum=1.5)
