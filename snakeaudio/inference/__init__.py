"""Synthesis: long inputs in exact chunks."""

from .chunked import receptive_field, synthesize_chunked

__all__ = ["receptive_field", "synthesize_chunked"]
