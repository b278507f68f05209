"""A PNG comparing log-mel spectrograms (input vs synthesised), for listening sessions and docs."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

__all__ = ["save_spectrogram_comparison"]


def save_spectrogram_comparison(path: str | Path, mels: dict[str, Tensor], sample_rate: int, hop_length: int) -> Path:
    """Plot each log-mel (n_mels, F) in ``mels`` as one panel, titled by its key, on a shared
    colour scale, and write the figure to ``path`` (PNG). Needs matplotlib; the figure is
    drawn without pyplot, so the caller's matplotlib backend and open figures are untouched."""
    from matplotlib.figure import Figure

    arrays = {title: mel.detach().float().cpu().numpy() for title, mel in mels.items()}
    low = min(a.min() for a in arrays.values())
    high = max(a.max() for a in arrays.values())
    fig = Figure(figsize=(10, 2.6 * len(arrays)))
    axes = fig.subplots(len(arrays), 1, sharex=True, squeeze=False)
    for ax, (title, mel) in zip(axes[:, 0], arrays.items()):
        seconds = mel.shape[-1] * hop_length / sample_rate
        image = ax.imshow(mel, origin="lower", aspect="auto", vmin=low, vmax=high, extent=(0, seconds, 0, mel.shape[0]), cmap="magma")
        ax.set_title(title)
        ax.set_ylabel("mel band")
    axes[-1, 0].set_xlabel("time (s)")
    fig.colorbar(image, ax=axes[:, 0].tolist(), label="log magnitude")
    path = Path(path)
    fig.savefig(path, dpi=100)
    return path
