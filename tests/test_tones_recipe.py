"""The tones recipe: its config loads, and the ablation runs end to end in its --quick form."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from snakeaudio import DEFAULT_MODEL
from snakeaudio.train import TrainConfig

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "tones"


def _ablation():
    spec = importlib.util.spec_from_file_location("tones_ablation", RECIPE / "ablation.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_config_loads():
    config = TrainConfig.from_json(RECIPE / "config.json")
    assert config.data.kind == "tones"
    assert (config.data.f0_min, config.data.f0_max) == (110, 440)
    assert config.generator.sampling_rate == 16000 and config.generator.hop_size == 256
    assert config.generator.anti_alias and config.generator.activation in ("snake", "snakebeta")


def test_variant_configs_differ_only_in_the_activation():
    ablation = _ablation()
    base = json.loads((RECIPE / "config.json").read_text())
    configs = {name: TrainConfig.from_dict(ablation.variant_config(base, o, 7)) for name, o in ablation.VARIANTS.items()}
    assert {c.training.max_steps for c in configs.values()} == {7}
    assert configs["snake_aa"].generator.anti_alias and not configs["snake_noaa"].generator.anti_alias
    assert configs["snake_noaa"].generator.activation == configs["snake_aa"].generator.activation
    assert configs["leakyrelu"].generator.activation == "leakyrelu" and not configs["leakyrelu"].generator.anti_alias
    assert configs["snake_noaa"].generator.replace(anti_alias=True) == configs["snake_aa"].generator


def test_quick_ablation_writes_a_finite_table(tmp_path, capsys):
    ablation = _ablation()
    assert ablation.main(["--quick", "-o", str(tmp_path), "--jobs", "2", "--also", DEFAULT_MODEL]) == 0

    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["variants"]) == [*ablation.VARIANTS, DEFAULT_MODEL]
    assert results["variants"][DEFAULT_MODEL]["steps"] is None  # a pretrained model, evaluated at its own 24 kHz
    for name, result in results["variants"].items():
        if name in ablation.VARIANTS:
            assert result["steps"] == 3
            assert (tmp_path / f"{name}.json").is_file() and (tmp_path / name / "model.safetensors").is_file()
        assert {"below", "inside", "above"} <= set(result["bands"])
        for band, metrics in result["bands"].items():
            for key, value in metrics.items():
                assert math.isfinite(value), f"{name}/{band}/{key} = {value}"

    table = (tmp_path / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| variant")]
    assert len(rows) == 4 * 3
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        numbers = [float(c.rstrip("%")) for c in cells[5:-1]] + [float(c) for c in cells[-1].split("→")]
        assert all(math.isfinite(x) for x in numbers), row
    assert table.splitlines()[-1] in capsys.readouterr().out

    # Rerunning trains nothing: every run is finished.
    run = tmp_path / "leakyrelu"
    assert ablation.train_variants({run: tmp_path / "leakyrelu.json"}, 3) == {run: 0.0}


def test_lag_correlation_tells_a_hop_locked_buzz_from_a_tone():
    ablation = _ablation()
    sr, hop = 16000, 256
    t = torch.arange(sr) / sr
    tone = torch.sin(2 * math.pi * 199.0 * t)  # 3.18 periods per hop
    buzz = torch.sin(2 * math.pi * 187.5 * t)  # 3 periods per hop: on the 62.5 Hz lattice
    assert abs(ablation.lag_correlation(tone, hop) - math.cos(2 * math.pi * 199.0 * hop / sr)) < 1e-3
    assert ablation.lag_correlation(buzz, hop) > 0.999
    assert ablation.lag_correlation(torch.zeros(sr), hop) == 0.0


def test_bad_jobs_is_refused(tmp_path, capsys):
    ablation = _ablation()
    with pytest.raises(SystemExit):
        ablation.main(["--quick", "-o", str(tmp_path), "--jobs", "0"])
    assert "--jobs must be >= 1, got 0" in capsys.readouterr().err
