"""1/3-octave bands: the frequency grid that spectra are summarised on (output EQ, analysis, onset detection)."""

from __future__ import annotations

import numpy as np

MIN_BAND_BINS = 3  # bands are 1/3 octave but never narrower than this many bins (a noise vocoder lets no pitch through)


def third_octave_edges(samplerate: int, low_hz: float = 40.0) -> np.ndarray:
    """Band edges in Hz: 1/3-octave bands centred from `low_hz` up to the Nyquist frequency."""
    centres = low_hz * 2 ** (np.arange(0, 40) / 3)
    centres = centres[centres * 2 ** (1 / 6) < samplerate / 2]
    return np.concatenate([centres * 2 ** (-1 / 6), centres[-1:] * 2 ** (1 / 6)])


def band_edges_bins(n_bins: int, bin_hz: float, samplerate: int) -> np.ndarray:
    """1/3-octave band edges (from 20 Hz) as bin indices from 0 to n_bins, each band at least MIN_BAND_BINS wide."""
    raw = np.round(third_octave_edges(samplerate, low_hz=20.0) / bin_hz).astype(int)
    edges = [0]
    for e in raw:
        if e - edges[-1] >= MIN_BAND_BINS and e < n_bins:
            edges.append(int(e))
    if n_bins - edges[-1] < MIN_BAND_BINS and len(edges) > 1:
        edges.pop()
    return np.array(edges + [n_bins])


def ltas_noise(y: np.ndarray, samplerate: int, seed: int = 0) -> np.ndarray:
    """Stationary noise with the power of `y` in every 1/3-octave band over its whole length, as long as `y`:
    what an output EQ can make of any noise."""
    rng = np.random.default_rng(seed)
    song = np.fft.rfft(np.asarray(y, dtype=np.float64))
    noise = np.fft.rfft(rng.standard_normal(len(y)))
    edges = band_edges_bins(len(song), samplerate / len(y), samplerate)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        ratio = np.sum(np.abs(song[lo:hi]) ** 2) / max(np.sum(np.abs(noise[lo:hi]) ** 2), 1e-30)
        noise[lo:hi] *= np.sqrt(ratio)
    return np.fft.irfft(noise, n=len(y)).astype(np.float32)
