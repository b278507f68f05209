"""GAN discriminators for vocoder training: period (MPD), resolution (MRD) and sub-band CQT (CQT-D).

Every single discriminator maps a waveform to ``(logits, feature_maps)``::

    wav (B, 1, T) -> logits (B, N), [feature map (B, C_i, H_i, W_i), ...]

and every multi-discriminator returns one entry per sub-discriminator::

    wav (B, 1, T) -> [logits_d for d], [[feature maps of d] for d]

Real and generated audio go through separate calls (or one call on ``torch.cat([real, fake])``;
nothing mixes examples across the batch), so the training loop decides what to detach.

Architectures follow BigVGAN (HiFi-GAN's MPD, UnivNet's MRD, BigVGAN-v2's multi-scale
sub-band CQT discriminator) layer for layer. Differences from the ``bigvgan`` package:

- ``forward`` takes one waveform, not a ``(real, fake)`` pair; logits are always flattened to (B, N)
  (BigVGAN's CQT-D returned them as (B, 1, F, W); losses average them, so values are unchanged).
- Weight and spectral norm use ``torch.nn.utils.parametrizations``, so state-dict keys differ
  (``parametrizations.weight.original0/1`` for ``weight_g/weight_v``).
- The period discriminator pads its ``(k, 1)`` convolutions by ``(k - 1) // 2``; BigVGAN hard-codes
  2, which is the same for the default ``kernel_size=5``.
- The CQT discriminator computes its constant-Q transform with
  :class:`~snakeaudio.dsp.cqt.ConstantQTransform` (plain torch, no nnAudio); see that class for
  how its numbers differ from nnAudio's ``CQT2010v2``. With ``filters_scale != 1`` BigVGAN's
  channel bookkeeping does not line up (its first dilated convolution expects
  ``filters · filters_scale`` inputs but receives ``filters``); here every layer takes the
  previous layer's channels. ``filters_scale=1``, the published setting, gives the same layers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm as _spectral_norm
from torch.nn.utils.parametrizations import weight_norm as _weight_norm
from torchaudio.functional import resample

from .._internal import check_positive, check_waveform
from ..dsp.cqt import ConstantQTransform, cqt_kernels

__all__ = [
    "DiscriminatorOutput",
    "MultiDiscriminatorOutput",
    "PeriodDiscriminator",
    "MultiPeriodDiscriminator",
    "ResolutionDiscriminator",
    "MultiResolutionDiscriminator",
    "cqt_kernels",  # defined in snakeaudio.dsp.cqt, re-exported here
    "ConstantQTransform",
    "SubbandCQTDiscriminator",
    "MultiScaleSubbandCQTDiscriminator",
    "CombinedDiscriminator",
]

DiscriminatorOutput = tuple[Tensor, list[Tensor]]
"""``(logits (B, N), feature maps)`` of one discriminator."""

MultiDiscriminatorOutput = tuple[list[Tensor], list[list[Tensor]]]
"""``([logits of each discriminator], [[feature maps] of each discriminator])``."""

LEAKY_RELU_SLOPE = 0.1


def _normed(conv: nn.Conv2d, use_spectral_norm: bool) -> nn.Conv2d:
    return _spectral_norm(conv) if use_spectral_norm else _weight_norm(conv)


def _channels(base: int, mult: float, name: str) -> int:
    channels = int(base * mult)
    if channels < 1:
        raise ValueError(f"{name}={mult} leaves {base} · {mult} < 1 channel")
    return channels


# --- multi-period discriminator ------------------------------------------------------------


def _conv_stack(x: Tensor, convs: nn.ModuleList, conv_post: nn.Module) -> DiscriminatorOutput:
    """LeakyReLU-activated 2-D convolutions, then the output convolution; every output is a feature map."""
    fmaps = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LEAKY_RELU_SLOPE)
        fmaps.append(x)
    x = conv_post(x)
    fmaps.append(x)
    return torch.flatten(x, 1), fmaps


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN's period discriminator: fold the waveform into ``period`` columns, convolve along time.

    The waveform is reflect-padded to a multiple of p and viewed as (B, 1, T/p, p); four
    ``(kernel_size, 1)`` convolutions with stride ``(stride, 1)`` (32, 128, 512, 1024 channels,
    × ``channel_mult``), one stride-1 convolution and a (3, 1) projection to one channel, with
    LeakyReLU(0.1) after all but the last. Columns never mix, so each sees every p-th sample.

    Args:
        period: p, the number of columns.
        kernel_size: odd length of the convolutions along time.
        stride: downsampling of the first four convolutions along time.
        channel_mult: multiplier of the channel counts (BigVGAN's ``discriminator_channel_mult``).
        use_spectral_norm: spectral instead of weight normalisation.

    Shape: (B, 1, T) -> logits (B, N), 6 feature maps (B, C_i, H_i, p).

    >>> d = PeriodDiscriminator(period=3, channel_mult=0.25)
    >>> logits, fmaps = d(torch.randn(2, 1, 1000))
    >>> logits.shape, len(fmaps), fmaps[0].shape
    (torch.Size([2, 15]), 6, torch.Size([2, 8, 112, 3]))
    """

    def __init__(
        self,
        period: int,
        kernel_size: int = 5,
        stride: int = 3,
        channel_mult: float = 1,
        use_spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(period, int) or period < 1:
            raise ValueError(f"period must be an integer >= 1, got {period!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        check_positive(stride=stride, channel_mult=channel_mult)
        self.period = period
        widths = [1] + [_channels(c, channel_mult, "channel_mult") for c in (32, 128, 512, 1024)]
        pad = ((kernel_size - 1) // 2, 0)
        self.convs = nn.ModuleList(
            _normed(nn.Conv2d(c_in, c_out, (kernel_size, 1), (stride, 1), padding=pad), use_spectral_norm)
            for c_in, c_out in zip(widths[:-1], widths[1:])
        )
        self.convs.append(_normed(nn.Conv2d(widths[-1], widths[-1], (kernel_size, 1), 1, padding=pad), use_spectral_norm))
        self.conv_post = _normed(nn.Conv2d(widths[-1], 1, (3, 1), 1, padding=(1, 0)), use_spectral_norm)

    def forward(self, wav: Tensor) -> DiscriminatorOutput:
        check_waveform(wav, self.period, f"PeriodDiscriminator(period={self.period})", "one full period")
        length = wav.shape[-1]
        if length % self.period:
            wav = F.pad(wav, (0, self.period - length % self.period), mode="reflect")
        x = rearrange(wav, "b 1 (t p) -> b 1 t p", p=self.period)  # (B, 1, T) -> (B, 1, T/p, p)
        return _conv_stack(x, self.convs, self.conv_post)  # (B, 1, T/p, p) -> logits, maps


class MultiPeriodDiscriminator(nn.Module):
    """One :class:`PeriodDiscriminator` per period (HiFi-GAN/BigVGAN MPD: periods 2, 3, 5, 7, 11).

    Shape: (B, 1, T) -> [logits (B, N_p)] × len(periods), [[6 feature maps]] × len(periods).
    """

    def __init__(
        self,
        periods: Sequence[int] = (2, 3, 5, 7, 11),
        channel_mult: float = 1,
        use_spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        if len(periods) == 0:
            raise ValueError("periods must name at least one period, got an empty sequence")
        self.discriminators = nn.ModuleList(
            PeriodDiscriminator(p, channel_mult=channel_mult, use_spectral_norm=use_spectral_norm) for p in periods
        )

    def forward(self, wav: Tensor) -> MultiDiscriminatorOutput:
        return _run_all(self.discriminators, wav)


# --- multi-resolution discriminator ------------------------------------------------------------


class ResolutionDiscriminator(nn.Module):
    """UnivNet's resolution discriminator on a linear magnitude spectrogram (BigVGAN-v1's MRD).

    The waveform is reflect-padded by ``(n_fft − hop)/2`` on both sides, transformed by an
    uncentred STFT and reduced to its magnitude (B, 1, n_fft/2 + 1, F); then 2D convolutions
    (3×9, 3×9 /2, 3×9 /2, 3×9 /2 along frames, 3×3; ``channels`` wide) with LeakyReLU(0.1)
    and a 3×3 projection to one channel.

    Args:
        n_fft, hop_length, win_length: the STFT.
        channels: width of every convolution (BigVGAN: 32 × ``mrd_channel_mult``).
        use_spectral_norm: spectral instead of weight normalisation.
        window: ``win_length -> window`` function such as ``torch.hann_window``; ``None`` (the
            default) is the rectangular window that UnivNet and BigVGAN use (``torch.stft``
            without a window).

    Shape: (B, 1, T) -> logits (B, N), 6 feature maps (B, C, n_fft/2 + 1, F_i).
    """

    window: Tensor

    def __init__(
        self,
        n_fft: int,
        hop_length: int,
        win_length: int,
        channels: int = 32,
        use_spectral_norm: bool = False,
        window: Callable[[int], Tensor] | None = None,
    ) -> None:
        super().__init__()
        check_positive(n_fft=n_fft, hop_length=hop_length, win_length=win_length, channels=channels)
        if win_length > n_fft:
            raise ValueError(f"win_length must be <= n_fft, got {win_length} > {n_fft}")
        if hop_length > n_fft:
            raise ValueError(f"hop_length must be <= n_fft, got {hop_length} > {n_fft}")
        self.n_fft, self.hop_length, self.win_length = n_fft, hop_length, win_length
        self.padding = (n_fft - hop_length) // 2
        taps = torch.ones(win_length) if window is None else window(win_length).float()
        self.register_buffer("window", taps, persistent=False)

        def conv(c_in: int, c_out: int, kernel: tuple[int, int], stride: tuple[int, int] = (1, 1)) -> nn.Conv2d:
            pad = (kernel[0] // 2, kernel[1] // 2)
            return _normed(nn.Conv2d(c_in, c_out, kernel, stride, padding=pad), use_spectral_norm)

        self.convs = nn.ModuleList(
            [
                conv(1, channels, (3, 9)),
                conv(channels, channels, (3, 9), (1, 2)),
                conv(channels, channels, (3, 9), (1, 2)),
                conv(channels, channels, (3, 9), (1, 2)),
                conv(channels, channels, (3, 3)),
            ]
        )
        self.conv_post = conv(channels, 1, (3, 3))

    @property
    def min_length(self) -> int:
        """Shortest input: reflect padding needs more samples than it adds, and one full frame."""
        return max(self.padding + 1, self.n_fft - 2 * self.padding)

    def spectrogram(self, wav: Tensor) -> Tensor:
        """Linear magnitude. Shape: (B, 1, T) -> (B, n_fft/2 + 1, F)."""
        x = F.pad(wav, (self.padding, self.padding), mode="reflect")[:, 0]  # (B, T + n_fft - hop)
        spec = torch.stft(
            x, self.n_fft, hop_length=self.hop_length, win_length=self.win_length,
            window=self.window.to(x.dtype), center=False, return_complex=True,
        )  # fmt: skip
        return spec.abs()

    def forward(self, wav: Tensor) -> DiscriminatorOutput:
        owner = f"ResolutionDiscriminator(n_fft={self.n_fft}, hop_length={self.hop_length}, win_length={self.win_length})"
        check_waveform(wav, self.min_length, owner, f"reflect padding of {self.padding}")
        x = self.spectrogram(wav)[:, None]  # (B, 1, n_fft/2 + 1, F)
        return _conv_stack(x, self.convs, self.conv_post)  # (B, 1, n_fft/2 + 1, F) -> logits, maps


class MultiResolutionDiscriminator(nn.Module):
    """One :class:`ResolutionDiscriminator` per ``(n_fft, hop_length, win_length)``.

    Shape: (B, 1, T) -> [logits (B, N_r)] × len(resolutions), [[6 feature maps]] × len(resolutions).
    """

    def __init__(
        self,
        resolutions: Sequence[tuple[int, int, int]] = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240)),
        channels: int = 32,
        use_spectral_norm: bool = False,
        window: Callable[[int], Tensor] | None = None,
    ) -> None:
        super().__init__()
        if len(resolutions) == 0:
            raise ValueError("resolutions must name at least one (n_fft, hop_length, win_length), got an empty sequence")
        for resolution in resolutions:
            if len(resolution) != 3:
                raise ValueError(f"each resolution must be (n_fft, hop_length, win_length), got {resolution!r}")
        self.discriminators = nn.ModuleList(
            ResolutionDiscriminator(n, hop, win, channels=channels, use_spectral_norm=use_spectral_norm, window=window)
            for n, hop, win in resolutions
        )

    def forward(self, wav: Tensor) -> MultiDiscriminatorOutput:
        return _run_all(self.discriminators, wav)


# --- multi-scale sub-band CQT discriminator --------------------------------------------------


def _same_padding_2d(kernel: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> tuple[int, int]:
    return ((kernel[0] - 1) * dilation[0] // 2, (kernel[1] - 1) * dilation[1] // 2)


class SubbandCQTDiscriminator(nn.Module):
    """BigVGAN-v2's sub-band CQT discriminator (after Amphion's MS-SB-CQT-D).

    The waveform is resampled to twice its rate (torchaudio's sinc interpolation, as in BigVGAN)
    so that the top octave fits below Nyquist, and transformed by a :class:`~snakeaudio.dsp.cqt.ConstantQTransform`
    into real and imaginary channels (B, 2, F, bins). Each octave of bins gets its own 3×9 input
    convolution (frames × bins); the octaves are joined again and pass a 3×9 convolution to
    ``filters`` channels, one 3×9 convolution per dilation (dilated along frames, stride 2 along
    bins, channels × ``filters_scale`` up to ``max_filters``) and a 3×3 convolution, each followed
    by LeakyReLU(0.1), then a 3×3 projection to one channel. As in BigVGAN, the per-octave and
    first convolutions are not weight-normalised, and the feature maps are the activations of
    the ``len(dilations) + 2`` middle layers (not the logits).

    Args:
        sample_rate: rate of the input waveform in Hz.
        hop_length: CQT hop at twice ``sample_rate`` (BigVGAN's convention); divisible by
            2^(n_octaves − 1).
        n_octaves, bins_per_octave: the CQT, from ``fmin`` up.
        filters, max_filters, filters_scale, dilations: widths and dilations of the convolutions.
        fmin: lowest CQT bin in Hz (nnAudio's default, C1).
        normalize_volume: remove the mean and scale the peak to 0.8 first (BigVGAN's
            ``cqtd_normalize_volume``).

    Shape: (B, 1, T) -> logits (B, N), len(dilations) + 2 feature maps (B, C_i, 2T // hop + 1, W_i).

    >>> d = SubbandCQTDiscriminator(sample_rate=16000, hop_length=64, n_octaves=5, bins_per_octave=12, filters=4)
    >>> logits, fmaps = d(torch.randn(2, 1, 1000))
    >>> logits.shape, [tuple(f.shape[1:]) for f in fmaps]
    (torch.Size([2, 256]), [(4, 32, 60), (4, 32, 30), (4, 32, 15), (4, 32, 8), (4, 32, 8)])
    """

    def __init__(
        self,
        sample_rate: int,
        hop_length: int,
        n_octaves: int,
        bins_per_octave: int,
        filters: int = 128,
        max_filters: int = 1024,
        filters_scale: float = 1,
        dilations: Sequence[int] = (1, 2, 4),
        fmin: float = 32.70,
        normalize_volume: bool = False,
    ) -> None:
        super().__init__()
        check_positive(sample_rate=sample_rate, filters=filters, max_filters=max_filters, filters_scale=filters_scale)
        if not isinstance(sample_rate, int):
            raise ValueError(f"sample_rate must be an integer number of Hz, got {sample_rate!r}")
        self.sample_rate, self.hop_length = sample_rate, hop_length
        self.n_octaves, self.bins_per_octave = n_octaves, bins_per_octave
        self.normalize_volume = normalize_volume
        self.cqt = ConstantQTransform(2 * sample_rate, hop_length, n_octaves, bins_per_octave, fmin=fmin)

        kernel = (3, 9)
        self.band_convs = nn.ModuleList(
            nn.Conv2d(2, 2, kernel, padding=_same_padding_2d(kernel)) for _ in range(n_octaves)
        )
        self.convs = nn.ModuleList([nn.Conv2d(2, filters, kernel, padding=_same_padding_2d(kernel))])
        c_in = filters
        for i, dilation in enumerate(dilations):
            c_out = int(min(filters * filters_scale ** (i + 1), max_filters))
            conv = nn.Conv2d(
                c_in, c_out, kernel, stride=(1, 2), dilation=(dilation, 1),
                padding=_same_padding_2d(kernel, (dilation, 1)),
            )  # fmt: skip
            self.convs.append(_weight_norm(conv))
            c_in = c_out
        c_out = int(min(filters * filters_scale ** (len(dilations) + 1), max_filters))
        self.convs.append(_weight_norm(nn.Conv2d(c_in, c_out, (3, 3), padding=(1, 1))))
        self.conv_post = _weight_norm(nn.Conv2d(c_out, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: Tensor) -> DiscriminatorOutput:
        owner = f"SubbandCQTDiscriminator(hop_length={self.hop_length})"
        check_waveform(wav, -(-self.hop_length // 2), owner, "one hop at twice the sample rate")
        if self.normalize_volume:
            wav = wav - wav.mean(dim=-1, keepdim=True)
            wav = 0.8 * wav / (wav.abs().amax(dim=-1, keepdim=True) + 1e-9)
        x = resample(wav, self.sample_rate, 2 * self.sample_rate)  # (B, 1, T) -> (B, 1, 2T), torchaudio's sinc
        z = self.cqt(x).transpose(2, 3)  # (B, 2, n_bins, F) -> (B, 2, F, n_bins)
        bands = z.split(self.bins_per_octave, dim=-1)  # n_octaves × (B, 2, F, b)
        x = torch.cat([conv(band) for conv, band in zip(self.band_convs, bands)], dim=-1)  # (B, 2, F, n_bins)
        fmaps = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LEAKY_RELU_SLOPE)  # (B, C_i, F, W_i)
            fmaps.append(x)
        x = self.conv_post(x)  # (B, 1, F, W)
        return torch.flatten(x, 1), fmaps


class MultiScaleSubbandCQTDiscriminator(nn.Module):
    """BigVGAN-v2's CQT-D: one :class:`SubbandCQTDiscriminator` per (hop, octaves, bins per octave).

    Shape: (B, 1, T) -> [logits (B, N_i)] × len(hop_lengths), [[len(dilations) + 2 feature maps]] × len(hop_lengths).
    """

    def __init__(
        self,
        sample_rate: int,
        hop_lengths: Sequence[int] = (512, 256, 256),
        n_octaves: Sequence[int] = (9, 9, 9),
        bins_per_octaves: Sequence[int] = (24, 36, 48),
        filters: int = 128,
        max_filters: int = 1024,
        filters_scale: float = 1,
        dilations: Sequence[int] = (1, 2, 4),
        fmin: float = 32.70,
        normalize_volume: bool = False,
    ) -> None:
        super().__init__()
        if not len(hop_lengths) == len(n_octaves) == len(bins_per_octaves) > 0:
            raise ValueError(
                "hop_lengths, n_octaves and bins_per_octaves must be non-empty and of equal length, got "
                f"{len(hop_lengths)}, {len(n_octaves)} and {len(bins_per_octaves)}"
            )
        self.discriminators = nn.ModuleList(
            SubbandCQTDiscriminator(
                sample_rate, hop, octaves, bins, filters=filters, max_filters=max_filters,
                filters_scale=filters_scale, dilations=dilations, fmin=fmin, normalize_volume=normalize_volume,
            )  # fmt: skip
            for hop, octaves, bins in zip(hop_lengths, n_octaves, bins_per_octaves)
        )

    def forward(self, wav: Tensor) -> MultiDiscriminatorOutput:
        return _run_all(self.discriminators, wav)


# --- combination ----------------------------------------------------------------------------


def _run_all(discriminators: nn.ModuleList, wav: Tensor) -> MultiDiscriminatorOutput:
    logits, fmaps = [], []
    for discriminator in discriminators:
        d_logits, d_fmaps = discriminator(wav)
        logits.append(d_logits)
        fmaps.append(d_fmaps)
    return logits, fmaps


class CombinedDiscriminator(nn.Module):
    """Chain several discriminators into one list of sub-discriminators (e.g. MPD + CQT-D for BigVGAN-v2).

    Multi-discriminators contribute all their entries; a single discriminator contributes one.

    Shape: (B, 1, T) -> [logits (B, N_i)], [[feature maps of i]] over all sub-discriminators.

    >>> d = CombinedDiscriminator(MultiPeriodDiscriminator((2, 3), channel_mult=0.125), PeriodDiscriminator(5, channel_mult=0.125))
    >>> logits, fmaps = d(torch.randn(1, 1, 300))
    >>> len(logits), len(fmaps)
    (3, 3)
    """

    def __init__(self, *discriminators: nn.Module) -> None:
        super().__init__()
        if not discriminators:
            raise ValueError("CombinedDiscriminator needs at least one discriminator")
        self.discriminators = nn.ModuleList(discriminators)

    def forward(self, wav: Tensor) -> MultiDiscriminatorOutput:
        logits: list[Tensor] = []
        fmaps: list[list[Tensor]] = []
        for discriminator in self.discriminators:
            d_logits, d_fmaps = discriminator(wav)
            if isinstance(d_logits, Tensor):  # a single discriminator
                d_logits, d_fmaps = [d_logits], [d_fmaps]
            logits.extend(d_logits)
            fmaps.extend(d_fmaps)
        return logits, fmaps
