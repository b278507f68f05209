import math

import pytest
import torch

import snakeaudio.train as train
from snakeaudio.dsp import MelConfig, MelSpectrogram, mel_spectrogram
from snakeaudio.train import (
    MultiScaleMelLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    mel_l1_loss,
    multi_resolution_stft_distance,
)

SR = 24000


def noise(*shape, seed=0, scale=0.1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=dtype)


def random_logits(seed, dtype=torch.float32):
    """Logits of three discriminators with different shapes."""
    return [noise(2, n, seed=seed + i, scale=1.0, dtype=dtype) for i, n in enumerate((7, 12, 5))]


def random_fmaps(seed, dtype=torch.float32):
    shapes = [[(2, 4, 9, 2), (2, 8, 3, 2)], [(2, 3, 5, 7)], [(2, 2, 4, 4), (2, 1, 4, 4), (2, 1, 2, 2)]]
    return [[noise(*s, seed=seed + 10 * d + i, scale=1.0, dtype=dtype) for i, s in enumerate(ds)] for d, ds in enumerate(shapes)]


def test_public_api():
    assert set(train.__all__) >= {
        "MultiScaleMelLoss", "mel_l1_loss", "feature_matching_loss", "discriminator_loss",
        "generator_adversarial_loss", "multi_resolution_stft_distance",
    }  # fmt: skip
    for name in train.__all__:
        assert hasattr(train, name)


# --- adversarial losses: hand values --------------------------------------------------------


def test_lsgan_hand_values():
    ones, zeros = [torch.ones(2, 5), torch.ones(3)], [torch.zeros(2, 5), torch.zeros(3)]
    total, terms = discriminator_loss(ones, zeros)
    assert float(total) == 0.0 and [float(t) for t in terms] == [0.0, 0.0]
    total, terms = discriminator_loss(zeros, ones)  # (1 - 0)² + 1² per discriminator
    assert float(total) == 4.0 and [float(t) for t in terms] == [2.0, 2.0]
    total, terms = discriminator_loss([torch.tensor([0.5, 1.5])], [torch.tensor([-1.0, 3.0])])
    assert float(total) == pytest.approx((0.25 + 0.25) / 2 + (1 + 9) / 2)
    total, terms = generator_adversarial_loss(ones)
    assert float(total) == 0.0
    total, terms = generator_adversarial_loss([torch.zeros(4), torch.full((2, 2), 3.0)])
    assert [float(t) for t in terms] == [1.0, 4.0] and float(total) == 5.0


def test_hinge_hand_values():
    total, _ = discriminator_loss([torch.ones(4)], [-torch.ones(4)], kind="hinge")
    assert float(total) == 0.0  # both margins met
    total, terms = discriminator_loss([torch.tensor([0.0, 2.0])], [torch.tensor([0.0, -3.0])], kind="hinge")
    assert float(total) == pytest.approx(0.5 + 0.5)
    total, terms = generator_adversarial_loss([torch.tensor([1.0, 3.0]), torch.tensor([-2.0])], kind="hinge")
    assert [float(t) for t in terms] == [-2.0, 2.0] and float(total) == 0.0


def test_feature_matching_hand_value():
    real = [[torch.zeros(2, 3), torch.ones(4)]]
    fake = [[torch.full((2, 3), 0.5), torch.tensor([1.0, 2.0, 3.0, 1.0])]]
    assert float(feature_matching_loss(real, fake)) == pytest.approx(2 * (0.5 + 0.75))


def test_feature_matching_detaches_real_maps():
    real = [[t.requires_grad_() for t in ds] for ds in random_fmaps(0)]
    fake = [[t.requires_grad_() for t in ds] for ds in random_fmaps(100)]
    feature_matching_loss(real, fake).backward()
    assert all(t.grad is None for ds in real for t in ds)
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for ds in fake for t in ds)


def test_adversarial_bad_inputs():
    with pytest.raises(ValueError, match="'lsgan', 'hinge'.*'wgan'"):
        discriminator_loss([torch.ones(1)], [torch.ones(1)], kind="wgan")
    with pytest.raises(ValueError, match="'lsgan', 'hinge'"):
        generator_adversarial_loss([torch.ones(1)], kind="LSGAN")
    with pytest.raises(ValueError, match="as many real as fake logits.*2 and 1"):
        discriminator_loss([torch.ones(1)] * 2, [torch.ones(1)])
    with pytest.raises(ValueError, match="non-empty list"):
        generator_adversarial_loss([])
    with pytest.raises(ValueError, match="non-empty list"):
        generator_adversarial_loss(torch.ones(3))
    with pytest.raises(ValueError, match="one non-empty list of feature maps per discriminator.*3 and 2"):
        feature_matching_loss(random_fmaps(0), random_fmaps(0)[:2])
    with pytest.raises(ValueError, match="discriminator 1: expected two equally long lists"):
        feature_matching_loss(random_fmaps(0), [random_fmaps(0)[0], [], random_fmaps(0)[2]])
    with pytest.raises(ValueError, match=r"discriminator 0, layer 1: .*\(2, 8, 3, 2\) vs \(2, 8, 3, 3\)"):
        feature_matching_loss(random_fmaps(0), [[torch.zeros(2, 4, 9, 2), torch.zeros(2, 8, 3, 3)], *random_fmaps(0)[1:]])


# --- adversarial losses: against bigvgan and finite differences ---------------------------------


def test_adversarial_losses_match_bigvgan():
    bigvgan_loss = pytest.importorskip("bigvgan.loss")
    real, fake = random_logits(0), random_logits(50)
    total, terms = discriminator_loss(real, fake)
    their_total, r_losses, g_losses = bigvgan_loss.discriminator_loss(real, fake)
    torch.testing.assert_close(total, their_total)
    torch.testing.assert_close(torch.stack(terms), torch.tensor(r_losses) + torch.tensor(g_losses))
    total, terms = generator_adversarial_loss(fake)
    their_total, their_terms = bigvgan_loss.generator_loss(fake)
    torch.testing.assert_close(total, their_total)
    torch.testing.assert_close(torch.stack(terms), torch.stack(their_terms))
    real_maps, fake_maps = random_fmaps(0), random_fmaps(100)
    torch.testing.assert_close(feature_matching_loss(real_maps, fake_maps), bigvgan_loss.feature_loss(real_maps, fake_maps))


@pytest.mark.parametrize("kind", ["lsgan", "hinge"])
def test_adversarial_gradcheck(kind):
    real, fake = random_logits(0, torch.float64), random_logits(50, torch.float64)
    inputs = tuple(t.requires_grad_() for t in real + fake)
    assert torch.autograd.gradcheck(lambda *x: discriminator_loss(list(x[:3]), list(x[3:]), kind)[0], inputs)
    assert torch.autograd.gradcheck(lambda *x: generator_adversarial_loss(list(x), kind)[0], inputs[3:])


def test_feature_matching_gradcheck():
    real = random_fmaps(0, torch.float64)
    fake = [[t.requires_grad_() for t in ds] for ds in random_fmaps(100, torch.float64)]
    flat = [t for ds in fake for t in ds]
    lengths = [len(ds) for ds in fake]

    def loss(*maps):
        it = iter(maps)
        return feature_matching_loss(real, [[next(it) for _ in range(n)] for n in lengths])

    assert torch.autograd.gradcheck(loss, tuple(flat))


# --- multi-scale mel loss ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def mel_loss():
    return MultiScaleMelLoss(SR)


def test_multiscale_mel_zero_for_identical_and_grows(mel_loss):
    wav = noise(2, 1, 8192)
    assert float(mel_loss(wav, wav.clone())) == 0.0
    slightly = mel_loss(wav, wav + noise(2, 1, 8192, seed=1, scale=0.005))
    more = mel_loss(wav, wav + noise(2, 1, 8192, seed=1, scale=0.05))
    assert 0 < float(slightly) < float(more)


def test_multiscale_mel_of_doubled_signal_is_log10_2_per_scale():
    wav = noise(2, 1, 8192, scale=0.5, dtype=torch.float64)
    # log10(2·M) − log10(M) = log10 2 in every bin (none is small enough for the ε clamp)
    assert float(MultiScaleMelLoss(SR).double()(wav, 2 * wav)) == pytest.approx(7 * math.log10(2), rel=1e-9)
    wav = wav.float()
    loud = MultiScaleMelLoss(SR, n_mels=(10, 40), window_lengths=(64, 256), power=2.0, mag_weight=0.5)
    mel = loud.scales[1](wav.view(2, -1))
    expected_mag = 0.5 * sum(float(s(wav.view(2, -1)).mean()) for s in loud.scales)  # mean|2M − M| = mean(M)
    assert float(loud(wav, 2 * wav)) == pytest.approx(2 * 2 * math.log10(2) + expected_mag, rel=1e-5)
    assert mel.shape == (2, 40, 8192 // 64 + 1)


@pytest.mark.parametrize(
    "sample_rate,kwargs", [(24000, {}), (44100, {"power": 2.0, "clamp_eps": 1e-4}), (22050, {"fmin": 50.0, "fmax": 8000.0})]
)
def test_multiscale_mel_matches_bigvgan(sample_rate, kwargs):
    bigvgan_loss = pytest.importorskip("bigvgan.loss")
    ours = MultiScaleMelLoss(sample_rate, **kwargs)
    theirs_kwargs = {"pow": kwargs.get("power", 1.0), "clamp_eps": kwargs.get("clamp_eps", 1e-5)}
    if "fmin" in kwargs:
        theirs_kwargs.update(mel_fmin=[kwargs["fmin"]] * 7, mel_fmax=[kwargs["fmax"]] * 7)
    theirs = bigvgan_loss.MultiScaleMelSpectrogramLoss(sampling_rate=sample_rate, **theirs_kwargs)
    real, fake = noise(2, 1, 8192), noise(2, 1, 8192, seed=1) + 0.5 * noise(2, 1, 8192)
    torch.testing.assert_close(ours(real, fake), theirs(real, fake), rtol=1e-5, atol=1e-6)


def test_multiscale_mel_gradcheck():
    loss = MultiScaleMelLoss(8000, n_mels=(4, 8), window_lengths=(16, 32), mag_weight=0.3, power=1.5)
    real = noise(1, 1, 48, dtype=torch.float64)
    fake = noise(1, 1, 48, seed=1, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: loss(real, x), (fake,), fast_mode=True)


def test_multiscale_mel_buffers_follow_the_module(mel_loss):
    assert not mel_loss.state_dict()  # windows and mel bases are non-persistent buffers
    assert len(list(mel_loss.buffers())) == 14
    assert mel_loss.scales[6].basis.shape == (320, 1025) and mel_loss.scales[0].window.shape == (32,)
    wav = noise(1, 1, 4096, dtype=torch.float64)
    assert mel_loss(wav, 1.5 * wav).dtype == torch.float64


def test_multiscale_mel_bad_inputs(mel_loss):
    with pytest.raises(ValueError, match="same shape.*\\(2, 1, 4096\\) and \\(2, 1, 4095\\)"):
        mel_loss(torch.zeros(2, 1, 4096), torch.zeros(2, 1, 4095))
    with pytest.raises(ValueError, match="at least 1025 samples.*T=1000"):
        mel_loss(torch.zeros(1, 1000), torch.zeros(1, 1000))
    with pytest.raises(ValueError, match="floating-point"):
        mel_loss(torch.zeros(1, 4096, dtype=torch.int32), torch.zeros(1, 4096, dtype=torch.int32))
    with pytest.raises(ValueError, match="equal length"):
        MultiScaleMelLoss(SR, n_mels=(5, 10), window_lengths=(32,))
    with pytest.raises(ValueError, match="one value or one per scale"):
        MultiScaleMelLoss(SR, n_mels=(5, 10), window_lengths=(32, 64), fmin=(0.0,))
    with pytest.raises(ValueError, match="fmin < fmax"):
        MultiScaleMelLoss(SR, n_mels=(5,), window_lengths=(32,), fmax=20000.0)


# --- mel L1 loss ------------------------------------------------------------------------------


def test_mel_l1_loss():
    config = MelConfig(sample_rate=SR, n_fft=1024, num_mels=100, hop_length=256, win_length=1024)
    mel = MelSpectrogram(config)
    real, fake = noise(2, 1, 4096), noise(2, 1, 4096, seed=1)
    expected = (mel_spectrogram(fake, config) - mel_spectrogram(real, config)).abs().mean()
    torch.testing.assert_close(mel_l1_loss(real, fake, mel), expected)
    assert float(mel_l1_loss(real, real, mel)) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        mel_l1_loss(real, fake[..., :-1], mel)


# --- multi-resolution STFT distance -------------------------------------------------------------


def test_stft_distance_zero_and_finite_gradient_for_identical_inputs():
    a = noise(2, 1, 4096)
    b = a.clone().requires_grad_()
    distance = multi_resolution_stft_distance(a, b)
    distance.backward()
    assert distance.item() == 0.0 and torch.isfinite(b.grad).all()


def test_stft_distance_of_doubled_signal():
    a = noise(2, 1, 4096)
    # spectral convergence ‖|S| − 2|S|‖ / ‖|S|‖ = 1, log-magnitude L1 = log 2
    assert float(multi_resolution_stft_distance(a, 2 * a)) == pytest.approx(1 + math.log(2), rel=1e-5)


def test_stft_distance_grows_and_matches_a_direct_computation():
    a = noise(2, 1, 4096)
    near, far = a + noise(2, 1, 4096, seed=1, scale=0.01), a + noise(2, 1, 4096, seed=1, scale=0.1)
    assert 0 < float(multi_resolution_stft_distance(a, near)) < float(multi_resolution_stft_distance(a, far))
    n_fft, hop, win = 256, 64, 200
    window = torch.hann_window(win)
    mags = [torch.stft(x.view(2, -1), n_fft, hop, win, window, return_complex=True).abs().clamp(min=1e-7**0.5) for x in (a, far)]
    convergence = torch.stack([torch.norm(mags[0][i] - mags[1][i]) / torch.norm(mags[0][i]) for i in range(2)]).mean()
    expected = convergence + (mags[0].log() - mags[1].log()).abs().mean()
    torch.testing.assert_close(multi_resolution_stft_distance(a, far, resolutions=((n_fft, hop, win),)), expected)


def test_stft_distance_gradcheck():
    a = noise(1, 64, dtype=torch.float64)
    b = noise(1, 64, seed=1, dtype=torch.float64).requires_grad_()
    resolutions = ((16, 4, 16), (32, 8, 24))
    assert torch.autograd.gradcheck(lambda x: multi_resolution_stft_distance(a, x, resolutions), (b,), fast_mode=True)


def test_stft_distance_bad_inputs():
    with pytest.raises(ValueError, match="at least 1025 samples"):
        multi_resolution_stft_distance(torch.zeros(1, 1000), torch.zeros(1, 1000))
    with pytest.raises(ValueError, match="same shape"):
        multi_resolution_stft_distance(torch.zeros(1, 4096), torch.zeros(2, 4096))
    with pytest.raises(ValueError, match="win_length <= n_fft.*\\(512, 128, 1024\\)"):
        multi_resolution_stft_distance(torch.zeros(1, 4096), torch.zeros(1, 4096), ((512, 128, 1024),))
