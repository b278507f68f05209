"""The Triton kernels of the anti-aliased Snake against the plain-torch reference,
run on CPU tensors by Triton's interpreter.

Triton reads ``TRITON_INTERPRET`` when a function is decorated with ``@triton.jit``,
that is when Triton itself (its ``tl.zeros``, ``tl.sum``, ...) and then
:mod:`snakeaudio.kernels.triton_antialias` are imported; an interpreted Triton
cannot compile GPU kernels any more. So the kernel tests run in this process only
when it was started with ``TRITON_INTERPRET=1``:

    TRITON_INTERPRET=1 python -m pytest tests/test_triton_antialias.py

Otherwise (a plain ``pytest`` run, where other tests may import Triton for the GPU)
they are skipped here and :func:`test_kernels_in_interpreter_subprocess` runs this
file in a fresh interpreter-mode process.
"""

from __future__ import annotations

import copy
import os
import random
import subprocess
import sys
import textwrap

import pytest
import torch

pytest.importorskip("triton")

from snakeaudio.dsp.filters import UpSample1d  # noqa: E402
from snakeaudio.nn import Snake, SnakeBeta  # noqa: E402
from snakeaudio.nn._common import prepared_parameters  # noqa: E402
from snakeaudio.nn.antialias import AntiAliasedActivation1d, polyphase_upsample_taps  # noqa: E402

MODULE = "snakeaudio.kernels.triton_antialias"
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


@pytest.fixture(scope="module")
def kernels():
    if not INTERPRETED:
        pytest.skip("needs TRITON_INTERPRET=1 from process start; run by test_kernels_in_interpreter_subprocess")
    from snakeaudio.kernels import triton_antialias

    assert triton_antialias.triton_available(), "Triton was imported before TRITON_INTERPRET=1 was set"
    return triton_antialias


def make_case(with_beta, shape, ratio=2, kernel_size=12, alpha=(0.3, 2.5), seed=0):
    """An anti-aliased (Snake|SnakeBeta) with random per-channel α (β), an input and an output gradient."""
    gen = torch.Generator().manual_seed(seed)
    channels = shape[1]
    act = SnakeBeta(channels) if with_beta else Snake(channels)
    with torch.no_grad():
        act.alpha.uniform_(*alpha, generator=gen)
        if with_beta:
            act.beta.uniform_(0.5, 1.5, generator=gen)
    module = AntiAliasedActivation1d(act, ratio, ratio, kernel_size, kernel_size)
    x = torch.randn(shape, generator=gen) * 2
    grad = torch.randn(shape, generator=gen)
    return module, x, grad


def reference(module, x, grad):
    """Output and gradients (x, α[, β]) of the reference path in float64."""
    ref = copy.deepcopy(module).double()
    x = x.double().requires_grad_()
    y = ref.reference(x)
    params = [ref.act.alpha] + ([ref.act.beta] if isinstance(ref.act, SnakeBeta) else [])
    return y.detach(), torch.autograd.grad(y, [x, *params], grad.double())


def fused(kernels, module, x, grad, block_size=None):
    act = module.act
    beta = act.magnitude().detach() if isinstance(act, SnakeBeta) else None
    alpha, inv_scale = prepared_parameters(act.frequency().detach(), beta, x.shape[1], torch.float32)
    tables = (module.up_weight, module.up_base, module.down_taps, module.down_pad)
    y = kernels.aa_snake_forward_triton(x, alpha, inv_scale, *tables, block_size=block_size)
    has_beta = beta is not None
    grads = kernels.aa_snake_backward_triton(x, grad, alpha, inv_scale, has_beta, *tables, block_size=block_size)
    return y, grads


def assert_close_to_scale(actual, expected, rel):
    """Agreement to ``rel`` times the largest reference magnitude (sums over B·T lose relative accuracy)."""
    torch.testing.assert_close(actual.double(), expected, rtol=0, atol=rel * expected.abs().max().item() + 1e-7)


def check(kernels, module, x, grad, block_size=None):
    y, (grad_x, grad_alpha, grad_beta) = fused(kernels, module, x, grad, block_size)
    y_ref, grads_ref = reference(module, x, grad)
    assert y.dtype == grad_x.dtype == x.dtype and y.shape == grad_x.shape == x.shape
    assert grad_alpha.dtype == grad_beta.dtype == torch.float32
    torch.testing.assert_close(y.double(), y_ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(grad_x.double(), grads_ref[0], atol=2e-5, rtol=1e-5)
    assert_close_to_scale(grad_alpha, grads_ref[1], 2e-6)
    if isinstance(module.act, SnakeBeta):
        assert_close_to_scale(grad_beta, grads_ref[2], 2e-6)
    else:
        assert not grad_beta.any()


@pytest.mark.parametrize("length", [1, 2, 7, 100, 513])
@pytest.mark.parametrize("with_beta", [False, True], ids=["snake", "snakebeta"])
def test_matches_reference(kernels, with_beta, length):
    check(kernels, *make_case(with_beta, (2, 3, length), seed=length))


@pytest.mark.parametrize(("length", "block_size"), [(7, 16), (7, 32), (100, 32), (513, 64)])
@pytest.mark.parametrize("with_beta", [False, True], ids=["snake", "snakebeta"])
def test_many_tiles_per_row(kernels, with_beta, length, block_size):
    """Small tiles put tile edges everywhere: halos, edge folds and the α/β sums must not double count."""
    check(kernels, *make_case(with_beta, (1, 2, length), seed=length + 1), block_size=block_size)


@pytest.mark.parametrize(("length", "block_size"), [(1, None), (4, None), (100, None), (100, 32)])
@pytest.mark.parametrize("with_beta", [False, True], ids=["snake", "snakebeta"])
def test_ratio_three(kernels, with_beta, length, block_size):
    module, x, grad = make_case(with_beta, (2, 2, length), ratio=3, kernel_size=18, seed=3)
    check(kernels, module, x, grad, block_size)


def test_periodic_alpha(kernels):
    """Large α (strongly periodic Snake): α·u reaches hundreds, where float32 itself is off by
    ~1e-5 in sin² and ~1e-3 in the gradients; the kernels must be as good as float32 torch."""
    module, x, grad = make_case(True, (1, 3, 100), alpha=(5.0, 50.0), seed=5)
    y, grads = fused(kernels, module, x, grad)
    y_ref, grads_ref = reference(module, x, grad)
    x32 = x.clone().requires_grad_()
    y32 = module.reference(x32)
    grads32 = torch.autograd.grad(y32, [x32, module.act.alpha, module.act.beta], grad)
    for ours, theirs, exact in zip((y, *grads), (y32, *grads32), (y_ref, *grads_ref)):
        assert (ours.double() - exact).abs().max() <= 2 * (theirs.double() - exact).abs().max() + 1e-6


@pytest.mark.parametrize(("dtype", "with_beta"), [(torch.bfloat16, False), (torch.float16, True)])
def test_half_precision_storage(kernels, dtype, with_beta):
    """Half-precision storage, float32 arithmetic: the output agrees up to its own rounding."""
    module, x, grad = make_case(with_beta, (2, 3, 100), seed=7)
    x, grad = x.to(dtype), grad.to(dtype)
    y, (grad_x, grad_alpha, grad_beta) = fused(kernels, module, x, grad)
    y_ref, grads_ref = reference(module, x, grad)  # on the same (rounded) inputs, in float64
    assert y.dtype == grad_x.dtype == dtype
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(y.double(), y_ref, atol=1e-5, rtol=eps)
    torch.testing.assert_close(grad_x.double(), grads_ref[0], atol=1e-4, rtol=eps)
    assert_close_to_scale(grad_alpha, grads_ref[1], 2e-6)
    if with_beta:
        assert_close_to_scale(grad_beta, grads_ref[2], 2e-6)


def test_random_cases_through_the_module(kernels):
    """The block with ``backend="triton"`` against its reference over random dtypes, strides
    and parameter states (the cases of ``tests/test_fast_paths.py``, kept short for the interpreter)."""
    from test_fast_paths import check_case, random_case

    rng = random.Random(7)
    for _ in range(5):
        check_case(random_case(rng, longest=24, most_channels=2), "triton", inference_modes=())


def test_rejects_what_it_cannot_read(kernels):
    module, x, grad = make_case(True, (1, 2, 10))
    alpha, inv_scale = prepared_parameters(module.act.alpha.detach(), module.act.beta.detach(), 2, torch.float32)
    tables = [module.up_weight, module.up_base, module.down_taps, module.down_pad]
    with pytest.raises(TypeError, match="expected up_weight of dtype float32, got torch.bfloat16"):
        kernels.aa_snake_forward_triton(x, alpha, inv_scale, tables[0].bfloat16(), *tables[1:])
    with pytest.raises(TypeError, match="expected x of dtype float32 or float16 or bfloat16, got torch.float64"):
        kernels.aa_snake_forward_triton(x.double(), alpha, inv_scale, *tables)
    with pytest.raises(ValueError, match="expected x contiguous"):
        kernels.aa_snake_forward_triton(x[..., ::2], alpha, inv_scale, *tables)
    with pytest.raises(TypeError, match="expected grad of dtype float32, got torch.bfloat16"):
        kernels.aa_snake_backward_triton(x, grad.bfloat16(), alpha, inv_scale, True, *tables)
    with pytest.raises(ValueError, match=r"expected inv_scale shaped \(2,\), got shape \(1,\)"):
        kernels.aa_snake_forward_triton(x, alpha, inv_scale[:1], *tables)


@pytest.mark.parametrize("ratio", [1, 2, 3, 4])
def test_upsampler_tables_meet_the_backward_precondition(ratio):
    """The backward assumes every phase has taps on both sides of offset 0; every table we build does."""
    for kernel_size in range(ratio, 8 * ratio + 2):
        taps = UpSample1d(ratio, kernel_size).filter.double().view(-1)
        weight, base = polyphase_upsample_taps(taps, ratio)
        assert all(b <= 0 <= b + weight.shape[1] - 1 for b in base), (ratio, kernel_size, base)


def test_rejects_tables_outside_the_precondition(kernels):
    module, x, grad = make_case(False, (1, 2, 10))
    alpha, inv_scale = prepared_parameters(module.act.alpha.detach(), None, 2, torch.float32)
    shifted = module.up_base + 10
    with pytest.raises(ValueError, match="both sides of offset 0"):
        kernels.aa_snake_backward_triton(
            x, grad, alpha, inv_scale, False, module.up_weight, shifted, module.down_taps, module.down_pad
        )


def test_imports_without_interpreter():
    """Without TRITON_INTERPRET the module imports, and without a GPU it says it cannot run."""
    code = textwrap.dedent(f"""
        import pytest, torch
        import {MODULE} as m

        assert m.triton_available() == torch.cuda.is_available()
        if not torch.cuda.is_available():
            x, one = torch.zeros(1, 1, 4), torch.ones(1)
            with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
                m.aa_snake_forward_triton(x, one, one, torch.ones(2, 3), torch.zeros(2).long(), torch.ones(3), 1)
    """)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(INTERPRETED, reason="the kernel tests run in this process")
def test_kernels_in_interpreter_subprocess():
    env = dict(os.environ, TRITON_INTERPRET="1")
    command = [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-k", "not subprocess"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
