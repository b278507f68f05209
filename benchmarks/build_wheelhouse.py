"""Build the wheelhouse that ``benchmarks/gpu_antialias.py`` takes BigVGAN from, for a GPU
machine without a package registry.

Run where pip can reach a registry:  python benchmarks/build_wheelhouse.py [--out benchmarks/wheelhouse]
then copy the repository (the folder is git-ignored) to the GPU machine and run there:
python benchmarks/gpu_antialias.py

What it downloads, without dependencies (about 1.5 MB in all):

- ``bigvgan==2.4.1``: the reference. Its ``activations.py`` and ``alias_free_activation``
  modules import only torch at module level (and ``math``, ``os``, ``pathlib``,
  ``subprocess``); the package's ``__init__`` would import huggingface_hub, librosa,
  matplotlib, numpy, scipy and tqdm, which is why the benchmark loads the modules without it.
- ``setuptools``: ``torch.utils.cpp_extension``, which builds BigVGAN's CUDA kernel, imports it
  and recent Pythons no longer ship it.
- ``ninja`` for x86_64 and aarch64 Linux: ``cpp_extension.load`` builds with it; the benchmark
  uses the wheel's binary only where the machine has no ``ninja``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent / "wheelhouse"
LIMIT_MB = 60
PURE = ["bigvgan==2.4.1", "setuptools"]
NINJA_PLATFORMS = {
    "x86_64": ["manylinux2014_x86_64", "manylinux_2_17_x86_64"],
    "aarch64": ["manylinux2014_aarch64", "manylinux_2_17_aarch64"],
}


def commands(out: Path) -> list[list[str]]:
    """The pip downloads: pure-python wheels, then one ninja wheel per machine type."""
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(out)]
    found = [[*pip, *PURE]]
    for platforms in NINJA_PLATFORMS.values():
        found.append([*pip, *(f"--platform={p}" for p in platforms), "ninja"])
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--out", type=Path, default=OUT, help=f"wheelhouse folder (default {OUT})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for command in commands(args.out):
        print("$", " ".join(command), flush=True)
        if subprocess.run(command).returncode != 0:
            print(f"error: pip download failed: {' '.join(command)}")
            return 1
    wheels = sorted(args.out.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels) / 2**20
    print("\n".join(f"  {w.name}  {w.stat().st_size / 2**10:.0f} KiB" for w in wheels))
    print(f"{len(wheels)} wheels, {size:.1f} MiB in {args.out}")
    if size > LIMIT_MB:
        print(f"error: the wheelhouse holds {size:.0f} MiB, more than the {LIMIT_MB} MiB meant to travel with the code")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
