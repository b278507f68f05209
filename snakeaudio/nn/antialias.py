"""Anti-aliased activation: upsample ×r → activation → low-pass → downsample ×r.

One semantics, BigVGAN's ``Activation1d``, with several implementations:

- :meth:`AntiAliasedActivation1d.reference`: plain torch ops (zero-stuffed transposed
  convolution, activation on the r×-long signal, strided convolution), the oracle.
- A fused path for :class:`~snakeaudio.nn.Snake` and :class:`~snakeaudio.nn.SnakeBeta`
  with equal up/down ratios: polyphase filtering, the upsampled signal never stored
  (recomputed in backward), on CPU through the C++ kernels and on CUDA through Triton.

The fused path is chosen automatically and agrees with the reference to float32 rounding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..dsp.filters import DownSample1d, UpSample1d
from ..kernels.cpu import call, cpu_kernels_available, threads_for
from .activations import Snake, SnakeBeta
from .functional import _compute_dtype, _prepared_parameters, exporting

__all__ = ["AntiAliasedActivation1d", "polyphase_upsample_taps"]


def polyphase_upsample_taps(taps: Tensor, ratio: int) -> tuple[Tensor, list[int]]:
    """Split BigVGAN's ×ratio upsampler into ``ratio`` short FIRs on the input.

    Phase ``p`` of the upsampled signal is ``u[r·n + p] = Σ_s W[p, s] · x[clamp(n + base[p] + s)]``
    (replicate padding), which equals zero-stuffing, filtering with ``ratio · taps`` and
    cropping as :class:`~snakeaudio.dsp.UpSample1d` does.

    Returns: ``W`` shaped (ratio, S), same dtype as ``taps``, and ``base`` (ratio ints).
    """
    kernel_size = taps.numel()
    pad = kernel_size // ratio - 1
    pad_left = pad * ratio + (kernel_size - ratio) // 2
    phases: list[list[tuple[int, float]]] = []
    for p in range(ratio):
        first = -((kernel_size - 1 - p - pad_left) // ratio)  # ceil((p + pad_left - K + 1) / r)
        last = (p + pad_left) // ratio
        phases.append([(d - pad, ratio * taps[p + pad_left - ratio * d].item()) for d in range(first, last + 1)])
    base = [min(e for e, _ in phase) for phase in phases]
    width = max(max(e for e, _ in phase) - b + 1 for phase, b in zip(phases, base))
    weight = torch.zeros(ratio, width, dtype=taps.dtype)
    for p, (phase, b) in enumerate(zip(phases, base)):
        for e, w in phase:
            weight[p, e - b] = w
    return weight, base


# ---------------------------------------------------------------------------
# Custom ops on x: (B, C, T) with prepared per-channel parameters (C,)
# ---------------------------------------------------------------------------


@torch.library.custom_op("snakeaudio::aa_snake_forward", mutates_args=())
def _aa_forward(
    x: Tensor, alpha: Tensor, inv_scale: Tensor, up_weight: Tensor, up_base: Tensor, down_taps: Tensor, down_pad: int
) -> Tensor:
    if x.device.type == "cuda":
        from ..kernels.triton_antialias import aa_snake_forward_triton

        return aa_snake_forward_triton(x, alpha, inv_scale, up_weight, up_base, down_taps, down_pad)
    x = x.contiguous()
    y = torch.empty_like(x)
    batch, channels, length = x.shape
    ratio, width = up_weight.shape
    call(
        "aa_snake_forward", x, alpha.contiguous(), inv_scale.contiguous(), y, batch * channels, channels, length,
        ratio, up_weight.contiguous(), up_base.contiguous(), width, down_taps.contiguous(), down_taps.numel(),
        down_pad, threads_for(8 * x.numel()),
    )  # fmt: skip
    return y


@_aa_forward.register_fake
def _(x, alpha, inv_scale, up_weight, up_base, down_taps, down_pad):
    return torch.empty_like(x)


@torch.library.custom_op("snakeaudio::aa_snake_backward", mutates_args=())
def _aa_backward(
    x: Tensor,
    grad: Tensor,
    alpha: Tensor,
    inv_scale: Tensor,
    has_beta: bool,
    up_weight: Tensor,
    up_base: Tensor,
    down_taps: Tensor,
    down_pad: int,
) -> tuple[Tensor, Tensor, Tensor]:
    if x.device.type == "cuda":
        from ..kernels.triton_antialias import aa_snake_backward_triton

        return aa_snake_backward_triton(x, grad, alpha, inv_scale, has_beta, up_weight, up_base, down_taps, down_pad)
    x, grad = x.contiguous(), grad.contiguous()
    batch, channels, length = x.shape
    ratio, width = up_weight.shape
    grad_x = torch.empty_like(x)
    grad_alpha = x.new_empty(batch, channels)
    grad_beta = x.new_zeros(batch, channels)
    call(
        "aa_snake_backward", x, grad, alpha.contiguous(), inv_scale.contiguous(), int(has_beta), grad_x, grad_alpha,
        grad_beta, batch * channels, channels, length, ratio, up_weight.contiguous(), up_base.contiguous(), width,
        down_taps.contiguous(), down_taps.numel(), down_pad, threads_for(8 * x.numel()),
    )  # fmt: skip
    return grad_x, grad_alpha.sum(0), grad_beta.sum(0)


@_aa_backward.register_fake
def _(x, grad, alpha, inv_scale, has_beta, up_weight, up_base, down_taps, down_pad):
    return torch.empty_like(x), torch.empty_like(alpha), torch.empty_like(alpha)


class _AntiAliasedSnakeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha, beta, up_weight, up_base, down_taps, down_pad):  # type: ignore[override]
        ctx.save_for_backward(x, alpha, beta)
        ctx.filters = (up_weight, up_base, down_taps, down_pad)
        dtype = x.dtype if x.device.type == "cuda" else _compute_dtype(x.dtype)
        a, inv = _prepared_parameters(alpha, beta, x.shape[1], torch.float32)
        y = _aa_forward(x.to(dtype), a, inv, up_weight, up_base, down_taps, down_pad)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, alpha, beta = ctx.saved_tensors
        dtype = x.dtype if x.device.type == "cuda" else _compute_dtype(x.dtype)
        a, inv = _prepared_parameters(alpha, beta, x.shape[1], torch.float32)
        grad_x, grad_alpha, grad_beta = _aa_backward(
            x.to(dtype), grad.to(dtype), a, inv, beta is not None, *ctx.filters
        )
        grad_alpha = grad_alpha.sum().reshape(alpha.shape) if alpha.dim() == 0 else grad_alpha
        if beta is not None:
            grad_beta = (grad_beta.sum().reshape(beta.shape) if beta.dim() == 0 else grad_beta).to(beta.dtype)
        return grad_x.to(x.dtype), grad_alpha.to(alpha.dtype), grad_beta if beta is not None else None, None, None, None, None


class AntiAliasedActivation1d(nn.Module):
    """BigVGAN's anti-aliased activation: ×up_ratio upsample → activation → ×down_ratio low-pass downsample.

    Args:
        activation: any module mapping (B, C, T') to the same shape; :class:`Snake` and
            :class:`SnakeBeta` with ``up_ratio == down_ratio`` take the fused path.
        up_ratio, down_ratio: integer resampling ratios (≥ 1).
        up_kernel_size, down_kernel_size: Kaiser-sinc filter lengths (≥ the ratio).

    Shape: (B, C, T) -> (B, C, ⌊(up_ratio·T − 1)/down_ratio⌋ + 1), i.e. (B, C, T) for equal ratios.

    >>> act = AntiAliasedActivation1d(SnakeBeta(8, log_scale=True))
    >>> act(torch.randn(2, 8, 100)).shape
    torch.Size([2, 8, 100])
    """

    up_weight: Tensor
    up_base: Tensor
    down_taps: Tensor

    def __init__(
        self,
        activation: nn.Module,
        up_ratio: int = 2,
        down_ratio: int = 2,
        up_kernel_size: int = 12,
        down_kernel_size: int = 12,
    ) -> None:
        super().__init__()
        self.act = activation
        self.upsample = UpSample1d(up_ratio, up_kernel_size)
        self.downsample = DownSample1d(down_ratio, down_kernel_size)
        self.fusable = isinstance(activation, (Snake, SnakeBeta)) and up_ratio == down_ratio
        if self.fusable:
            weight, base = polyphase_upsample_taps(self.upsample.filter.double().view(-1), up_ratio)
            self.register_buffer("up_weight", weight.float(), persistent=False)
            self.register_buffer("up_base", torch.tensor(base, dtype=torch.int64), persistent=False)
            self.register_buffer("down_taps", self.downsample.lowpass.filter.view(-1).clone(), persistent=False)
            self.down_pad = self.downsample.lowpass.pad_left
        self._prepared: tuple[tuple, tuple[Tensor, Tensor]] | None = None

    def reference(self, x: Tensor) -> Tensor:
        """The plain-torch path, op for op BigVGAN's ``Activation1d``."""
        return self.downsample(self.act(self.upsample(x)))

    def _fused_available(self, x: Tensor) -> bool:
        if not self.fusable or exporting():
            return False
        if x.device.type == "cuda":
            from ..kernels.triton_antialias import triton_available

            return x.dtype in (torch.float32, torch.float16, torch.bfloat16) and triton_available()
        return (
            x.device.type == "cpu"
            and x.dtype in (torch.float32, torch.float16, torch.bfloat16)
            and cpu_kernels_available()
        )

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 3:
            raise ValueError(f"AntiAliasedActivation1d expects (B, C, T), got shape {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"AntiAliasedActivation1d expects a floating-point input, got dtype {x.dtype}")
        channels = getattr(self.act, "channels", None)
        if channels is not None and x.shape[1] != channels:
            raise ValueError(
                f"the activation was built for {channels} channels, got input with {x.shape[1]} "
                f"(shape {tuple(x.shape)})"
            )
        if x.shape[-1] == 0:
            raise ValueError("AntiAliasedActivation1d needs at least one sample (T >= 1)")
        if not self._fused_available(x):
            return self.reference(x)
        act = self.act
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in act.parameters())):
            beta = act.magnitude() if isinstance(act, SnakeBeta) else None
            return _AntiAliasedSnakeFunction.apply(
                x, act.frequency(), beta, self.up_weight, self.up_base, self.down_taps, self.down_pad
            )
        # Inference: no autograd node, and the parameters prepared once until they change.
        dtype = x.dtype if x.device.type == "cuda" else _compute_dtype(x.dtype)
        a, inv = self._inference_parameters(x.shape[1])
        return _aa_forward(x.to(dtype), a, inv, self.up_weight, self.up_base, self.down_taps, self.down_pad).to(x.dtype)

    def _inference_parameters(self, channels: int) -> tuple[Tensor, Tensor]:
        """α and 1/β (or 1/α) per channel as the kernels take them, cached while the
        parameters' storage and version counters stay the same (an in-place update or a
        move invalidates it)."""
        key = (channels, *((p.data_ptr(), p._version, p.device, p.dtype) for p in self.act.parameters()))
        if self._prepared is None or self._prepared[0] != key:
            with torch.no_grad():
                beta = self.act.magnitude() if isinstance(self.act, SnakeBeta) else None
                prepared = _prepared_parameters(self.act.frequency(), beta, channels, torch.float32)
            self._prepared = (key, prepared)
        return self._prepared[1]
