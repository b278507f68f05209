"""Pure signal processing: Kaiser-sinc filter design, resampling, aliasing measurement."""

from .aliasing import AliasingReport, frequency_response, measure_aliasing, stopband_attenuation_db
from .pitch import PitchMetrics, pitch_metrics
from .mel import MelConfig, MelSpectrogram, mel_basis, mel_spectrogram, num_frames
from .filters import (
    DownSample1d,
    LowPassFilter1d,
    UpSample1d,
    default_kernel_size,
    kaiser_beta,
    kaiser_sinc_filter,
)

__all__ = [
    "kaiser_beta",
    "kaiser_sinc_filter",
    "default_kernel_size",
    "LowPassFilter1d",
    "UpSample1d",
    "DownSample1d",
    "AliasingReport",
    "measure_aliasing",
    "frequency_response",
    "stopband_attenuation_db",
    "MelConfig",
    "MelSpectrogram",
    "mel_spectrogram",
    "mel_basis",
    "num_frames",
    "PitchMetrics",
    "pitch_metrics",
]
