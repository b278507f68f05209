"""Build, cache and load the fused CPU kernels.

The kernels are plain C++ with a C ABI (no torch headers), compiled on first use
with the system C++ compiler, cached under ``$SNAKEAUDIO_CACHE`` (default
``~/.cache/snakeaudio``) by a hash of the source, compiler and CPU, and loaded
with :mod:`ctypes`. The build runs with a timeout and writes its result
atomically, so a killed or concurrent build never leaves a half-written library
or a lock behind. When no compiler is available the callers fall back to the
plain-torch reference, after one warning.

Set ``SNAKEAUDIO_DISABLE_CPU_KERNELS=1`` to force the reference path.

The wrappers below (``snake_*_cpu``, ``aa_snake_*_cpu``) are the only callers of the
library: they check dtypes, shapes, layout and device before passing pointers.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from importlib import resources
from pathlib import Path

import torch
from torch import Tensor

from ._common import check_aa_arguments, check_tensor, compile_constant

__all__ = [
    "cpu_library",
    "cpu_kernels_available",
    "cache_dir",
    "cache_root",
    "threads_for",
    "snake_forward_cpu",
    "snake_backward_cpu",
    "aa_snake_forward_cpu",
    "aa_snake_backward_cpu",
]

_SOURCE = "snake_cpu.cpp"
_BUILD_TIMEOUT_S = 180
_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-fopenmp", "-fno-math-errno", "-ffp-contract=fast"]


def cache_root() -> Path:
    """Folder of snakeaudio's caches: ``$SNAKEAUDIO_CACHE``, else ``~/.cache/snakeaudio``."""
    return Path(os.environ.get("SNAKEAUDIO_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "snakeaudio"))


def cache_dir() -> Path:
    """Folder where compiled kernels are cached."""
    return cache_root() / "kernels"


def _cpu_fingerprint() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        flags = ""
    return platform.machine() + flags


def _arch_flags(compiler: str) -> list[str]:
    # -march=native is safe because the cache key includes the CPU's feature flags.
    probe = subprocess.run([compiler, "-march=native", "-E", "-x", "c++", os.devnull], capture_output=True, timeout=30)
    return ["-march=native"] if probe.returncode == 0 else []


def _build(source: str, target: Path, compiler: str, flags: list[str]) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / _SOURCE
        src.write_text(source)
        out = Path(tmp) / target.name
        result = subprocess.run(
            [compiler, *flags, str(src), "-o", str(out)], capture_output=True, text=True, timeout=_BUILD_TIMEOUT_S
        )
        if result.returncode != 0:
            raise RuntimeError(f"{compiler} failed:\n{result.stderr[-2000:]}")
        os.replace(out, target)  # atomic: readers see the old state or the whole library


@functools.cache
def cpu_library() -> ctypes.CDLL | None:
    """The compiled kernel library, or ``None`` (with one warning) when it cannot be built."""
    if os.environ.get("SNAKEAUDIO_DISABLE_CPU_KERNELS", "") not in ("", "0"):
        return None
    try:
        compiler = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
        if compiler is None:
            raise RuntimeError("no C++ compiler found (set CXX or install g++)")
        source = resources.files(__package__).joinpath(_SOURCE).read_text()
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
        flags = _FLAGS + _arch_flags(compiler)
        key = hashlib.sha256("\0".join([source, compiler, version, *flags, _cpu_fingerprint()]).encode()).hexdigest()
        target = cache_dir() / f"snake_cpu_{key[:20]}.so"
        if not target.exists():
            _build(source, target, compiler, flags)
        lib = _load_passive(target)
        _declare(lib)
        return lib
    except (OSError, RuntimeError, subprocess.SubprocessError) as err:
        warnings.warn(
            f"snakeaudio: the fused CPU kernels could not be built ({err}); using the slower plain-torch path.",
            RuntimeWarning,
            stacklevel=2,
        )
        return None


def _load_passive(path: Path) -> ctypes.CDLL:
    """Load the library so that its OpenMP threads sleep between calls instead of spinning.

    The kernels' OpenMP runtime is a second one beside torch's; spinning threads of two
    runtimes (or two processes) on the same cores slowed each other 3x in our measurements.
    The OpenMP runtime reads OMP_WAIT_POLICY when it is loaded, which happens here; the
    variable is restored right after, so nothing else in the process sees it.
    """
    previous = os.environ.get("OMP_WAIT_POLICY")
    if previous is None:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        return ctypes.CDLL(str(path))
    finally:
        if previous is None:
            del os.environ["OMP_WAIT_POLICY"]


@compile_constant
def cpu_kernels_available() -> bool:
    """Whether the fused CPU kernels can run (a constant for ``torch.compile``)."""
    return cpu_library() is not None


def _call(name: str, *args: object) -> None:
    """Call kernel ``name``; tensors are passed as pointers to their data, checked by the caller."""
    lib = cpu_library()
    if lib is None:
        raise RuntimeError(
            "the fused CPU kernels are not available (no C++ compiler, or SNAKEAUDIO_DISABLE_CPU_KERNELS is set)"
        )
    getattr(lib, name)(*(a.data_ptr() if isinstance(a, torch.Tensor) else a for a in args))


def threads_for(work: int, grain: int = 1 << 16) -> int:
    """Threads worth starting for ``work`` elements: one per ``grain``, at most torch's count.

    Small calls stay serial: a parallel region costs more than it saves there, and much
    more when other processes share the cores.
    """
    return max(1, min(torch.get_num_threads(), work // grain))


def _declare(lib: ctypes.CDLL) -> None:
    p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.snake_forward.argtypes = [p, p, p, p, i64, i64, i64, i32]
    lib.snake_forward.restype = None
    lib.snake_backward.argtypes = [p, p, p, p, i32, p, p, p, i64, i64, i64, i32]
    lib.snake_backward.restype = None
    lib.aa_snake_forward.argtypes = [p, p, p, p, i64, i64, i64, i64, p, p, i64, p, i64, i64, i32]
    lib.aa_snake_forward.restype = None
    lib.aa_snake_backward.argtypes = [p, p, p, p, i32, p, p, p, i64, i64, i64, i64, p, p, i64, p, i64, i64, i32]
    lib.aa_snake_backward.restype = None


# ---------------------------------------------------------------------------
# Checked entry points
# ---------------------------------------------------------------------------

_CPU = torch.device("cpu")
_F32 = (torch.float32,)


def _check_snake(x: Tensor, alpha: Tensor, inv_scale: Tensor, grad: Tensor | None = None) -> None:
    check_tensor("x", x, _F32, _CPU, (None, None, None))
    channels = x.shape[1]
    if grad is not None:
        check_tensor("grad", grad, _F32, _CPU, tuple(x.shape))
    check_tensor("alpha", alpha, _F32, _CPU, (channels,))
    check_tensor("inv_scale", inv_scale, _F32, _CPU, (channels,))


def snake_forward_cpu(x: Tensor, alpha: Tensor, inv_scale: Tensor) -> Tensor:
    """``y = x + sin²(αx)·inv_scale`` per channel, α already away from zero.

    Args: x (rows, C, n) float32, contiguous, on CPU; alpha, inv_scale (C,) float32.

    Shape: (rows, C, n) -> (rows, C, n).
    """
    _check_snake(x, alpha, inv_scale)
    y = torch.empty_like(x)
    rows, channels, n = x.shape
    _call("snake_forward", x, alpha, inv_scale, y, rows * channels, channels, n, threads_for(x.numel()))
    return y


def snake_backward_cpu(
    x: Tensor, grad: Tensor, alpha: Tensor, inv_scale: Tensor, has_beta: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of :func:`snake_forward_cpu` (``inv_scale`` is 1/β and β gets a gradient when ``has_beta``).

    Returns: grad_x (rows, C, n), grad_alpha and grad_beta (C,) float32 (zeros without β).
    """
    _check_snake(x, alpha, inv_scale, grad)
    rows, channels, n = x.shape
    grad_x = torch.empty_like(x)
    grad_alpha = x.new_empty(rows, channels)
    grad_beta = x.new_zeros(rows, channels)
    _call(
        "snake_backward", x, grad, alpha, inv_scale, int(has_beta), grad_x, grad_alpha, grad_beta,
        rows * channels, channels, n, threads_for(x.numel()),
    )  # fmt: skip
    return grad_x, grad_alpha.sum(0), grad_beta.sum(0)


def aa_snake_forward_cpu(
    x: Tensor, alpha: Tensor, inv_scale: Tensor, up_weight: Tensor, up_base: Tensor, down_taps: Tensor, down_pad: int
) -> Tensor:
    """Fused upsample ×r → Snake → low-pass → downsample ×r, in float32.

    Args: as :func:`~snakeaudio.kernels.triton_antialias.aa_snake_forward_triton`, with x
    float32 on CPU; every tensor contiguous.

    Shape: (B, C, T) -> (B, C, T).
    """
    check_aa_arguments(x, alpha, inv_scale, up_weight, up_base, down_taps, down_pad, _F32)
    if x.device != _CPU:
        raise ValueError(f"the C++ kernels run CPU tensors, got x on {x.device}")
    y = torch.empty_like(x)
    batch, channels, length = x.shape
    ratio, width = up_weight.shape
    _call(
        "aa_snake_forward", x, alpha, inv_scale, y, batch * channels, channels, length,
        ratio, up_weight, up_base, width, down_taps, down_taps.numel(), down_pad, threads_for(8 * x.numel()),
    )  # fmt: skip
    return y


def aa_snake_backward_cpu(
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
    """Gradients of :func:`aa_snake_forward_cpu`, recomputing the upsampled signal from x.

    Returns: grad_x (B, C, T), grad_alpha and grad_beta (C,) float32 (zeros without β).
    """
    check_aa_arguments(x, alpha, inv_scale, up_weight, up_base, down_taps, down_pad, _F32, grad=grad)
    if x.device != _CPU:
        raise ValueError(f"the C++ kernels run CPU tensors, got x on {x.device}")
    batch, channels, length = x.shape
    ratio, width = up_weight.shape
    grad_x = torch.empty_like(x)
    grad_alpha = x.new_empty(batch, channels)
    grad_beta = x.new_zeros(batch, channels)
    _call(
        "aa_snake_backward", x, grad, alpha, inv_scale, int(has_beta), grad_x, grad_alpha, grad_beta,
        batch * channels, channels, length, ratio, up_weight, up_base, width, down_taps, down_taps.numel(),
        down_pad, threads_for(8 * x.numel()),
    )  # fmt: skip
    return grad_x, grad_alpha.sum(0), grad_beta.sum(0)
