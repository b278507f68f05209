"""Anti-aliased activation: upsample ×r → activation → low-pass → downsample ×r.

One semantics, BigVGAN's ``Activation1d``, with several implementations:

- :meth:`AntiAliasedActivation1d.reference`: plain torch ops (zero-stuffed transposed
  convolution, activation on the r×-long signal, strided convolution), the oracle.
- A fused path for :class:`~snakeaudio.nn.Snake` and :class:`~snakeaudio.nn.SnakeBeta`
  with equal up/down ratios: polyphase filtering, the upsampled signal never stored
  (recomputed in backward), on CPU through the C++ kernels (``"cpu"``) and on CUDA
  through Triton (``"triton"``).

:meth:`AntiAliasedActivation1d._plan` alone decides which path runs an input and in
which dtype. With Snake/SnakeBeta, float16/bfloat16 inputs are computed in float32 by
every path, the reference included, and rounded once at the end; all paths agree to
float32 rounding.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from ..dsp.filters import DownSample1d, UpSample1d
from ..kernels.cpu import aa_snake_backward_cpu, aa_snake_forward_cpu, cpu_kernels_available
from ._common import BACKENDS, backend_setting, compute_dtype, eager_custom_op, keep_buffer_dtypes, prepared_parameters, snake_plain
from .activations import Snake, SnakeBeta
from .functional import exporting

__all__ = ["AntiAliasedActivation1d", "polyphase_upsample_taps", "BACKENDS"]

# Storage dtypes the fused kernels take (they compute in float32).
_KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


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


@eager_custom_op("snakeaudio::aa_snake_forward")
def _aa_forward(
    x: Tensor,
    alpha: Tensor,
    inv_scale: Tensor,
    up_weight: Tensor,
    up_base: Tensor,
    down_taps: Tensor,
    down_pad: int,
    backend: str,
) -> Tensor:
    if backend == "cpu":
        forward = aa_snake_forward_cpu
    elif backend == "triton":
        from ..kernels.triton_antialias import aa_snake_forward_triton as forward
    else:
        raise ValueError(f"the fused kernels are 'cpu' or 'triton', got backend {backend!r}")
    return forward(x.contiguous(), alpha, inv_scale, up_weight, up_base, down_taps, down_pad)


@_aa_forward.register_fake
def _(x, alpha, inv_scale, up_weight, up_base, down_taps, down_pad, backend):
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@eager_custom_op("snakeaudio::aa_snake_backward")
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
    backend: str,
) -> tuple[Tensor, Tensor, Tensor]:
    if backend == "cpu":
        backward = aa_snake_backward_cpu
    elif backend == "triton":
        from ..kernels.triton_antialias import aa_snake_backward_triton as backward
    else:
        raise ValueError(f"the fused kernels are 'cpu' or 'triton', got backend {backend!r}")
    x, grad = x.contiguous(), grad.contiguous()
    return backward(x, grad, alpha, inv_scale, has_beta, up_weight, up_base, down_taps, down_pad)


@_aa_backward.register_fake
def _(x, grad, alpha, inv_scale, has_beta, up_weight, up_base, down_taps, down_pad, backend):
    like_x = torch.empty_like(x, memory_format=torch.contiguous_format)
    return like_x, torch.empty_like(alpha), torch.empty_like(alpha)


class _AntiAliasedSnakeFunction(torch.autograd.Function):
    """The fused path with autograd: x is handed to the kernels in ``dtype``; saves only x and the parameters."""

    @staticmethod
    def forward(ctx, x, alpha, beta, backend, dtype, up_weight, up_base, down_taps, down_pad):  # type: ignore[override]
        ctx.save_for_backward(x, alpha, beta)
        ctx.path = (backend, dtype)
        ctx.filters = (up_weight, up_base, down_taps, down_pad)
        a, inv = prepared_parameters(alpha, beta, x.shape[1], torch.float32)
        y = _aa_forward(x.to(dtype), a, inv, *ctx.filters, backend)
        return y.to(x.dtype)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, alpha, beta = ctx.saved_tensors
        backend, dtype = ctx.path
        a, inv = prepared_parameters(alpha, beta, x.shape[1], torch.float32)
        grad_x, grad_alpha, grad_beta = _aa_backward(
            x.to(dtype), grad.to(dtype), a, inv, beta is not None, *ctx.filters, backend
        )
        grad_alpha = grad_alpha.sum().reshape(alpha.shape) if alpha.dim() == 0 else grad_alpha
        if beta is not None:
            grad_beta = (grad_beta.sum().reshape(beta.shape) if beta.dim() == 0 else grad_beta).to(beta.dtype)
        grad_beta = grad_beta if beta is not None else None
        return grad_x.to(x.dtype), grad_alpha.to(alpha.dtype), grad_beta, None, None, None, None, None, None


def _triton_available() -> bool:
    from ..kernels.triton_antialias import triton_available

    return triton_available()


class AntiAliasedActivation1d(nn.Module):
    """BigVGAN's anti-aliased activation: ×up_ratio upsample → activation → ×down_ratio low-pass downsample.

    Args:
        activation: any module mapping (B, C, T') to the same shape; :class:`Snake` and
            :class:`SnakeBeta` with ``up_ratio == down_ratio`` have fused paths.
        up_ratio, down_ratio: integer resampling ratios (≥ 1).
        up_kernel_size, down_kernel_size: Kaiser-sinc filter lengths (≥ the ratio).
        backend: one of :data:`BACKENDS`; ``None`` reads ``$SNAKEAUDIO_BACKEND`` (default
            ``"auto"``). ``"reference"`` opts out of the fused paths; ``"cpu"``/``"triton"``
            insist on one and raise for an input it cannot run.

    Shape: (B, C, T) -> (B, C, ⌊(up_ratio·T − 1)/down_ratio⌋ + 1), i.e. (B, C, T) for equal ratios.

    The filters stay float32 (and follow only device moves) under ``.half()`` or
    ``.to(torch.bfloat16)``: they are designed in float64 and rounded once.

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
        backend: str | None = None,
    ) -> None:
        super().__init__()
        self._prepared: tuple | None = None
        self.backend = backend_setting(backend)
        self.act = activation
        self.upsample = UpSample1d(up_ratio, up_kernel_size)
        self.downsample = DownSample1d(down_ratio, down_kernel_size)
        self._is_snake = isinstance(activation, (Snake, SnakeBeta))
        self.fusable = self._is_snake and up_ratio == down_ratio
        if self.fusable:
            weight, base = polyphase_upsample_taps(self.upsample.filter.double().view(-1), up_ratio)
            self.register_buffer("up_weight", weight.float(), persistent=False)
            self.register_buffer("up_base", torch.tensor(base, dtype=torch.int64), persistent=False)
            self.register_buffer("down_taps", self.downsample.lowpass.filter.view(-1).clone(), persistent=False)
            self.down_pad = self.downsample.lowpass.pad_left

    def extra_repr(self) -> str:
        return f"backend={self.backend!r}"

    # --- the reference ---------------------------------------------------------------

    def reference(self, x: Tensor) -> Tensor:
        """The plain-torch path, op for op BigVGAN's ``Activation1d``.

        Snake/SnakeBeta run as their formula in torch ops (α kept away from zero as
        :func:`~snakeaudio.nn.snake` does) and compute float16/bfloat16 inputs in float32,
        rounded once at the end; other activations run in the input's dtype.
        """
        return self._reference(x, self._reference_dtype(x.dtype))

    def _reference_dtype(self, dtype: torch.dtype) -> torch.dtype:
        return compute_dtype(dtype) if self._is_snake else dtype

    def _reference(self, x: Tensor, dtype: torch.dtype) -> Tensor:
        u = self.upsample(x.to(dtype))  # (B, C, T) -> (B, C, r·T)
        act = self.act
        if isinstance(act, (Snake, SnakeBeta)):
            beta = act.magnitude() if isinstance(act, SnakeBeta) else None
            u = snake_plain(u, act.frequency(), beta)
        else:
            u = act(u)
        return self.downsample(u).to(x.dtype)  # (B, C, r·T) -> (B, C, ⌊(r·T − 1)/r_down⌋ + 1)

    # --- which path ------------------------------------------------------------------

    def _plan(self, x: Tensor) -> tuple[str, torch.dtype]:
        """The one place that decides which path runs x, and the dtype x is handed to it in.

        Returns ``("reference", dtype)``, ``("cpu", torch.float32)`` (the C++ kernels take
        float32) or ``("triton", x.dtype)`` (the Triton kernels load any of
        float32/float16/bfloat16 and compute in float32).
        """
        requested = self.backend
        reference = ("reference", self._reference_dtype(x.dtype))
        if not self.fusable or requested == "reference" or exporting():
            return reference
        device = x.device.type
        if requested == "auto":
            if x.dtype in _KERNEL_DTYPES:
                if device == "cpu" and cpu_kernels_available():
                    return "cpu", torch.float32
                if device == "cuda" and _triton_available():
                    return "triton", x.dtype
            return reference
        # An explicit fused path runs every input or says why it cannot.
        if x.dtype not in _KERNEL_DTYPES:
            raise TypeError(f"backend={requested!r} takes float32, float16 or bfloat16 inputs, got {x.dtype}")
        if requested == "cpu":
            if device != "cpu":
                raise ValueError(f"backend='cpu' runs CPU tensors, got an input on {x.device}")
            if not cpu_kernels_available():
                raise RuntimeError("backend='cpu': the C++ kernels could not be built (see the earlier warning)")
            return "cpu", torch.float32
        if not _triton_available():
            raise RuntimeError(
                "backend='triton' needs Triton >= 3.2 (with tl.gather) and a CUDA device, "
                "or TRITON_INTERPRET=1 set before importing triton"
            )
        return "triton", x.dtype

    def _fused_available(self, x: Tensor) -> bool:
        """Whether :meth:`forward` takes a fused path for x."""
        return self._plan(x)[0] != "reference"

    # --- forward ---------------------------------------------------------------------

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
        backend, dtype = self._plan(x)
        if backend == "reference":
            return self._reference(x, dtype)
        act = self.act
        filters = (self.up_weight, self.up_base, self.down_taps, self.down_pad)
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in act.parameters())):
            beta = act.magnitude() if isinstance(act, SnakeBeta) else None
            return _AntiAliasedSnakeFunction.apply(x, act.frequency(), beta, backend, dtype, *filters)
        # Inference: no autograd node, and the parameters prepared once until they change.
        alpha, inv_scale = self._inference_parameters(x.shape[1])
        return _aa_forward(x.to(dtype), alpha, inv_scale, *filters, backend).to(x.dtype)

    def _prepare_parameters(self, channels: int) -> tuple[Tensor, Tensor]:
        """α and 1/β (or 1/α) per channel, float32 (C,), as the kernels take them."""
        act = self.act
        beta = act.magnitude() if isinstance(act, SnakeBeta) else None
        return prepared_parameters(act.frequency(), beta, channels, torch.float32)

    def _inference_parameters(self, channels: int) -> tuple[Tensor, Tensor]:
        """:meth:`_prepare_parameters` without autograd, cached.

        The cache is keyed on every tensor the parameters come from, the activation's
        parameters and buffers: identity, storage, version counter, dtype, device, shape.
        An in-place update (optimiser step, ``load_state_dict``), a new tensor or a move
        invalidates it; the tensors are held so that their identities stay unique. Writes
        through ``.data``, which PyTorch hides from version counters, are not seen. There is
        no cache while ``torch.compile`` traces (the prepared values become part of the
        graph) nor for inference tensors, which have no version counter.
        """
        sources = [*self.act.parameters(), *self.act.buffers()]
        if torch.compiler.is_compiling() or any(t.is_inference() for t in sources):
            with torch.no_grad():
                return self._prepare_parameters(channels)
        key = (channels, *((id(t), t.data_ptr(), t._version, t.dtype, t.device, t.shape) for t in sources))
        cached = self._prepared
        if cached is None or cached[0] != key:
            with torch.no_grad():
                cached = (key, sources, self._prepare_parameters(channels))
            self._prepared = cached
        return cached[2]

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        keep_buffer_dtypes(partial(super()._apply, fn, recurse), (self, self.upsample, self.downsample.lowpass))
        self._prepared = None
        return self
