"""The BigVGAN/HiFi-GAN generator: log-mel frames in, waveform out."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from ..dsp.istft import STFT, InverseSTFT, fast_griffin_lim
from ..dsp.mel import MelSpectrogram, mel_basis
from ..nn._common import BufferDtypesKept
from ..nn.blocks import ActivationFactory, AMPBlock, ChannelNorm, ConvNeXtBlock, conv1d, init_conv_, remove_weight_norm
from ..nn.functional import exporting
from .config import GeneratorConfig, activation_factory

__all__ = ["Generator", "ISTFTHead", "PhaseVocoder"]

_MAX_LOG_MAGNITUDE = 7.0  # e^7 ≈ 1100: above a full-scale sine's 256 for a 1024-point Hann frame


class PhaseVocoder(nn.Module):
    """Phase carried across frames by a phase-locked vocoder on the magnitude, plus a
    learned offset:

        φ[k, t] = offset[k, t] + θ[p, t] + π·(k − f[p, t]),   θ[k, t] = Σ_{s ≤ t} 2π·f[k, s]·hop / n_fft

    where p = p(k, t) is the spectral peak that bin k climbs to on the log-magnitude, f its
    frequency in bins from a parabola through the peak and its neighbours, and θ each bin's
    phase turned at the frequency of its peak (Laroche & Dolson's identity phase locking:
    the bins of a peak keep a Hann window's phase pattern around it). A stateless head
    repeats the same phase for a steady input frame after frame, which pulls every steady
    partial onto a multiple of sr / hop (a buzz at the hop rate); here a partial turns at
    its own frequency. The magnitude steers the phase but receives no gradient through it.
    Sums run in float64 and are wrapped to [0, 2π).

    :meth:`scan` takes and returns θ at the last frame, so that a stream carries it from
    chunk to chunk; :meth:`forward` starts it at zero.

    Shape: (B, 2K, F) log-magnitude, offset -> (B, 2K, F) log-magnitude, phase.
    """

    def __init__(self, n_fft: int, hop_length: int) -> None:
        super().__init__()
        self.n_fft, self.hop_length = n_fft, hop_length

    @staticmethod
    def peaks(log_magnitude: Tensor) -> tuple[Tensor, Tensor]:
        """The peak each bin climbs to and that peak's frequency in bins, frame by frame (the
        bins on the last, contiguous axis, along which every lookup runs).

        Shape: (B, F, K) -> (B, F, K) int64 bin indices, (B, F, K) float64 frequencies.
        """
        bins = log_magnitude.shape[-1]
        x = nn.functional.pad(log_magnitude.detach().double(), (1, 1), value=-math.inf)  # (B, F, K + 2)
        left, centre, right = x[..., :-2], x[..., 1:-1], x[..., 2:]
        up = torch.where((right > centre) & (right >= left), 1, torch.where(left > centre, -1, 0))
        peak = torch.arange(bins, device=x.device) + up  # one step uphill, then pointer doubling: 2^j steps after j rounds
        for _ in range(max(1, bins - 1).bit_length()):
            peak = torch.gather(peak, -1, peak)
        a, b, c = (torch.gather(side, -1, peak) for side in (left, centre, right))
        a, c = torch.where(a.isinf(), b, a), torch.where(c.isinf(), b, c)  # a peak at an edge: no parabola
        curvature = a - 2 * b + c
        vertex = 0.5 * (a - c) / torch.where(curvature < 0, curvature, -1.0)
        return peak, peak + torch.where(curvature < 0, vertex, 0.0).clamp(-0.5, 0.5)

    def scan(self, x: Tensor, carry: Tensor | None) -> tuple[Tensor, Tensor]:
        """Shape: x (B, 2K, F), carry (B, K) float64 or None -> (B, 2K, F), the new carry (B, K)."""
        log_magnitude, offset = x.chunk(2, dim=1)  # (B, 2K, F) -> 2 × (B, K, F)
        peak, frequency = self.peaks(log_magnitude.transpose(1, 2))  # (B, F, K)
        theta = (frequency * (2 * math.pi * self.hop_length / self.n_fft)).cumsum(dim=1)  # (B, F, K)
        if carry is not None:
            theta = theta + carry[:, None]
        bins = torch.arange(log_magnitude.shape[1], device=x.device, dtype=torch.float64)
        locked = torch.gather(theta, -1, peak) + math.pi * (bins - frequency)  # (B, F, K)
        phase = torch.remainder(offset.double() + locked.transpose(1, 2), 2 * math.pi)
        return torch.cat([log_magnitude, phase.to(x.dtype)], dim=1), torch.remainder(theta[:, -1], 2 * math.pi)

    def forward(self, x: Tensor) -> Tensor:
        return self.scan(x, None)[0]

    def extra_repr(self) -> str:
        return f"n_fft={self.n_fft}, hop_length={self.hop_length}"


class ISTFTHead(BufferDtypesKept):
    """Features to waveform through a spectrum: a 1×1 convolution gives each frame's
    log-magnitude and phase, an inverse STFT overlaps and adds them.

    With ``prior`` (a pseudo-inverse mel basis, (n_fft // 2 + 1, n_mels)) the log-magnitude
    is a residual on ``log(prior · exp(mel))``, the magnitude the mel alone implies, and
    the head takes the features and the mel stacked on the channel axis; the prior stays
    float32 under ``.half()`` and the like.

    With ``griffin_lim_iterations`` the spectrum is refined by that many rounds of fast
    Griffin-Lim (momentum ``griffin_lim_momentum``) before the last inverse STFT (:func:`~snakeaudio.dsp.istft.fast_griffin_lim`):
    each round makes it closer to the STFT of a signal, keeping the predicted magnitude.

    With ``vocoder`` the phase is a learned offset on a :class:`PhaseVocoder`'s phase,
    which turns each partial at its own frequency from frame to frame; the projection
    starts at zero, so that an untrained head is the vocoder on the prior alone.

    Shape: (B, C [+ n_mels], F) -> (B, 1, F · hop_length), clamped to [-1, 1].
    """

    def __init__(
        self,
        channels: int,
        n_fft: int,
        hop_length: int,
        prior: Tensor | None = None,
        vocoder: bool = False,
        griffin_lim_iterations: int = 0,
        griffin_lim_momentum: float = 0.99,
    ) -> None:
        super().__init__()
        self._griffin_lim_iterations, self.griffin_lim_momentum = griffin_lim_iterations, griffin_lim_momentum
        self.stft = STFT(n_fft, hop_length) if griffin_lim_iterations else None
        self.channels, self.bins = channels, n_fft // 2 + 1
        self.proj = init_conv_(nn.Conv1d(channels, 2 * self.bins, 1))
        self.vocoder = PhaseVocoder(n_fft, hop_length) if vocoder else None
        if vocoder:  # start as the vocoder on the prior (or on a flat spectrum) alone
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)
        self.istft = InverseSTFT(n_fft, hop_length)
        self.register_buffer("prior", prior, persistent=False)

    @property
    def griffin_lim_iterations(self) -> int:
        """Fast Griffin-Lim rounds before the last inverse STFT; fixed when the head is built."""
        return self._griffin_lim_iterations

    @griffin_lim_iterations.setter
    def griffin_lim_iterations(self, value: int) -> None:
        raise AttributeError(
            "griffin_lim_iterations is fixed when the head is built (chunked and streamed synthesis measure their context "
            "with it); build Generator(generator.config.replace(griffin_lim_iterations=N)) and load the weights into it"
        )

    def stages(self) -> list[tuple[Callable[[Tensor], Tensor], int]]:
        """The head as ``(function, upsampling ratio)`` stages (see :meth:`Generator.stages`)."""
        if self.vocoder is None:
            return [(self, self.istft.hop_length)]
        return [(self.spectrum, 1), (self.vocoder, 1), (self.synthesize, self.istft.hop_length)]

    def spectrum(self, x: Tensor) -> Tensor:
        """Shape: (B, C [+ n_mels], F) -> (B, 2K, F): log-magnitude, then phase (or the vocoder's offset)."""
        dtype = torch.promote_types(x.dtype, torch.float32)  # half-precision features: the spectrum in float32
        log_magnitude, phase = self.proj(x[:, : self.channels]).to(dtype).chunk(2, dim=1)  # (B, C, F) -> 2 × (B, K, F)
        if self.prior is not None:
            mel = x[:, self.channels :].to(dtype)  # (B, n_mels, F)
            log_magnitude = log_magnitude + torch.log(torch.matmul(self.prior.to(dtype), mel.exp()).clamp(min=1e-5))
        return torch.cat([log_magnitude, phase], dim=1)

    def synthesize(self, x: Tensor) -> Tensor:
        """Shape: (B, 2K, F) log-magnitude, phase -> (B, 1, F · hop)."""
        log_magnitude, phase = x.chunk(2, dim=1)
        magnitude = log_magnitude.clamp(max=_MAX_LOG_MAGNITUDE).exp()
        real, imag = magnitude * torch.cos(phase), magnitude * torch.sin(phase)
        wav = fast_griffin_lim(
            magnitude, real, imag, self.stft, self.istft, self.griffin_lim_iterations, self.griffin_lim_momentum
        )  # (B, 1, F · hop)
        return wav.clamp(-1.0, 1.0)

    def forward(self, x: Tensor) -> Tensor:
        y = self.spectrum(x)  # (B, C [+ n_mels], F) -> (B, 2K, F)
        if self.vocoder is not None:
            y = self.vocoder(y)
        return self.synthesize(y).to(x.dtype)


class Generator(nn.Module):
    """conv_pre → [ConvTranspose1d ↑r_i → mean of AMP blocks] × N → [ConvNeXt blocks] → head.

    The head is BigVGAN's activation → conv_post → tanh/clamp, or an :class:`ISTFTHead`
    (see :class:`GeneratorConfig`).

    Args:
        config: the architecture and its features (:class:`GeneratorConfig`).
        activation: factory ``channels -> module``; by default resolved from the config
            (e.g. anti-aliased log-scale SnakeBeta for BigVGAN-v2).
        weight_norm: weight-normalise every convolution (for training).

    Shape: (B, num_mels, F) -> (B, 1, F · hop_length).

    >>> from snakeaudio.models import preset
    >>> g = Generator(preset("tiny_16khz_80band")).eval()
    >>> g(torch.zeros(1, 80, 4)).shape
    torch.Size([1, 1, 1024])
    """

    def __init__(
        self, config: GeneratorConfig, activation: ActivationFactory | None = None, weight_norm: bool = True
    ) -> None:
        super().__init__()
        self.config = config
        make_activation = activation or activation_factory(config)
        channels = config.upsample_initial_channel
        self.conv_pre = conv1d(config.num_mels, channels, 7, weight_norm=weight_norm)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        for rate, kernel in zip(config.upsample_rates, config.upsample_kernel_sizes):
            up = init_conv_(nn.ConvTranspose1d(channels, channels // 2, kernel, rate, padding=(kernel - rate) // 2))
            self.ups.append(_weight_norm(up) if weight_norm else up)
            channels //= 2
            for k, dilations in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes):
                self.resblocks.append(
                    AMPBlock(channels, k, dilations, make_activation, second_convs=config.resblock == "1", weight_norm=weight_norm)
                )
        if config.convnext_layers:
            self.backbone = nn.Sequential(
                ChannelNorm(channels, eps=1e-6),
                *(
                    ConvNeXtBlock(
                        channels, config.convnext_kernel_size, config.convnext_expansion, make_activation, 1 / config.convnext_layers
                    )
                    for _ in range(config.convnext_layers)
                ),
                ChannelNorm(channels, eps=1e-6),
            )  # fmt: skip
        if config.head == "istft":
            prior = torch.linalg.pinv(mel_basis(config.mel_config).double()).float() if config.mel_prior else None
            self.head = ISTFTHead(
                channels, config.istft_n_fft, config.istft_hop_size, prior, vocoder=config.istft_phase == "vocoder",
                griffin_lim_iterations=config.griffin_lim_iterations, griffin_lim_momentum=config.griffin_lim_momentum,
            )
        else:
            self.activation_post = make_activation(channels)
            self.conv_post = conv1d(channels, 1, 7, bias=config.use_bias_at_final, weight_norm=weight_norm)
        self.features = MelSpectrogram(config.mel_config)

    @property
    def sample_rate(self) -> int:
        return self.config.sampling_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_size

    @property
    def num_mels(self) -> int:
        return self.config.num_mels

    def mel(self, wav: Tensor, check: bool = True) -> Tensor:
        """This vocoder's own log-mel features (``check``: see :class:`MelSpectrogram`).
        Shape: (T,), (B, T) or (B, 1, T) -> (B, num_mels, F)."""
        return self.features(wav, check=check)

    def check_mel(self, mel: Tensor, values: bool = True) -> None:
        """Raise a ValueError naming what is wrong with a mel input; ``values=False`` skips
        the finiteness scan (a host sync on a GPU)."""
        if mel.dim() != 3:
            hint = " (add a batch axis with mel[None])" if mel.dim() == 2 else ""
            raise ValueError(f"expected a mel spectrogram shaped (B, {self.num_mels}, F), got shape {tuple(mel.shape)}{hint}")
        if mel.shape[1] != self.num_mels:
            raise ValueError(f"this vocoder expects {self.num_mels} mel bands, got {mel.shape[1]} (shape {tuple(mel.shape)})")
        if not mel.is_floating_point():
            raise ValueError(f"expected a floating-point mel spectrogram, got dtype {mel.dtype}")
        if values and not exporting() and not bool(torch.isfinite(mel).all()):  # a data-dependent check: not traceable
            raise ValueError("the mel spectrogram contains NaN or infinite values")

    def forward(self, mel: Tensor, check: bool = True) -> Tensor:
        """``check=False`` skips the finiteness scan of the input (see :meth:`check_mel`)."""
        self.check_mel(mel, values=check)
        x = mel
        for stage, _ in self.stages():
            x = stage(x)
        return x.to(mel.dtype)

    def stages(self) -> list[tuple[Callable[[Tensor], Tensor], int]]:
        """The forward pass as a chain of ``(function, upsampling ratio)``: conv_pre (1),
        then per upsampling step the transposed convolution (r_i) and the mean of its AMP
        blocks (1), then the ConvNeXt blocks (1), then the head (1, or the iSTFT's hop; with
        a phase vocoder the spectrum (1), the :class:`PhaseVocoder` (1) and the inverse
        STFT (hop)).
        Each function maps (B, C, T) to (B, C', T · ratio); streaming synthesis runs them
        one by one. With a mel prior the frame-rate stages carry the mel along, stacked on
        the channel axis, for the head."""
        config = self.config
        if config.mel_prior:
            return [(self._frame_features, 1), *self.head.stages()]
        chain: list[tuple[Callable[[Tensor], Tensor], int]] = [(self.conv_pre, 1)]
        for i, (up, rate) in enumerate(zip(self.ups, config.upsample_rates)):
            chain += [(up, rate), (partial(self._blocks, i), 1)]
        if config.convnext_layers:
            chain.append((self.backbone, 1))
        if config.head == "istft":
            return [*chain, *self.head.stages()]
        return [*chain, (self._output, 1)]

    def _frame_features(self, mel: Tensor) -> Tensor:
        """conv_pre → ConvNeXt blocks, with the mel stacked after. Shape: (B, n_mels, F) -> (B, C + n_mels, F)."""
        x = self.conv_pre(mel)
        if self.config.convnext_layers:
            x = self.backbone(x)
        return torch.cat([x, mel], dim=1)

    def _blocks(self, i: int, x: Tensor) -> Tensor:
        """The mean of the AMP blocks after upsampling step ``i``. Shape: (B, C, T) -> (B, C, T)."""
        n_kernels = len(self.config.resblock_kernel_sizes)
        blocks = self.resblocks[i * n_kernels : (i + 1) * n_kernels]
        mean = blocks[0](x)
        for block in blocks[1:]:
            mean = mean.add_(block(x))  # block outputs are fresh tensors
        return mean.div_(n_kernels)

    def _output(self, x: Tensor) -> Tensor:
        """Shape: (B, C_last, T) -> (B, 1, T)."""
        x = self.conv_post(self.activation_post(x))
        return torch.tanh(x) if self.config.use_tanh_at_final else x.clamp(-1.0, 1.0)

    def remove_weight_norm(self) -> Generator:
        """Fold weight norm into plain weights (for inference and export). Returns ``self``."""
        return remove_weight_norm(self)

    def prepare_for_inference(self) -> Generator:
        """Fold weight norm, switch to eval mode and stop tracking gradients. Returns ``self``."""
        self.remove_weight_norm().eval()
        return self.requires_grad_(False)
