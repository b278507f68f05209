"""The fused paths of the anti-aliased activation never give another answer than ``reference()``.

Checked over dtypes (half precision included, module cast or not), strides, parameter
states (learnable or buffers, log-scale, tiny and large α) and lengths; through the
parameter cache; under ``torch.compile``; and the kernels refuse what they cannot read.
The Triton kernels go through the same random cases in ``tests/test_triton_antialias.py``.
"""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from snakeaudio.kernels._common import compile_constant
from snakeaudio.kernels.cpu import aa_snake_forward_cpu, cpu_library, snake_forward_cpu
from snakeaudio.nn import AntiAliasedActivation1d, Snake, SnakeBeta
from snakeaudio.nn._common import prepared_parameters
from snakeaudio.nn.antialias import BACKENDS

needs_kernel = pytest.mark.skipif(cpu_library() is None, reason="no C++ compiler: only the reference path exists")
HALF = (torch.float16, torch.bfloat16)


# --- comparing a path with the reference ---------------------------------------------


def outputs_and_grads(fn: Callable, x: torch.Tensor, grad: torch.Tensor, params: list[nn.Parameter]):
    """``fn(x)`` and the gradients of ``<fn(x), grad>`` for x (a leaf with x's strides) and ``params``."""
    x = x.detach().requires_grad_()
    y = fn(x)
    grads = torch.autograd.grad(y, [x, *params], grad.to(y.dtype))
    return [y.detach(), *grads]


def assert_agree(fast, ref, exact, ref32, roundings: int, what: str, floor: float = 1e-6) -> None:
    """``fast`` agrees with ``ref`` (the reference in the same dtype) to float32 rounding,
    plus ``roundings`` roundings to a half-precision dtype (one unit in the last place each).

    "Float32 rounding" is measured: ``ref32``, the reference computed in float32, is off the
    float64 ``exact`` by some amount; fast and reference may differ by a few times that, and
    by ``floor`` times the largest magnitude in any case.
    """
    assert fast.dtype == ref.dtype and fast.shape == ref.shape, what
    scale = exact.abs().max().item()
    float32_error = (ref32.double() - exact).abs().max().item()
    atol = 4 * float32_error + floor * scale + 1e-30
    rtol = roundings * torch.finfo(ref.dtype).eps if ref.dtype in HALF else 0.0
    assert torch.isfinite(fast).all(), what
    torch.testing.assert_close(fast, ref, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


@dataclass
class Case:
    """One random anti-aliased Snake and an input, as a base tensor and the view that is fed."""

    block: AntiAliasedActivation1d
    base: torch.Tensor  # storage of the input, already in its dtype
    view: Callable[[torch.Tensor], torch.Tensor]  # base -> (B, C, T)
    grad: torch.Tensor  # (B, C, T), the input's dtype
    label: str


LAYOUTS: dict[str, tuple[Callable, Callable]] = {
    # name: (shape of the base for (B, C, T), view of the base as (B, C, T))
    "contiguous": (lambda b, c, t: (b, c, t), lambda x: x),
    "channels-last": (lambda b, c, t: (b, t, c), lambda x: x.transpose(1, 2)),
    "every other sample": (lambda b, c, t: (b, c, 2 * t), lambda x: x[..., ::2]),
    "offset slice": (lambda b, c, t: (b, c, t + 3), lambda x: x[..., 2:-1]),
    "every other channel": (lambda b, c, t: (b, 2 * c, t), lambda x: x[:, ::2]),
    "expanded batch": (lambda b, c, t: (1, c, t), lambda x: x.expand(3, -1, -1)),
}


def random_case(rng: random.Random, longest: int = 300, most_channels: int = 5) -> Case:
    kind = rng.choice(["snake", "snake-scalar", "snakebeta"])
    log_scale = rng.random() < 0.5
    learnable = rng.random() < 0.7
    regime = rng.choice(["tiny", "small", "standard", "large"])
    dtype = rng.choice([torch.float32, torch.float32, torch.float16, torch.bfloat16])
    cast_module = dtype in HALF and rng.random() < 0.6
    layout = rng.choice(list(LAYOUTS))
    batch, channels = rng.randint(1, 3), rng.randint(1, most_channels)
    length = rng.choice([n for n in (1, 2, 3, 5, 16, 17, 63, 100, rng.randint(4, longest)) if n <= longest])
    if layout == "expanded batch":
        batch = 3

    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    n_alpha = 1 if kind == "snake-scalar" else channels
    low, high = {"tiny": (1e-35, 1e-25), "small": (0.01, 0.3), "standard": (0.2, 2.0), "large": (5.0, 50.0)}[regime]
    alpha = torch.empty(n_alpha, dtype=torch.float64).uniform_(low, high, generator=gen)
    if not log_scale and regime == "standard" and rng.random() < 0.3:
        alpha = -alpha  # training can drive α below zero
    if kind == "snakebeta":
        act: nn.Module = SnakeBeta(channels, learnable=learnable, log_scale=log_scale)
    else:
        act = Snake(None if kind == "snake-scalar" else channels, learnable=learnable, log_scale=log_scale)
    with torch.no_grad():
        act.alpha.copy_((alpha.log() if log_scale else alpha).reshape(act.alpha.shape))
        if kind == "snakebeta":
            beta = torch.empty(channels, dtype=torch.float64).uniform_(0.3, 2.0, generator=gen)
            act.beta.copy_(beta.log() if log_scale else beta)
    block = AntiAliasedActivation1d(act)
    if cast_module:
        block = block.to(dtype)

    shape_of, view = LAYOUTS[layout]
    base = (torch.randn(shape_of(batch, channels, length), generator=gen) * rng.choice([0.5, 2.0, 5.0])).to(dtype)
    grad = torch.randn(batch, channels, length, generator=gen).to(dtype)
    label = (
        f"{kind} log_scale={log_scale} learnable={learnable} α {regime} {str(dtype)[6:]}"
        f"{' (module cast)' if cast_module else ''} {layout} {(batch, channels, length)}"
    )
    return Case(block, base, view, grad, label)


def check_case(case: Case, backend: str, inference_modes=(torch.no_grad, torch.inference_mode)) -> None:
    """Forward and backward of ``backend`` (with and without autograd) against the reference."""
    block = copy.deepcopy(case.block)
    block.backend = backend
    x = case.view(case.base)  # strided, transposed or expanded
    assert block._plan(x)[0] == backend, case.label
    params = [p for p in block.act.parameters() if p.requires_grad]

    fast = outputs_and_grads(block, x, case.grad, params)
    ref = outputs_and_grads(block.reference, x, case.grad, params)
    exact = outputs_and_grads(lambda v: block._reference(v, torch.float64), x.double(), case.grad, params)
    ref32 = outputs_and_grads(lambda v: block._reference(v, torch.float32), x.float(), case.grad, params)
    names = ["output", "grad x", *(f"grad {n}" for n, p in block.act.named_parameters() if p.requires_grad)]
    for name, f, r, e, r32 in zip(names, fast, ref, exact, ref32):
        if name in ("output", "grad x"):  # computed in float32, rounded once
            assert_agree(f, r, e, r32, 1, f"{case.label}: {name}")
        else:  # sums over B·T; a half-precision module's rounded, then through the log-scale chain rule
            assert_agree(f, r, e, r, 2, f"{case.label}: {name}", floor=1e-5)

    # Without autograd the prepared parameters come from the cache: the very same result.
    for mode in inference_modes:
        with mode():
            assert torch.equal(block(x), fast[0]), case.label
            assert torch.equal(block(x), fast[0]), case.label  # cache hit


@needs_kernel
def test_random_cases_cpu_kernels_match_reference():
    rng = random.Random(2024)
    for _ in range(30):
        check_case(random_case(rng), "cpu")


# --- the two reported wrong answers ------------------------------------------------


@needs_kernel
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize(
    "make", [lambda: SnakeBeta(8, log_scale=True), lambda: Snake(8, alpha=1.3)], ids=["snakebeta", "snake"]
)
def test_half_precision_module_matches_reference(make, dtype):
    """``.to(dtype)`` casts the buffers too: the fused path must not read them as float32."""
    torch.manual_seed(0)
    block = AntiAliasedActivation1d(make()).to(dtype)
    x = (torch.randn(2, 8, 100) * 2).to(dtype)
    y, ref = block(x), block.reference(x)
    assert y.dtype == dtype and torch.isfinite(y).all()
    # Both are computed in float32 and rounded once: at most one unit of the last place apart.
    torch.testing.assert_close(y, ref, rtol=torch.finfo(dtype).eps, atol=1e-5)
    exact = block._reference(x.double(), torch.float64)
    assert ((y.double() - exact).abs() <= torch.finfo(dtype).eps * exact.abs() + 1e-5).all()


@pytest.mark.parametrize("cast", [lambda m: m.half(), lambda m: m.to(torch.bfloat16), lambda m: m.double()])
def test_filters_stay_float32_under_dtype_casts(cast):
    resample = dict(up_ratio=3, down_ratio=3, up_kernel_size=18, down_kernel_size=18)
    block = AntiAliasedActivation1d(SnakeBeta(3, log_scale=True, alpha=0.7), **resample)
    tables = {name: t.clone() for name, t in block.named_buffers()}
    cast(block)
    assert block.act.alpha.dtype != torch.float32  # the parameters are cast ...
    for name, t in block.named_buffers():  # ... the filters are not
        assert t.dtype == tables[name].dtype and torch.equal(t, tables[name]), name
    block.to("meta")
    assert all(t.device.type == "meta" for t in block.buffers())


@needs_kernel
def test_bfloat16_generator_on_cpu():
    from snakeaudio.models import Generator, preset

    torch.manual_seed(0)
    generator = Generator(preset("tiny_16khz_80band"), weight_norm=False).eval()
    mel = torch.randn(1, 80, 4)
    with torch.inference_mode():
        expected = generator(mel)
        generator.to(torch.bfloat16)
        y = generator(mel.bfloat16())
        for block in generator.modules():
            if isinstance(block, AntiAliasedActivation1d):
                block.backend = "reference"
        y_plain = generator(mel.bfloat16())
    assert y.dtype == torch.bfloat16 and torch.isfinite(y).all()
    # bfloat16 keeps 8 bits: after ~20 layers the waveform is within a few percent of float32 ...
    assert (y.float() - expected).abs().max() <= 0.05 * expected.abs().max()
    # ... and the fused activations change it less than that.
    assert (y.float() - y_plain.float()).abs().max() <= 0.02 * expected.abs().max()


@needs_kernel
@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode])
@pytest.mark.parametrize(
    "make",
    [lambda: Snake(8, alpha=1.0, learnable=False), lambda: SnakeBeta(8, learnable=False, log_scale=True)],
    ids=["snake", "snakebeta"],
)
def test_frozen_parameters_follow_load_state_dict(make, mode):
    """With ``learnable=False`` α (and β) are buffers: the inference cache must see them change."""
    block = AntiAliasedActivation1d(make())
    assert not list(block.act.parameters())
    x = torch.randn(2, 8, 64)
    with mode():
        torch.testing.assert_close(block(x), block.reference(x), atol=1e-5, rtol=0)
        state = {k: v + torch.linspace(0.2, 1.0, 8) for k, v in block.state_dict().items()}
        block.load_state_dict(state)
        torch.testing.assert_close(block(x), block.reference(x), atol=1e-5, rtol=0)
        block.act.alpha = torch.full((8,), 0.3)  # a new buffer
        torch.testing.assert_close(block(x), block.reference(x), atol=1e-5, rtol=0)


@needs_kernel
def test_module_built_in_inference_mode():
    """Inference tensors have no version counter: no cache, still the right answer."""
    with torch.inference_mode():
        block = AntiAliasedActivation1d(SnakeBeta(4, alpha=0.5))
        x = torch.randn(1, 4, 40)
        torch.testing.assert_close(block(x), block.reference(x), atol=1e-5, rtol=0)
        block.act.alpha.add_(1.0)
        torch.testing.assert_close(block(x), block.reference(x), atol=1e-5, rtol=0)


# --- the backend switch ---------------------------------------------------------------


def test_backend_values():
    assert BACKENDS == ("auto", "reference", "cpu", "triton")
    with pytest.raises(ValueError, match="unknown backend 'cuda'; expected one of auto, reference, cpu, triton"):
        AntiAliasedActivation1d(Snake(2), backend="cuda")


def test_backend_from_environment(monkeypatch):
    monkeypatch.setenv("SNAKEAUDIO_BACKEND", "fused")
    with pytest.raises(ValueError, match="unknown SNAKEAUDIO_BACKEND 'fused'; expected one of auto, reference"):
        AntiAliasedActivation1d(Snake(2))
    assert AntiAliasedActivation1d(Snake(2), backend="auto").backend == "auto"  # the argument wins
    monkeypatch.setenv("SNAKEAUDIO_BACKEND", "reference")
    block = AntiAliasedActivation1d(SnakeBeta(2))
    x = torch.randn(1, 2, 30, requires_grad=True)
    assert block.backend == "reference" and block._plan(x) == ("reference", torch.float32)
    assert torch.equal(block(x), block.reference(x))
    monkeypatch.delenv("SNAKEAUDIO_BACKEND")
    assert AntiAliasedActivation1d(Snake(2)).backend == "auto"


@needs_kernel
def test_plan():
    block = AntiAliasedActivation1d(SnakeBeta(2), backend="auto")
    x = torch.randn(1, 2, 8)
    assert block._plan(x) == ("cpu", torch.float32)
    assert block._plan(x.bfloat16()) == ("cpu", torch.float32)  # the C++ kernels take float32
    assert block._plan(x.double()) == ("reference", torch.float64)
    assert block._plan(x.half()) == ("cpu", torch.float32)
    assert AntiAliasedActivation1d(SnakeBeta(2), backend="reference")._plan(x.half()) == ("reference", torch.float32)
    other = AntiAliasedActivation1d(nn.Tanh(), backend="cpu")  # one implementation: the reference
    assert other._plan(x.half()) == ("reference", torch.float16)
    unequal = AntiAliasedActivation1d(Snake(2), up_ratio=3, down_ratio=2, up_kernel_size=18, backend="cpu")
    assert unequal._plan(x.half()) == ("reference", torch.float32)


def test_explicit_backend_says_why_it_cannot_run():
    x = torch.randn(1, 2, 8)
    with pytest.raises(TypeError, match="backend='cpu' takes float32, float16 or bfloat16 inputs, got torch.float64"):
        AntiAliasedActivation1d(Snake(2), backend="cpu")(x.double())
    with pytest.raises(ValueError, match="backend='cpu' runs CPU tensors, got an input on meta"):
        AntiAliasedActivation1d(Snake(2), backend="cpu").to("meta")(x.to("meta"))
    if not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1":
        with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
            AntiAliasedActivation1d(Snake(2), backend="triton")(x)


def test_triton_without_gather_warns_once_and_is_not_used(monkeypatch):
    pytest.importorskip("triton")
    from types import SimpleNamespace

    from snakeaudio.kernels import triton_antialias

    old = SimpleNamespace(**{k: v for k, v in vars(triton_antialias.tl).items() if k != "gather"})
    monkeypatch.setattr(triton_antialias, "tl", old)
    triton_antialias._available.cache_clear()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert not triton_antialias.triton_available()
            assert not triton_antialias.triton_available()
            with pytest.raises(RuntimeError, match="Triton >= 3.2"):
                AntiAliasedActivation1d(Snake(2), backend="triton")(torch.randn(1, 2, 8))
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert len(messages) == 1 and "tl.gather" in messages[0], messages
    finally:
        monkeypatch.undo()
        triton_antialias._available.cache_clear()


# --- the kernels refuse what they cannot read ----------------------------------------


@needs_kernel
def test_cpu_kernels_validate_their_arguments():
    block = AntiAliasedActivation1d(SnakeBeta(3))
    x = torch.randn(2, 3, 20)
    alpha, inv = prepared_parameters(block.act.alpha.detach(), block.act.beta.detach(), 3, torch.float32)
    tables = [block.up_weight, block.up_base, block.down_taps, block.down_pad]
    torch.testing.assert_close(aa_snake_forward_cpu(x, alpha, inv, *tables), block.reference(x), atol=1e-5, rtol=0)

    def call(**changes):
        names = ("x", "alpha", "inv_scale", "up_weight", "up_base", "down_taps", "down_pad")
        args = dict(zip(names, (x, alpha, inv, *tables)))
        return aa_snake_forward_cpu(**{**args, **changes})

    with pytest.raises(TypeError, match="expected x of dtype float32, got torch.bfloat16"):
        call(x=x.bfloat16())
    with pytest.raises(TypeError, match="expected up_weight of dtype float32, got torch.bfloat16"):
        call(up_weight=tables[0].bfloat16())
    with pytest.raises(TypeError, match="expected down_taps of dtype float32, got torch.float16"):
        call(down_taps=tables[2].half())
    with pytest.raises(TypeError, match="expected up_base of dtype int64, got torch.int32"):
        call(up_base=tables[1].int())
    with pytest.raises(ValueError, match="expected x contiguous"):
        call(x=x.transpose(0, 1).contiguous().transpose(0, 1))
    with pytest.raises(ValueError, match=r"expected alpha shaped \(3,\), got shape \(2,\)"):
        call(alpha=alpha[:2].contiguous())
    with pytest.raises(ValueError, match=r"expected up_base shaped \(2,\), got shape \(3,\)"):
        call(up_base=torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"expected 0 <= down_pad < 12"):
        call(down_pad=12)
    with pytest.raises(ValueError, match="T >= 1"):
        call(x=x[..., :0].contiguous())
    with pytest.raises(TypeError, match="expected alpha of dtype float32, got torch.float64"):
        snake_forward_cpu(x, alpha.double(), inv)


# --- torch.compile -------------------------------------------------------------------


def compiled(block):
    return torch.compile(block, fullgraph=True, backend="aot_eager")


@pytest.mark.parametrize("mode", [torch.inference_mode, torch.no_grad])
def test_compile_after_eager_inference_and_back(mode):
    import torch._dynamo

    torch._dynamo.reset()
    block = AntiAliasedActivation1d(SnakeBeta(4, log_scale=True))
    x = torch.randn(2, 4, 33)
    with mode():
        torch.testing.assert_close(block(x), block.reference(x), atol=1e-5, rtol=0)  # fills the cache
        fast = compiled(block)
        torch.testing.assert_close(fast(x), block.reference(x), atol=1e-5, rtol=0)
        block.load_state_dict({k: v + 0.3 for k, v in block.state_dict().items()})
        torch.testing.assert_close(fast(x), block.reference(x), atol=1e-5, rtol=0)  # reads the new α
        torch.testing.assert_close(block(x), block.reference(x), atol=1e-5, rtol=0)  # eager again


def test_compile_first_then_eager_training_and_inference():
    import torch._dynamo

    torch._dynamo.reset()
    block = AntiAliasedActivation1d(Snake(4, alpha=0.8))
    fast = compiled(block)
    x = torch.randn(2, 4, 33, requires_grad=True)
    with torch.inference_mode():
        torch.testing.assert_close(fast(x.detach()), block.reference(x.detach()), atol=1e-5, rtol=0)
    fast(x).sum().backward()  # training, compiled
    grad_alpha, grad_x = block.act.alpha.grad.clone(), x.grad.clone()
    block.act.alpha.grad, x.grad = None, None
    block.reference(x).sum().backward()
    torch.testing.assert_close(grad_x, x.grad, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(grad_alpha, block.act.alpha.grad, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        block.act.alpha.mul_(1.5)
        torch.testing.assert_close(block(x), block.reference(x), atol=1e-5, rtol=0)  # eager after compile
        torch.testing.assert_close(fast(x), block.reference(x), atol=1e-5, rtol=0)


def test_compile_marker_is_torchs():
    """:func:`compile_constant` marks a function as :func:`torch.compiler.assume_constant_result` does."""
    ours, theirs = compile_constant(lambda: 1), torch.compiler.assume_constant_result(lambda: 1)
    assert vars(ours) == vars(theirs) and vars(ours)


# --- light imports -------------------------------------------------------------------

IMPORTS = """
import importlib.abc, json, sys, types

BLOCKED = {"soundfile", "librosa", "torchaudio", "matplotlib"}


class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked")


sys.meta_path.insert(0, Block())
import torch

outcome = {}
try:
    import snakeaudio.nn, snakeaudio.kernels
    outcome["package"] = "ok" if "torch._dynamo" not in sys.modules else "imports torch._dynamo"
except ImportError as err:
    outcome["package"] = repr(err)

# The same modules under empty parent packages: what snakeaudio.nn and snakeaudio.kernels need themselves.
for name in [m for m in sys.modules if m.split(".")[0] == "snakeaudio"]:
    del sys.modules[name]
for name in ("snakeaudio", "snakeaudio.dsp"):
    package = types.ModuleType(name)
    package.__path__ = [ROOT + "/" + name.replace(".", "/")]
    sys.modules[name] = package
try:
    import snakeaudio.nn, snakeaudio.kernels.cpu
    outcome["modules"] = "ok" if "torch._dynamo" not in sys.modules else "imports torch._dynamo"
    act = snakeaudio.nn.AntiAliasedActivation1d(snakeaudio.nn.SnakeBeta(2))  # (calling a custom op loads dynamo)
    assert act(torch.randn(1, 2, 20)).shape == (1, 2, 20)
except ImportError as err:
    outcome["modules"] = repr(err)
print(json.dumps(outcome))
"""


@pytest.fixture(scope="module")
def light_imports() -> dict[str, str]:
    """Import outcomes in a process where soundfile, librosa, torchaudio and matplotlib are missing."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = f"ROOT = {root!r}\n" + IMPORTS
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_nn_and_kernels_modules_need_only_torch(light_imports):
    """The modules of ``snakeaudio.nn`` and ``snakeaudio.kernels`` (and the filters they use)
    import with torch alone, and without ``torch._dynamo``, once their parent packages do."""
    assert light_imports["modules"] == "ok"


def test_import_snakeaudio_nn_without_audio_packages(light_imports):
    assert light_imports["package"] == "ok"
