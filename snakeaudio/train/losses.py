"""Losses of GAN vocoder training (HiFi-GAN / BigVGAN) and a spectral distance for validation.

Reconstruction
    :class:`MultiScaleMelLoss` (BigVGAN-v2, after descript-audio-codec) and :func:`mel_l1_loss`
    (HiFi-GAN / BigVGAN-v1, on the vocoder's own log-mel features).
Adversarial
    :func:`discriminator_loss`, :func:`generator_adversarial_loss` (least-squares or hinge) and
    :func:`feature_matching_loss`, over the lists that the multi-discriminators of
    :mod:`snakeaudio.models.discriminators` return.
Phase
    :func:`phase_loss`: APNet's anti-wrapped instantaneous phase, group delay and
    instantaneous frequency distances.
Validation
    :func:`multi_resolution_stft_distance`: spectral convergence + log-magnitude L1
    (differentiable, also a training loss; defined in :mod:`snakeaudio.dsp.quality`, which the
    copy-synthesis scores use without the training package).

Loss weights (BigVGAN: 45 for the mel L1 or 15 for the multi-scale mel loss, 2 inside the feature
loss, 1 for the adversarial terms) are applied by the training loop, except the factor 2 that
BigVGAN builds into its feature loss (see :func:`feature_matching_loss`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._internal import check_waveform_pair
from ..dsp.mel import MelConfig, MelSpectrogram, mel_basis
from ..dsp.quality import multi_resolution_stft_distance

__all__ = [
    "AdversarialLoss",
    "MultiScaleMelLoss",
    "mel_l1_loss",
    "feature_matching_loss",
    "discriminator_loss",
    "generator_adversarial_loss",
    "multi_resolution_stft_distance",
    "phase_loss",
]

AdversarialLoss = Literal["lsgan", "hinge"]
_ADVERSARIAL_KINDS = ("lsgan", "hinge")


# --- mel reconstruction ---------------------------------------------------------------------


class _MelScale(nn.Module):
    """Linear-magnitude mel spectrogram of one scale: centred Hann STFT with hop = window / 4.

    Shape: (N, T) -> (N, n_mels, 1 + T // hop).
    """

    window: Tensor
    basis: Tensor

    def __init__(self, sample_rate: int, window_length: int, n_mels: int, fmin: float, fmax: float | None) -> None:
        super().__init__()
        self.window_length, self.hop_length = window_length, window_length // 4
        config = MelConfig(
            sample_rate=sample_rate, n_fft=window_length, num_mels=n_mels, hop_length=self.hop_length,
            win_length=window_length, fmin=fmin, fmax=fmax,
        )  # fmt: skip
        self.register_buffer("basis", mel_basis(config), persistent=False)  # (n_mels, window/2 + 1)
        window = torch.hann_window(window_length, periodic=True, dtype=torch.float64).float()
        self.register_buffer("window", window, persistent=False)

    def forward(self, wav: Tensor) -> Tensor:
        spec = torch.stft(
            wav, self.window_length, hop_length=self.hop_length, window=self.window.to(wav.dtype),
            center=True, pad_mode="reflect", return_complex=True,
        )  # fmt: skip
        return torch.matmul(self.basis.to(wav.dtype), spec.abs())  # (N, window/2 + 1, F) -> (N, n_mels, F)


class MultiScaleMelLoss(nn.Module):
    """L1 distance between log-mel spectrograms at several STFT scales (BigVGAN-v2's mel loss).

    For each scale s with window w_s and n_s mels: a centred (reflect-padded) periodic-Hann STFT
    with hop w_s / 4, magnitude, Slaney mel basis (librosa, built once as a buffer), then

        loss = Σ_s  log_weight · mean|log10(max(M_fake, ε)^p) − log10(max(M_real, ε)^p)|
                  + mag_weight · mean|M_fake − M_real|

    Semantics of ``bigvgan.loss.MultiScaleMelSpectrogramLoss`` with its defaults (and BigVGAN-v2's
    configs); names differ (``sample_rate``, ``power`` for ``pow``, ``fmin``/``fmax`` for
    ``mel_fmin``/``mel_fmax``). Deviations: the magnitude term compares linear mels, as in
    descript-audio-codec, whereas BigVGAN compares the log-mels a second time (identical at BigVGAN's
    ``mag_weight=0``); ``match_stride`` (broken in BigVGAN for any input) is not offered; the
    ``weight`` argument, unused inside BigVGAN's module, is left to the training loop.

    Args:
        sample_rate: of the waveforms, in Hz.
        n_mels, window_lengths: one scale per pair.
        clamp_eps: ε, the floor of the mel magnitude before the log.
        mag_weight, log_weight: weights of the linear and log terms.
        power: p, the power of the mel magnitude inside the log.
        fmin, fmax: mel range, one value for all scales or one per scale (None: Nyquist).
        loss_fn: the distance, mean absolute error by default.

    Shape: two waveforms (B, 1, T) (or (T,), (B, T), (B, C, T)), T > max(window_lengths) / 2 -> scalar.

    >>> loss = MultiScaleMelLoss(24000)
    >>> wav = torch.randn(2, 1, 4800) * 0.1
    >>> float(loss(wav, wav))
    0.0
    """

    def __init__(
        self,
        sample_rate: int,
        n_mels: Sequence[int] = (5, 10, 20, 40, 80, 160, 320),
        window_lengths: Sequence[int] = (32, 64, 128, 256, 512, 1024, 2048),
        clamp_eps: float = 1e-5,
        mag_weight: float = 0.0,
        log_weight: float = 1.0,
        power: float = 1.0,
        fmin: float | Sequence[float] = 0.0,
        fmax: float | None | Sequence[float | None] = None,
        loss_fn: Callable[[Tensor, Tensor], Tensor] = F.l1_loss,
    ) -> None:
        super().__init__()
        if len(n_mels) != len(window_lengths) or not n_mels:
            raise ValueError(
                f"n_mels and window_lengths must be non-empty and of equal length, got {len(n_mels)} and {len(window_lengths)}"
            )
        for w in window_lengths:
            if w < 4:
                raise ValueError(f"window lengths must be >= 4 (hop = window / 4), got {w}")
        if clamp_eps <= 0:
            raise ValueError(f"clamp_eps must be positive, got {clamp_eps}")
        scales = len(window_lengths)
        fmins = [fmin] * scales if isinstance(fmin, (int, float)) else list(fmin)
        fmaxs = [fmax] * scales if fmax is None or isinstance(fmax, (int, float)) else list(fmax)
        if len(fmins) != scales or len(fmaxs) != scales:
            raise ValueError(f"fmin and fmax need one value or one per scale ({scales}), got {fmin!r} and {fmax!r}")
        self.sample_rate = sample_rate
        self.clamp_eps, self.power = clamp_eps, power
        self.mag_weight, self.log_weight = mag_weight, log_weight
        self.loss_fn = loss_fn
        self.scales = nn.ModuleList(
            _MelScale(sample_rate, w, n, lo, hi) for w, n, lo, hi in zip(window_lengths, n_mels, fmins, fmaxs)
        )

    @property
    def min_length(self) -> int:
        """Shortest input: centred reflect padding of the largest window needs more than w/2 samples."""
        return max(scale.window_length for scale in self.scales) // 2 + 1

    def _log(self, mel: Tensor) -> Tensor:
        return torch.log10(mel.clamp(min=self.clamp_eps).pow(self.power))

    def forward(self, wav_real: Tensor, wav_fake: Tensor) -> Tensor:
        check_waveform_pair(wav_real, wav_fake, ("wav_real", "wav_fake"), self.min_length, "centred STFT of the largest window")
        real = wav_real.reshape(-1, wav_real.shape[-1])  # (B·C, T)
        fake = wav_fake.reshape(-1, wav_fake.shape[-1])
        loss = wav_real.new_zeros(())
        for scale in self.scales:
            mel_real, mel_fake = scale(real), scale(fake)  # (B·C, n_mels, F)
            loss = loss + self.log_weight * self.loss_fn(self._log(mel_fake), self._log(mel_real))
            if self.mag_weight:
                loss = loss + self.mag_weight * self.loss_fn(mel_fake, mel_real)
        return loss


def mel_l1_loss(wav_real: Tensor, wav_fake: Tensor, mel: MelSpectrogram) -> Tensor:
    """Mean absolute difference of log-mel spectrograms (HiFi-GAN / BigVGAN-v1's mel loss, unweighted).

    Shape: two waveforms (T,), (B, T) or (B, 1, T) -> scalar.
    """
    if wav_real.shape != wav_fake.shape:
        raise ValueError(
            f"wav_real and wav_fake must have the same shape, got {tuple(wav_real.shape)} and {tuple(wav_fake.shape)}"
        )
    return F.l1_loss(mel(wav_fake), mel(wav_real))


# --- adversarial losses ------------------------------------------------------------------------


def _total(terms: list[Tensor]) -> Tensor:
    """Sum of scalar tensors (which may differ in dtype, e.g. under autocast)."""
    return sum(terms[1:], terms[0])


def _check_kind(kind: str) -> None:
    if kind not in _ADVERSARIAL_KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, _ADVERSARIAL_KINDS))}, got {kind!r}")


def _check_logits(logits: Sequence[Tensor], name: str) -> None:
    if isinstance(logits, Tensor) or len(logits) == 0:
        raise ValueError(f"{name} must be a non-empty list with one tensor per discriminator, got {type(logits).__name__}")


def discriminator_loss(
    real_logits: Sequence[Tensor], fake_logits: Sequence[Tensor], kind: AdversarialLoss = "lsgan"
) -> tuple[Tensor, list[Tensor]]:
    """Discriminator loss summed over sub-discriminators; also returns each one's term.

    ``"lsgan"``: mean((1 − D(real))²) + mean(D(fake)²) (HiFi-GAN / BigVGAN);
    ``"hinge"``: mean(relu(1 − D(real))) + mean(relu(1 + D(fake))).

    BigVGAN's ``discriminator_loss`` returns the same total with separate real and fake lists of
    Python floats; here each entry is the tensor real + fake term of one sub-discriminator.

    >>> total, terms = discriminator_loss([torch.ones(2, 5)], [torch.zeros(2, 5)])
    >>> float(total), len(terms)
    (0.0, 1)
    """
    _check_kind(kind)
    _check_logits(real_logits, "real_logits")
    _check_logits(fake_logits, "fake_logits")
    if len(real_logits) != len(fake_logits):
        raise ValueError(
            f"expected as many real as fake logits (one per discriminator), got {len(real_logits)} and {len(fake_logits)}"
        )
    terms = []
    for real, fake in zip(real_logits, fake_logits):
        if kind == "lsgan":
            terms.append(torch.mean((1 - real) ** 2) + torch.mean(fake**2))
        else:
            terms.append(torch.mean(F.relu(1 - real)) + torch.mean(F.relu(1 + fake)))
    return _total(terms), terms


def generator_adversarial_loss(
    fake_logits: Sequence[Tensor], kind: AdversarialLoss = "lsgan"
) -> tuple[Tensor, list[Tensor]]:
    """Generator's adversarial loss summed over sub-discriminators; also returns each term.

    ``"lsgan"``: mean((1 − D(fake))²) (BigVGAN's ``generator_loss``); ``"hinge"``: −mean(D(fake)).

    >>> total, terms = generator_adversarial_loss([torch.ones(2, 5), torch.zeros(2, 3)])
    >>> float(total), [float(t) for t in terms]
    (1.0, [0.0, 1.0])
    """
    _check_kind(kind)
    _check_logits(fake_logits, "fake_logits")
    if kind == "lsgan":
        terms = [torch.mean((1 - fake) ** 2) for fake in fake_logits]
    else:
        terms = [-torch.mean(fake) for fake in fake_logits]
    return _total(terms), terms


def feature_matching_loss(real_fmaps: Sequence[Sequence[Tensor]], fake_fmaps: Sequence[Sequence[Tensor]]) -> Tensor:
    """2 · Σ_d Σ_l mean|F_dl(real) − F_dl(fake)|: HiFi-GAN's feature-matching loss with BigVGAN's λ = 2 built in.

    The real feature maps are detached: the loss trains the generator (through the fake maps)
    and gives the discriminator's real branch no gradient. The value equals BigVGAN's
    ``feature_loss``, which relies on the training loop to zero the discriminator's gradients
    instead. Mismatched list lengths or shapes raise instead of being truncated by ``zip``.

    Shape: nested lists [[(B, C, H, W) per layer] per discriminator], as the multi-discriminators return -> scalar.
    """
    if len(real_fmaps) != len(fake_fmaps) or not real_fmaps:
        raise ValueError(
            f"expected one non-empty list of feature maps per discriminator for both inputs, got {len(real_fmaps)} and {len(fake_fmaps)}"
        )
    terms = []
    for d, (real_d, fake_d) in enumerate(zip(real_fmaps, fake_fmaps)):
        if isinstance(real_d, Tensor) or isinstance(fake_d, Tensor) or len(real_d) != len(fake_d):
            raise ValueError(f"discriminator {d}: expected two equally long lists of feature maps")
        for layer, (real, fake) in enumerate(zip(real_d, fake_d)):
            if real.shape != fake.shape:
                raise ValueError(
                    f"discriminator {d}, layer {layer}: feature maps differ in shape, {tuple(real.shape)} vs {tuple(fake.shape)}"
                )
            terms.append(torch.mean(torch.abs(real.detach() - fake)))
    return 2 * _total(terms)


# --- phase ----------------------------------------------------------------------------------


def _anti_wrap(x: Tensor) -> Tensor:
    """|x| folded onto [0, π]: the distance of two phases whose difference is x."""
    return torch.abs(x - 2 * torch.pi * torch.round(x / (2 * torch.pi)))


def phase_loss(
    wav_real: Tensor, wav_fake: Tensor, n_fft: int = 1024, hop_length: int = 256, absolute: bool = True
) -> Tensor:
    """APNet's phase losses (Ai & Ling, 2023) on the STFTs of two waveforms:

        mean ψ(φ_fake − φ_real) + mean ψ(Δ_f φ_fake − Δ_f φ_real) + mean ψ(Δ_t φ_fake − Δ_t φ_real)

    with ψ(x) = |x − 2π·round(x / 2π)|: instantaneous phase, group delay (the difference
    across frequency) and instantaneous frequency (across time), each weighted by the real
    magnitude's share of its frame (bins of silence carry no phase worth matching).

    ``absolute=False`` keeps the instantaneous frequency alone: for a generator that
    turns its phase from where a segment starts (a phase vocoder), the phase itself and its difference
    across bins depend on that start, which it cannot know.

    Shape: two waveforms (B, 1, T) (or (T,), (B, T)), T > n_fft / 2 -> scalar.

    >>> wav = torch.randn(1, 1, 4096)
    >>> float(phase_loss(wav, wav))
    0.0
    """
    check_waveform_pair(wav_real, wav_fake, ("wav_real", "wav_fake"), n_fft // 2 + 1, "centred STFT of n_fft")
    window = torch.hann_window(n_fft, device=wav_real.device, dtype=wav_real.dtype)
    real, fake = (
        torch.stft(w.reshape(-1, w.shape[-1]), n_fft, hop_length, window=window, return_complex=True)
        for w in (wav_real, wav_fake)
    )  # (N, K, F) each
    weight = real.abs()
    weight = weight / weight.sum(dim=1, keepdim=True).clamp(min=1e-7)  # each frame's bins sum to 1
    phi_real, phi_fake = real.angle(), fake.angle()

    def weighted(distance: Tensor, w: Tensor) -> Tensor:
        return (distance * w).sum(dim=1).mean()

    diff = phi_fake - phi_real
    frequency = weighted(_anti_wrap(diff.diff(dim=2)), weight[..., 1:])
    if not absolute:
        return frequency
    return weighted(_anti_wrap(diff), weight) + weighted(_anti_wrap(diff.diff(dim=1)), weight[:, 1:]) + frequency
