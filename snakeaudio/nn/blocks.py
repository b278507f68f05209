"""Convolution helpers and the AMP residual block (anti-aliased multi-periodicity)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

__all__ = [
    "ActivationFactory",
    "AMPBlock",
    "ConvNeXtBlock",
    "ChannelNorm",
    "conv1d",
    "same_padding",
    "remove_weight_norm",
]

ActivationFactory = Callable[[int], nn.Module]
"""Builds an activation module for a number of channels."""


def same_padding(kernel_size: int, dilation: int = 1) -> int:
    """Padding that keeps the length of a stride-1 convolution (odd kernel sizes)."""
    return (kernel_size * dilation - dilation) // 2


def init_conv_(module: nn.Module, std: float = 0.01) -> nn.Module:
    """HiFi-GAN/BigVGAN initialisation: weights ~ N(0, std)."""
    nn.init.normal_(module.weight, 0.0, std)
    return module


def conv1d(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    dilation: int = 1,
    bias: bool = True,
    weight_norm: bool = True,
) -> nn.Conv1d:
    """Length-preserving Conv1d with N(0, 0.01) init, optionally weight-normalised."""
    conv = init_conv_(
        nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation, padding=same_padding(kernel_size, dilation), bias=bias)
    )
    return _weight_norm(conv) if weight_norm else conv


def remove_weight_norm(module: nn.Module) -> nn.Module:
    """Fold every weight-norm parametrisation in ``module`` into a plain weight. Returns ``module``."""
    for m in module.modules():
        if parametrize.is_parametrized(m, "weight"):
            # Deep copies share the class parametrisation generates, and removing the parametrisation
            # edits that class: give this module a private copy so that the other copies keep theirs.
            cls = m.__class__
            namespace = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
            m.__class__ = type(cls.__name__, cls.__bases__, namespace)
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
    return module


class AMPBlock(nn.Module):
    """Residual block of dilated convolutions with (anti-aliased) periodic activations.

    For each dilation d: ``x ← x + conv_d(act(x))``; with ``second_convs`` (BigVGAN's
    resblock "1") each branch is ``conv_1(act(conv_d(act(x))))``, otherwise (resblock "2")
    a single convolution.

    Args:
        channels: C.
        kernel_size: odd convolution size.
        dilations: one residual branch per dilation.
        activation: factory ``channels -> module``, e.g.
            ``lambda c: AntiAliasedActivation1d(SnakeBeta(c, log_scale=True))``.
        second_convs: BigVGAN's resblock "1" (True) or "2" (False).
        weight_norm: weight-normalise the convolutions (training); fold with :func:`remove_weight_norm`.

    Shape: (B, C, T) -> (B, C, T).

    >>> import torch
    >>> from snakeaudio import Snake
    >>> block = AMPBlock(8, activation=lambda c: Snake(c))
    >>> block(torch.randn(2, 8, 50)).shape
    torch.Size([2, 8, 50])
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        dilations: Sequence[int] = (1, 3, 5),
        activation: ActivationFactory | None = None,
        second_convs: bool = True,
        weight_norm: bool = True,
    ) -> None:
        super().__init__()
        if activation is None:
            raise ValueError("AMPBlock needs an activation factory (channels -> module)")
        if not dilations:
            raise ValueError("AMPBlock needs at least one dilation")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep the length, got {kernel_size}")
        self.convs1 = nn.ModuleList(conv1d(channels, channels, kernel_size, d, weight_norm=weight_norm) for d in dilations)
        n_second = len(dilations) if second_convs else 0
        self.convs2 = nn.ModuleList(conv1d(channels, channels, kernel_size, 1, weight_norm=weight_norm) for _ in range(n_second))
        # Interleaved as in BigVGAN: the activation before convs1[i] is activations[2i] (resblock "1")
        # or activations[i] (resblock "2"); the one before convs2[i] is activations[2i + 1].
        self.activations = nn.ModuleList(activation(channels) for _ in range(len(self.convs1) + n_second))

    def forward(self, x: Tensor) -> Tensor:
        step = 2 if len(self.convs2) else 1
        for i, conv in enumerate(self.convs1):
            h = conv(self.activations[step * i](x))
            if self.convs2:
                h = self.convs2[i](self.activations[2 * i + 1](h))
            x = h.add_(x)  # h is a fresh convolution output: adding in place saves an allocation
        return x


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of each time step. Shape: (B, C, T) -> (B, C, T)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class ConvNeXtBlock(nn.Module):
    """Vocos' ConvNeXt block with an injected activation:
    ``x + γ · pointwise₂(act(pointwise₁(norm(depthwise(x)))))``, γ per channel.

    Args:
        channels: C.
        kernel_size: odd size of the depthwise convolution.
        expansion: the pointwise layers are ``expansion · C`` wide inside.
        activation: factory ``channels -> module`` for the inner width, e.g.
            ``partial(SnakeBeta, log_scale=True)``.
        layer_scale: initial γ.

    Shape: (B, C, T) -> (B, C, T).

    >>> import torch
    >>> from snakeaudio import SnakeBeta
    >>> ConvNeXtBlock(8, activation=SnakeBeta)(torch.randn(2, 8, 5)).shape
    torch.Size([2, 8, 5])
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int = 7,
        expansion: int = 3,
        activation: ActivationFactory | None = None,
        layer_scale: float = 0.125,
    ) -> None:
        super().__init__()
        if activation is None:
            raise ValueError("ConvNeXtBlock needs an activation factory (channels -> module)")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep the length, got {kernel_size}")
        self.depthwise = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels)
        self.norm = ChannelNorm(channels, eps=1e-6)
        self.pointwise1 = nn.Conv1d(channels, expansion * channels, 1)
        self.activation = activation(expansion * channels)
        self.pointwise2 = nn.Conv1d(expansion * channels, channels, 1)
        self.gamma = nn.Parameter(torch.full((1, channels, 1), float(layer_scale)))

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(self.depthwise(x))
        h = self.pointwise2(self.activation(self.pointwise1(h)))  # (B, C, T) -> (B, e·C, T) -> (B, C, T)
        return x + self.gamma * h
