"""The Snake family of activations (Ziyin, Hartwig & Ueda, NeurIPS 2020).

``Snake``: ``y = x + sin²(αx)/α``; ``SnakeBeta``: ``y = x + sin²(αx)/β``.
Larger α means a higher frequency of the periodic component: α ≥ 0.2 suits
standard tasks, α in 5–50 strongly periodic signals (:data:`STANDARD_ALPHA`,
:data:`PERIODIC_ALPHA`, :func:`init_snake_`).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from .functional import snake

__all__ = [
    "Snake",
    "SnakeBeta",
    "FlexibleSnake",
    "SnakeActivation",
    "FlexibleSnakeActivation",
    "STANDARD_ALPHA",
    "PERIODIC_ALPHA",
    "init_snake_",
]

STANDARD_ALPHA = (0.2, 0.5)
"""Range of α recommended for standard (non-periodic) tasks."""
PERIODIC_ALPHA = (5.0, 50.0)
"""Range of α recommended for strongly periodic signals."""

_REGIMES = {"standard": STANDARD_ALPHA, "periodic": PERIODIC_ALPHA}


def _frequency_parameter(
    module: nn.Module, name: str, value: Tensor, learnable: bool, log_scale: bool
) -> None:
    """Register ``name`` holding ``value`` (or its log) as a parameter or buffer."""
    if log_scale and bool((value <= 0).any()):
        raise ValueError(f"{name} must be > 0 with log_scale=True (its log is stored), got {value.min().item()}")
    stored = value.log() if log_scale else value
    if learnable:
        module.register_parameter(name, nn.Parameter(stored))
    else:
        module.register_buffer(name, stored)


def _check_channels(x: Tensor, channels: int | None, owner: str) -> None:
    if not x.is_floating_point():
        raise ValueError(f"{owner} expects a floating-point input, got dtype {x.dtype}")
    if channels is not None and (x.dim() < 2 or x.shape[1] != channels):
        got = f"shape {tuple(x.shape)}"
        raise ValueError(f"{owner} was built for {channels} channels on axis 1, got input of {got}")


class Snake(nn.Module):
    """Snake: ``y = x + sin²(αx)/α``.

    Args:
        channels: ``None`` for one α shared by all inputs, else one α per channel on axis 1.
        alpha: initial α (honoured also when ``log_scale``).
        learnable: α is a trained parameter; otherwise a buffer.
        log_scale: store ``log α`` (BigVGAN's ``alpha_logscale``), keeping α > 0.

    Shape: any shape with one α; (B, C, *) -> (B, C, *) per channel.

    >>> act = Snake(16, alpha=5.0)
    >>> act(torch.zeros(4, 16, 100)).shape
    torch.Size([4, 16, 100])
    """

    alpha: Tensor

    def __init__(
        self, channels: int | None = None, alpha: float = 1.0, learnable: bool = True, log_scale: bool = False
    ) -> None:
        super().__init__()
        if channels is not None and channels < 1:
            raise ValueError(f"channels must be a positive integer or None, got {channels}")
        self.channels = channels
        self.log_scale = log_scale
        shape = () if channels is None else (channels,)
        _frequency_parameter(self, "alpha", torch.full(shape, float(alpha)), learnable, log_scale)

    def frequency(self) -> Tensor:
        """α in linear scale, shaped () or (C,)."""
        return self.alpha.exp() if self.log_scale else self.alpha

    def forward(self, x: Tensor) -> Tensor:
        _check_channels(x, self.channels, type(self).__name__)
        return snake(x, self.frequency())

    def extra_repr(self) -> str:
        return f"channels={self.channels}, log_scale={self.log_scale}"


class SnakeBeta(nn.Module):
    """SnakeBeta: ``y = x + sin²(αx)/β``, separate frequency α and magnitude β per channel.

    Args:
        channels: number of channels on axis 1.
        alpha: initial α; beta: initial β (both honoured also when ``log_scale``).
        learnable: α and β are trained parameters; otherwise buffers.
        log_scale: store ``log α`` and ``log β`` (BigVGAN's ``alpha_logscale``).

    Shape: (B, C, *) -> (B, C, *).
    """

    alpha: Tensor
    beta: Tensor

    def __init__(
        self, channels: int, alpha: float = 1.0, beta: float = 1.0, learnable: bool = True, log_scale: bool = False
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels}")
        self.channels = channels
        self.log_scale = log_scale
        _frequency_parameter(self, "alpha", torch.full((channels,), float(alpha)), learnable, log_scale)
        _frequency_parameter(self, "beta", torch.full((channels,), float(beta)), learnable, log_scale)

    def frequency(self) -> Tensor:
        """α in linear scale, shaped (C,)."""
        return self.alpha.exp() if self.log_scale else self.alpha

    def magnitude(self) -> Tensor:
        """β in linear scale, shaped (C,)."""
        return self.beta.exp() if self.log_scale else self.beta

    def forward(self, x: Tensor) -> Tensor:
        _check_channels(x, self.channels, type(self).__name__)
        return snake(x, self.frequency(), self.magnitude())

    def extra_repr(self) -> str:
        return f"channels={self.channels}, log_scale={self.log_scale}"


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None) -> Tensor:
    if not 0 < low <= high:
        raise ValueError(f"expected 0 < low <= high for the α range, got [{low}, {high}]")
    return torch.empty(shape).uniform_(low, high, generator=generator)


class FlexibleSnake(Snake):
    """Snake with one α per channel drawn uniformly from ``[a_base, a_max]``.

    Shape: (B, C, *) -> (B, C, *).

    >>> act = FlexibleSnake(8, a_base=5.0, a_max=50.0)
    >>> bool(((act.alpha >= 5.0) & (act.alpha <= 50.0)).all())
    True
    """

    def __init__(
        self,
        channels: int,
        a_base: float = STANDARD_ALPHA[0],
        a_max: float = STANDARD_ALPHA[1],
        learnable: bool = True,
        log_scale: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(channels, alpha=a_base, learnable=learnable, log_scale=log_scale)
        with torch.no_grad():
            value = _uniform((channels,), a_base, a_max, generator)
            self.alpha.copy_(value.log() if log_scale else value)


class SnakeActivation(nn.Module):
    """The original single-parameter Snake, ``y = x + sin²(ax)/a``, with attribute ``a`` shaped ().

    Args:
        initial_a: initial ``a``; 0.2 ≤ a for standard tasks, 5–50 for periodic ones.
        learnable: ``a`` is a parameter, else a buffer.
    """

    a: Tensor

    def __init__(self, initial_a: float = 0.2, learnable: bool = True) -> None:
        super().__init__()
        _frequency_parameter(self, "a", torch.tensor(float(initial_a)), learnable, log_scale=False)

    def forward(self, x: Tensor) -> Tensor:
        _check_channels(x, None, type(self).__name__)
        return snake(x, self.a)


class FlexibleSnakeActivation(nn.Module):
    """The original per-channel Snake: ``a`` uniform in ``[a_base, a_max]``, one per channel.

    Args:
        num_features: channels C on axis 1.
        dim: 1 for (B, C, L) inputs (``a`` shaped (1, C, 1)), 2 for (B, C, H, W) (``a`` shaped (1, C, 1, 1)).
    """

    a: Tensor

    def __init__(
        self, num_features: int, dim: int, a_base: float = 0.2, learnable: bool = True, a_max: float = 0.5
    ) -> None:
        super().__init__()
        if dim not in (1, 2):
            raise ValueError(f"dim must be 1 (B, C, L) or 2 (B, C, H, W), got {dim}")
        self.num_features = num_features
        self.dim = dim
        value = _uniform((num_features,), a_base, a_max, None).view(1, num_features, *(1,) * dim)
        _frequency_parameter(self, "a", value, learnable, log_scale=False)

    def forward(self, x: Tensor) -> Tensor:
        _check_channels(x, self.num_features, type(self).__name__)
        if x.dim() != self.dim + 2:
            raise ValueError(f"FlexibleSnakeActivation(dim={self.dim}) expects a {self.dim + 2}-D input, got shape {tuple(x.shape)}")
        return snake(x, self.a.view(-1))


_SNAKES = (Snake, SnakeBeta, SnakeActivation, FlexibleSnakeActivation)


def init_snake_(
    module: nn.Module,
    regime: Literal["standard", "periodic"] = "standard",
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Re-initialise α of every Snake module in ``module`` uniformly in the regime's range.

    ``"standard"`` draws from :data:`STANDARD_ALPHA` (0.2–0.5), ``"periodic"`` from
    :data:`PERIODIC_ALPHA` (5–50). β is left unchanged. Returns ``module``.

    >>> net = nn.Sequential(nn.Conv1d(1, 8, 3), Snake(8))
    >>> _ = init_snake_(net, "periodic")
    >>> bool((net[1].alpha >= 5).all())
    True
    """
    if regime not in _REGIMES:
        raise ValueError(f"unknown regime {regime!r}; expected one of {sorted(_REGIMES)}")
    low, high = _REGIMES[regime]
    for m in module.modules():
        if not isinstance(m, _SNAKES):
            continue
        p = m.a if isinstance(m, (SnakeActivation, FlexibleSnakeActivation)) else m.alpha
        value = _uniform(tuple(p.shape), low, high, generator).to(p.device, p.dtype)
        with torch.no_grad():
            p.copy_(value.log() if getattr(m, "log_scale", False) else value)
    return module
