"""Pictures for people: what training (loss.png, spectrogram.png) and the quality report draw, written the same way.

matplotlib draws to files only (its Agg backend, no display needed), imported when a picture is drawn so that
nothing else needs it; a figure is written atomically, so a bundle never holds half a picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from liveshtr.atomic import atomic_path


def pyplot():
    """matplotlib's pyplot, drawing to files."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def save(fig, path: Path) -> None:
    """Write `fig` as a PNG at `path` (atomically) and free it."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    pyplot().close(fig)


def spectrogram(ax, x: np.ndarray, samplerate: int, title: str, top_db: float | None = None, span_db: float = 80.0):
    """A spectrogram of `x` (1024-point frames, hop 256) in dB on `ax`, from `top_db` (default: the loudest
    0.5% of its cells) down `span_db`."""
    from scipy import signal

    f, t, s = signal.spectrogram(x, fs=samplerate, nperseg=1024, noverlap=768)
    db = 10 * np.log10(s + 1e-12)
    top = float(np.percentile(db, 99.5)) if top_db is None else top_db
    dt, df = (t[1] - t[0] if len(t) > 1 else 1.0), f[1] - f[0]  # an image of the cells, centred as they are
    extent = (t[0] - dt / 2, t[-1] + dt / 2, f[0] - df / 2, f[-1] + df / 2)
    ax.imshow(db, origin="lower", aspect="auto", extent=extent, vmin=top - span_db, vmax=top, cmap="magma")
    ax.set_ylabel("Hz")
    ax.set_title(title, fontsize=9)
