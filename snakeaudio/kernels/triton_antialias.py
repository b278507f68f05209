"""Triton kernels for the fused anti-aliased Snake (BigVGAN's ``Activation1d``) on GPU.

The math is that of :mod:`snakeaudio.nn.antialias` in polyphase form, for equal
up/down ratio ``r``, on rows of x (B, C, T) with ``clamp(j) = min(max(j, 0), T − 1)``:

- ``U_p[n] = Σ_s W[p, s] · x[clamp(n + base[p] + s)]``, the r phases of the
  upsampled signal ``u[r·n + p] = U_p[n]``;
- ``A = snake(u) = u + sin²(α·u) · inv_scale``, replicated beyond its ends
  (``A[j < 0] = A[0]``, ``A[j ≥ rT] = A[rT − 1]``);
- ``y[i] = Σ_k g[k] · A[r·i + k − pad] = Σ_{p, d} g[r·d + p + pad] · A_p[i + d]``.

Neither the upsampled signal nor anything else is stored between forward and
backward: the backward recomputes ``U`` from x. Each program owns a tile of one
row; it computes the activated (forward) or back-propagated (backward) upsampled
phases once over the tile plus a halo, in registers, and applies the second FIR
as constant shifts of those registers (``tl.gather``). The halos depend only on
the filter lengths, so there are no host-device synchronisations and the
launches can be captured in CUDA graphs.

All arithmetic is float32 whatever the storage dtype (float32, float16, bfloat16).
Parameter gradients are written as per-tile partial sums and reduced with torch,
so the result is deterministic. With ``TRITON_INTERPRET=1`` set before Triton and this
module are imported, the kernels run on CPU tensors, which is how the tests check them.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import torch
from torch import Tensor

from ._common import check_aa_arguments, compile_constant

try:
    import triton
    import triton.language as tl
except ImportError:  # Triton is optional; the callers fall back to the reference path.
    triton = None
    tl = None

__all__ = ["triton_available", "aa_snake_forward_triton", "aa_snake_backward_triton"]


@compile_constant  # torch.compile takes the answer as a constant
def triton_available() -> bool:
    """Whether the kernels can run: Triton imports (with ``tl.gather``) and there is a
    CUDA device, or ``TRITON_INTERPRET=1`` was set when Triton and this module were imported.

    A Triton without ``tl.gather`` (before 3.2) is reported by one warning."""
    return _available()


@functools.cache
def _available() -> bool:
    if triton is None:
        return False
    if not hasattr(tl, "gather"):
        warnings.warn(
            f"snakeaudio: Triton {triton.__version__} has no tl.gather (added in Triton 3.2); "
            "the anti-aliased activation uses the plain-torch path on GPU instead of the Triton kernels.",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    if _interpreted(tl.zeros) != _INTERPRET:
        return False  # Triton and these kernels disagree on the interpreter
    return _INTERPRET or torch.cuda.is_available()


def _interpreted(fn: object) -> bool:
    """Whether a ``@triton.jit`` function was decorated for the interpreter: Triton reads
    ``TRITON_INTERPRET`` at decoration, i.e. when the defining module is imported."""
    return type(fn).__name__ == "InterpretedFunction"


if triton is not None:

    @triton.jit
    def _snake(u, a, inv):
        s = tl.sin(a * u)
        return u + s * s * inv

    @triton.jit
    def _phase_base(base_ptr, p):
        """base[p], a few taps: loaded as int32 so that the index math and clamps stay 32-bit."""
        return tl.load(base_ptr + p).to(tl.int32)

    @triton.jit
    def _upsampled_phase(x_row, w_ptr, base_p, p: tl.constexpr, n, T, S: tl.constexpr):
        """U_p at positions n (any integers): the phase-p FIR on the replicate-padded row."""
        u = tl.zeros(n.shape, tl.float32)
        for s in tl.static_range(S):
            xs = tl.load(x_row + tl.minimum(tl.maximum(n + base_p + s, 0), T - 1)).to(tl.float32)
            u += tl.load(w_ptr + p * S + s) * xs
        return u

    @triton.jit
    def _aa_forward_kernel(
        x_ptr, y_ptr, alpha_ptr, inv_ptr, w_ptr, base_ptr, g_ptr,
        C, T,
        R: tl.constexpr, S: tl.constexpr, KD: tl.constexpr, PAD: tl.constexpr, DMIN: tl.constexpr,
        BLOCK: tl.constexpr, OUT_PER_TILE: tl.constexpr,
    ):  # fmt: skip
        row = tl.program_id(0)
        i0 = tl.program_id(1) * OUT_PER_TILE
        x_row = x_ptr + row.to(tl.int64) * T
        a = tl.load(alpha_ptr + row % C)
        inv = tl.load(inv_ptr + row % C)

        # The replicated edges of the activated signal, A[0] = A_0[0] and A[rT − 1] = A_{r−1}[T − 1].
        zero = tl.zeros([1], tl.int32)
        a_left = _snake(_upsampled_phase(x_row, w_ptr, _phase_base(base_ptr, 0), 0, zero, T, S), a, inv)
        last = zero + T - 1
        a_right = _snake(_upsampled_phase(x_row, w_ptr, _phase_base(base_ptr, R - 1), R - 1, last, T, S), a, inv)

        # Lane t holds outputs i = i0 + t and, per phase, the window n = i0 + DMIN + t of A_p.
        t = tl.arange(0, BLOCK)
        n = i0 + DMIN + t
        y = tl.zeros([BLOCK], tl.float32)
        for p in tl.static_range(R):
            act = _snake(_upsampled_phase(x_row, w_ptr, _phase_base(base_ptr, p), p, n, T, S), a, inv)
            act = tl.where(n < 0, a_left, tl.where(n >= T, a_right, act))
            # Down taps k = r·d + p + pad in [0, KD) read A_p[i + d], window lane t + d − DMIN.
            for d in tl.static_range(-((PAD + p) // R), (KD - 1 - PAD - p) // R + 1):
                shifted = tl.gather(act, tl.minimum(t + (d - DMIN), BLOCK - 1), 0)
                y += tl.load(g_ptr + R * d + p + PAD) * shifted

        i = i0 + t
        tl.store(y_ptr + row.to(tl.int64) * T + i, y.to(y_ptr.dtype.element_ty), mask=(t < OUT_PER_TILE) & (i < T))

    @triton.jit
    def _aa_backward_kernel(
        x_ptr, gy_ptr, gx_ptr, ga_ptr, gb_ptr, alpha_ptr, inv_ptr, w_ptr, base_ptr, g_ptr,
        C, T, n_tiles,
        R: tl.constexpr, S: tl.constexpr, KD: tl.constexpr, PAD: tl.constexpr, HAS_BETA: tl.constexpr,
        BLOCK: tl.constexpr, OUT_PER_TILE: tl.constexpr,
    ):  # fmt: skip
        row = tl.program_id(0)
        tile = tl.program_id(1)
        m0 = tile * OUT_PER_TILE  # this program writes grad_x[m0 : m0 + OUT_PER_TILE]
        x_row = x_ptr + row.to(tl.int64) * T
        gy_row = gy_ptr + row.to(tl.int64) * T
        a = tl.load(alpha_ptr + row % C)
        inv = tl.load(inv_ptr + row % C)

        # Gradient reaching A at clamped positions j = r·i + k − pad outside [0, rT):
        # it lands on A[0] (phase 0, n = 0) or A[rT − 1] (phase r − 1, n = T − 1).
        fold_a_left = tl.zeros([1], tl.float32)
        fold_a_right = tl.zeros([1], tl.float32)
        for k in tl.static_range(KD):
            for first in tl.static_range((PAD - k + R - 1) // R):  # i = first with r·i + k − pad < 0
                gy = tl.load(gy_row + first, mask=first < T, other=0.0).to(tl.float32)
                fold_a_left += tl.load(g_ptr + k) * gy
            for back in tl.static_range(1, (k - PAD) // R + 1):  # i = T − back with r·i + k − pad ≥ rT
                gy = tl.load(gy_row + T - back, mask=T >= back, other=0.0).to(tl.float32)
                fold_a_right += tl.load(g_ptr + k) * gy

        # Lane t computes grad_x at m = m0 − (S − 1) + t: the S − 1 lanes below m0 and those at T and
        # beyond are the taps that read x at clamped indices, which fold onto x[0] and x[T − 1].
        t = tl.arange(0, BLOCK)
        m = m0 - (S - 1) + t
        gx = tl.zeros([BLOCK], tl.float32)
        grad_alpha = tl.zeros([BLOCK], tl.float32)
        grad_beta = tl.zeros([BLOCK], tl.float32)
        for p in tl.static_range(R):
            base_p = _phase_base(base_ptr, p)
            tl.device_assert((base_p <= 0) & (base_p + S - 1 >= 0), "upsampler taps must straddle offset 0")
            # Window of phase p: lane t holds n = m − base_p − (S − 1), so that grad_x[m] reads
            # GU_p[m − base_p − s] at the constant lane offset t + S − 1 − s.
            n = m - base_p - (S - 1)
            inside = (n >= 0) & (n < T)
            u = _upsampled_phase(x_row, w_ptr, base_p, p, n, T, S)

            # Through the low-pass/downsample: GA_p[n] = Σ_d g[r·d + p + pad] · gy[n − d], plus the folds.
            grad_act = tl.zeros([BLOCK], tl.float32)
            for d in tl.static_range(-((PAD + p) // R), (KD - 1 - PAD - p) // R + 1):
                src = n - d
                gy = tl.load(gy_row + src, mask=inside & (src >= 0) & (src < T), other=0.0).to(tl.float32)
                grad_act += tl.load(g_ptr + R * d + p + PAD) * gy
            if p == 0:
                grad_act += tl.where(n == 0, fold_a_left, 0.0)
            if p == R - 1:
                grad_act += tl.where(n == T - 1, fold_a_right, 0.0)

            # Through the activation. The α/β gradient of position n is counted by the tile
            # whose grad_x range [m0, m0 + OUT_PER_TILE) holds n (grad_act = 0 outside [0, T)).
            owned = (n >= m0) & (n < m0 + OUT_PER_TILE)
            s = tl.sin(a * u)
            c = tl.cos(a * u)
            if HAS_BETA:
                grad_u = grad_act * (1.0 + 2.0 * s * c * a * inv)
                d_alpha = 2.0 * u * s * c * inv
                grad_beta += tl.where(owned, grad_act * (-s * s * inv * inv), 0.0)
            else:
                grad_u = grad_act * (1.0 + 2.0 * s * c)
                q = s * inv  # sin(αu)/α, finite as α → 0
                d_alpha = q * (2.0 * u * c - q)
            grad_alpha += tl.where(owned, grad_act * d_alpha, 0.0)
            grad_u = tl.where(inside, grad_u, 0.0)

            # Through the upsampler (its transpose): grad_x[m] += Σ_s W[p, s] · GU_p[m − base_p − s].
            for s_ in tl.static_range(S):
                shifted = tl.gather(grad_u, tl.minimum(t + (S - 1 - s_), BLOCK - 1), 0)
                gx += tl.load(w_ptr + p * S + s_) * shifted

        # With base ≤ 0 ≤ base + S − 1, clamped reads come from x indices in [−(S − 1), T + S − 2],
        # all held by lanes whose gathers stayed inside the window (t ≤ BLOCK − S).
        fold_x_left = tl.sum(tl.where(m < 0, gx, 0.0))
        fold_x_right = tl.sum(tl.where((m >= T) & (t <= BLOCK - S), gx, 0.0))
        gx += tl.where(m == 0, fold_x_left, 0.0) + tl.where(m == T - 1, fold_x_right, 0.0)
        out = (m >= m0) & (m < m0 + OUT_PER_TILE) & (m < T)
        tl.store(gx_ptr + row.to(tl.int64) * T + m, gx.to(gx_ptr.dtype.element_ty), mask=out)
        tl.store(ga_ptr + row * n_tiles + tile, tl.sum(grad_alpha))
        if HAS_BETA:
            tl.store(gb_ptr + row * n_tiles + tile, tl.sum(grad_beta))


_INTERPRET = triton is not None and _interpreted(_aa_forward_kernel)
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _check(
    x: Tensor,
    alpha: Tensor,
    inv_scale: Tensor,
    up_weight: Tensor,
    up_base: Tensor,
    down_taps: Tensor,
    down_pad: int,
    grad: Tensor | None = None,
) -> None:
    if not triton_available():
        raise RuntimeError(
            "the Triton anti-aliased Snake kernels need the `triton` package (>= 3.2) and a CUDA device, "
            "or TRITON_INTERPRET=1 set before importing triton"
        )
    check_aa_arguments(x, alpha, inv_scale, up_weight, up_base, down_taps, down_pad, _DTYPES, grad=grad)
    if x.device.type == "cpu" and not _INTERPRET:
        raise ValueError("the Triton kernels run CPU tensors only under TRITON_INTERPRET=1; got a CPU tensor")
    if x.device.type not in ("cpu", "cuda"):
        raise ValueError(f"the Triton kernels run CUDA tensors, got x on {x.device}")
    if up_base.device.type == "cpu":  # free to check here; on GPU the kernel asserts it in debug mode
        width = up_weight.shape[1]
        if any(not (b <= 0 <= b + width - 1) for b in up_base.tolist()):
            raise ValueError(
                f"every upsampler phase must have taps on both sides of offset 0 (base <= 0 <= base + S - 1), "
                f"got base {up_base.tolist()} with S = {width}"
            )


# Lanes per program are a power of two and include the halo, so a tile yields
# ``block − halo`` outputs. Among these sizes the default minimises the lanes launched
# plus a per-program overhead (in lanes): long rows get long tiles, while short rows
# (often powers of two, where ``T + halo`` just misses one) get tiles that waste less.
_BLOCKS = (32, 64, 128, 256, 512, 1024)
_PROGRAM_OVERHEAD = 32
# A register budget stated to ptxas: left to itself, ptxas 12.9 compiles the bfloat16 forward
# for 8 warps into 64 registers and spills; told 128 it takes 80 and spills nothing
# (``python benchmarks/triton_aot.py`` prints registers and spills per launch configuration).
_MAX_REGISTERS = 128


def _block(length: int, halo: int, block_size: int | None, largest: int) -> int:
    if block_size is not None:
        if block_size & (block_size - 1) or block_size <= halo:
            raise ValueError(f"block_size must be a power of two above the halo of {halo}, got {block_size}")
        return block_size
    sizes = [b for b in _BLOCKS if halo < b <= largest] or [triton.next_power_of_2(halo + 1)]
    return min(sizes, key=lambda b: (triton.cdiv(length, b - halo) * (b + _PROGRAM_OVERHEAD), -b))


def _forward_config(
    length: int, ratio: int, width: int, kd: int, down_pad: int, block_size: int | None = None
) -> dict[str, int]:
    """The forward kernel's constexprs and launch options (``num_warps``, ``maxnreg``) for rows of ``length``."""
    dmin, dmax = -((down_pad + ratio - 1) // ratio), (kd - 1 - down_pad) // ratio
    block = _block(length, dmax - dmin, block_size, largest=1024)
    return dict(
        R=ratio, S=width, KD=kd, PAD=down_pad, DMIN=dmin, BLOCK=block, OUT_PER_TILE=block - (dmax - dmin),
        num_warps=max(1, block // 128), maxnreg=_MAX_REGISTERS,  # 4 lanes a thread
    )  # fmt: skip


def _backward_config(
    length: int, ratio: int, width: int, kd: int, down_pad: int, block_size: int | None = None
) -> dict[str, int]:
    """The backward kernel's constexprs (but ``HAS_BETA``) and launch options for rows of ``length``."""
    halo = 3 * (width - 1)  # S − 1 lanes of halo for the gathers, 2(S − 1) for the folds
    block = _block(length, halo, block_size, largest=512)
    return dict(
        R=ratio, S=width, KD=kd, PAD=down_pad, BLOCK=block, OUT_PER_TILE=block - halo,
        num_warps=max(1, block // 64), maxnreg=_MAX_REGISTERS,  # 2 lanes a thread
    )  # fmt: skip


def _tiles(length: int, out_per_tile: int) -> int:
    tiles = triton.cdiv(length, out_per_tile)
    if tiles > 65535:  # CUDA's limit on the grid's second axis
        raise ValueError(f"rows of {length} samples need {tiles} tiles of {out_per_tile}, more than 65535")
    return tiles


def aa_snake_forward_triton(
    x: Tensor,
    alpha: Tensor,
    inv_scale: Tensor,
    up_weight: Tensor,
    up_base: Tensor,
    down_taps: Tensor,
    down_pad: int,
    *,
    block_size: int | None = None,
) -> Tensor:
    """Fused upsample ×r → Snake → low-pass → downsample ×r.

    Args:
        x: input, float32/float16/bfloat16 (computed in float32, stored in its dtype).
        alpha: α per channel (C,) float32, already moved away from 0.
        inv_scale: 1/α (Snake) or 1/β (SnakeBeta) per channel (C,) float32.
        up_weight, up_base: the polyphase upsampler (r, S) float32 and (r,) int64
            (:func:`~snakeaudio.nn.antialias.polyphase_upsample_taps`).
        down_taps: the low-pass (Kd,) float32; down_pad: its left padding.
        block_size: lanes per program (a power of two); default from T.

    Every tensor must be contiguous and on x's device; anything else is refused
    (``TypeError`` for a dtype, ``ValueError`` otherwise), never reinterpreted.

    Shape: (B, C, T) -> (B, C, T), dtype of x.
    """
    _check(x, alpha, inv_scale, up_weight, up_base, down_taps, down_pad)
    batch, channels, length = x.shape
    config = _forward_config(length, *up_weight.shape, down_taps.numel(), down_pad, block_size)
    y = torch.empty_like(x)
    if y.numel() == 0:
        return y
    grid = (batch * channels, _tiles(length, config["OUT_PER_TILE"]))
    with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
        _aa_forward_kernel[grid](x, y, alpha, inv_scale, up_weight, up_base, down_taps, channels, length, **config)
    return y


def aa_snake_backward_triton(
    x: Tensor,
    grad: Tensor,
    alpha: Tensor,
    inv_scale: Tensor,
    has_beta: bool,
    up_weight: Tensor,
    up_base: Tensor,
    down_taps: Tensor,
    down_pad: int,
    *,
    block_size: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of :func:`aa_snake_forward_triton`, recomputing the upsampled signal from x.

    Args: as :func:`aa_snake_forward_triton`, plus ``grad`` (the gradient of y, shaped
    and typed like x) and ``has_beta`` (SnakeBeta: ``inv_scale`` is 1/β and β gets a gradient).

    The upsampler tables must have taps on both sides of offset 0 in every phase
    (``base[p] <= 0 <= base[p] + S - 1``), as every table from
    :func:`~snakeaudio.nn.antialias.polyphase_upsample_taps` does.

    Returns: ``(grad_x, grad_alpha, grad_beta)``: grad_x shaped and typed like x,
    the parameter gradients (C,) float32 (``grad_beta`` zeros without β).
    """
    _check(x, alpha, inv_scale, up_weight, up_base, down_taps, down_pad, grad)
    batch, channels, length = x.shape
    config = _backward_config(length, *up_weight.shape, down_taps.numel(), down_pad, block_size)
    n_tiles = _tiles(length, config["OUT_PER_TILE"])
    grad_x = torch.empty_like(x)
    partial_alpha = torch.zeros(batch, channels, n_tiles, device=x.device, dtype=torch.float32)
    partial_beta = torch.zeros_like(partial_alpha) if has_beta else partial_alpha  # unused without β
    if grad_x.numel() > 0:
        with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
            _aa_backward_kernel[(batch * channels, n_tiles)](
                x, grad, grad_x, partial_alpha, partial_beta, alpha, inv_scale, up_weight, up_base, down_taps,
                channels, length, n_tiles, HAS_BETA=bool(has_beta), **config,
            )  # fmt: skip
    grad_alpha = partial_alpha.sum((0, 2))
    grad_beta = partial_beta.sum((0, 2)) if has_beta else torch.zeros_like(grad_alpha)
    return grad_x, grad_alpha, grad_beta

