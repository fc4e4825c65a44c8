"""Magnitude features and the beat clock: what the magnitude model sees of a frame, and where in the bar it is.

Features: the log-magnitude of every bin below `pitch_hz` as it is (where pitch and harmony live: 23 Hz bins at the
default 24 kHz / 1024) and, above it, the log of the RMS magnitude in `bands` log-spaced bands (timbre and
attacks, without 385 bins of noise for the model to predict one by one). At the defaults that is 128 + 64 = 192
features for 513 bins. `to_magnitudes` undoes it, each band's level spread over its bins; the phase stage
(`phase.py`) then makes the partials and the noise above them.

Clock: a beat count (0 at a beat, 1 at the next) as six numbers, the sine and cosine of the beat's phase, of the
bar's (four beats) and of the half beat. A frame model with a few seconds of memory hears a beat only if it is
told where in the bar it is; at training time the count comes from the song's beats (`tempo.py`), on stage from
an oscillator at the performer's tempo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from liveshtr.sound import tempo

FLOOR = 1e-5  # added to magnitudes before the log (about -100 dB of a full-scale sine's bin)
BAR_BEATS = 4


@dataclass(frozen=True)
class MagnitudeLayout:
    """Bins 0..pitch_bins-1 as they are, then bands over the rest; `n_features` values a frame."""

    n_bins: int
    bin_hz: float
    pitch_hz: float = 3000.0
    bands: int = 64

    @property
    def pitch_bins(self) -> int:
        return max(1, min(self.n_bins, math.ceil(self.pitch_hz / self.bin_hz)))

    @property
    def edges(self) -> np.ndarray:
        """Band edges as bin indices (n_bands + 1,), from pitch_bins to n_bins; empty bands dropped."""
        lo, hi = self.pitch_bins, self.n_bins
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
        """For every bin, the feature it takes its level from: (n_bins,) int."""
        src = np.arange(self.n_bins)
        edges = self.edges
        for j, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
            src[a:b] = self.pitch_bins + j
        return src

    def to_features(self, magnitudes: np.ndarray) -> np.ndarray:
        """Magnitude frames (..., n_bins) -> log features (..., n_features) float32."""
        m = np.asarray(magnitudes, dtype=np.float64)
        edges = self.edges
        bands = [np.sqrt(np.mean(m[..., a:b] ** 2, axis=-1)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
        parts = [m[..., : self.pitch_bins]] + ([np.stack(bands, axis=-1)] if bands else [])
        return np.log(np.concatenate(parts, axis=-1) + FLOOR).astype(np.float32)

    def to_magnitudes(self, features: np.ndarray) -> np.ndarray:
        """Log features (..., n_features) -> magnitudes (..., n_bins), never negative."""
        return np.maximum(np.exp(np.asarray(features, dtype=np.float64)[..., self.source]) - FLOOR, 0.0)

    def to_dict(self) -> dict:
        return {"pitch_hz": self.pitch_hz, "bands": self.bands}


def clock_features(beat: np.ndarray | float, harmonics: tuple[int, ...]) -> np.ndarray:
    """Beat counts (...,) -> (..., 2 * len(harmonics)): sin and cos of each harmonic of the bar in turn (4 is the
    beat, 16 the sixteenth note). With the harmonics 1..16 any pattern of hits on the sixteenth-note grid is a
    linear function of the clock."""
    b = np.asarray(beat, dtype=np.float64)[..., None]
    angles = 2 * math.pi * b / BAR_BEATS * np.asarray(harmonics, dtype=np.float64)
    return np.stack([np.sin(angles), np.cos(angles)], axis=-1).reshape(*angles.shape[:-1], -1).astype(np.float32)


@dataclass(frozen=True)
class Pulse:
    """A song's tempo, how clear its pulse is (0..1) and the beat count at every frame."""

    bpm: float
    clarity: float
    beats: np.ndarray  # (T,) float64

    @property
    def period(self) -> float:
        return 60.0 / self.bpm


def find_pulse(mags: np.ndarray, samplerate: int, frame: int, hop: int) -> Pulse:
    """Tempo and per-frame beat count of one song from its magnitude frames (T, n_bins)."""
    frame_rate = samplerate / hop
    env = tempo.onset_strength(mags, samplerate, frame, frame_rate)
    bpm, clarity = tempo.estimate_tempo(env, frame_rate)
    beats = tempo.track_beats(env, frame_rate, bpm)
    period = 60.0 * frame_rate / bpm
    return Pulse(bpm, clarity, tempo.beat_phase(len(mags), beats, period))


def find_loop_pulse(mags: np.ndarray, samplerate: int, frame: int, hop: int) -> Pulse:
    """As `find_pulse`, for a loop's frames (T, n_bins), which go round it once: a whole number of beats fill
    it, counted evenly, so the beat runs on across its end as it does when it is looped."""
    frame_rate = samplerate / hop
    env = tempo.onset_strength(mags, samplerate, frame, frame_rate)
    count, clarity, first = tempo.loop_tempo(env, frame_rate)
    per_frame = count / len(mags)
    return Pulse(60.0 * frame_rate * per_frame, clarity, first + per_frame * np.arange(len(mags), dtype=np.float64))
