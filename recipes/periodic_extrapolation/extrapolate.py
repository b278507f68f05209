"""Periodic extrapolation: Snake vs ReLU vs tanh (Ziyin, Hartwig & Ueda, NeurIPS 2020).

A one-hidden-layer MLP ``1 → hidden → activation → 1`` is fitted to a periodic
target on the bounded interval ``[-L, L]`` and evaluated far outside it, on
``a·L ≤ |x| ≤ b·L``. ReLU networks extrapolate linearly and tanh networks
tend to a constant, so both miss the oscillation there; Snake,
``y = x + sin²(αx)/α`` with a learnable α per hidden unit, carries its
periodicity outside the training range.

Every activation gets the same network, initialisation and optimiser: the
read-out layer starts at zero and is the only weight-decayed layer, which
keeps hidden units that do not help the fit from entering the output.

Run from the repository root::

    python recipes/periodic_extrapolation/extrapolate.py

It writes ``extrapolation.png`` and ``results.md`` under ``--output``.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from snakeaudio import Snake

ActivationFactory = Callable[[int], nn.Module]
"""Channels → activation module, as the building blocks of snakeaudio take it."""

SNAKE_ALPHA = 2.0
"""Initial α of the learnable Snake: with first-layer weights in [-1, 1] a hidden
unit starts at angular frequency 2αw in [-4, 4], covering both targets' 1 and 3."""

ACTIVATIONS: dict[str, ActivationFactory] = {
    "snake": partial(Snake, alpha=SNAKE_ALPHA, learnable=True),
    "relu": lambda channels: nn.ReLU(),
    "tanh": lambda channels: nn.Tanh(),
}


@dataclass(frozen=True)
class Target:
    """A periodic function to learn, with the formula shown in tables and plots."""

    formula: str
    fn: Callable[[Tensor], Tensor]


TARGETS: dict[str, Target] = {
    "sin": Target("sin(x)", torch.sin),
    "two-periods": Target("sin(x) + 0.5·sin(3x)", lambda x: torch.sin(x) + 0.5 * torch.sin(3 * x)),
}


@dataclass(frozen=True)
class ExperimentConfig:
    """Data, model and optimiser settings shared by every target × activation run.

    Args:
        half_width: L, training on ``[-L, L]`` (default 4π: four periods of sin x).
        far: ``(a, b)``, out-of-range evaluation on ``a·L ≤ |x| ≤ b·L``.
        n_train: training points, evenly spaced, one full batch.
        n_eval: evaluation points per interval (in range, and each far side).
        hidden: hidden units.
        steps: AdamW steps, learning rate cosine-annealed from ``lr`` to 0.
        lr: initial learning rate.
        readout_decay: decoupled weight decay (AdamW) of the read-out weight only.
        seed: ``torch.manual_seed`` before building each model.
    """

    half_width: float = 4 * math.pi
    far: tuple[float, float] = (2.0, 6.0)
    n_train: int = 1000
    n_eval: int = 2000
    hidden: int = 64
    steps: int = 3000
    lr: float = 1e-2
    readout_decay: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.half_width > 0:
            raise ValueError(f"half_width must be > 0, got {self.half_width}")
        if not 1.0 <= self.far[0] < self.far[1]:
            raise ValueError(f"far must be (a, b) with 1 <= a < b (in units of half_width), got {self.far}")
        for name in ("n_train", "n_eval", "hidden", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.readout_decay < 0:
            raise ValueError(f"readout_decay must be >= 0, got {self.readout_decay}")


QUICK = ExperimentConfig(steps=1000)
"""The shortened run used by the test: same problem, a third of the steps."""


@dataclass
class Result:
    """One trained model: its errors, training time and prediction on the plot grid."""

    target: str
    activation: str
    mse_in: float
    mse_far: float
    seconds: float
    prediction: Tensor = field(repr=False)


def make_mlp(activation: ActivationFactory, hidden: int) -> nn.Sequential:
    """``1 → hidden → activation → 1`` with the read-out initialised to zero.

    Shape: (B, 1) -> (B, 1).
    """
    model = nn.Sequential(nn.Linear(1, hidden), activation(hidden), nn.Linear(hidden, 1))
    nn.init.zeros_(model[-1].weight)
    return model


def fit(model: nn.Sequential, x: Tensor, y: Tensor, steps: int, lr: float, readout_decay: float) -> float:
    """Full-batch AdamW on the MSE, decaying only the read-out weight; returns the last loss."""
    readout = model[-1].weight
    others = [p for p in model.parameters() if p is not readout]
    optimizer = torch.optim.AdamW(
        [{"params": others, "weight_decay": 0.0}, {"params": [readout], "weight_decay": readout_decay}], lr=lr
    )
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        schedule.step()
    return loss.item()


def grids(config: ExperimentConfig) -> dict[str, Tensor]:
    """Input points shaped (N, 1): ``train``, ``in_range`` (a finer grid), ``far`` (both sides), ``plot``."""
    L, (a, b) = config.half_width, config.far
    right = torch.linspace(a * L, b * L, config.n_eval)
    return {
        "train": torch.linspace(-L, L, config.n_train).unsqueeze(1),
        "in_range": torch.linspace(-L, L, config.n_eval).unsqueeze(1),
        "far": torch.cat([-right.flip(0), right]).unsqueeze(1),
        "plot": torch.linspace(-b * L, b * L, 4 * config.n_eval).unsqueeze(1),
    }


def run(
    targets: Mapping[str, Target], activations: Mapping[str, ActivationFactory], config: ExperimentConfig
) -> list[Result]:
    """Train one model per target × activation and measure it in and far out of range."""
    x = grids(config)
    results = []
    for target_name, target in targets.items():
        for act_name, activation in activations.items():
            torch.manual_seed(config.seed)
            model = make_mlp(activation, config.hidden)
            start = time.perf_counter()
            fit(model, x["train"], target.fn(x["train"]), config.steps, config.lr, config.readout_decay)
            seconds = time.perf_counter() - start
            with torch.no_grad():
                mse = {k: nn.functional.mse_loss(model(x[k]), target.fn(x[k])).item() for k in ("in_range", "far")}
                prediction = model(x["plot"]).squeeze(1)
            results.append(Result(target_name, act_name, mse["in_range"], mse["far"], seconds, prediction))
    return results


def baseline_mse(target: Target, config: ExperimentConfig) -> float:
    """Far-range MSE of always predicting 0: what a model that ignores the oscillation scores."""
    far = grids(config)["far"]
    return target.fn(far).square().mean().item()


def format_table(results: Sequence[Result], targets: Mapping[str, Target], config: ExperimentConfig) -> str:
    """Markdown table: in-range and far MSE per target × activation, and far MSE relative to Snake's."""
    a, b = config.far
    lines = [
        f"| target | activation | in-range MSE | far MSE ({a:g}L ≤ \\|x\\| ≤ {b:g}L) | far MSE ÷ Snake's |",
        "|---|---|---:|---:|---:|",
    ]
    for name, target in targets.items():
        rows = [r for r in results if r.target == name]
        snake = next((r.mse_far for r in rows if r.activation == "snake"), None)
        for r in rows:
            ratio = f"{r.mse_far / snake:,.0f}×" if snake and r.activation != "snake" else "—"
            lines.append(f"| {target.formula} | {r.activation} | {r.mse_in:.1e} | {r.mse_far:.1e} | {ratio} |")
        lines.append(f"| {target.formula} | (predict 0) | | {baseline_mse(target, config):.1e} | |")
    return "\n".join(lines)


def plot(results: Sequence[Result], targets: Mapping[str, Target], config: ExperimentConfig, path: Path) -> None:
    """Target and every model's prediction over ``[-bL, bL]``, training interval shaded."""
    x = grids(config)["plot"].squeeze(1)
    L, (a, b) = config.half_width, config.far
    fig = Figure(figsize=(12, 3.2 * len(targets)), layout="constrained")
    axes = fig.subplots(len(targets), 1, squeeze=False)[:, 0]
    for ax, (name, target) in zip(axes, targets.items()):
        y = target.fn(x)
        ax.axvspan(-L, L, color="0.85", label="training interval")
        for side in (-1, 1):
            label = "far (scored)" if side > 0 else None
            ax.axvspan(side * a * L, side * b * L, color="tab:orange", alpha=0.06, label=label)
        ax.plot(x, y, color="black", lw=2.5, label="target")
        for r in results:
            if r.target == name:
                ax.plot(x, r.prediction, lw=1.2, label=f"{r.activation} (far MSE {r.mse_far:.1e})")
        ax.set_xlim(-b * L, b * L)
        ax.set_ylim(-1.5 * y.abs().max().item() - 0.5, 1.5 * y.abs().max().item() + 0.5)
        ax.set_title(f"{target.formula}: trained on [-{L:.3g}, {L:.3g}], {config.steps} steps")
        ax.set_xlabel("x")
        ax.legend(loc="upper left", fontsize=8, ncols=3)
    fig.savefig(path, dpi=120)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=Path("outputs/periodic_extrapolation"), help="results folder")
    parser.add_argument("--quick", action="store_true", help=f"shortened run ({QUICK.steps} steps), as in the test")
    parser.add_argument("--steps", type=int, help="override the number of training steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--readout-decay", type=float, default=ExperimentConfig.readout_decay, help="0: ablation")
    parser.add_argument("--targets", nargs="+", choices=sorted(TARGETS), default=list(TARGETS))
    parser.add_argument("--activations", nargs="+", choices=sorted(ACTIVATIONS), default=list(ACTIVATIONS))
    args = parser.parse_args(argv)

    config = replace(QUICK if args.quick else ExperimentConfig(), seed=args.seed, readout_decay=args.readout_decay)
    if args.steps is not None:
        config = replace(config, steps=args.steps)
    targets = {name: TARGETS[name] for name in args.targets}
    activations = {name: ACTIVATIONS[name] for name in args.activations}

    start = time.perf_counter()
    results = run(targets, activations, config)
    elapsed = time.perf_counter() - start
    table = format_table(results, targets, config)

    args.output.mkdir(parents=True, exist_ok=True)
    plot(results, targets, config, args.output / "extrapolation.png")
    summary = (
        f"Trained on |x| ≤ L = {config.half_width:.4g}, "
        f"scored far out on {config.far[0]:g}L ≤ |x| ≤ {config.far[1]:g}L; "
        f"{config.hidden} hidden units, {config.steps} steps, "
        f"read-out decay {config.readout_decay:g}, seed {config.seed}; "
        f"{elapsed:.1f} s with {torch.get_num_threads()} threads."
    )
    (args.output / "results.md").write_text(f"{summary}\n\n{table}\n")
    print(summary)
    print(table)
    print(f"wrote {args.output / 'results.md'} and {args.output / 'extrapolation.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
