"""1/3-octave bands: the frequency grid that spectra are summarised on (output EQ, analysis, onset detection)."""

from __future__ import annotations

import numpy as np


def third_octave_edges(samplerate: int, low_hz: float = 40.0) -> np.ndarray:
    """Band edges in Hz: 1/3-octave bands centred from `low_hz` up to the Nyquist frequency."""
    centres = low_hz * 2 ** (np.arange(0, 40) / 3)
    centres = centres[centres * 2 ** (1 / 6) < samplerate / 2]
    return np.concatenate([centres * 2 ** (-1 / 6), centres[-1:] * 2 ** (1 / 6)])
