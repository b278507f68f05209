"""The BigVGAN/HiFi-GAN generator: log-mel frames in, waveform out."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from ..dsp.mel import MelSpectrogram
from ..nn.blocks import ActivationFactory, AMPBlock, conv1d, init_conv_, remove_weight_norm
from ..nn.functional import exporting
from .config import GeneratorConfig, activation_factory

__all__ = ["Generator"]


class Generator(nn.Module):
    """conv_pre → [ConvTranspose1d ↑r_i → mean of AMP blocks] × N → activation → conv_post → tanh/clamp.

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

    def mel(self, wav: Tensor) -> Tensor:
        """This vocoder's own log-mel features. Shape: (T,), (B, T) or (B, 1, T) -> (B, num_mels, F)."""
        return self.features(wav)

    def check_mel(self, mel: Tensor) -> None:
        """Raise a ValueError naming what is wrong with a mel input."""
        if mel.dim() != 3:
            hint = " (add a batch axis with mel[None])" if mel.dim() == 2 else ""
            raise ValueError(f"expected a mel spectrogram shaped (B, {self.num_mels}, F), got shape {tuple(mel.shape)}{hint}")
        if mel.shape[1] != self.num_mels:
            raise ValueError(f"this vocoder expects {self.num_mels} mel bands, got {mel.shape[1]} (shape {tuple(mel.shape)})")
        if not mel.is_floating_point():
            raise ValueError(f"expected a floating-point mel spectrogram, got dtype {mel.dtype}")
        if not exporting() and not bool(torch.isfinite(mel).all()):  # a data-dependent check: not traceable
            raise ValueError("the mel spectrogram contains NaN or infinite values")

    def forward(self, mel: Tensor) -> Tensor:
        self.check_mel(mel)
        x = mel
        for stage, _ in self.stages():
            x = stage(x)
        return x

    def stages(self) -> list[tuple[Callable[[Tensor], Tensor], int]]:
        """The forward pass as a chain of ``(function, upsampling ratio)``: conv_pre (1),
        then per upsampling step the transposed convolution (r_i) and the mean of its AMP
        blocks (1), then activation → conv_post → tanh/clamp (1). Each function maps
        (B, C, T) to (B, C', T · ratio); streaming synthesis runs them one by one."""
        chain: list[tuple[Callable[[Tensor], Tensor], int]] = [(self.conv_pre, 1)]
        for i, (up, rate) in enumerate(zip(self.ups, self.config.upsample_rates)):
            chain += [(up, rate), (partial(self._blocks, i), 1)]
        return [*chain, (self._output, 1)]

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
