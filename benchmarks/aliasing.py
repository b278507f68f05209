"""Aliasing of Snake with and without anti-aliasing, and the stop-band of BigVGAN's filters.

Run: python benchmarks/aliasing.py
"""

from __future__ import annotations

from snakeaudio import AntiAliasedActivation1d, Snake
from snakeaudio.dsp import DownSample1d, measure_aliasing, stopband_attenuation_db


def main() -> int:
    print("energy on folded (inharmonic) frequencies, relative to the output, mean over the sweep")
    print(f"{'alpha':>5} {'amplitude':>9} {'tones (cycles/sample)':>22} {'plain Snake':>12} {'anti-aliased':>13} {'gain':>7}")
    for alpha, amplitude in ((1.0, 3.0), (1.0, 1.0), (5.0, 1.0)):
        for low, high in ((0.05, 0.25), (0.05, 0.45)):
            plain = measure_aliasing(Snake(1, alpha=alpha), low=low, high=high, n_tones=12, amplitude=amplitude)
            anti = measure_aliasing(AntiAliasedActivation1d(Snake(1, alpha=alpha)), low=low, high=high, n_tones=12, amplitude=amplitude)
            gain = plain.mean_aliased_db - anti.mean_aliased_db
            print(
                f"{alpha:>5g} {amplitude:>9g} {f'{low}-{high}':>22} {plain.mean_aliased_db:>10.1f}dB "
                f"{anti.mean_aliased_db:>11.1f}dB {gain:>5.1f}dB"
            )
    taps = DownSample1d(2).lowpass.filter
    print("BigVGAN's 12-tap low-pass at the 2x rate (cutoff 0.25): stop-band attenuation from")
    for start in (0.3, 0.35, 0.4, 0.45):
        print(f"  {start:.2f} cycles/sample: {stopband_attenuation_db(taps, start):5.1f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
