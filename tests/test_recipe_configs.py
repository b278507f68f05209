from pathlib import Path

import pytest

from snakeaudio.train import TrainConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*/config*.json"))


def test_recipes_have_configs():
    assert any(p.parent.name == "speech_small" for p in CONFIGS)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.parent.name)
def test_recipe_config_loads(path):
    config = TrainConfig.from_json(path)
    assert config.training.segment_size % config.generator.hop_size == 0
