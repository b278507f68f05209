"""Shared measurement helpers: interleaved timing and bytes saved for backward."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch


def time_side_by_side(fns: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each function, measured in alternation so that
    machine noise hits every candidate alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(s) for name, s in samples.items()}


def saved_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of distinct storages autograd keeps for backward while running ``fn``."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


def forward_backward(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        module.zero_grad(set_to_none=True)
        module(x).sum().backward()

    return step


def inference(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        with torch.inference_mode():
            module(x)

    return step


def mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_rss_growth(fn: Callable[[], object]) -> int:
    """Bytes by which this process's peak RSS rises above its current RSS while running ``fn``
    (Linux: the peak counter is reset through /proc/self/clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    fn()
    return (_status_kib("VmHWM") - before) * 1024


def peak_memory_in_child(script: str, *args: str) -> int:
    """Run ``script *args`` in a fresh Python process and return the last integer it prints
    (its :func:`peak_rss_growth`). glibc's malloc there hands every allocation over 64 KiB
    straight back to the system when freed, so the peak follows the tensors that are alive
    rather than what earlier steps left cached in its arenas."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
    out = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.strip().splitlines()[-1])
