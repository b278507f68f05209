import math

import pytest
import torch
from torch import nn

from snakeaudio import (
    FlexibleSnake,
    FlexibleSnakeActivation,
    Snake,
    SnakeActivation,
    SnakeBeta,
    init_snake_,
    snake,
)
from snakeaudio.kernels.cpu import cpu_library
from snakeaudio.nn import snake_reference


def formula(x, alpha, beta=None):
    """y = x + sin²(αx)/β computed in float64 from scratch, α broadcast on axis 1."""
    x = x.double()
    shape = (1, -1) + (1,) * (x.dim() - 2) if alpha.dim() == 1 else ()
    a = alpha.double().reshape(shape)
    b = a if beta is None else beta.double().reshape(shape)
    return x + torch.sin(a * x) ** 2 / b


SHAPES = [(7, 5), (2, 5, 1), (2, 5, 33), (3, 5, 4, 6)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_beta", [False, True])
def test_matches_formula_every_rank(shape, with_beta):
    torch.manual_seed(0)
    x = torch.randn(shape) * 4
    alpha = torch.rand(5) * 3 + 0.1
    beta = torch.rand(5) + 0.5 if with_beta else None
    torch.testing.assert_close(snake(x, alpha, beta).double(), formula(x, alpha, beta), atol=2e-6, rtol=1e-6)


@pytest.mark.parametrize("shape", [(11,), (2, 3), (2, 3, 9), (1, 2, 3, 4)])
def test_scalar_alpha_any_rank(shape):
    x = torch.randn(shape)
    act = Snake(alpha=2.5)
    assert act.alpha.shape == ()
    torch.testing.assert_close(act(x).double(), formula(x, torch.tensor(2.5)), atol=2e-6, rtol=1e-6)


@pytest.mark.parametrize("per_channel", [False, True])
@pytest.mark.parametrize("with_beta", [False, True])
def test_gradcheck_float64(per_channel, with_beta):
    torch.manual_seed(1)
    x = (torch.randn(2, 3, 5, dtype=torch.float64) * 2).requires_grad_()
    pshape = (3,) if per_channel else ()
    alpha = (torch.rand(pshape, dtype=torch.float64) * 2 + 0.3).requires_grad_()
    beta = (torch.rand(pshape, dtype=torch.float64) + 0.5).requires_grad_() if with_beta else None
    inputs = (x, alpha) if beta is None else (x, alpha, beta)
    assert torch.autograd.gradcheck(lambda *t: snake(*t), inputs)


@pytest.mark.parametrize("with_beta", [False, True])
def test_cpu_kernel_matches_reference_float32(with_beta):
    if cpu_library() is None:
        pytest.skip("no C++ compiler: the reference path is the only path")
    torch.manual_seed(2)
    # Row (1, 2) holds arguments beyond the polynomial's range (|αx| > 8192), which take the libm path.
    x = torch.randn(3, 4, 1001) * 5
    x[1, 2, 100:120] = torch.linspace(-3e4, 3e4, 20)
    params = (torch.tensor([0.5, 1.0, 3.0, 20.0]),) + ((torch.tensor([0.7, 1.3, 2.0, 0.4]),) if with_beta else ())
    leaves = [t.clone().requires_grad_() for t in (x, *params)]
    refs = [t.clone().requires_grad_() for t in (x, *params)]
    y, y_ref = snake(*leaves), snake_reference(*refs)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(y)
    y.backward(g)
    y_ref.backward(g)
    torch.testing.assert_close(leaves[0].grad, refs[0].grad, atol=1e-4, rtol=1e-5)
    for got, ref in zip(leaves[1:], refs[1:]):
        torch.testing.assert_close(got.grad, ref.grad, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("alpha", [0.0, 1e-30, -1e-30, 1e-12, -1e-6])
def test_small_alpha_tends_to_identity(alpha):
    x = (torch.randn(2, 3, 50) * 3).requires_grad_()
    a = torch.full((3,), alpha, requires_grad=True)
    y = snake(x, a)
    # sin²(αx)/α = αx² + O(α³x⁴): the identity plus a vanishing quadratic.
    torch.testing.assert_close(y, x + alpha * x.detach() ** 2, atol=1e-6, rtol=1e-6)
    y.backward(torch.ones_like(y))
    assert torch.isfinite(x.grad).all() and torch.isfinite(a.grad).all()
    # d/dα [sin²(αx)/α] → x² as α → 0.
    torch.testing.assert_close(a.grad, (x.detach() ** 2).sum((0, 2)), rtol=1e-4, atol=1e-4)


def test_small_alpha_float64_gradcheck():
    x = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)
    a = torch.tensor([1e-7, -1e-7], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(snake, (x, a))


def test_negative_alpha_matches_formula():
    x = torch.randn(2, 3, 40)
    a = torch.tensor([-0.5, -2.0, 1.0])
    torch.testing.assert_close(snake(x, a).double(), formula(x, a), atol=2e-6, rtol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_computed_in_float32(dtype):
    x = (torch.randn(2, 4, 64) * 3).to(dtype).requires_grad_()
    act = SnakeBeta(4, alpha=2.0, beta=0.5)
    y = act(x)
    assert y.dtype == dtype
    expected = formula(x.detach().float(), act.alpha.detach(), act.beta.detach()).to(dtype)
    torch.testing.assert_close(y, expected, atol=0, rtol=0)  # one rounding, at the very end
    y.float().sum().backward()
    assert x.grad.dtype == dtype and act.alpha.grad.dtype == torch.float32


def test_float64_stays_float64():
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    act = Snake(3).double()
    assert act(x).dtype == torch.float64
    torch.testing.assert_close(act(x), formula(x, act.alpha.detach()), atol=1e-12, rtol=1e-12)


def test_log_scale_honours_init_and_stores_log():
    act = Snake(4, alpha=3.0, log_scale=True)
    torch.testing.assert_close(act.alpha.detach(), torch.full((4,), math.log(3.0)))
    torch.testing.assert_close(act.frequency().detach(), torch.full((4,), 3.0))
    beta = SnakeBeta(4, alpha=2.0, beta=0.5, log_scale=True)
    torch.testing.assert_close(beta.magnitude().detach(), torch.full((4,), 0.5))
    x = torch.randn(1, 4, 10)
    expected = formula(x, torch.full((4,), 2.0), torch.full((4,), 0.5))
    torch.testing.assert_close(beta(x).double(), expected, atol=2e-6, rtol=1e-6)


def test_log_scale_gradients_reach_parameters():
    act = SnakeBeta(3, log_scale=True).double()
    x = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, a, b: snake(x, a.exp(), b.exp()), (x, act.alpha, act.beta))


def test_frozen_parameters_are_buffers():
    act = Snake(4, alpha=5.0, learnable=False)
    assert list(act.parameters()) == [] and "alpha" in dict(act.named_buffers())
    seed = SnakeActivation(initial_a=0.3, learnable=False)
    assert list(seed.parameters()) == [] and seed.a.shape == ()


def test_flexible_snake_draws_in_range():
    torch.manual_seed(3)
    act = FlexibleSnake(256, a_base=5.0, a_max=50.0)
    assert act.alpha.shape == (256,)
    assert 5.0 <= act.alpha.min() and act.alpha.max() <= 50.0
    assert act.alpha.std() > 5  # really spread, not a constant
    gen = torch.Generator().manual_seed(0)
    a1 = FlexibleSnake(8, 1.0, 2.0, generator=gen).alpha
    a2 = FlexibleSnake(8, 1.0, 2.0, generator=torch.Generator().manual_seed(0)).alpha
    assert torch.equal(a1, a2)
    logged = FlexibleSnake(16, 5.0, 50.0, log_scale=True)
    assert 5.0 <= logged.frequency().min() and logged.frequency().max() <= 50.0


def test_seed_api_shapes():
    assert SnakeActivation().a.shape == ()
    assert SnakeActivation().a.item() == pytest.approx(0.2)
    assert FlexibleSnakeActivation(16, dim=1).a.shape == (1, 16, 1)
    assert FlexibleSnakeActivation(16, dim=2).a.shape == (1, 16, 1, 1)
    a = FlexibleSnakeActivation(1000, dim=1).a
    assert 0.2 <= a.min() and a.max() <= 0.5
    x = torch.randn(2, 16, 5, 5)
    act = FlexibleSnakeActivation(16, dim=2)
    torch.testing.assert_close(act(x).double(), formula(x, act.a.detach().view(-1)), atol=2e-6, rtol=1e-6)


def test_seed_readme_examples_run():
    class Net1D(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv1d(3, 16, kernel_size=3, stride=1, padding=1)
            self.snake = FlexibleSnakeActivation(16, dim=1)
            self.conv2 = nn.Conv1d(16, 16, kernel_size=3, stride=1, padding=1)

        def forward(self, x):
            x = self.snake(self.conv1(x))
            return self.conv2(x)

    class Net2D(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1)
            self.snake = FlexibleSnakeActivation(16, dim=2)
            self.conv2 = nn.Conv2d(16, 16, kernel_size=3, stride=1, padding=1)

        def forward(self, x):
            x = self.snake(self.conv1(x))
            return self.conv2(x)

    assert Net1D()(torch.rand(4, 3, 100)).shape == (4, 16, 100)
    assert Net2D()(torch.rand(4, 3, 32, 32)).shape == (4, 16, 32, 32)
    assert SnakeActivation()(torch.rand(4, 3, 100)).shape == (4, 3, 100)


def test_init_snake_regimes():
    torch.manual_seed(4)
    net = nn.Sequential(Snake(32), SnakeBeta(32, log_scale=True), FlexibleSnakeActivation(32, dim=1), SnakeActivation())
    init_snake_(net, "periodic")
    assert 5 <= net[0].alpha.min() and net[0].alpha.max() <= 50
    assert 5 <= net[1].frequency().min() and net[1].frequency().max() <= 50
    assert 5 <= net[2].a.min() and net[3].a <= 50
    init_snake_(net, "standard")
    assert 0.2 <= net[0].alpha.min() and net[0].alpha.max() <= 0.5
    with pytest.raises(ValueError, match="unknown regime 'loud'"):
        init_snake_(net, "loud")


def test_bad_input_errors():
    with pytest.raises(ValueError, match="16 channels on axis 1"):
        Snake(16)(torch.randn(2, 8, 10))
    with pytest.raises(ValueError, match="16 channels on axis 1"):
        SnakeBeta(16)(torch.randn(10))
    with pytest.raises(ValueError, match="dim must be 1"):
        FlexibleSnakeActivation(16, dim=3)
    with pytest.raises(ValueError, match="expects a 4-D input"):
        FlexibleSnakeActivation(16, dim=2)(torch.randn(2, 16, 5))
    with pytest.raises(ValueError, match="must be > 0 with log_scale"):
        Snake(4, alpha=0.0, log_scale=True)
    with pytest.raises(ValueError, match="must be > 0 with log_scale"):
        SnakeBeta(4, beta=-1.0, log_scale=True)
    with pytest.raises(ValueError, match="floating-point input"):
        Snake(4)(torch.ones(2, 4, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="floating-point input"):
        snake(torch.ones(3, dtype=torch.int32), torch.tensor(1.0))
    with pytest.raises(ValueError, match="Snake has 3 channels but the input has 4"):
        snake(torch.randn(2, 4, 5), torch.ones(3))
    with pytest.raises(ValueError, match="0 < low <= high"):
        FlexibleSnake(4, a_base=2.0, a_max=1.0)


def test_state_dict_matches_bigvgan_layout():
    bigvgan = pytest.importorskip("bigvgan.activations")
    torch.manual_seed(5)
    for ref, ours in (
        (bigvgan.Snake(8, alpha_logscale=True), Snake(8, log_scale=True)),
        (bigvgan.SnakeBeta(8, alpha_logscale=False), SnakeBeta(8)),
    ):
        with torch.no_grad():
            for p in ref.parameters():
                p.uniform_(0.3, 2.0) if not ref.alpha_logscale else p.uniform_(-1.0, 1.0)
        ours.load_state_dict(ref.state_dict())
        x = torch.randn(2, 8, 300) * 3
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)


def test_torch_compile_fullgraph():
    act = SnakeBeta(4, alpha=2.0)
    compiled = torch.compile(act, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 4, 16, requires_grad=True)
    y = compiled(x)
    torch.testing.assert_close(y, act(x))
    y.sum().backward()
    assert x.grad is not None and act.alpha.grad is not None


def test_saves_only_input_and_parameters():
    saved = []

    def pack(t):
        saved.append(t)
        return t

    act = SnakeBeta(8)
    x = torch.randn(2, 8, 100, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        act(x)
    sizes = sorted(t.numel() for t in saved)
    assert sizes == [8, 8, x.numel()]
