"""Magnitude features and the beat clock: what the magnitude model sees of a frame, and where in the bar it is.

Features: the log-magnitude of every bin below `pitch_hz` as it is (where pitch and harmony live: 23 Hz bins at the
default 24 kHz / 1024) and, above it, the log of the RMS magnitude in `bands` log-spaced bands (timbre and
attacks, without 385 bins of noise for the model to predict one by one). At the defaults that is 128 + 64 = 192
features for 513 bins. `to_magnitudes` undoes it, each band's level spread over its bins; the phase stage
(`phase.py`) then makes the partials and the noise above them.

A grid finer than the window's resolution (the DCT's: an rfft zero-padded to twice the frame, 11.7 Hz apart) gives
the model every `pitch_step`-th bin below `pitch_hz`, the bins the frame's own rfft has: those in between are
interpolation, not information. Given every bin, the DCT models overfitted (the Brahms's held-out error rose from
its fourth epoch and never beat repeating the last frame) and came nearer to replaying their song (the jazz's copy
0.88 against 0.49 on the FFT's grid). `to_magnitudes` fills the bins in between by linear interpolation of the
log-magnitudes: a sine's frequency after the phase stage stays within 3 cents of what its true magnitudes give
(200 Hz-2 kHz), and 20 s of the Brahms or the guitar come back within -15 dB of spectral convergence (-18 dB from
their true magnitudes; their beat, onsets, pitch classes and tone as the true magnitudes give). Cubic (Catmull-Rom)
interpolation came 1.6 dB nearer on the songs but put sines on the pitch features' bins up to 12 cents off: its
outer taps fall in the window's nulls.

Clock: a beat count (0 at a beat, 1 at the next) as six numbers, the sine and cosine of the beat's phase, of the
bar's (four beats) and of the half beat. A frame model with a few seconds of memory hears a beat only if it is
told where in the bar it is; at training time the count comes from the song's beats (`tempo.py`), on stage from
an oscillator at the performer's tempo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liveshtr.sound.tempo import BEATS_PER_BAR

FLOOR = 1e-5  # added to magnitudes before the log (about -100 dB of a full-scale sine's bin)


@dataclass(frozen=True)
class MagnitudeLayout:
    """Every `pitch_step`-th bin below `pitch_hz` as it is, then bands over the rest; `n_features` values a frame."""

    n_bins: int
    bin_hz: float
    pitch_hz: float = 3000.0
    bands: int = 64
    pitch_step: int = 1  # bins of the grid per pitch feature: the window's resolution on it (the DCT's grid: 2)

    def __post_init__(self) -> None:
        if self.pitch_step < 1:
            raise ValueError(f"pitch_step {self.pitch_step} must be at least 1")

    @classmethod
    def for_codec(cls, codec, pitch_hz: float = 3000.0, bands: int = 64) -> MagnitudeLayout:
        """The layout of a FrameCodec's magnitudes, its pitch bins at the frame's own resolution."""
        bin_hz = codec.cfg.bin_hz(codec.samplerate)
        return cls(codec.n_bins, bin_hz, pitch_hz, bands, pitch_step=codec.fft_size // codec.frame)

    @property
    def pitch_bins(self) -> int:
        """How many pitch features a frame has (the first features)."""
        step = self.pitch_step
        return max(1, min(-(-self.n_bins // step), math.ceil(self.pitch_hz / (self.bin_hz * step))))

    @property
    def pitch_end(self) -> int:
        """The first bin above the pitch bins: where the bands begin."""
        return min(self.n_bins, self.pitch_bins * self.pitch_step)

    @property
    def edges(self) -> np.ndarray:
        """Band edges as bin indices (n_bands + 1,), from pitch_end to n_bins; empty bands dropped."""
        lo, hi = self.pitch_end, self.n_bins
        if hi <= lo:
            return np.array([lo], dtype=int)
        edges = np.unique(np.round(np.geomspace(lo, hi, self.bands + 1)).astype(int))
        edges[0], edges[-1] = lo, hi
        return edges

    @property
    def n_features(self) -> int:
        return self.pitch_bins + len(self.edges) - 1

    @property
    def source(self) -> np.ndarray:
        """For every bin, the feature it takes its level from: (n_bins,) int (the nearest pitch feature at or
        below it between the pitch features; `taps` interpolates there)."""
        src = np.minimum(np.arange(self.n_bins) // self.pitch_step, self.pitch_bins - 1)
        edges = self.edges
        for j, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
            src[a:b] = self.pitch_bins + j
        return src

    @property
    def taps(self) -> tuple[np.ndarray, np.ndarray]:
        """Every bin's log-magnitude as a weighted sum of features: (index, weight), each (n_bins, taps).

        One tap (the `source`, weight 1) where every pitch bin is a feature; else two, the pitch features on either
        side of a bin weighted by how near it lies (linear in the log; the last pitch feature holds on to the
        bands)."""
        src = self.source
        if self.pitch_step == 1:
            return src[:, None], np.ones((self.n_bins, 1), dtype=np.float32)
        index = np.repeat(src[:, None], 2, axis=1)
        weight = np.zeros((self.n_bins, 2), dtype=np.float32)
        weight[:, 0] = 1.0
        k = np.arange(self.pitch_end)
        j, t = k // self.pitch_step, (k % self.pitch_step) / self.pitch_step
        index[: self.pitch_end] = np.stack([j, np.minimum(j + 1, self.pitch_bins - 1)], axis=1)
        weight[: self.pitch_end] = np.stack([1.0 - t, t], axis=1)
        return index, weight

    def to_features(self, magnitudes: np.ndarray) -> np.ndarray:
        """Magnitude frames (..., n_bins) -> log features (..., n_features) float32."""
        m = np.asarray(magnitudes, dtype=np.float64)
        edges = self.edges
        bands = [np.sqrt(np.mean(m[..., a:b] ** 2, axis=-1)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        parts = [m[..., : self.pitch_end : self.pitch_step]] + ([np.stack(bands, axis=-1)] if bands else [])
        return np.log(np.concatenate(parts, axis=-1) + FLOOR).astype(np.float32)

    def to_magnitudes(self, features: np.ndarray) -> np.ndarray:
        """Log features (..., n_features) -> magnitudes (..., n_bins), never negative."""
        index, weight = self.taps
        logs = (np.asarray(features, dtype=np.float64)[..., index] * weight).sum(axis=-1)
        return np.maximum(np.exp(logs) - FLOOR, 0.0)

    def to_dict(self) -> dict:
        """As model.json has it."""
        return {"pitch_hz": self.pitch_hz, "bands": self.bands, "pitch_step": self.pitch_step}


def clock_features(beat: np.ndarray | float, harmonics: tuple[int, ...]) -> np.ndarray:
    """Beat counts (...,) -> (..., 2 * len(harmonics)): sin and cos of each harmonic of the bar in turn (4 is the
    beat, 16 the sixteenth note). With the harmonics 1..16 any pattern of hits on the sixteenth-note grid is a
    linear function of the clock."""
    b = np.asarray(beat, dtype=np.float64)[..., None]
    angles = 2 * math.pi * b / BEATS_PER_BAR * np.asarray(harmonics, dtype=np.float64)
    return np.stack([np.sin(angles), np.cos(angles)], axis=-1).reshape(*angles.shape[:-1], -1).astype(np.float32)
