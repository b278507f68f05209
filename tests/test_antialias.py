import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from _reference import needs_bigvgan, reference
from torch import nn

from snakeaudio import AntiAliasedActivation1d, Snake, SnakeBeta
from snakeaudio.dsp import (
    DownSample1d,
    LowPassFilter1d,
    UpSample1d,
    frequency_response,
    kaiser_sinc_filter,
    measure_aliasing,
    stopband_attenuation_db,
)
from snakeaudio.kernels.cpu import cpu_library

bigvgan_act = reference("alias_free_activation.torch.act")
bigvgan_filter = reference("alias_free_activation.torch.filter")
bigvgan_resample = reference("alias_free_activation.torch.resample")
bigvgan_activations = reference("activations")

needs_kernel = pytest.mark.skipif(cpu_library() is None, reason="no C++ compiler: only the reference path exists")


# --- filter design -----------------------------------------------------------------


@needs_bigvgan
@pytest.mark.parametrize(
    "cutoff,half_width,kernel_size", [(0.25, 0.3, 12), (0.25, 0.3, 11), (0.5 / 3, 0.2, 18), (0.1, 0.05, 64), (0.4, 0.1, 7)]
)
def test_kaiser_sinc_matches_bigvgan(cutoff, half_width, kernel_size):
    ours = kaiser_sinc_filter(cutoff, half_width, kernel_size)
    ref = bigvgan_filter.kaiser_sinc_filter1d(cutoff, half_width, kernel_size).view(-1)
    assert ours.dtype == torch.float64 and ours.shape == (kernel_size,)
    torch.testing.assert_close(ours.float(), ref, atol=1e-7, rtol=1e-6)


@needs_bigvgan
def test_kaiser_sinc_cutoff_zero_blocks_everything():
    with pytest.raises(UnboundLocalError):  # the anchor's bug this design function fixes
        bigvgan_filter.kaiser_sinc_filter1d(0.0, 0.3, 12)
    assert torch.equal(kaiser_sinc_filter(0.0, 0.3, 12), torch.zeros(12, dtype=torch.float64))


def test_kaiser_sinc_rejects_bad_design():
    with pytest.raises(ValueError, match="cutoff must be in"):
        kaiser_sinc_filter(0.6, 0.1, 12)
    with pytest.raises(ValueError, match="half_width must be > 0"):
        kaiser_sinc_filter(0.25, 0.0, 12)
    with pytest.raises(ValueError, match="kernel_size must be >= 1"):
        kaiser_sinc_filter(0.25, 0.1, 0)


def tone(freq, length=4096, channels=1):
    n = torch.arange(length, dtype=torch.float64)
    return torch.sin(2 * math.pi * freq * n).float().view(1, 1, -1).expand(1, channels, -1).contiguous()


def steady_gain_db(x, y, margin=256):
    rms = lambda s: s[..., margin:-margin].double().square().mean().sqrt()  # noqa: E731
    return 20 * math.log10(rms(y) / rms(x))


def test_lowpass_passes_low_tone_with_unit_gain_and_attenuates_high_tone_as_designed():
    lowpass = LowPassFilter1d(cutoff=0.2, half_width=0.05, kernel_size=64)
    taps = lowpass.filter.view(-1)
    passed = steady_gain_db(tone(0.02), lowpass(tone(0.02)))
    assert abs(passed) < 0.01
    freqs, response = frequency_response(taps)
    for f in (0.3, 0.37, 0.45):
        designed = response[torch.argmin((freqs - f).abs())].item()
        measured = steady_gain_db(tone(f), lowpass(tone(f)))
        assert measured == pytest.approx(designed, abs=0.5)
        assert measured < -50  # a Kaiser design with this width and length reaches > 50 dB
    assert stopband_attenuation_db(taps, 0.25 + 0.02) > 50


def test_bigvgan_default_filters_pass_band_and_stop_band():
    up, down = UpSample1d(2), DownSample1d(2)
    assert up.filter.shape == (1, 1, 12) and down.lowpass.filter.shape == (1, 1, 12)
    x = tone(0.02)
    assert abs(steady_gain_db(x, up(x))) < 0.05
    assert abs(steady_gain_db(x, down(x))) < 0.05
    # At the 2x rate, what lies above 0.4 cycles/sample is attenuated by more than 50 dB.
    assert stopband_attenuation_db(down.lowpass.filter, 0.4) > 50


def test_filters_are_non_persistent_buffers():
    act = AntiAliasedActivation1d(Snake(4))
    assert set(act.state_dict()) == {"act.alpha"}
    assert {name for name, _ in act.named_buffers()} >= {"upsample.filter", "downsample.lowpass.filter"}


@needs_bigvgan
@pytest.mark.parametrize("ratio,kernel_size", [(2, 12), (2, 11), (3, 18), (3, 13)])
@pytest.mark.parametrize("length", [1, 5, 64])
def test_resamplers_match_bigvgan(ratio, kernel_size, length):
    x = torch.randn(2, 3, length)
    torch.testing.assert_close(
        UpSample1d(ratio, kernel_size)(x), bigvgan_resample.UpSample1d(ratio, kernel_size)(x), atol=1e-6, rtol=1e-6
    )
    torch.testing.assert_close(
        DownSample1d(ratio, kernel_size)(x), bigvgan_resample.DownSample1d(ratio, kernel_size)(x), atol=1e-6, rtol=1e-6
    )


# --- parity with BigVGAN's Activation1d ----------------------------------------------


def twin(kind, channels, log_scale, **resample):
    """Our block and BigVGAN's, with the same distinct, non-trivial parameters."""
    ours_act = Snake(channels, log_scale=log_scale) if kind == "snake" else SnakeBeta(channels, log_scale=log_scale)
    with torch.no_grad():
        for p in ours_act.parameters():
            p.copy_(torch.linspace(-0.7, 0.9, channels) if log_scale else torch.linspace(0.3, 2.4, channels))
    ref_cls = bigvgan_activations.Snake if kind == "snake" else bigvgan_activations.SnakeBeta
    ref_act = ref_cls(channels, alpha_logscale=log_scale)
    ref_act.load_state_dict(ours_act.state_dict())
    return AntiAliasedActivation1d(ours_act, **resample), bigvgan_act.Activation1d(ref_act, **resample)


def compare_with_grads(ours, ref, x, path):
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    ya = ours(xa) if path == "fused" else ours.reference(xa)
    yb = ref(xb)
    assert ya.shape == yb.shape
    torch.testing.assert_close(ya, yb, atol=1e-5, rtol=0)
    grad = torch.randn_like(ya)
    ya.backward(grad)
    yb.backward(grad)
    torch.testing.assert_close(xa.grad, xb.grad, atol=2e-5, rtol=1e-5)
    for (name, pa), pb in zip(ours.act.named_parameters(), ref.act.parameters()):
        scale = pb.grad.abs().max()
        torch.testing.assert_close(pa.grad / scale, pb.grad / scale, atol=2e-5, rtol=0, msg=name)


@needs_bigvgan
@pytest.mark.parametrize("path", [pytest.param("fused", marks=needs_kernel), "reference"])
@pytest.mark.parametrize("length", [1, 2, 7, 1000, 4097])
@pytest.mark.parametrize("log_scale", [False, True])
@pytest.mark.parametrize("kind", ["snake", "snakebeta"])
def test_parity_with_bigvgan(kind, log_scale, length, path):
    torch.manual_seed(length)
    ours, ref = twin(kind, 5, log_scale)
    compare_with_grads(ours, ref, torch.randn(3, 5, length) * 2, path)


@needs_bigvgan
@needs_kernel
@pytest.mark.parametrize("ratio,kernel_size", [(1, 6), (3, 18), (2, 13)])
def test_parity_other_ratios_and_kernel_sizes(ratio, kernel_size):
    resample = dict(up_ratio=ratio, down_ratio=ratio, up_kernel_size=kernel_size, down_kernel_size=kernel_size)
    ours, ref = twin("snakebeta", 3, True, **resample)
    for length in (1, 3, 257):
        compare_with_grads(ours, ref, torch.randn(2, 3, length) * 2, "fused")


@needs_bigvgan
def test_unequal_ratios_use_the_reference_path():
    resample = dict(up_ratio=3, down_ratio=2, up_kernel_size=18, down_kernel_size=12)
    ours, ref = twin("snake", 4, False, **resample)
    assert not ours.fusable
    compare_with_grads(ours, ref, torch.randn(2, 4, 50), "fused")


@needs_bigvgan
@pytest.mark.parametrize("activation", [nn.Tanh(), nn.LeakyReLU(0.1)])
def test_any_activation_wraps_like_bigvgan(activation):
    ours = AntiAliasedActivation1d(activation)
    ref = bigvgan_act.Activation1d(activation)
    x = torch.randn(2, 3, 77)
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=1e-6)


def test_reference_gradcheck_float64():
    act = AntiAliasedActivation1d(SnakeBeta(2, alpha=1.3, beta=0.7)).double()
    x = torch.randn(1, 2, 9, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(act, (x,))
    assert torch.autograd.gradcheck(lambda a: AntiAliasedActivation1d(Snake(alpha=1.0)).double().reference(a), (x,))


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_computed_in_float32(dtype):
    act = AntiAliasedActivation1d(SnakeBeta(4, alpha=2.0, beta=0.5))
    x = (torch.randn(2, 4, 300) * 2).to(dtype)
    y = act(x)
    assert y.dtype == dtype
    torch.testing.assert_close(y, act.reference(x.float()).to(dtype), atol=0, rtol=0.01)


@needs_kernel
def test_scalar_alpha_snake_is_fused():
    act = AntiAliasedActivation1d(Snake(alpha=1.7))
    x = torch.randn(2, 6, 100, requires_grad=True)
    y = act(x)
    y_ref = act.reference(x)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=0)
    (ga,) = torch.autograd.grad(y.sum(), act.act.alpha)
    (gr,) = torch.autograd.grad(y_ref.sum(), act.act.alpha)
    torch.testing.assert_close(ga, gr, rtol=1e-4, atol=1e-4)


@needs_kernel
@pytest.mark.parametrize("activation", [lambda: SnakeBeta(6, log_scale=True), lambda: Snake(alpha=1.3)])
def test_inference_follows_parameter_updates(activation):
    """Without autograd the fused path reuses its prepared parameters until they change."""
    act = AntiAliasedActivation1d(activation())
    x = torch.randn(2, 6, 80)
    for mode in (torch.no_grad, torch.inference_mode):
        with mode():
            torch.testing.assert_close(act(x), act.reference(x), atol=1e-5, rtol=0)
            act.act.alpha.add_(0.3)  # in place, as an optimiser step does
            torch.testing.assert_close(act(x), act.reference(x), atol=1e-5, rtol=0)
    act.act.alpha = nn.Parameter(act.act.alpha.detach() + 0.25)  # a new tensor
    with torch.no_grad():
        torch.testing.assert_close(act(x), act.reference(x), atol=1e-5, rtol=0)
    y = act(x.requires_grad_(True))
    assert y.grad_fn is not None  # with autograd, the differentiable path


@pytest.mark.parametrize("alpha", [0.0, -0.5, -1e-30])
def test_nonpositive_alpha_never_nan(alpha):
    act = AntiAliasedActivation1d(SnakeBeta(3, alpha=alpha))
    x = torch.randn(2, 3, 64, requires_grad=True)
    y = act(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(x.grad).all()
    assert torch.isfinite(act.act.alpha.grad).all() and torch.isfinite(act.act.beta.grad).all()
    logged = AntiAliasedActivation1d(Snake(3, log_scale=True))
    with torch.no_grad():
        logged.act.alpha.fill_(-200.0)  # exp underflows to α = 0
    y = logged(x)
    y.sum().backward()
    assert torch.isfinite(y).all() and torch.isfinite(logged.act.alpha.grad).all()


@needs_kernel
def test_fused_saves_only_input_and_parameters():
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    act = AntiAliasedActivation1d(SnakeBeta(8))
    x = torch.randn(2, 8, 500, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        act(x)
    assert sorted(saved) == [8, 8, x.numel()]


def test_bad_input_errors():
    act = AntiAliasedActivation1d(Snake(4))
    with pytest.raises(ValueError, match=r"expects \(B, C, T\), got shape \(4, 10\)"):
        act(torch.randn(4, 10))
    with pytest.raises(ValueError, match="built for 4 channels, got input with 3"):
        act(torch.randn(2, 3, 10))
    with pytest.raises(ValueError, match="floating-point"):
        act(torch.ones(2, 4, 10, dtype=torch.int64))
    with pytest.raises(ValueError, match="at least one sample"):
        act(torch.randn(2, 4, 0))
    with pytest.raises(ValueError, match="upsampling ratio must be an integer >= 1"):
        AntiAliasedActivation1d(Snake(4), up_ratio=0)
    with pytest.raises(ValueError, match="downsampling ratio must be an integer >= 1"):
        AntiAliasedActivation1d(Snake(4), down_ratio=-2)
    with pytest.raises(ValueError, match=r"upsampling kernel_size must be >= the ratio \(4\), got 3"):
        AntiAliasedActivation1d(Snake(4), up_ratio=4, down_ratio=4, up_kernel_size=3)
    with pytest.raises(ValueError, match=r"downsampling kernel_size must be >= the ratio \(2\), got 1"):
        AntiAliasedActivation1d(Snake(4), down_kernel_size=1)


# --- compile, export -----------------------------------------------------------------


def test_torch_compile_without_graph_breaks():
    act = AntiAliasedActivation1d(SnakeBeta(4, log_scale=True))
    compiled = torch.compile(act, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 4, 33, requires_grad=True)
    y = compiled(x)
    torch.testing.assert_close(y, act.reference(x), atol=1e-5, rtol=0)
    y.sum().backward()
    assert torch.isfinite(x.grad).all() and act.act.alpha.grad is not None


def test_onnx_export_matches(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    act = AntiAliasedActivation1d(SnakeBeta(4, log_scale=True)).eval()
    dims = {0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("time", min=2)}
    program = torch.onnx.export(act, (torch.randn(2, 4, 50),), dynamo=True, dynamic_shapes=(dims,))
    program.save(str(tmp_path / "aa.onnx"))
    session = ort.InferenceSession(str(tmp_path / "aa.onnx"))
    for shape in [(1, 4, 7), (3, 4, 333)]:
        x = torch.randn(shape)
        (y,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
        torch.testing.assert_close(torch.from_numpy(y), act(x), atol=1e-5, rtol=0)


# --- aliasing ------------------------------------------------------------------------


def test_anti_aliased_snake_aliases_far_less_than_plain_snake():
    plain = Snake(1, alpha=1.0)
    anti = AntiAliasedActivation1d(Snake(1, alpha=1.0))
    kwargs = dict(low=0.05, high=0.25, n_tones=12, amplitude=3.0)
    plain_report, anti_report = measure_aliasing(plain, **kwargs), measure_aliasing(anti, **kwargs)
    # Both distort alike (the harmonics below Nyquist are the point of Snake) ...
    assert abs(anti_report.harmonic_db[0] - plain_report.harmonic_db[0]) < 1.0
    # ... but the anti-aliased block puts at least 10x less energy on folded frequencies.
    assert anti_report.mean_aliased_db < plain_report.mean_aliased_db - 10
    assert (anti_report.aliased_db <= plain_report.aliased_db + 1).all()


def test_measure_aliasing_sees_no_aliasing_in_a_linear_block():
    report = measure_aliasing(lambda x: 0.5 * x, n_tones=5)
    assert (report.aliased_db < -140).all() and (report.harmonic_db < -140).all()  # float32 rounding floor


# --- the compiled kernel's life cycle --------------------------------------------------


def run_python(code, **env):
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300,
        env={**os.environ, **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


def test_without_compiler_falls_back_with_one_warning(tmp_path):
    result = run_python(
        """
        import warnings, torch
        from snakeaudio import AntiAliasedActivation1d, Snake
        act = AntiAliasedActivation1d(Snake(2))
        x = torch.randn(1, 2, 20)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y1, y2 = act(x), act(x)
        assert torch.allclose(y1, act.reference(x)) and torch.equal(y1, y2)
        messages = [str(w.message) for w in caught]
        assert len(messages) == 1 and "could not be built" in messages[0], messages
        """,
        CXX=str(tmp_path / "no-such-compiler"),
        SNAKEAUDIO_CACHE=str(tmp_path / "cache"),
    )
    assert result.returncode == 0


@needs_kernel
def test_compiled_kernel_is_cached(tmp_path):
    code = """
        from snakeaudio.kernels.cpu import cpu_library
        print(cpu_library()._name)
    """
    first = run_python(code, SNAKEAUDIO_CACHE=str(tmp_path)).stdout.strip()
    mtime = os.path.getmtime(first)
    second = run_python(code, SNAKEAUDIO_CACHE=str(tmp_path)).stdout.strip()
    assert first == second and os.path.getmtime(second) == mtime
    assert len(list((tmp_path / "kernels").iterdir())) == 1  # no temporary leftovers
