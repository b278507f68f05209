"""The Triton kernels compile for real GPUs (sm_80, sm_90) without spilling registers, at the
launch configurations the wrapper picks, in float32 and bfloat16: compiled ahead of time with
Triton's bundled ``ptxas``, on CPU, no driver needed (``benchmarks/triton_aot.py`` prints the
whole table: registers, spills, instructions per kernel, architecture, dtype and row length).

The long-row configuration (8 warps for each kernel) is the one with the most registers per
thread; a 256-sample row gives the one-warp forward, whose gathers are warp shuffles.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

pytest.importorskip("triton")


def _load_script(path: Path) -> types.ModuleType:
    """A benchmark script as a module, without putting benchmarks/ (snake.py, inference.py, ...) on sys.path."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


triton_aot = _load_script(Path(__file__).resolve().parents[1] / "benchmarks" / "triton_aot.py")


@pytest.fixture(scope="module")
def aot():
    if reason := triton_aot.tools_missing():
        pytest.skip(f"cannot compile Triton kernels here: {reason}")
    return triton_aot


def compile_all(aot, length, dtype, arch, sass=False):
    reports = [aot.compile_launch(launch, arch, sass) for launch in aot.launches([length], [dtype])]
    assert {r.launch.kernel for r in reports} == {"forward", "backward", "backward_beta"}
    return reports


def assert_no_spills(reports):
    spilled = [r for r in reports if r.spill_stores or r.spill_loads]
    assert not spilled, "register spills:\n" + triton_aot.table(spilled)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("arch", [80, 90])
def test_long_rows_compile_without_spills(aot, arch, dtype):
    reports = compile_all(aot, 65536, dtype, arch, sass=(arch, dtype) == (90, "fp32"))
    assert_no_spills(reports)
    assert {r.launch.options["num_warps"] for r in reports} == {8}
    for r in reports:
        assert 0 < r.registers <= r.launch.options["maxnreg"]
        if (arch, dtype) == (90, "fp32"):  # the SASS was read: loads, FMAs, the gathers' shared memory
            assert r.instructions > 500 and r.shared_loads > 0 and r.barriers > 0


def test_one_warp_forward_compiles_without_spills(aot):
    (launch,) = [launch for launch in aot.launches([256], ["fp32"]) if launch.kernel == "forward"]
    assert launch.options["num_warps"] == 1
    assert_no_spills([aot.compile_launch(launch, 90, sass=False)])


def test_skips_under_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert "TRITON_INTERPRET" in triton_aot.tools_missing()


def test_launches_follow_the_wrapper():
    """The configurations compiled are the wrapper's own (BLOCK from T, warps from BLOCK)."""
    from snakeaudio.kernels import triton_antialias as kernels

    launches = triton_aot.launches([2048], ["fp32"])
    forward = next(launch for launch in launches if launch.kernel == "forward")
    expected = kernels._forward_config(2048, 2, 6, 12, 5)
    assert {**forward.constexprs, **forward.options} == expected
    backward = [launch for launch in launches if launch.kernel.startswith("backward")]
    assert [launch.constexprs["HAS_BETA"] for launch in backward] == [False, True]
