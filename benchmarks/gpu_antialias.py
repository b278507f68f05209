"""Anti-aliased Snake on a CUDA GPU: snakeaudio's fused Triton path against its own
reference path and BigVGAN's ``Activation1d`` (torch and CUDA), correctness then speed.

Run: python benchmarks/gpu_antialias.py [--repeats 20] [--cuda-build-timeout 150] [--skip-compile]
Needs a CUDA GPU with triton, and the reference: pip install --no-deps bigvgan==2.4.1 huggingface_hub
(BigVGAN's CUDA kernel is JIT-built by its loader with nvcc, into its package folder, on first use;
this script runs that build in a subprocess with a time limit).

Sections run independently: one that fails prints why and the others still run.
The exit status is 1 when a correctness check of snakeaudio's path failed or a section crashed.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator

import torch

from snakeaudio.nn import Snake, SnakeBeta
from snakeaudio.nn.antialias import AntiAliasedActivation1d

SHAPES = [(4, 512, 2048), (4, 64, 65536), (16, 1536, 256)]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
KINDS = ("snake", "snakebeta")
FAILURES: list[str] = []


# ---------------------------------------------------------------------------
# Harness
# ---------------------------------------------------------------------------


@contextlib.contextmanager
def section(title: str) -> Iterator[None]:
    print(f"\n== {title} ==", flush=True)
    start = time.perf_counter()
    try:
        yield
    except Exception as exc:  # a benchmark section must not stop the others
        FAILURES.append(f"{title}: crashed")
        print(f"[{title}] crashed: {type(exc).__name__}: {exc}")
        traceback.print_exc(limit=4)
    finally:
        with contextlib.suppress(Exception):  # a sticky CUDA error is reported by the section itself
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
        print(f"({time.perf_counter() - start:.1f}s)", flush=True)


def check(label: str, error: float, tolerance: float) -> None:
    ok = error <= tolerance
    if not ok:
        FAILURES.append(label)
    print(f"  {'ok  ' if ok else 'FAIL'} {label:<58} max err {error:.2e} (tol {tolerance:.0e})")


def info(label: str, error: float) -> None:
    print(f"       {label:<58} max err {error:.2e}")


def max_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (actual.double() - expected.double()).abs().max().item()


def cuda_time(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median milliseconds per call on the GPU timeline, candidates interleaved."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    torch.cuda.synchronize()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples[name].append(start.elapsed_time(end))
    return {name: statistics.median(s) for name, s in samples.items()}


def peak_mib(fn: Callable[[], object]) -> float:
    """Memory allocated by one call above what was allocated before it, MiB."""
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

# ---------------------------------------------------------------------------
# Modules with shared random parameters
# ---------------------------------------------------------------------------


class ReferencePath(torch.nn.Module):
    """snakeaudio's plain-torch path, the baseline when BigVGAN is not installed."""

    def __init__(self, module: AntiAliasedActivation1d) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module.reference(x)


def make_ours(kind: str, channels: int, seed: int = 0, **filters: int) -> AntiAliasedActivation1d:
    """snakeaudio's anti-aliased (Snake|SnakeBeta), log-scale parameters drawn at random, on the GPU."""
    gen = torch.Generator().manual_seed(seed)
    act = Snake(channels, log_scale=True) if kind == "snake" else SnakeBeta(channels, log_scale=True)
    with torch.no_grad():
        act.alpha.uniform_(-1.0, 1.0, generator=gen)  # α in [0.37, 2.7]
        if kind == "snakebeta":
            act.beta.uniform_(-0.5, 0.5, generator=gen)
    return AntiAliasedActivation1d(act, **filters).cuda()


def make_modules(kind: str, channels: int, seed: int = 0, **filters: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    """snakeaudio's module and BigVGAN's torch ``Activation1d`` with the same parameters; without
    BigVGAN installed the second is snakeaudio's reference path."""
    ours = make_ours(kind, channels, seed, **filters)
    try:
        from bigvgan.activations import Snake as BigSnake
        from bigvgan.activations import SnakeBeta as BigSnakeBeta
        from bigvgan.alias_free_activation.torch.act import Activation1d
    except ImportError:
        return ours, ReferencePath(ours)
    big_act = (BigSnake if kind == "snake" else BigSnakeBeta)(channels, alpha_logscale=True)
    big_act.load_state_dict(ours.act.state_dict())  # both store log α (and log β) as `alpha` (`beta`)
    return ours, Activation1d(big_act, **filters).cuda()


def float64_reference(module: AntiAliasedActivation1d, x: torch.Tensor, grad: torch.Tensor) -> tuple:
    """Output and gradients (x, log α[, log β]) of the reference path in float64."""
    ref = copy.deepcopy(module).double()
    x = x.detach().double().requires_grad_()
    y = ref.reference(x)
    params = [ref.act.alpha] + ([ref.act.beta] if isinstance(ref.act, SnakeBeta) else [])
    return y.detach(), torch.autograd.grad(y, [x, *params], grad.double())


def fused_and_grads(module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor) -> tuple:
    x = x.detach().clone().requires_grad_()
    params = [module.act.alpha] + ([module.act.beta] if hasattr(module.act, "beta") else [])
    y = module(x)
    return y.detach(), torch.autograd.grad(y, [x, *params], grad)


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


def correctness() -> None:
    """Fused path vs the float64 reference; BigVGAN's torch path for information."""
    allow_tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # BigVGAN's convolutions exactly in float32
    cases = [("float32", (2, 6, length), {}) for length in (1, 2, 7, 1000, 4099)]
    cases += [("bfloat16", (2, 6, 1000), {}), ("float32", (2, 6, 1000), {"up_ratio": 3, "down_ratio": 3,
              "up_kernel_size": 18, "down_kernel_size": 18}), ("float32", (4, 64, 65536), {})]  # fmt: skip
    for kind in KINDS:
        for dtype_name, shape, filters in cases:
            dtype = DTYPES[dtype_name]
            ours, big = make_modules(kind, shape[1], **filters)
            gen = torch.Generator(device="cuda").manual_seed(1)
            x = (torch.randn(shape, device="cuda", generator=gen) * 2).to(dtype)
            grad = torch.randn(shape, device="cuda", generator=gen).to(dtype)
            if not ours._fused_available(x):
                FAILURES.append(f"{kind} {dtype_name}: fused path not available")
                print(f"  FAIL {kind} {dtype_name}: the fused path is not available (triton missing?)")
                continue
            y, grads = fused_and_grads(ours, x, grad)
            y_ref, grads_ref = float64_reference(ours, x, grad)
            tag = f"{kind} {dtype_name} {tuple(shape)}{' r=3' if filters else ''}"
            eps = 1e-5 if dtype == torch.float32 else torch.finfo(dtype).eps * y_ref.abs().max().item()
            check(f"{tag} y", max_err(y, y_ref), eps)
            check(f"{tag} grad x", max_err(grads[0], grads_ref[0]), 4 * eps)
            for name, g, g_ref in zip(("log α", "log β"), grads[1:], grads_ref[1:]):
                check(f"{tag} grad {name} (rel. to max)", max_err(g, g_ref) / g_ref.abs().max().item(), 1e-4)
            if not filters and not isinstance(big, ReferencePath):
                big = big.to(dtype)
                with torch.no_grad():
                    info(f"{tag} bigvgan torch y", max_err(big(x), y_ref))
            del ours, big, x, grad, y, grads, y_ref, grads_ref
    torch.backends.cudnn.allow_tf32 = allow_tf32


def timings(repeats: int) -> None:
    """Forward (inference) and forward+backward against BigVGAN's torch path, with peak memory."""
    if isinstance(make_modules("snake", 1)[1], ReferencePath):
        print("  bigvgan is not installed: the baseline is snakeaudio's reference path")
    print(f"{'case':<36} {'pass':<9} {'bigvgan':>9} {'ours':>9} {'speedup':>8}   {'peak MiB big/ours':>18}")
    for shape in SHAPES:
        for dtype_name, dtype in DTYPES.items():
            for kind in KINDS:
                ours, big = make_modules(kind, shape[1])
                big = big.to(dtype) if not isinstance(big, ReferencePath) else big  # filters in x's dtype
                x = torch.randn(shape, device="cuda", dtype=dtype)
                grad = torch.randn(shape, device="cuda", dtype=dtype)
                passes = {"forward": lambda m: inference(m, x), "fwd+bwd": lambda m: training_step(m, x, grad)}
                tag = f"{kind} {dtype_name} {shape}"
                for label, make in passes.items():
                    t = cuda_time({"big": make(big), "ours": make(ours)}, repeats)
                    mem = f"{peak_mib(make(big)):8.0f} / {peak_mib(make(ours)):<8.0f}"
                    speed = f"{t['big']:7.3f}ms {t['ours']:7.3f}ms {t['big'] / t['ours']:7.2f}x"
                    print(f"{tag:<36} {label:<9} {speed}   {mem}")
                del ours, big


def build_bigvgan_cuda(timeout: float) -> object | None:
    """BigVGAN's fused CUDA forward, JIT-built in a subprocess first so that a slow or broken nvcc
    cannot hang this script; returns its Activation1d class, or None with the reason printed."""
    probe = "from bigvgan.alias_free_activation.cuda import activation1d"
    try:
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"  BigVGAN CUDA kernel did not build: no result within {timeout:.0f}s")
        return None
    if result.returncode != 0:
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        compiler = [line for line in lines if not line[0].isspace() and ("fatal" in line or "error:" in line)]
        print(f"  BigVGAN CUDA kernel did not build: {(lines or ['unknown error'])[-1]}")
        if compiler:  # nvcc's own complaint, e.g. an architecture this CUDA no longer supports
            print(f"    {compiler[0]}")
        return None
    from bigvgan.alias_free_activation.cuda.activation1d import Activation1d as CudaActivation1d

    return CudaActivation1d


def bigvgan_cuda(repeats: int, timeout: float) -> None:
    """Forward against BigVGAN's CUDA kernel (log-scale parameters, forward only, hard-coded filters)."""
    if isinstance(make_modules("snake", 1)[1], ReferencePath):
        print("  bigvgan is not installed")
        return
    cuda_activation = build_bigvgan_cuda(timeout)
    if cuda_activation is None:
        return
    for dtype_name, dtype in DTYPES.items():
        for kind in KINDS:
            ours, big = make_modules(kind, 8)
            fused_big = cuda_activation(big.act).cuda().to(dtype)  # the kernel reads filters and α in x's dtype
            x = torch.randn(2, 8, 1000, device="cuda", dtype=dtype) * 2
            with torch.no_grad():
                try:
                    y_big = fused_big(x)
                    torch.cuda.synchronize()
                except RuntimeError as exc:
                    print(f"  BigVGAN CUDA kernel did not run: {str(exc).splitlines()[0]}")
                    return
                y_ref, _ = float64_reference(ours, x, torch.zeros_like(x))
                info(f"{kind} {dtype_name} bigvgan cuda y vs float64 reference", max_err(y_big, y_ref))
    print(f"{'case':<36} {'pass':<9} {'big cuda':>9} {'ours':>9} {'speedup':>8}")
    for shape in SHAPES:
        for dtype_name, dtype in DTYPES.items():
            for kind in KINDS:
                ours, big = make_modules(kind, shape[1])
                fused_big = cuda_activation(big.act).cuda().to(dtype)
                x = torch.randn(shape, device="cuda", dtype=dtype)
                t = cuda_time({"big": inference(fused_big, x), "ours": inference(ours, x)}, repeats)
                tag = f"{kind} {dtype_name} {shape}"
                print(f"{tag:<36} {'forward':<9} {t['big']:7.3f}ms {t['ours']:7.3f}ms {t['big'] / t['ours']:7.2f}x")


def compiled(repeats: int) -> None:
    """torch.compile(fullgraph=True): our module (an opaque custom op) and, for scale, BigVGAN's torch path."""
    shape = SHAPES[0]
    ours, big = make_modules("snakebeta", shape[1])
    x = torch.randn(shape, device="cuda")
    grad = torch.randn(shape, device="cuda")
    ours_c = torch.compile(ours, fullgraph=True)
    start = time.perf_counter()
    y_c, grads_c = fused_and_grads(ours_c, x, grad)
    print(f"  compiled snakeaudio in {time.perf_counter() - start:.1f}s")
    y, grads = fused_and_grads(ours, x, grad)
    # The compiled graph computes exp(log α) and 1/β in its own kernels: last-bit differences.
    check("compiled vs eager y", max_err(y_c, y), 1e-5)
    check("compiled vs eager grad x", max_err(grads_c[0], grads[0]), 2e-5)
    check("compiled vs eager grad log β (rel.)", max_err(grads_c[2], grads[2]) / grads[2].abs().max().item(), 1e-5)
    candidates = {"ours eager": ours, "ours compiled": ours_c}
    try:  # BigVGAN's path (or the reference path without BigVGAN) compiled, for scale
        big_c = torch.compile(big, fullgraph=True)
        start = time.perf_counter()
        with torch.inference_mode():
            big_c(x)
        print(f"  compiled bigvgan torch in {time.perf_counter() - start:.1f}s")
        candidates = {"bigvgan eager": big, "bigvgan compiled": big_c, **candidates}
    except Exception as exc:
        print(f"  bigvgan torch.compile failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")

    t = cuda_time({name: inference(m, x) for name, m in candidates.items()}, repeats)
    print(f"  forward, snakebeta float32 {shape}: " + ", ".join(f"{k} {v:.3f}ms" for k, v in t.items()))


def cuda_graph(repeats: int) -> None:
    """One training step (forward + backward) captured in a CUDA graph and replayed."""
    shape = SHAPES[0]
    ours, _ = make_modules("snakebeta", shape[1])
    static_x = torch.randn(shape, device="cuda").requires_grad_()
    static_grad = torch.randn(shape, device="cuda")

    def step() -> torch.Tensor:
        y = ours(static_x)
        y.backward(static_grad)
        return y

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up (Triton compiles) outside the capture
        for _ in range(3):
            static_x.grad = None
            ours.zero_grad(set_to_none=True)
            step()
    torch.cuda.current_stream().wait_stream(side)
    static_x.grad = None
    ours.zero_grad(set_to_none=True)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = step()
    with torch.no_grad():
        static_x.copy_(torch.randn(shape, device="cuda"))
    graph.replay()
    torch.cuda.synchronize()
    y_new, grads_new = fused_and_grads(ours, static_x, static_grad)
    check("graph replay y (new input)", max_err(static_y, y_new), 1e-6)
    check("graph replay grad x", max_err(static_x.grad, grads_new[0]), 1e-6)
    beta_scale = grads_new[2].abs().max().item()
    check("graph replay grad log β (rel.)", max_err(ours.act.beta.grad, grads_new[2]) / beta_scale, 1e-6)

    def eager_step() -> None:
        static_x.grad = None
        ours.zero_grad(set_to_none=True)
        step()

    t = cuda_time({"eager": eager_step, "graph": graph.replay}, repeats)
    print(f"  fwd+bwd snakebeta float32 {shape}: eager {t['eager']:.3f}ms, graph replay {t['graph']:.3f}ms")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--cuda-build-timeout", type=float, default=150.0, help="seconds for BigVGAN's nvcc build")
    parser.add_argument("--skip-bigvgan-cuda", action="store_true")
    parser.add_argument("--skip-compile", action="store_true")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device: this benchmark needs a GPU")
        return 1
    import triton

    from snakeaudio.kernels.triton_antialias import triton_available

    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, triton {triton.__version__}, "
          f"CUDA {torch.version.cuda}; snakeaudio Triton path available: {triton_available()}")  # fmt: skip
    torch.manual_seed(0)
    start = time.perf_counter()
    with section("correctness: fused Triton path vs float64 reference"):
        correctness()
    with section("speed vs BigVGAN torch Activation1d"):
        timings(args.repeats)
    if not args.skip_bigvgan_cuda:
        with section("speed vs BigVGAN CUDA kernel (forward only)"):
            bigvgan_cuda(args.repeats, args.cuda_build_timeout)
    if not args.skip_compile:
        with section("torch.compile(fullgraph=True)"):
            compiled(args.repeats)
    with section("CUDA graph capture"):
        cuda_graph(args.repeats)
    print(f"\n{len(FAILURES)} failure(s) in {time.perf_counter() - start:.0f}s" + "".join(f"\n  {f}" for f in FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    raise SystemExit(main())
