"""Compile snakeaudio's Triton kernels ahead of time for real GPUs, on a machine without one.

Run: python benchmarks/triton_aot.py [--arch 80 90] [--length 256 2048 65536]

Every kernel of :mod:`snakeaudio.kernels.triton_antialias` is compiled with Triton's
bundled ``ptxas`` for each architecture, for float32 and bfloat16 inputs, at the launch
configuration (BLOCK, num_warps) that the wrapper picks for rows of each length with
BigVGAN's filters (×2, 12 taps). No driver is needed. The table gives, per kernel:
registers and spill bytes (``ptxas -v``), the stack frame (libdevice's sine keeps a
small array there for huge arguments; it is not a spill), SASS instructions (``cuobjdump
-sass``, NOPs excluded; the kernels have no loops, so this is also the count each thread
executes, branches aside) and of those, shared-memory loads and stores and barriers
(each ``tl.gather`` goes through shared memory).

``tests/test_triton_aot.py`` compiles the same configurations and asserts no spills.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

ARCHS = (80, 90)
DTYPES = ("fp32", "bf16")
LENGTHS = (256, 2048, 65536)  # rows of the benchmark shapes in benchmarks/gpu_antialias.py

_SASS_LINE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)[^;]*;")
_PTXAS = {
    "registers": re.compile(r"Used (\d+) registers"),
    "stack": re.compile(r"(\d+) bytes stack frame"),
    "spill_stores": re.compile(r"(\d+) bytes spill stores"),
    "spill_loads": re.compile(r"(\d+) bytes spill loads"),
}


@dataclass(frozen=True)
class Launch:
    """One kernel specialisation as the wrapper launches it."""

    kernel: str  # "forward", "backward" (Snake) or "backward_beta" (SnakeBeta)
    dtype: str  # Triton's name of x's dtype: "fp32", "bf16", "fp16"
    length: int  # T, the row length the configuration was chosen for
    constexprs: dict[str, int]
    options: dict[str, int]  # num_warps, maxnreg

    @property
    def config(self) -> str:
        return f"T={self.length} BLOCK={self.constexprs['BLOCK']} warps={self.options['num_warps']}"


@dataclass(frozen=True)
class Report:
    launch: Launch
    arch: int
    registers: int
    spill_stores: int
    spill_loads: int
    stack: int
    instructions: int  # the SASS counts are -1 where the SASS was not read
    shared_loads: int
    shared_stores: int
    barriers: int


def tools_missing() -> str | None:
    """Why the kernels cannot be compiled here (Triton or its ptxas/cuobjdump missing), or None."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return "TRITON_INTERPRET=1: the interpreter's kernels cannot be compiled for a GPU"
    try:
        import triton
        from triton import knobs
        from triton.backends.compiler import GPUTarget  # noqa: F401
    except ImportError as exc:
        return f"triton is not installed ({exc})"
    try:
        tools = [knobs.nvidia.ptxas.path, knobs.nvidia.cuobjdump.path]
    except Exception as exc:  # Triton raises RuntimeError when a bundled tool is absent
        return f"triton {triton.__version__} has no usable ptxas/cuobjdump ({type(exc).__name__}: {exc})"
    missing = [tool for tool in tools if not (tool and os.access(tool, os.X_OK))]
    return f"not executable: {', '.join(map(str, missing))}" if missing else None


def launches(lengths: Sequence[int] = LENGTHS, dtypes: Sequence[str] = DTYPES) -> list[Launch]:
    """The launch configurations of every kernel for rows of each length, BigVGAN's default filters."""
    from snakeaudio.kernels import triton_antialias as kernels
    from snakeaudio.nn import Snake
    from snakeaudio.nn.antialias import AntiAliasedActivation1d

    block = AntiAliasedActivation1d(Snake(1))  # ×2, 12-tap filters
    ratio, width = block.up_weight.shape
    kd, pad = block.down_taps.numel(), block.down_pad
    found = []
    for length in lengths:
        forward = kernels._forward_config(length, ratio, width, kd, pad)
        backward = kernels._backward_config(length, ratio, width, kd, pad)
        for dtype in dtypes:
            found.append(Launch("forward", dtype, length, *_split(forward)))
            for has_beta in (False, True):
                name = "backward_beta" if has_beta else "backward"
                found.append(Launch(name, dtype, length, *_split({**backward, "HAS_BETA": has_beta})))
    return found


def _split(config: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """The kernel's constexprs and the compiler options among the wrapper's launch arguments."""
    options = ("num_warps", "num_stages", "maxnreg")
    return {k: v for k, v in config.items() if k not in options}, {k: v for k, v in config.items() if k in options}


def _signature(launch: Launch) -> tuple[object, dict[str, str]]:
    """The kernel and its argument types: x-like tensors in the input dtype, tables float32, base int64."""
    from snakeaudio.kernels import triton_antialias as kernels

    x = f"*{launch.dtype}"
    f32 = "*fp32"
    if launch.kernel == "forward":
        fn = kernels._aa_forward_kernel
        types = [x, x, f32, f32, f32, "*i64", f32, "i32", "i32"]
    else:
        fn = kernels._aa_backward_kernel
        types = [x, x, x, f32, f32, f32, f32, f32, "*i64", f32, "i32", "i32", "i32"]
    names = fn.arg_names
    signature = dict(zip(names, types))
    signature.update({name: "constexpr" for name in names[len(types) :]})
    return fn, signature


def compile_launch(launch: Launch, arch: int, sass: bool = True) -> Report:
    """Compile one launch for ``sm_{arch}`` and read its resources from ptxas and (``sass``) its SASS."""
    import triton
    from triton import knobs
    from triton.backends.compiler import GPUTarget

    fn, signature = _signature(launch)
    # As Triton specialises a launch on torch tensors: pointers (fresh allocations) and
    # integers that are multiples of 16 (C, T of the benchmark shapes) are 16-aligned.
    aligned = {(i,): [["tt.divisibility", 16]] for i, t in enumerate(signature.values()) if t != "constexpr"}
    source = triton.compiler.ASTSource(fn=fn, signature=signature, constexprs=launch.constexprs, attrs=aligned)
    with tempfile.TemporaryDirectory() as cache, _ptxas_log() as log:
        with _knob(knobs.cache, "dir", cache):
            compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32), options=launch.options)
    ptxas = log.getvalue() or _rerun_ptxas(compiled.asm["ptx"], arch)
    usage = {key: int(m.group(1)) if (m := pattern.search(ptxas)) else -1 for key, pattern in _PTXAS.items()}
    if usage["registers"] < 0:
        raise RuntimeError(f"no register count in the ptxas output:\n{ptxas}")
    ops = sass_opcodes(compiled.asm["cubin"]) if sass else None
    count = (lambda keep: -1) if ops is None else (lambda keep: sum(map(keep, ops)))  # noqa: E731
    return Report(
        launch,
        arch,
        instructions=count(lambda op: op != "NOP"),
        shared_loads=count(lambda op: op.startswith("LDS")),
        shared_stores=count(lambda op: op.startswith("STS")),
        barriers=count(lambda op: op.startswith("BAR")),
        **usage,
    )


@contextlib.contextmanager
def _knob(group: object, name: str, value: object) -> Iterator[None]:
    if not hasattr(group, name):
        yield
        return
    old = getattr(group, name)
    setattr(group, name, value)
    try:
        yield
    finally:
        setattr(group, name, old)


@contextlib.contextmanager
def _ptxas_log() -> Iterator[io.StringIO]:
    """Triton's own ``ptxas -v`` log (it prints it with TRITON_DUMP_PTXAS_LOG); empty where unsupported."""
    from triton import knobs

    log = io.StringIO()
    with _knob(knobs.nvidia, "dump_ptxas_log", True), contextlib.redirect_stdout(log):
        yield log


def _rerun_ptxas(ptx: str, arch: int) -> str:
    """``ptxas -v`` on the kernel's PTX, for a Triton that cannot print its own log."""
    from triton import knobs

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        gpu = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
        command = [knobs.nvidia.ptxas.path, "-v", "-lineinfo", f"--gpu-name={gpu}", path, "-o", path + ".o"]
        return subprocess.run(command, capture_output=True, text=True, check=True).stderr


def sass_opcodes(cubin: bytes) -> list[str]:
    """Opcodes (with modifiers, predicates dropped) of every SASS instruction in ``cubin``."""
    from triton import knobs

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.cubin")
        with open(path, "wb") as f:
            f.write(cubin)
        sass = subprocess.run([knobs.nvidia.cuobjdump.path, "-sass", path], capture_output=True, text=True, check=True)
    return _SASS_LINE.findall(sass.stdout)


def table(reports: Sequence[Report]) -> str:
    header = ("kernel", "arch", "dtype", "config", "registers", "spills (st/ld B)", "stack B", "instructions",
              "LDS/STS/BAR")  # fmt: skip
    rows = [header]
    for r in reports:
        rows.append((r.launch.kernel, f"sm_{r.arch}", r.launch.dtype, r.launch.config, str(r.registers),
                     f"{r.spill_stores}/{r.spill_loads}", str(r.stack), str(r.instructions),
                     f"{r.shared_loads}/{r.shared_stores}/{r.barriers}"))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__.split("\n\n", 2)[1])
    parser.add_argument("--arch", type=int, nargs="+", default=list(ARCHS), help="compute capabilities, e.g. 80 90")
    parser.add_argument("--length", type=int, nargs="+", default=list(LENGTHS), help="row lengths T")
    parser.add_argument("--dtype", nargs="+", default=list(DTYPES), choices=("fp32", "bf16", "fp16"))
    args = parser.parse_args(argv)
    if reason := tools_missing():
        print(f"error: cannot compile the Triton kernels here: {reason}")
        return 1
    import triton

    print(f"triton {triton.__version__}; BigVGAN's filters (ratio 2, 12 taps)")
    reports = []
    for launch in launches(args.length, args.dtype):
        for arch in args.arch:
            reports.append(compile_launch(launch, arch))
            print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    print(table(reports))
    spilled = [r for r in reports if r.spill_stores or r.spill_loads]
    if spilled:
        print(f"{len(spilled)} configuration(s) spill registers")
    return 1 if spilled else 0


if __name__ == "__main__":
    raise SystemExit(main())
