"""Training: datasets, losses, the configuration and the one trainer every recipe uses."""

from ..inference.scores import Scores, copy_synthesis_scores
from .config import DataConfig, OptimConfig, TrainConfig
from .data import AudioDataset, MelAudioDataset, PeriodicToneDataset, ToneSpec, read_audio
from .losses import (
    AdversarialLoss,
    MultiScaleMelLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    mel_l1_loss,
    multi_resolution_stft_distance,
)
from .trainer import Trainer, latest_checkpoint

__all__ = [
    "AudioDataset",
    "MelAudioDataset",
    "PeriodicToneDataset",
    "ToneSpec",
    "read_audio",
    "DataConfig",
    "OptimConfig",
    "TrainConfig",
    "Trainer",
    "latest_checkpoint",
    "AdversarialLoss",
    "MultiScaleMelLoss",
    "mel_l1_loss",
    "feature_matching_loss",
    "discriminator_loss",
    "generator_adversarial_loss",
    "multi_resolution_stft_distance",
    "Scores",
    "copy_synthesis_scores",
]
