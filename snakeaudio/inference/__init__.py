"""Synthesis: long inputs in exact chunks, padded batches, streams of mel chunks, copy
synthesis of files; ONNX export; copy-synthesis evaluation against Griffin-Lim."""

from .chunked import receptive_field, synthesize_chunked
from .evaluate import EvaluationReport, evaluate, griffin_lim
from .export import export_onnx
from .files import EXAMPLE_INPUT, Job, Synthesized, plan_jobs, synthesize_files
from .plot import save_spectrogram_comparison
from .streaming import stream_synthesis, streaming_latency
from .synthesis import copy_synthesize, synthesize_batch

__all__ = [
    "EXAMPLE_INPUT",
    "EvaluationReport",
    "Job",
    "Synthesized",
    "copy_synthesize",
    "evaluate",
    "export_onnx",
    "griffin_lim",
    "plan_jobs",
    "receptive_field",
    "save_spectrogram_comparison",
    "stream_synthesis",
    "streaming_latency",
    "synthesize_batch",
    "synthesize_chunked",
    "synthesize_files",
]
