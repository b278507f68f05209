import pytest
import torch

from snakeaudio.inference import receptive_field, synthesize_chunked
from snakeaudio.models import Generator, preset


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    config = preset("tiny_16khz_80band").replace(upsample_initial_channel=32)
    g = Generator(config).prepare_for_inference()
    with torch.no_grad():
        for name, p in g.named_parameters():
            if name.endswith(".alpha"):
                p.uniform_(-0.5, 0.5)
    return g


def test_receptive_field_is_finite_and_stable(generator):
    field = receptive_field(generator)
    assert 2 <= field < 96
    assert receptive_field(generator) == field


@pytest.mark.parametrize("chunk", [1, 7, 50])
def test_chunked_equals_whole(generator, chunk):
    mel = torch.randn(2, 80, 123)
    with torch.inference_mode():
        whole = generator(mel)
    chunked = synthesize_chunked(generator, mel, chunk)
    assert chunked.shape == whole.shape
    torch.testing.assert_close(chunked, whole, atol=1e-5, rtol=0)


def test_too_little_context_leaves_seams(generator):
    mel = torch.randn(1, 80, 60)
    with torch.inference_mode():
        whole = generator(mel)
    short = synthesize_chunked(generator, mel, 10, context=0)
    assert (short - whole).abs().max() > 1e-3
    with pytest.raises(ValueError, match="chunk_frames must be >= 1"):
        synthesize_chunked(generator, mel, 0)
