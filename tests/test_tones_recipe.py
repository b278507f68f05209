"""The tones recipe: its config loads, and the ablation runs end to end in its --quick form."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import torchaudio

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
    assert config.generator.head == "istft" and config.generator.istft_phase == "vocoder"


def test_variant_configs_differ_only_in_the_activation_and_its_init():
    ablation = _ablation()
    base = json.loads((RECIPE / "config.json").read_text())
    configs = {name: TrainConfig.from_dict(ablation.variant_config(base, v, 5, 7)) for name, v in ablation.VARIANTS.items()}
    assert {(c.training.max_steps, c.training.seed) for c in configs.values()} == {(7, 5)}
    snake = configs["snake"]
    assert snake.generator.activation == "snake" and not snake.generator.anti_alias and snake.training.snake_init is None
    assert configs["snake_aa"].generator == snake.generator.replace(anti_alias=True)
    assert configs["snakebeta"].generator == snake.generator.replace(activation="snakebeta")
    assert configs["leakyrelu"].generator == snake.generator.replace(activation="leakyrelu", snake_logscale=False)
    for regime in ("standard", "periodic"):
        config = configs[f"snake_alpha_{regime}"]
        assert config.generator == snake.generator and config.training.snake_init == regime
        assert dataclasses.replace(config.training, snake_init=None) == snake.training


def test_quick_ablation_writes_a_finite_table_and_the_figure(tmp_path, capsys):
    ablation = _ablation()
    variants = ["snake_aa", "leakyrelu"]
    assert ablation.main(["--quick", "-o", str(tmp_path), "--jobs", "2", "--variants", *variants]) == 0

    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results["runs"]) == ["untrained", *variants]
    for name in variants:
        (run,) = results["runs"][name]
        assert run["steps"] == 3 and (tmp_path / f"{name}_s1234" / "model.safetensors").is_file()
    for name, (run,) in results["runs"].items():
        assert set(run["bands"]) == {"below", "inside", "above"}
        for band, metrics in run["bands"].items():
            for key, value in metrics.items():
                assert math.isfinite(value), f"{name}/{band}/{key} = {value}"
    assert (tmp_path / "spectrograms.png").stat().st_size > 10_000

    table = (tmp_path / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| variant")]
    assert len(rows) == 3 * 3
    assert table.splitlines()[-1] in capsys.readouterr().out

    # Rerunning trains nothing: every run is finished.
    run = tmp_path / "leakyrelu_s1234"
    assert ablation.train_runs({run: (tmp_path / "configs" / "leakyrelu_s1234.json", 3)}) == {run: 0.0}


def test_the_evaluation_separates_a_tone_from_a_hop_comb_and_a_pitch_shift():
    ablation = _ablation()
    sr, hop = 16000, 256
    band = ablation.Band("inside", 110, 440)
    reference = ablation.tone_reference(band, sr, hop, clips=2, seconds=1.0, seed=7)
    window = torch.hann_window(1024)
    mel = lambda wav: torch.log(torch.stft(wav.reshape(-1), 1024, hop, window=window, return_complex=True).abs() + 1e-5)  # noqa: E731
    cents = 100.0

    def comb(wav):
        clicks = torch.zeros_like(wav)
        clicks[..., ::hop] = 0.3 * wav.abs().max()
        return wav + clicks

    def shifted(wav):  # played 2^(100/1200) times faster: 100 cents higher
        return torchaudio.functional.resample(wav, round(sr * 2 ** (cents / 1200)), sr)

    clean = ablation.evaluate(lambda w: w, mel, reference, sr, hop)
    combed = ablation.evaluate(comb, mel, reference, sr, hop)
    sharp = ablation.evaluate(shifted, mel, reference, sr, hop)
    assert clean["cents"] < 1 and abs(clean["hop_comb"]) < 0.1 and clean["mel_l1"] == 0 and clean["vuv_f1"] == 1
    assert clean["inharmonic"] < -40
    assert combed["hop_comb"] > 3 and combed["inharmonic"] > clean["inharmonic"] + 20
    assert abs(sharp["cents"] - cents) < 20 and sharp["inharmonic"] > clean["inharmonic"] + 20


def test_inharmonic_energy_is_what_lies_between_the_harmonics():
    ablation = _ablation()
    sr, f0 = 16000, 200.0
    tone = ablation.sawtooth(f0, sr, sr)
    t = torch.arange(sr) / sr
    folded = 0.05 * torch.sin(2 * math.pi * 1370 * t)  # between harmonics 6 and 7
    power_ratio = (0.05**2 / 2) / float(tone.square().mean())
    assert ablation.inharmonic_db(tone, f0, sr) < -80
    assert ablation.inharmonic_db(tone + folded, f0, sr) == pytest.approx(10 * math.log10(power_ratio / (1 + power_ratio)), abs=0.5)


def test_bad_jobs_is_refused(tmp_path, capsys):
    ablation = _ablation()
    with pytest.raises(SystemExit):
        ablation.main(["--quick", "-o", str(tmp_path), "--jobs", "0"])
    assert "--jobs and --seeds must be >= 1, got 0 and 3" in capsys.readouterr().err
