"""Signal processing: Kaiser-sinc filter design, resampling, mel features, the constant-Q
transform, aliasing measurement, quality scores (PESQ, DNSMOS, pitch, hop comb); reading and
writing audio and mel files.

Submodules load on first use, so that ``snakeaudio.nn`` (which needs only the filters) imports
with torch alone: audio I/O, mel features and the scores pull in soundfile, torchaudio and
librosa when one of their names is first asked for.
"""

from __future__ import annotations

import importlib

_SUBMODULES = {
    "AUDIO_FILE_SUFFIXES": "io",
    "AliasingReport": "aliasing",
    "ConstantQTransform": "cqt",
    "DNSMOSScores": "quality",
    "DownSample1d": "filters",
    "InverseSTFT": "istft",
    "LowPassFilter1d": "filters",
    "MEL_FILE_SUFFIXES": "io",
    "MelConfig": "mel",
    "MelSpectrogram": "mel",
    "PitchMetrics": "pitch",
    "UpSample1d": "filters",
    "atomic_write": "io",
    "audio_files": "io",
    "cqt_kernels": "cqt",
    "default_kernel_size": "filters",
    "dnsmos": "quality",
    "frequency_response": "aliasing",
    "hop_comb_db": "comb",
    "kaiser_beta": "filters",
    "kaiser_sinc_filter": "filters",
    "measure_aliasing": "aliasing",
    "mel_basis": "mel",
    "mel_spectrogram": "mel",
    "num_frames": "mel",
    "pesq_wideband": "quality",
    "pitch_metrics": "pitch",
    "read_audio": "io",
    "read_mel": "io",
    "stopband_attenuation_db": "aliasing",
    "write_wav": "io",
}
"""Public name → the submodule that defines it."""

__all__ = [
    "AUDIO_FILE_SUFFIXES",
    "MEL_FILE_SUFFIXES",
    "AliasingReport",
    "ConstantQTransform",
    "DNSMOSScores",
    "DownSample1d",
    "InverseSTFT",
    "LowPassFilter1d",
    "MelConfig",
    "MelSpectrogram",
    "PitchMetrics",
    "UpSample1d",
    "atomic_write",
    "audio_files",
    "cqt_kernels",
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


def __getattr__(name: str) -> object:
    if name not in _SUBMODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_SUBMODULES[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
