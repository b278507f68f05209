"""Throughput of a conv + anti-aliased SnakeBeta loop alone, and as two processes sharing the cores.

Shows what spinning OpenMP threads cost when processes share CPU cores: run once as is, and
once with OMP_WAIT_POLICY=PASSIVE in the environment (then torch's own threads sleep too;
snakeaudio's kernel threads always do unless the variable says otherwise).

Run: python benchmarks/contention.py [--seconds 8]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import torch

from snakeaudio import AntiAliasedActivation1d, SnakeBeta


def worker(seconds: float) -> None:
    act = AntiAliasedActivation1d(SnakeBeta(64))
    conv = torch.nn.Conv1d(64, 64, 7, padding=3)
    x = torch.randn(4, 64, 8192)
    with torch.inference_mode():
        act(conv(x))
        start, n = time.time(), 0
        while time.time() - start < seconds:
            act(conv(x))
            n += 1
    print(n / (time.time() - start))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.seconds)
        return 0
    command = [sys.executable, __file__, "--worker", "--seconds", str(args.seconds)]
    alone = float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    shared = [float(p.communicate()[0]) for p in procs]
    print(f"{torch.get_num_threads()} threads per process; iterations/s")
    print(f"alone: {alone:.1f}; two processes: {shared[0]:.1f} + {shared[1]:.1f} = {sum(shared):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
