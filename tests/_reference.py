"""NVIDIA's ``bigvgan`` package, the reference the parity tests compare against, where installed.

Tests that need it carry ``@needs_bigvgan``; the rest of their module runs without it.
"""

import importlib
import importlib.util

import pytest

needs_bigvgan = pytest.mark.skipif(
    importlib.util.find_spec("bigvgan") is None, reason="needs NVIDIA's bigvgan: pip install --no-deps bigvgan==2.4.1"
)


def reference(module: str):
    """``bigvgan.<module>``, or None where bigvgan is not installed."""
    try:
        return importlib.import_module(f"bigvgan.{module}")
    except ImportError:
        return None
