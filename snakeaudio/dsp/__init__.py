"""Signal processing: Kaiser-sinc filter design, resampling, mel features, aliasing measurement,
quality scores (PESQ, DNSMOS, pitch, hop comb); reading and writing audio and mel files."""

from .aliasing import (
    AliasingReport,
    frequency_response,
    measure_aliasing,
    stopband_attenuation_db,
)
from .comb import hop_comb_db
from .filters import (
    DownSample1d,
    LowPassFilter1d,
    UpSample1d,
    default_kernel_size,
    kaiser_beta,
    kaiser_sinc_filter,
)
from .io import (
    AUDIO_FILE_SUFFIXES,
    MEL_FILE_SUFFIXES,
    atomic_write,
    audio_files,
    read_audio,
    read_mel,
    write_wav,
)
from .mel import MelConfig, MelSpectrogram, mel_basis, mel_spectrogram, num_frames
from .pitch import PitchMetrics, pitch_metrics
from .quality import DNSMOSScores, dnsmos, pesq_wideband

__all__ = [
    "AUDIO_FILE_SUFFIXES",
    "MEL_FILE_SUFFIXES",
    "AliasingReport",
    "DNSMOSScores",
    "DownSample1d",
    "LowPassFilter1d",
    "MelConfig",
    "MelSpectrogram",
    "PitchMetrics",
    "UpSample1d",
    "atomic_write",
    "audio_files",
    "default_kernel_size",
    "dnsmos",
    "frequency_response",
    "hop_comb_db",
    "kaiser_beta",
    "kaiser_sinc_filter",
    "measure_aliasing",
    "mel_basis",
    "mel_spectrogram",
    "num_frames",
    "pesq_wideband",
    "pitch_metrics",
    "read_audio",
    "read_mel",
    "stopband_attenuation_db",
    "write_wav",
]
