"""Build, cache and load the fused CPU kernels.

The kernels are plain C++ with a C ABI (no torch headers), compiled on first use
with the system C++ compiler, cached under ``$SNAKEAUDIO_CACHE`` (default
``~/.cache/snakeaudio``) by a hash of the source, compiler and CPU, and loaded
with :mod:`ctypes`. The build runs with a timeout and writes its result
atomically, so a killed or concurrent build never leaves a half-written library
or a lock behind. When no compiler is available the callers fall back to the
plain-torch reference, after one warning.

Set ``SNAKEAUDIO_DISABLE_CPU_KERNELS=1`` to force the reference path.
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

__all__ = ["cpu_library", "cpu_kernels_available", "cache_dir", "threads_for", "call"]

_SOURCE = "snake_cpu.cpp"
_BUILD_TIMEOUT_S = 180
_FLAGS = ["-O3", "-std=c++17", "-shared", "-fPIC", "-fopenmp", "-fno-math-errno", "-ffp-contract=fast"]


def cache_dir() -> Path:
    """Folder where compiled kernels are cached."""
    root = os.environ.get("SNAKEAUDIO_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "snakeaudio")
    return Path(root) / "kernels"


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


@torch.compiler.assume_constant_result
def cpu_kernels_available() -> bool:
    """Whether the fused CPU kernels can run (a constant for ``torch.compile``)."""
    return cpu_library() is not None


def call(name: str, *args: object) -> None:
    """Call kernel ``name``; tensors are passed as pointers to their (contiguous) data."""
    getattr(cpu_library(), name)(*(a.data_ptr() if isinstance(a, torch.Tensor) else a for a in args))


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
