"""ONNX export of a generator: log-mel frames in, waveform out.

The graph takes ``"mel"`` shaped (B, n_mels, F) and returns ``"audio"`` shaped
(B, 1, F · hop), with the batch and frame axes dynamic. It is traced with PyTorch's
``torch.export``-based exporter from a float32 CPU copy of the generator with weight norm
folded; the fused Snake kernels give way to standard operators while exporting (see
:func:`snakeaudio.nn.functional.exporting`), so any ONNX runtime can run it. The graph is
deterministic: the generator draws no random numbers.

Needs the ``export`` extra: ``pip install "snakeaudio[export]"``, or in a clone
``pip install -e ".[export]"`` (onnx, onnxruntime, onnxscript).
"""

from __future__ import annotations

import copy
import importlib
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor

from ..dsp.io import atomic_write
from ..models.generator import Generator

__all__ = ["ONNX_INPUT", "ONNX_OUTPUT", "ExportMismatchError", "export_onnx", "onnx_max_difference"]

ONNX_INPUT = "mel"
ONNX_OUTPUT = "audio"
_PACKAGES = ("onnx", "onnxruntime", "onnxscript")


class ExportMismatchError(ValueError):
    """The exported graph's output differs from PyTorch's by more than the tolerance."""


def _require_export_packages() -> None:
    missing = []
    for name in _PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(
            f"ONNX export needs the packages {', '.join(missing)}; install the export extra: "
            'pip install "snakeaudio[export]", or in a clone: pip install -e ".[export]"'
        )


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Keep the exporter's informational logging (e.g. skipped torchvision ops) out of the output."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _example_mel(batch: int, num_mels: int, frames: int) -> Tensor:
    """Log-mel-like values (about −4 ± 2) from a fixed seed. Shape: (batch, num_mels, frames)."""
    noise = torch.Generator().manual_seed(frames)
    return torch.randn(batch, num_mels, frames, generator=noise) * 2 - 4


def _run_onnxruntime(path: Path, mel: Tensor) -> Tensor:
    """Run the exported graph on CPU. Shape: (B, n_mels, F) -> (B, 1, F · hop)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (audio,) = session.run([ONNX_OUTPUT], {ONNX_INPUT: mel.numpy()})
    return torch.from_numpy(audio)


def _export_copy(generator: Generator) -> Generator:
    """A float32 CPU copy, weight norm folded, in eval mode; the original is left as it is."""
    return copy.deepcopy(generator).float().cpu().prepare_for_inference()


def onnx_max_difference(generator: Generator, path: str | os.PathLike, frames: Sequence[int] = (32, 65)) -> float:
    """Largest |ONNX − PyTorch| over the output samples, on seeded log-mel-like inputs.

    The i-th input has ``frames[i]`` frames and a batch of 1 for even i, 2 for odd i, so
    both dynamic axes are exercised. The reference is a float32 CPU copy of ``generator``.
    """
    _require_export_packages()
    if not frames or min(frames) < 1:
        raise ValueError(f"frames must be positive frame counts, got {tuple(frames)}")
    model = _export_copy(generator)
    difference = 0.0
    for i, count in enumerate(frames):
        mel = _example_mel(1 + i % 2, model.num_mels, count)  # (B, n_mels, F)
        with torch.no_grad():
            expected = model(mel)  # (B, 1, F·hop)
        actual = _run_onnxruntime(Path(path), mel)
        if actual.shape != expected.shape:
            raise ExportMismatchError(
                f"the ONNX graph at {path} returned shape {tuple(actual.shape)} for a mel of shape "
                f"{tuple(mel.shape)}; expected {tuple(expected.shape)}"
            )
        difference = max(difference, float((actual - expected).abs().max()))
    return difference


def export_onnx(
    generator: Generator, path: str | os.PathLike, *, check: bool = True, atol: float = 1e-3, example_frames: int = 32
) -> float | None:
    """Write ``generator`` as an ONNX graph ``"mel"`` (B, n_mels, F) -> ``"audio"`` (B, 1, F · hop).

    The file is written atomically (a temporary file in the same folder, then renamed). With
    ``check``, onnxruntime runs the graph on ``example_frames`` frames and on
    ``2 · example_frames + 1`` frames (batch 1 and 2) and compares it with PyTorch: when
    the largest absolute difference exceeds ``atol``, :class:`ExportMismatchError` is raised
    and nothing is written. Returns that difference, or None without ``check``. The graph
    is a single file, so the model must stay under ONNX's 2 GiB limit.

    Raises ``ImportError`` naming the ``export`` extra when onnx, onnxruntime or onnxscript
    is missing.
    """
    if example_frames < 1:
        raise ValueError(f"example_frames must be a positive frame count, got {example_frames}")
    if not atol >= 0:
        raise ValueError(f"atol must be a non-negative tolerance, got {atol}")
    _require_export_packages()
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"path must name the .onnx file to write, got the folder {path}")
    path.parent.mkdir(parents=True, exist_ok=True)

    model = _export_copy(generator)
    example = _example_mel(2, model.num_mels, example_frames)  # (2, n_mels, F)
    dynamic = {0: torch.export.Dim("batch", min=1), 2: torch.export.Dim("frames", min=1)}
    with _quiet_exporter():
        program = torch.onnx.export(
            model, (example,), dynamo=True, input_names=[ONNX_INPUT], output_names=[ONNX_OUTPUT],
            dynamic_shapes=(dynamic,), verbose=False,
        )  # fmt: skip

    def save_checked(tmp: Path) -> None:
        nonlocal difference
        program.save(str(tmp), external_data=False)
        if check:
            frames = (example_frames, 2 * example_frames + 1)
            difference = onnx_max_difference(generator, tmp, frames)
            if difference > atol:
                raise ExportMismatchError(
                    f"the ONNX graph differs from PyTorch by up to {difference:.3g} > atol={atol:g} "
                    f"(frames {frames}); {path} was not written"
                )

    difference = None
    atomic_write(path, save_checked)
    return difference
