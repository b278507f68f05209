"""``benchmarks/gpu_antialias.py`` works before a GPU is spent on it: its dry run goes through
every section on CPU (Triton's interpreter, tiny shapes, no timing, the CUDA build only
planned), with BigVGAN taken from a wheelhouse as on the GPU machine."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_antialias.py"
SECTIONS = ("correctness", "vs bigvgan torch", "torch.compile", "cuda graph", "vs bigvgan cuda")


def wheel_of_installed_bigvgan(folder: Path) -> bool:
    """A wheel of the installed bigvgan package in ``folder`` (as ``pip download`` would give); False without one."""
    spec = importlib.util.find_spec("bigvgan")
    if spec is None or not spec.submodule_search_locations:
        return False
    package = Path(list(spec.submodule_search_locations)[0])
    with zipfile.ZipFile(folder / "bigvgan-2.4.1-py3-none-any.whl", "w") as wheel:
        for path in package.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and "build" not in path.parts:
                wheel.write(path, Path("bigvgan") / path.relative_to(package))
    return True


def test_dry_run(tmp_path):
    pytest.importorskip("triton")
    has_bigvgan = wheel_of_installed_bigvgan(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # the script sets it
    command = [sys.executable, str(SCRIPT), "--dry-run", "--wheelhouse", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    out = result.stdout
    assert result.returncode == 0, out[-6000:] + result.stderr[-3000:]
    assert "0 failure(s)" in out
    table = out[out.index("| section") :]
    for section in SECTIONS:
        assert f"| {section} " in table, section
    assert "CRASHED" not in table
    if has_bigvgan:
        assert "bigvgan: wheelhouse bigvgan-2.4.1-py3-none-any" in out
        assert "ok vs bigvgan torch f64" in table
        assert "arch=compute_90,code=sm_90" in out  # the CUDA build it would run
        assert (tmp_path / "unpacked" / "bigvgan-2.4.1-py3-none-any" / "bigvgan" / "activations.py").is_file()


def test_help_documents_the_command_and_the_wheelhouse(capsys, monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_antialias_script", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, script)  # its dataclasses look their module up
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as exit_:
        script.main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for text in ("python benchmarks/gpu_antialias.py", "python benchmarks/build_wheelhouse.py", "--dry-run"):
        assert text in out
