"""Anti-aliased Snake on a CUDA GPU: snakeaudio's fused Triton path against BigVGAN's
``Activation1d`` (its torch path and its CUDA kernel), correctness then speed, in one table.

On the GPU machine (torch, Triton, nvcc; no package registry, nothing else installed):

    python benchmarks/gpu_antialias.py

BigVGAN comes from the wheelhouse ``benchmarks/wheelhouse/``, built beforehand where a package
registry is reachable, and copied along with the repository:

    python benchmarks/build_wheelhouse.py

It holds BigVGAN 2.4.1 and, for building its CUDA kernel where the machine lacks them,
setuptools (``torch.utils.cpp_extension`` imports it) and ninja (x86_64 and aarch64). The wheels
are unpacked next to themselves; BigVGAN's ``activations`` and ``alias_free_activation`` import
only torch and are loaded without ``bigvgan/__init__.py``, which would import huggingface_hub,
librosa, matplotlib and scipy. Without a wheelhouse an installed bigvgan is used; without
either the baseline is snakeaudio's own reference path, and the table says so.

BigVGAN's CUDA kernel (forward only) is built for this device's architecture alone, from the
package's .cu/.cpp sources with ``torch.utils.cpp_extension.load`` (BigVGAN's own loader asks
for compute_70, which nvcc 13 rejects), in a subprocess with a time limit that runs while the
first sections do.

The table: correctness of the output and of every gradient (x, log α, log β) against BigVGAN's
torch path in float64; time and peak memory of forward and forward+backward against BigVGAN's
torch path, and of forward against its CUDA kernel; torch.compile(fullgraph=True); a training
step replayed from a CUDA graph; the bandwidth achieved against a device-to-device copy.

``--dry-run`` runs every section on CPU under TRITON_INTERPRET=1 with tiny shapes, without
timing and without building the CUDA kernel (it prints the build it would run): a check that
this script works before a GPU is spent on it (``tests/test_gpu_antialias_script.py``).

The exit status is 1 when a correctness check failed or a section crashed.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__" and "--dry-run" in sys.argv[1:]:
    # Triton reads TRITON_INTERPRET when it is imported, which happens below.
    os.environ.setdefault("TRITON_INTERPRET", "1")

import argparse
import contextlib
import copy
import importlib
import importlib.util
import json
import math
import platform
import shutil
import stat
import statistics
import subprocess
import tempfile
import time
import traceback
import types
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from snakeaudio.nn import Snake, SnakeBeta
from snakeaudio.nn.antialias import AntiAliasedActivation1d

WHEELHOUSE = Path(__file__).resolve().parent / "wheelhouse"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
KINDS = ("snake", "snakebeta")
RATIO_THREE = {"up_ratio": 3, "down_ratio": 3, "up_kernel_size": 18, "down_kernel_size": 18}


@dataclass
class Setup:
    """What a run measures: the GPU run, or the dry run's tiny CPU version of it."""

    device: torch.device
    dry_run: bool
    repeats: int
    shapes: list[tuple[int, int, int]]  # (B, C, T) timed
    rows: tuple[int, int]  # (B, C) of the correctness cases
    lengths: list[int]  # their T
    large: tuple[int, int, int] | None  # one large case checked too
    deadline: float  # time.perf_counter() after which the remaining sections are skipped
    table: list[tuple[str, ...]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @classmethod
    def gpu(cls, repeats: int, time_limit: float) -> Setup:
        shapes = [(4, 512, 2048), (4, 64, 65536), (16, 1536, 256)]
        return cls(torch.device("cuda"), False, repeats, shapes, (2, 6), [1, 2, 7, 1000, 4099], (4, 64, 65536),
                   time.perf_counter() + time_limit)  # fmt: skip

    @classmethod
    def dry(cls) -> Setup:
        return cls(torch.device("cpu"), True, 1, [(1, 1, 16)], (1, 2), [7], None, math.inf)

    def row(self, section: str, case: str, measure: str, ours: str, baseline: str, ratio: str = "", note: str = "",
            ) -> None:  # fmt: skip
        self.table.append((section, case, measure, ours, baseline, ratio, note))
        print(f"  {case:<34} {measure:<22} {ours:>18} {baseline:>24} {ratio:>12}  {note}", flush=True)

    def check(self, section: str, case: str, measure: str, error: float, tolerance: float, against: str) -> None:
        ok = error <= tolerance  # False for NaN
        if not ok:
            self.failures.append(f"{section}: {case} {measure}")
        verdict = f"{'ok' if ok else 'FAIL'} vs {against}"
        self.row(section, case, measure, f"{error:.2e}", f"tol {tolerance:.0e}", "", verdict)


# ---------------------------------------------------------------------------
# BigVGAN from the wheelhouse
# ---------------------------------------------------------------------------


@dataclass
class BigVGAN:
    """BigVGAN's Snake, SnakeBeta and torch Activation1d, and the folder of its package sources."""

    Snake: type
    SnakeBeta: type
    Activation1d: type
    package: Path
    origin: str


def unpack_wheelhouse(wheelhouse: Path) -> dict[str, Path]:
    """Unpack every wheel of ``wheelhouse`` into ``wheelhouse/unpacked/<wheel>`` (once) and
    return the folders by project name (``bigvgan``, ``setuptools``, ``ninja``); a ninja wheel
    for another machine than this one is left packed."""
    found = {}
    for wheel in sorted(wheelhouse.glob("*.whl")):
        project = wheel.name.split("-")[0].lower()
        if project == "ninja" and not wheel.name.removesuffix(".whl").endswith(platform.machine()):
            continue
        target = wheelhouse / "unpacked" / wheel.name.removesuffix(".whl")
        if not target.is_dir():
            partial = target.with_name(target.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(partial)
            partial.rename(target)
        found[project] = target
    return found


def prepare_cuda_build(unpacked: dict[str, Path]) -> list[str]:
    """What ``torch.utils.cpp_extension`` needs and this machine may lack: the wheelhouse's
    setuptools on sys.path and its ninja on PATH where there are none, and ``$CUDA_HOME`` where
    torch would guess it wrong (from an nvcc in /usr/local/bin it guesses /usr/local). Returns
    what it set."""
    taken = []
    if importlib.util.find_spec("setuptools") is None and "setuptools" in unpacked:
        folder = str(unpacked["setuptools"])
        sys.path.append(folder)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), folder]))  # the build
        taken.append("setuptools from the wheelhouse")
    if shutil.which("ninja") is None and "ninja" in unpacked:
        for binary in unpacked["ninja"].glob("*.data/scripts/ninja"):
            binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            os.environ["PATH"] = f"{binary.parent}{os.pathsep}{os.environ.get('PATH', '')}"
            taken.append("ninja from the wheelhouse")
    if not (os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")):
        nvcc = shutil.which("nvcc")
        candidates = ([Path(nvcc).resolve().parents[1]] if nvcc else []) + [Path("/usr/local/cuda")]
        toolkit = next((c for c in candidates if (c / "include" / "cuda_runtime.h").is_file()), None)
        if toolkit is not None:
            os.environ["CUDA_HOME"] = str(toolkit)
            taken.append(f"CUDA_HOME={toolkit}")
    return taken


def load_bigvgan(wheelhouse: Path) -> BigVGAN | None:
    """BigVGAN from the wheelhouse, else an installed one, else None."""
    package, origin = None, ""
    unpacked = unpack_wheelhouse(wheelhouse) if wheelhouse.is_dir() else {}
    if "bigvgan" in unpacked:
        package, origin = unpacked["bigvgan"] / "bigvgan", f"wheelhouse {unpacked['bigvgan'].name}"
    elif (spec := importlib.util.find_spec("bigvgan")) is not None and spec.submodule_search_locations:
        package, origin = Path(list(spec.submodule_search_locations)[0]), "installed"
    if package is None or not (package / "activations.py").is_file():
        return None
    # A bare package module: its submodules import, its __init__ (and what that imports) does not run.
    stub = types.ModuleType("bigvgan")
    stub.__path__ = [str(package)]
    sys.modules["bigvgan"] = stub
    activations = importlib.import_module("bigvgan.activations")
    act = importlib.import_module("bigvgan.alias_free_activation.torch.act")
    return BigVGAN(activations.Snake, activations.SnakeBeta, act.Activation1d, package, origin)


# ---------------------------------------------------------------------------
# BigVGAN's CUDA kernel, built for this device
# ---------------------------------------------------------------------------


def cuda_library_headers() -> list[str]:
    """Folders with the CUDA library headers that torch's CUDA headers include (cuBLAS, cuSPARSE,
    cuSOLVER) where nvcc's toolkit lacks them, taken from the nvidia-* wheels torch depends on."""
    from torch.utils.cpp_extension import CUDA_HOME

    headers = ("cusparse.h", "cublas_v2.h", "cublasLt.h", "cusolverDn.h")
    toolkit = Path(CUDA_HOME or "/usr/local/cuda") / "include"
    missing = [h for h in headers if not (toolkit / h).is_file()]
    spec = importlib.util.find_spec("nvidia")
    if not missing or spec is None or not spec.submodule_search_locations:
        return []
    found: list[str] = []
    for root in spec.submodule_search_locations:
        for include in sorted(Path(root).glob("*/include")):
            if any((include / h).is_file() for h in missing) and str(include) not in found:
                found.append(str(include))
    return found


def cuda_build_plan(package: Path, capability: tuple[int, int]) -> dict:
    """``torch.utils.cpp_extension.load`` arguments for BigVGAN's kernel: its flags, but code
    for ``capability`` only (its loader adds compute_70 and compute_80)."""
    arch = f"{capability[0]}{capability[1]}"
    sources = package / "alias_free_activation" / "cuda"
    return {
        "name": f"bigvgan_anti_alias_activation_sm{arch}",
        "sources": [str(sources / "anti_alias_activation.cpp"), str(sources / "anti_alias_activation_cuda.cu")],
        "build_directory": str(Path(tempfile.gettempdir()) / f"snakeaudio-bigvgan-cuda-sm{arch}"),
        "extra_include_paths": cuda_library_headers(),
        "extra_cflags": ["-O3"],
        "extra_cuda_cflags": ["-O3", "-gencode", f"arch=compute_{arch},code=sm_{arch}", "--use_fast_math",
                              "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
                              "--expt-relaxed-constexpr", "--expt-extended-lambda"],
    }  # fmt: skip


_BUILD = "import json, sys; from torch.utils import cpp_extension as c; c.load(**json.loads(sys.argv[1]), verbose=True)"


class CudaBuild:
    """BigVGAN's CUDA kernel built in a subprocess (so that a slow or broken nvcc cannot hang the
    benchmark), started early and collected when the section that needs it runs."""

    def __init__(self, plan: dict, timeout: float) -> None:
        self.plan, self.timeout, self.started = plan, timeout, time.perf_counter()
        Path(plan["build_directory"]).mkdir(parents=True, exist_ok=True)
        self.log = open(Path(plan["build_directory"]) / "build.log", "w+")  # noqa: SIM115
        command = [sys.executable, "-c", _BUILD, json.dumps(plan)]
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    def module(self) -> types.ModuleType | str:
        """The built extension, or why there is none."""
        remaining = self.timeout - (time.perf_counter() - self.started)
        try:
            code = self.process.wait(timeout=max(remaining, 1.0))
        except subprocess.TimeoutExpired:
            self.process.kill()
            return f"no result within {self.timeout:.0f}s (log: {self.log.name})"
        if code != 0:
            self.log.seek(0)
            lines = [line.rstrip() for line in self.log if line.strip()]
            errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
            return f"exit status {code}: {(errors or lines or ['no output'])[0][:300]} (log: {self.log.name})"
        from torch.utils import cpp_extension

        return cpp_extension.load(**self.plan)  # built: this only loads it


def bigvgan_cuda_activation(big: BigVGAN, extension: types.ModuleType) -> type:
    """BigVGAN's CUDA ``Activation1d``, its import-time ``load.load()`` answered with ``extension``."""
    loader = types.ModuleType("bigvgan.alias_free_activation.cuda.load")
    loader.load = lambda: extension
    importlib.import_module("bigvgan.alias_free_activation.cuda")
    sys.modules[loader.__name__] = loader
    sys.modules["bigvgan.alias_free_activation.cuda"].load = loader
    return importlib.import_module("bigvgan.alias_free_activation.cuda.activation1d").Activation1d


# ---------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------


def measure(setup: Setup, fns: dict[str, Callable[[], object]], warmup: int = 3) -> dict[str, float]:
    """Median milliseconds per call on the GPU timeline, candidates interleaved; in the dry run,
    one call each and NaN."""
    if setup.dry_run:
        for fn in fns.values():
            fn()
        return dict.fromkeys(fns, math.nan)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    torch.cuda.synchronize()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(setup.repeats):
        for name, fn in fns.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples[name].append(start.elapsed_time(end))
    return {name: statistics.median(s) for name, s in samples.items()}


def peak_mib(setup: Setup, fn: Callable[[], object]) -> float:
    """Memory allocated by one call above what was allocated before it, MiB (NaN on CPU)."""
    if setup.device.type != "cuda":
        return math.nan
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2**20


def inference(module: torch.nn.Module, x: torch.Tensor) -> Callable[[], object]:
    def run() -> object:
        with torch.inference_mode():
            return module(x)

    return run


def training_step(module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    """Forward and backward from a leaf copy of x, gradients reset each call."""
    leaf = x.detach().clone().requires_grad_()

    def run() -> None:
        leaf.grad = None
        module.zero_grad(set_to_none=True)
        module(leaf).backward(grad)

    return run


def max_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (actual.double() - expected.double()).abs().max().item()


def ms(t: float) -> str:
    return "-" if math.isnan(t) else f"{t:.3f} ms"


def mib(m: float) -> str:
    return "-" if math.isnan(m) else f"{m:.0f} MiB"


def ratio(slow: float, fast: float) -> str:
    return "-" if math.isnan(slow) or math.isnan(fast) or fast <= 0 else f"{slow / fast:.2f}x"


# ---------------------------------------------------------------------------
# Modules with shared random parameters
# ---------------------------------------------------------------------------


class ReferencePath(torch.nn.Module):
    """snakeaudio's plain-torch path, the baseline when BigVGAN is not available."""

    def __init__(self, module: AntiAliasedActivation1d) -> None:
        super().__init__()
        self.module = module
        self.act = module.act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.reference(x)


def make_ours(setup: Setup, kind: str, channels: int, seed: int = 0, **filters: int) -> AntiAliasedActivation1d:
    """snakeaudio's anti-aliased (Snake|SnakeBeta) on the Triton path, log-scale parameters drawn at random."""
    gen = torch.Generator().manual_seed(seed)
    act = Snake(channels, log_scale=True) if kind == "snake" else SnakeBeta(channels, log_scale=True)
    with torch.no_grad():
        act.alpha.uniform_(-1.0, 1.0, generator=gen)  # α in [0.37, 2.7]
        if kind == "snakebeta":
            act.beta.uniform_(-0.5, 0.5, generator=gen)
    return AntiAliasedActivation1d(act, **filters, backend="triton").to(setup.device)


def make_modules(
    setup: Setup, big: BigVGAN | None, kind: str, channels: int, seed: int = 0, **filters: int
) -> tuple[AntiAliasedActivation1d, torch.nn.Module]:
    """snakeaudio's module and BigVGAN's torch ``Activation1d`` with the same parameters (without
    BigVGAN, snakeaudio's reference path)."""
    ours = make_ours(setup, kind, channels, seed, **filters)
    if big is None:
        return ours, ReferencePath(ours)
    big_act = (big.Snake if kind == "snake" else big.SnakeBeta)(channels, alpha_logscale=True)
    big_act.load_state_dict(ours.act.state_dict())  # both store log α (and log β) as `alpha` (`beta`)
    return ours, big.Activation1d(big_act, **filters).to(setup.device)


def outputs_and_grads(module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor) -> tuple:
    """y and the gradients of (x, log α[, log β]) for the output gradient ``grad``."""
    x = x.detach().clone().requires_grad_()
    params = [module.act.alpha] + ([module.act.beta] if hasattr(module.act, "beta") else [])
    y = module(x)
    return y.detach(), torch.autograd.grad(y, [x, *params], grad)


def float64_reference(baseline: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor) -> tuple:
    """The baseline (BigVGAN's torch path) in float64, on the same (rounded) inputs."""
    return outputs_and_grads(copy.deepcopy(baseline).double(), x.double(), grad.double())


def random_pair(
    setup: Setup, shape: tuple[int, ...], dtype: torch.dtype, seed: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """An input (standard deviation 2) and an output gradient."""
    gen = torch.Generator(device=setup.device).manual_seed(seed)
    x = torch.randn(shape, device=setup.device, generator=gen) * 2
    grad = torch.randn(shape, device=setup.device, generator=gen)
    return x.to(dtype), grad.to(dtype)


def describe(kind: str, dtype: torch.dtype, shape: tuple[int, ...], filters: dict | None = None) -> str:
    name = str(dtype).removeprefix("torch.").replace("float", "f")  # f32, bf16
    return f"{kind} {name} {'x'.join(map(str, shape))}{' r=3' if filters else ''}"


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


def correctness(setup: Setup, big: BigVGAN | None) -> None:
    """Output and every gradient of the fused path against the baseline in float64."""
    against = "bigvgan torch f64" if big is not None else "snakeaudio reference f64 (no bigvgan)"
    allow_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # the float64 baseline's convolutions in full precision
    cases = [(torch.float32, (*setup.rows, length), {}) for length in setup.lengths]
    last = (*setup.rows, setup.lengths[-1])
    cases += [(torch.bfloat16, last, {}), (torch.float32, last, RATIO_THREE)]
    cases += [(torch.float32, setup.large, {})] if setup.large else []
    try:
        for kind in KINDS:
            for dtype, shape, filters in cases:
                ours, baseline = make_modules(setup, big, kind, shape[1], **filters)
                x, grad = random_pair(setup, shape, dtype)
                y, grads = outputs_and_grads(ours, x, grad)
                y_ref, grads_ref = float64_reference(baseline, x, grad)
                case = describe(kind, dtype, shape, filters)
                # Stored in x's dtype: y and grad x are exact up to that rounding.
                eps = 1e-5 if dtype == torch.float32 else torch.finfo(dtype).eps * y_ref.abs().max().item()
                setup.check("correctness", case, "y", max_err(y, y_ref), eps, against)
                setup.check("correctness", case, "grad x", max_err(grads[0], grads_ref[0]), 4 * eps, against)
                for name, g, g_ref in zip(("log α", "log β"), grads[1:], grads_ref[1:]):
                    rel = max_err(g, g_ref) / g_ref.abs().max().item()
                    setup.check("correctness", case, f"grad {name} (rel.)", rel, 1e-4, against)
    finally:
        torch.backends.cudnn.allow_tf32 = allow_tf32


def copy_bandwidth(setup: Setup, x: torch.Tensor) -> float:
    """GB/s of a device-to-device copy of x (read and write), NaN in the dry run."""
    out = torch.empty_like(x)
    t = measure(setup, {"copy": lambda: out.copy_(x)})["copy"]
    return 2 * x.numel() * x.element_size() / (t * 1e-3) / 1e9


def bandwidth_note(setup: Setup, x: torch.Tensor, passes: int, t: float, copy_gbs: float) -> str:
    """Bytes through memory (each pass reads or writes one x-sized tensor) per time, against a copy."""
    if math.isnan(t):
        return f"{passes} x-sized transfers"
    gbs = passes * x.numel() * x.element_size() / (t * 1e-3) / 1e9
    return f"{gbs:.0f} GB/s = {100 * gbs / copy_gbs:.0f}% of copy ({copy_gbs:.0f} GB/s)"


def timings(setup: Setup, big: BigVGAN | None) -> None:
    """Forward (inference) and forward+backward against BigVGAN's torch path, with peak memory
    and the bandwidth achieved (forward: x in, y out; backward adds x, grad y in, grad x out)."""
    baseline_name = "bigvgan torch" if big is not None else "snakeaudio reference"
    for shape in setup.shapes:
        for dtype in DTYPES.values():
            x, grad = random_pair(setup, shape, dtype)
            copy_gbs = copy_bandwidth(setup, x)
            for kind in KINDS:
                ours, baseline = make_modules(setup, big, kind, shape[1])
                if big is not None:
                    baseline = baseline.to(dtype)  # BigVGAN runs bfloat16 throughout (filters included)
                passes = {
                    "forward": (lambda m, x=x: inference(m, x), 2),
                    "fwd+bwd": (lambda m, x=x, grad=grad: training_step(m, x, grad), 5),
                }
                for label, (make, transfers) in passes.items():
                    t = measure(setup, {"baseline": make(baseline), "ours": make(ours)})
                    mem_base, mem_ours = peak_mib(setup, make(baseline)), peak_mib(setup, make(ours))
                    setup.row(f"vs {baseline_name}", describe(kind, dtype, shape), label,
                              f"{ms(t['ours'])} {mib(mem_ours)}", f"{ms(t['baseline'])} {mib(mem_base)}",
                              f"{ratio(t['baseline'], t['ours'])} {ratio(mem_base, mem_ours)}",
                              bandwidth_note(setup, x, transfers, t["ours"], copy_gbs))  # fmt: skip
                del ours, baseline


def bigvgan_cuda(setup: Setup, big: BigVGAN | None, build: CudaBuild | None) -> None:
    """Forward against BigVGAN's CUDA kernel (log-scale parameters, 12-tap ×2 filters only)."""
    if big is None:
        setup.row("vs bigvgan cuda", "-", "-", "-", "-", "", "skipped: bigvgan not available")
        return
    if build is None:  # the dry run: the build is planned, not run
        plan = cuda_build_plan(big.package, (9, 0))
        print(f"  would build (sm_90 shown) in a subprocess:\n    cpp_extension.load(**{json.dumps(plan, indent=6)})")
        setup.row("vs bigvgan cuda", "-", "build", "-", "-", "", "dry run: build planned, not run")
        return
    extension = build.module()
    if isinstance(extension, str):
        setup.row("vs bigvgan cuda", "-", "build", "-", "-", "", f"not built: {extension}")
        return
    setup.row("vs bigvgan cuda", "-", "build", "-", "-", "", f"built in {time.perf_counter() - build.started:.0f}s")
    cuda_activation = bigvgan_cuda_activation(big, extension)
    for shape in setup.shapes:
        for dtype in DTYPES.values():
            x, _ = random_pair(setup, shape, dtype)
            for kind in KINDS:
                ours, baseline = make_modules(setup, big, kind, shape[1])
                # It reads filters and α in x's dtype: a copy of the parameters, cast.
                fused = cuda_activation(copy.deepcopy(baseline.act)).to(setup.device).to(dtype)
                case = describe(kind, dtype, shape)
                if shape == setup.shapes[0]:
                    with torch.no_grad():
                        y_ref = float64_reference(baseline, x, torch.zeros_like(x))[0]
                        err_big, err_ours = max_err(fused(x), y_ref), max_err(inference(ours, x)(), y_ref)
                    setup.row("vs bigvgan cuda", case, "y err vs torch f64", f"{err_ours:.2e}", f"{err_big:.2e}",
                              "", "information")  # fmt: skip
                t = measure(setup, {"baseline": inference(fused, x), "ours": inference(ours, x)})
                mem_base, mem_ours = peak_mib(setup, inference(fused, x)), peak_mib(setup, inference(ours, x))
                setup.row("vs bigvgan cuda", case, "forward", f"{ms(t['ours'])} {mib(mem_ours)}",
                          f"{ms(t['baseline'])} {mib(mem_base)}", ratio(t["baseline"], t["ours"]))  # fmt: skip


def compiled(setup: Setup, big: BigVGAN | None) -> None:
    """torch.compile(fullgraph=True): our module (an opaque custom op) and BigVGAN's torch path.
    The dry run traces with the aot_eager backend (no code generation on CPU)."""
    backend = "aot_eager" if setup.dry_run else "inductor"
    shape = setup.shapes[0]
    ours, baseline = make_modules(setup, big, "snakebeta", shape[1])
    x, grad = random_pair(setup, shape, torch.float32)
    ours_c = torch.compile(ours, fullgraph=True, backend=backend)
    start = time.perf_counter()
    y_c, grads_c = outputs_and_grads(ours_c, x, grad)
    build_s = time.perf_counter() - start
    y, grads = outputs_and_grads(ours, x, grad)
    # The compiled graph computes exp(log α) and 1/β in its own kernels: last-bit differences.
    case = describe("snakebeta", torch.float32, shape)
    setup.check("torch.compile", case, "y vs eager", max_err(y_c, y), 1e-5, "eager")
    setup.check("torch.compile", case, "grad x vs eager", max_err(grads_c[0], grads[0]), 2e-5, "eager")
    rel = max_err(grads_c[2], grads[2]) / grads[2].abs().max().item()
    setup.check("torch.compile", case, "grad log β vs eager", rel, 1e-5, "eager")
    candidates = {"ours eager": ours, "ours compiled": ours_c}
    note = f"compiled in {build_s:.0f}s"
    try:
        baseline_c = torch.compile(baseline, fullgraph=True, backend=backend)
        inference(baseline_c, x)()
        candidates |= {"baseline eager": baseline, "baseline compiled": baseline_c}
    except Exception as exc:  # BigVGAN's module is not ours to fix; say so and go on
        note += f"; baseline does not compile: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    t = measure(setup, {name: inference(m, x) for name, m in candidates.items()})
    baseline_t = t.get("baseline compiled", math.nan)
    baseline_eager = t.get("baseline eager", math.nan)
    setup.row("torch.compile", case, "forward", f"{ms(t['ours compiled'])} (eager {ms(t['ours eager'])})",
              f"{ms(baseline_t)} (eager {ms(baseline_eager)})", ratio(baseline_t, t["ours compiled"]), note)  # fmt: skip


def cuda_graph(setup: Setup, big: BigVGAN | None) -> None:
    """One training step (forward + backward) captured in a CUDA graph and replayed on a new input.
    The dry run has no graphs on CPU: it replays the step eagerly, checking the rest."""
    shape = setup.shapes[0]
    ours = make_ours(setup, "snakebeta", shape[1])
    static_x, static_grad = random_pair(setup, shape, torch.float32)
    static_x.requires_grad_()

    def step() -> torch.Tensor:
        static_x.grad = None
        ours.zero_grad(set_to_none=True)
        y = ours(static_x)
        y.backward(static_grad)
        return y

    if setup.device.type == "cuda":
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm up (Triton compiles) outside the capture
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        static_x.grad = None
        ours.zero_grad(set_to_none=True)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_y = ours(static_x)
            static_y.backward(static_grad)
        replay = graph.replay
    else:
        static_y = step()

        def replay() -> None:
            static_y.copy_(step().detach())

    with torch.no_grad():
        static_x.copy_(random_pair(setup, shape, torch.float32, seed=2)[0])
    replay()
    if setup.device.type == "cuda":
        torch.cuda.synchronize()
    y_new, grads_new = outputs_and_grads(ours, static_x, static_grad)
    case = describe("snakebeta", torch.float32, shape)
    setup.check("cuda graph", case, "replay y (new input)", max_err(static_y, y_new), 1e-6, "eager")
    setup.check("cuda graph", case, "replay grad x", max_err(static_x.grad, grads_new[0]), 1e-6, "eager")
    rel = max_err(ours.act.beta.grad, grads_new[2]) / grads_new[2].abs().max().item()
    setup.check("cuda graph", case, "replay grad log β (rel.)", rel, 1e-6, "eager")
    t = measure(setup, {"eager": step, "graph": replay})
    note = "" if setup.device.type == "cuda" else "dry run: replayed eagerly"
    setup.row("cuda graph", case, "fwd+bwd", f"{ms(t['graph'])} replay", f"{ms(t['eager'])} eager",
              ratio(t["eager"], t["graph"]), note)  # fmt: skip


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def section(setup: Setup, title: str, run: Callable[[], None]) -> None:
    """``run()`` unless the time limit has passed; a crash is reported and the next section runs."""
    print(f"\n== {title} ==", flush=True)
    if time.perf_counter() > setup.deadline:
        setup.row(title, "-", "-", "-", "-", "", "skipped: over the time limit")
        return
    start = time.perf_counter()
    try:
        run()
    except Exception as exc:
        setup.failures.append(f"{title}: crashed")
        message = str(exc).splitlines()[0][:120] if str(exc) else ""
        setup.row(title, "-", "-", "-", "-", "", f"CRASHED: {type(exc).__name__}: {message}")
        traceback.print_exc(limit=6)
    finally:
        if setup.device.type == "cuda":
            with contextlib.suppress(Exception):  # a sticky CUDA error is reported by the section itself
                torch.cuda.synchronize()
                torch.cuda.empty_cache()
        print(f"({time.perf_counter() - start:.1f}s)", flush=True)


def print_table(rows: list[tuple[str, ...]]) -> None:
    header = ("section", "case", "measure", "snakeaudio", "baseline", "ratio", "note")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print("\n" + "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)]))


def main(argv: list[str] | None = None) -> int:
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0], epilog=doc.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--wheelhouse", type=Path, default=WHEELHOUSE, help="folder of wheels from build_wheelhouse.py")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per candidate (median)")
    parser.add_argument("--cuda-build-timeout", type=float, default=300.0, help="seconds for BigVGAN's nvcc build")
    parser.add_argument("--time-limit", type=float, default=390.0, help="seconds after which sections are skipped")
    parser.add_argument("--skip-bigvgan-cuda", action="store_true")
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="CPU, TRITON_INTERPRET=1, tiny shapes, no timing")
    args = parser.parse_args(argv)

    from snakeaudio.kernels import triton_antialias

    if args.dry_run:
        if not triton_antialias.triton_available():
            print("error: --dry-run needs Triton and TRITON_INTERPRET=1 set before Triton is imported "
                  "(`python benchmarks/gpu_antialias.py --dry-run` sets it)")  # fmt: skip
            return 1
        setup = Setup.dry()
    elif not torch.cuda.is_available():
        print("error: no CUDA device (try --dry-run)")
        return 1
    else:
        setup = Setup.gpu(args.repeats, args.time_limit)
    torch.manual_seed(0)
    big = load_bigvgan(args.wheelhouse)
    taken = prepare_cuda_build(unpack_wheelhouse(args.wheelhouse) if args.wheelhouse.is_dir() else {})
    triton = sys.modules.get("triton")
    device = torch.cuda.get_device_name() if setup.device.type == "cuda" else "CPU (dry run, TRITON_INTERPRET=1)"
    print(f"{device}; torch {torch.__version__} (CUDA {torch.version.cuda}), "
          f"triton {getattr(triton, '__version__', '-')}; bigvgan: {big.origin if big else 'not available'}; "
          f"for the CUDA build: {', '.join(taken) or 'nothing to add'}")  # fmt: skip

    build = None
    if big is not None and not args.skip_bigvgan_cuda and not setup.dry_run:
        plan = cuda_build_plan(big.package, torch.cuda.get_device_capability())
        print(f"building BigVGAN's CUDA kernel in the background: {' '.join(plan['extra_cuda_cflags'][1:3])}")
        build = CudaBuild(plan, args.cuda_build_timeout)

    start = time.perf_counter()
    section(setup, "correctness: output and gradients, float64 baseline", lambda: correctness(setup, big))
    section(setup, "speed and memory vs BigVGAN torch Activation1d", lambda: timings(setup, big))
    if not args.skip_compile:
        section(setup, "torch.compile(fullgraph=True)", lambda: compiled(setup, big))
    section(setup, "CUDA graph capture and replay", lambda: cuda_graph(setup, big))
    if not args.skip_bigvgan_cuda:
        section(setup, "speed vs BigVGAN CUDA kernel (forward only)", lambda: bigvgan_cuda(setup, big, build))
    if build is not None and build.process.poll() is None:
        build.process.kill()
    print_table(setup.table)
    failures = setup.failures
    print(f"\n{len(failures)} failure(s) in {time.perf_counter() - start:.0f}s" + "".join(f"\n  {f}" for f in failures))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
