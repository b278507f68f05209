"""Saving and loading vocoders: our folders and NVIDIA's official BigVGAN folders.

Our format: ``config.json`` (BigVGAN keys) + ``model.safetensors`` (weights with weight
norm folded). NVIDIA's: ``config.json`` + ``bigvgan_generator.pt``, a pickle holding
``{"generator": state_dict}`` with weight norm as ``weight_g``/``weight_v``; it is read
with ``torch.load(weights_only=True)`` and converted explicitly by
:func:`convert_bigvgan_state_dict`.

Bundled models are folders of our format shipped inside the package
(``snakeaudio/pretrained/<name>/``, with a model card ``README.md``); they load by name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from ..dsp.filters import kaiser_sinc_filter
from ..dsp.io import atomic_write
from .config import GeneratorConfig
from .generator import Generator

__all__ = [
    "from_pretrained",
    "save_pretrained",
    "convert_bigvgan_state_dict",
    "inference_state_dict",
    "available_models",
    "bundled_model_path",
    "DEFAULT_MODEL",
    "CheckpointError",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
BIGVGAN_WEIGHTS_FILE = "bigvgan_generator.pt"
BUNDLED = Path(__file__).resolve().parents[1] / "pretrained"
DEFAULT_MODEL = "speech_small_24khz"


def available_models() -> list[str]:
    """Names of the models bundled with the package, for :func:`from_pretrained`."""
    if not BUNDLED.is_dir():
        return []
    return sorted(p.name for p in BUNDLED.iterdir() if (p / CONFIG_FILE).is_file() and (p / WEIGHTS_FILE).is_file())


def bundled_model_path(name: str) -> Path:
    """The folder of a bundled model; ``FileNotFoundError`` listing the bundled names otherwise."""
    if name not in available_models():
        bundled = ", ".join(available_models()) or "none"
        raise FileNotFoundError(f"{name!r} is neither a model folder nor a bundled model (bundled: {bundled})")
    return BUNDLED / name


class CheckpointError(ValueError):
    """A checkpoint does not match the model its config describes."""


def inference_state_dict(model: torch.nn.Module) -> dict[str, Tensor]:
    """State dict with every weight-norm parametrisation folded into a plain ``weight``."""
    out: dict[str, Tensor] = {}
    for name, tensor in model.state_dict().items():
        if ".parametrizations.weight.original" in name:
            prefix = name.split(".parametrizations.weight.original")[0]
            if prefix + ".weight" not in out:
                out[prefix + ".weight"] = model.get_submodule(prefix).weight.detach().clone()
        else:
            out[name] = tensor.detach().clone()
    return out


def _fold_weight_norm(g: Tensor, v: Tensor) -> Tensor:
    """w = g · v / ‖v‖, the norm taken over every axis but 0 (``torch.nn.utils.weight_norm``, dim=0)."""
    norm = v.norm(dim=tuple(range(1, v.dim())), keepdim=True)
    return g * v / norm


_FILTER = re.compile(r"\.(upsample\.filter|downsample\.lowpass\.filter)$")


def convert_bigvgan_state_dict(state: dict[str, Tensor], config: GeneratorConfig) -> dict[str, Tensor]:
    """Map NVIDIA's generator state dict onto :class:`Generator`'s (weight norm folded).

    - ``X.weight_g``/``X.weight_v`` → ``X.weight``;
    - ``ups.{i}.0.*`` → ``ups.{i}.*``; resblock "2" ``convs.{j}`` → ``convs1.{j}``;
    - the anti-aliasing filters BigVGAN stores are checked against our design and dropped
      (ours are computed, not stored).
    """
    out: dict[str, Tensor] = {}
    for name, tensor in state.items():
        if _FILTER.search(name):
            expected = kaiser_sinc_filter(0.25, 0.3, 12).to(tensor.dtype)
            if tensor.numel() != 12 or not torch.allclose(tensor.reshape(-1).cpu(), expected, atol=1e-6):
                raise CheckpointError(f"{name} is not BigVGAN's 12-tap Kaiser-sinc filter; this checkpoint cannot be converted")
            continue
        if name.endswith(".weight_v"):
            continue
        key = re.sub(r"^ups\.(\d+)\.0\.", r"ups.\1.", name)
        if config.resblock == "2":
            key = re.sub(r"^(resblocks\.\d+)\.convs\.", r"\1.convs1.", key)
        if name.endswith(".weight_g"):
            v_name = name[: -len("weight_g")] + "weight_v"
            if v_name not in state:
                raise CheckpointError(f"{name} has no matching {v_name}")
            out[key[: -len("weight_g")] + "weight"] = _fold_weight_norm(tensor, state[v_name])
        else:
            out[key] = tensor
    return out


def _load_strict(model: Generator, state: dict[str, Tensor], source: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if state[k].shape != expected[k].shape
    )
    if missing or unexpected or misshaped:
        parts = [f"{label} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)) if keys]  # fmt: skip
        raise CheckpointError(f"{source} does not match its config.json: " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def from_pretrained(path_or_name: str | os.PathLike, map_location: str | torch.device = "cpu") -> Generator:
    """Load a vocoder ready for inference: a bundled model by name (:func:`available_models`)
    or a folder (ours, a training run's, or NVIDIA's official BigVGAN).

    The result is in eval mode with weight norm folded: ``vocoder(mel)`` → (B, 1, F·hop),
    ``vocoder.mel(wav)``, ``vocoder.sample_rate``, ``.hop_length``, ``.num_mels``.
    """
    folder = Path(path_or_name)
    if not folder.is_dir():
        folder = bundled_model_path(str(path_or_name))
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no {CONFIG_FILE}")
    config = GeneratorConfig.from_json(config_path)
    model = Generator(config, weight_norm=False)
    ours, official = folder / WEIGHTS_FILE, folder / BIGVGAN_WEIGHTS_FILE
    if ours.is_file():
        try:
            state = load_file(str(ours), device=str(map_location))
        except Exception as err:  # safetensors raises its own error types for corrupt files
            raise CheckpointError(f"cannot read {ours}: {err}") from err
        _load_strict(model, state, str(ours))
    elif official.is_file():
        try:
            checkpoint = torch.load(official, map_location=map_location, weights_only=True)
        except Exception as err:
            raise CheckpointError(f"cannot read {official}: {err}") from err
        if not isinstance(checkpoint, dict) or "generator" not in checkpoint:
            raise CheckpointError(f"{official} has no 'generator' entry (keys: {sorted(checkpoint)[:8]})")
        _load_strict(model, convert_bigvgan_state_dict(checkpoint["generator"], config), str(official))
    else:
        raise FileNotFoundError(f"{folder} has neither {WEIGHTS_FILE} nor {BIGVGAN_WEIGHTS_FILE}")
    return model.to(map_location).prepare_for_inference()


def save_pretrained(model: Generator, directory: str | os.PathLike) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (weight norm folded), each atomically."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.contiguous().cpu() for k, v in inference_state_dict(model).items()}
    atomic_write(folder / WEIGHTS_FILE, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    atomic_write(folder / CONFIG_FILE, model.config.to_json)
    return folder
