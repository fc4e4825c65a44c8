"""Spectral measures: level, movement, repetition and spectral signature of a rendered or recorded signal.

numpy and scipy only:
- `window_rms_db`: level of consecutive windows (is it alive?);
- `band_spectrogram`: log power in 1/3-octave bands over time, the basis of the rest;
- `movement_db`: how much the spectrum changes from one second to the next (is it a drone?);
- `pick_events` and `event_rate`: onsets picked as librosa picks them, on a rise measured against a reference
  (how many events does it play?);
- `max_repeat_correlation`: the highest normalised correlation between a 2 s stretch and any later one 2..20 s
  away (is it a loop?);
- `ltas_db` and `signature_distance_db`: long-term average spectrum and the distance between two of them,
  levels aside (does it carry the song's signature?);
- `phase_convergence_db`: how close the live phase stage brings a signal back from its own magnitudes (spectral
  convergence: the distance between the magnitudes given and those of what it makes, over their size).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from liveshtr.sound.bands import third_octave_edges

FRAME_RATE = 10.0  # band-spectrogram frames per second


WINDOW_S = 5.0  # the level is measured in windows this long


def window_rms_db(x: np.ndarray, samplerate: int, window_s: float = WINDOW_S) -> np.ndarray:
    """RMS level in dBFS of each whole window of `window_s` seconds."""
    n = int(window_s * samplerate)
    windows = np.asarray(x, dtype=np.float64)[: len(x) // n * n].reshape(-1, n)
    return 10 * np.log10(np.mean(windows**2, axis=1) + 1e-20)


def band_spectrogram(x: np.ndarray, samplerate: int, frame_rate: float = FRAME_RATE) -> np.ndarray:
    """Log power (dB) in 1/3-octave bands: (frames, bands), `frame_rate` frames per second."""
    hop = int(samplerate / frame_rate)
    freqs, _, power = signal.spectrogram(
        np.asarray(x, dtype=np.float64), fs=samplerate, nperseg=2 * hop, noverlap=hop, mode="psd"
    )  # power (F, T)
    edges = third_octave_edges(samplerate)
    band = np.digitize(freqs, edges) - 1  # (F,) band index, -1 or n_bands outside
    n_bands = len(edges) - 1
    out = np.zeros((power.shape[1], n_bands))
    for b in range(n_bands):
        out[:, b] = power[band == b].sum(axis=0)
    return 10 * np.log10(out + 1e-20)


def ltas_db(x: np.ndarray, samplerate: int) -> np.ndarray:
    """Long-term average spectrum in 1/3-octave bands (dB), from the mean power of the whole signal."""
    spec = band_spectrogram(x, samplerate)
    return 10 * np.log10(np.mean(10 ** (spec / 10), axis=0) + 1e-20)


def signature_distance_db(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two LTAS curves after removing their overall levels."""
    return float(np.mean(np.abs((a - a.mean()) - (b - b.mean()))))


def movement_db(x: np.ndarray, samplerate: int) -> float:
    """Mean absolute change (dB) of the 1/3-octave spectrum between consecutive one-second windows."""
    spec = band_spectrogram(x, samplerate)
    per_second = int(FRAME_RATE)
    n = len(spec) // per_second
    seconds = 10 * np.log10(np.mean(10 ** (spec[: n * per_second].reshape(n, per_second, -1) / 10), axis=1))
    return float(np.mean(np.abs(np.diff(seconds, axis=0))))


# librosa's onset picking (pre_max, post_max, pre_avg, post_avg, wait in seconds) and its delta
ONSET_PICKING = (0.03, 0.01, 0.1, 0.1, 0.03)
ONSET_DELTA = 0.07
EVENT_FRAME_RATE = 100.0  # band-spectrogram frames a second for `event_rate` ...
EVENT_RANGE_DB = 80.0  # ... and the range of levels below the loudest it sees
ONSET_FRAME_RATE = 22050 / 512  # librosa's onset envelope's frames a second (23 ms): attacks as a listener counts


def pick_events(rise: np.ndarray, reference: float, frame_rate: float) -> int:
    """How many events a rise (how much each frame rises over the one before, (T,)) holds, picked as librosa picks
    onsets (ONSET_PICKING) but against `reference`, not the rise's own largest: a frame whose rise is the largest
    within the few frames around it and ONSET_DELTA of the reference above the mean rise around it, at least the
    wait after the event before."""
    pre_max, post_max, pre_avg, post_avg, wait = (int(s * frame_rate) for s in ONSET_PICKING)
    padded = np.pad(rise, (pre_max, post_max), constant_values=-np.inf)
    largest = np.lib.stride_tricks.sliding_window_view(padded, pre_max + post_max + 1).max(axis=1)
    padded = np.pad(rise, (pre_avg, post_avg), mode="edge")
    around = np.lib.stride_tricks.sliding_window_view(padded, pre_avg + post_avg + 1).mean(axis=1)
    events, last = 0, -wait - 1
    for i in np.flatnonzero((rise >= largest) & (rise >= around + ONSET_DELTA * reference)):
        if i - last > wait:
            events, last = events + 1, i
    return events


def band_rise(x: np.ndarray, samplerate: int, frame_rate: float = EVENT_FRAME_RATE) -> np.ndarray:
    """How much the 1/3-octave spectrum rises from one frame to the next (dB, the mean over the bands of their
    increase) at `frame_rate`: a spectral flux. As librosa's, on levels floored EVENT_RANGE_DB below the loudest
    band's loudest frame, so that what rises out of near silence is not an attack."""
    spec = band_spectrogram(x, samplerate, frame_rate)
    spec = np.maximum(spec, spec.max() - EVENT_RANGE_DB)
    return np.maximum(np.diff(spec, axis=0), 0.0).mean(axis=1)


def event_rate(x: np.ndarray, samplerate: int, reference: float, frame_rate: float = EVENT_FRAME_RATE) -> float:
    """Events a second (`pick_events` on `band_rise` at `frame_rate`) against a reference rise, such as a song's
    largest."""
    return pick_events(band_rise(x, samplerate, frame_rate), reference, frame_rate) / (len(x) / samplerate)


def max_repeat_correlation(
    x: np.ndarray, samplerate: int, segment_s: float = 2.0, min_lag_s: float = 2.0, max_lag_s: float = 20.0
) -> float:
    """Highest Pearson correlation between any `segment_s` stretch of the (mean-removed) band spectrogram and
    the stretch `lag` later, over every lag in [min_lag_s, max_lag_s]. Near 1 means the audio loops or drones."""
    spec = band_spectrogram(x, samplerate)
    spec = spec - spec.mean(axis=0)  # each band around its own mean: the song's average tilt is not repetition
    seg = int(segment_s * FRAME_RATE)
    windows = np.lib.stride_tricks.sliding_window_view(spec, seg, axis=0)  # (T - seg + 1, bands, seg)
    flat = windows.reshape(len(windows), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    flat = flat / (np.linalg.norm(flat, axis=1, keepdims=True) + 1e-12)
    best = -1.0
    for lag in range(int(min_lag_s * FRAME_RATE), int(max_lag_s * FRAME_RATE) + 1):
        if lag >= len(flat):
            break
        best = max(best, float(np.max(np.sum(flat[:-lag] * flat[lag:], axis=1))))
    return best


def spectral_convergence_db(target: np.ndarray, made: np.ndarray) -> float:
    """20 log10 of ||made - target|| / ||target|| over magnitude frames: 0 dB is as far as the target is large,
    random phase above -5 dB on music; lower is closer."""
    return float(20 * np.log10(np.linalg.norm(made - target) / max(np.linalg.norm(target), 1e-30)))


def rebuild(magnitudes: np.ndarray, n_samples: int, codec, stage=None) -> np.ndarray:
    """Magnitude frames (T, n_bins) -> `n_samples` of audio: each frame given to a phase stage in turn and
    overlap-added, as the engine plays them. `stage`: the engine's (`LookaheadPhase`, one frame late) unless
    another is given (a `PhaseReconstructor`, causal or one frame late); its `delay` is taken back out."""
    from liveshtr.sound.phase import LookaheadPhase

    stage = stage or LookaheadPhase(codec)
    spectra = [stage.process(m).copy() for m in magnitudes] + [stage.process(magnitudes[-1]).copy()] * stage.delay
    return codec.decode(codec.from_spectrum(np.stack(spectra[stage.delay :])), n_samples)


def phase_convergence_db(x: np.ndarray, codec, stage=None) -> float:
    """The live phase stage on a signal's own magnitudes: `x` analysed into `codec`'s frames, rebuilt from their
    magnitudes (`rebuild`, the engine's stage unless `stage` is given) and analysed again; its spectral
    convergence against the magnitudes given."""
    magnitudes = codec.magnitudes(codec.analyse(x))
    made = rebuild(magnitudes, len(x), codec, stage)
    return spectral_convergence_db(magnitudes, codec.magnitudes(codec.analyse(made)))
