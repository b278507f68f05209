"""Anti-aliased Snake on CPU against BigVGAN's torch ``Activation1d``, measured side by side.

Run: python benchmarks/antialias.py [--repeats 5]
Needs the reference: pip install --no-deps bigvgan==2.4.1 huggingface_hub
"""

from __future__ import annotations

import argparse
from functools import partial

import torch
from bigvgan.activations import SnakeBeta as BigVGANSnakeBeta
from bigvgan.alias_free_activation.torch.act import Activation1d
from common import forward_backward, inference, mib, saved_bytes, time_side_by_side

from snakeaudio import AntiAliasedActivation1d, SnakeBeta

SHAPES = [(4, 512, 2048), (4, 64, 65536), (16, 1536, 256)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    print(f"SnakeBeta (log-scale, as in BigVGAN-v2), float32, {torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'shape':<18} {'pass':<17} {'bigvgan':>10} {'snakeaudio':>11} {'ratio':>7}")
    for shape in SHAPES:
        channels = shape[1]
        ref = Activation1d(BigVGANSnakeBeta(channels, alpha_logscale=True))
        ours = AntiAliasedActivation1d(SnakeBeta(channels, log_scale=True))
        with torch.no_grad():
            for p in ref.act.parameters():
                p.uniform_(-0.5, 0.5)
        ours.act.load_state_dict(ref.act.state_dict())
        x = torch.randn(*shape)
        xg = x.clone().requires_grad_()
        torch.testing.assert_close(ours(x[:1]), ref(x[:1]), atol=1e-5, rtol=0)
        label = "x".join(map(str, shape))
        for name, make, repeats in (
            ("forward", inference, args.repeats),
            ("forward+backward", forward_backward, max(3, args.repeats // 2)),
        ):
            t = time_side_by_side({"ref": make(ref, xg), "ours": make(ours, xg)}, repeats=repeats)
            print(f"{label:<18} {name:<17} {t['ref'] * 1e3:8.1f}ms {t['ours'] * 1e3:9.1f}ms {t['ref'] / t['ours']:6.1f}x")
        ref_bytes, our_bytes = saved_bytes(partial(ref, xg)), saved_bytes(partial(ours, xg))
        print(f"{label:<18} {'saved for bwd':<17} {mib(ref_bytes):>10} {mib(our_bytes):>11} {ref_bytes / our_bytes:6.1f}x"
              f"  ({ref_bytes / x.nbytes:.1f} vs {our_bytes / x.nbytes:.1f} input sizes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
