"""Tempo and beat: where the song's pulse falls, frame by frame, for a clock the model can be given.

A frame-level model with a few seconds of memory hears a beat only if it is told where in the bar it is. At
training time this module finds the song's beats (numpy and scipy only, so the training path needs no analysis
extra); the beat phase of every frame then goes to the model beside the frame, and at play time an oscillator at
the song's tempo (or an external clock) takes its place.

- `onset_strength`: spectral flux of log-magnitude frames, summed over 1/3-octave bands so that one loud bin
  does not dominate, with its slow trend removed;
- `estimate_tempo`: the autocorrelation of that envelope over periods of 0.3-1.0 s (60-200 beats a minute),
  each period scored with the autocorrelation at 2 and 4 of it (the half bar and the bar: a metrical comb) and
  weighted towards 120 beats a minute as listeners are (a log-Gaussian, as in Ellis 2007), peak refined between
  lags; the autocorrelation at the period found is the pulse's clarity;
- `track_beats`: dynamic-programming beat tracking (Ellis 2007): beats on strong onsets, spaced close to the
  period, so a tempo that drifts is followed; a beat's frame is the first whose window reaches the attack;
- `loop_tempo`: for a loop, whose onsets repeat round it, the whole number of beats it holds (the circular
  autocorrelation at the loop's length over each count, weighted as above and towards counts of 1, 2, 4, 8 ...
  beats, as loops are most often cut in whole bars of four) and where they fall (the phase of the envelope's
  component at that count);
- `find_pulse`, `find_loop_pulse`: all of it for one song's or one loop's magnitude frames, as a `Pulse`;
- `beat_phase`: beats counted at every frame (0 at the first beat, 1 at the next, fractional between, the period
  extended before the first and after the last beat).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from liveshtr.sound.bands import third_octave_edges

BEATS_PER_BAR = 4  # the bar every clock counts in: the model's, a MIDI clock's, a Link session's quantum

BPM_RANGE = (60.0, 200.0)
BPM_PRIOR = 120.0  # centre of the tempo preference
PRIOR_OCTAVES = 1.0  # its width, in octaves of tempo
TIGHTNESS = 100.0  # how strongly beat tracking holds the spacing to the period (Ellis's alpha)
TREND_S = 1.0  # the slow trend removed from the onset envelope
METRE = (1, 2, 4)  # a beat's period is scored with the periods of 2 and 4 beats: a half bar and a bar of four
ODD_COUNT_WEIGHT = 0.9  # a loop's count of beats that is not a power of two (3 bars, a bar of 3/4) counts so much


def onset_strength(magnitudes: np.ndarray, samplerate: int, frame: int, frame_rate: float) -> np.ndarray:
    """Magnitude frames (T, n_bins) of an rfft of `frame` samples -> onset envelope (T,), zero mean."""
    log = np.log(np.asarray(magnitudes, dtype=np.float64) + 1e-5)
    freqs = np.arange(log.shape[1]) * samplerate / frame
    band = np.digitize(freqs, third_octave_edges(samplerate, low_hz=30.0 * 2 ** (1 / 6)))  # (n_bins,) edges from 30 Hz
    rise = np.maximum(np.diff(log, axis=0, prepend=log[:1]), 0.0)  # (T, n_bins)
    per_band = np.stack([rise[:, band == b].mean(axis=1) for b in np.unique(band)], axis=1)
    env = per_band.sum(axis=1)
    trend = ndimage.uniform_filter1d(env, size=max(3, int(TREND_S * frame_rate)), mode="nearest")
    env = np.maximum(env - trend, 0.0)
    return env - env.mean()


def _tempo_weights(lags: np.ndarray, frame_rate: float) -> np.ndarray:
    bpm = 60.0 * frame_rate / lags
    return np.exp(-0.5 * (np.log2(bpm / BPM_PRIOR) / PRIOR_OCTAVES) ** 2)


def estimate_tempo(env: np.ndarray, frame_rate: float) -> tuple[float, float]:
    """The envelope's tempo in beats a minute and the pulse's clarity (normalised autocorrelation at its period,
    0 for an envelope with no pulse or no energy).

    Each period is scored by the autocorrelation at it and at two and four of it (`METRE`): a beat is one whose
    half bar and bar recur as well. At the beat's period alone a jazz tune's comping on the off-beats scored 104
    a minute as high as its 130 (0.30 against 0.29), and 104 is nearer 120; at 2 and 4 beats of 104 its onsets
    hardly recur (0.29, 0.25), at 2 and 4 beats of 130 they do (0.28, 0.45)."""
    env = np.asarray(env, dtype=np.float64) - np.mean(env)
    energy = float(np.dot(env, env))
    lo, hi = (int(math.floor(60.0 * frame_rate / bpm)) for bpm in (BPM_RANGE[1], BPM_RANGE[0]))
    if energy <= 1e-12 or len(env) < 2 * hi + 2:
        return BPM_PRIOR, 0.0
    spectrum = np.fft.rfft(env, n=2 * len(env))
    ac = np.fft.irfft(np.abs(spectrum) ** 2)[: len(env)] / energy  # (T,) linear autocorrelation
    lags = np.arange(lo, hi + 1)
    levels = [m for m in METRE if m * hi < len(env) // 2]  # those a song this long can show (1 always)
    # A multiple of a whole lag can miss the peak of a period between lags by up to m / 2 frames: take the
    # highest autocorrelation within that of m times the lag.
    score = np.mean([ndimage.maximum_filter1d(ac, m + 1)[m * lags] for m in levels], axis=0)
    weighted = score * _tempo_weights(lags, frame_rate)
    k = int(np.argmax(weighted))
    lag = float(lags[k])
    if 0 < k < len(lags) - 1:  # parabolic refinement between lags
        a, b, c = weighted[k - 1 : k + 2]
        if a - 2 * b + c < 0:
            lag += 0.5 * (a - c) / (a - 2 * b + c)
    return 60.0 * frame_rate / lag, max(0.0, float(ac[lags[k]]))


def loop_tempo(env: np.ndarray, frame_rate: float) -> tuple[int, float, float]:
    """A loop's onset envelope (T,), which runs on from its end into its start -> the whole number of beats it
    holds, the pulse's clarity (as `estimate_tempo`'s) and the beats counted at its first frame (0..1)."""
    env = np.asarray(env, dtype=np.float64) - np.mean(env)
    n = len(env)
    spectrum = np.fft.rfft(env)
    energy = float(np.dot(env, env))
    counts = np.arange(2, n // 2 + 1)  # a pulse repeats within the loop: one beat round it is no evidence of one
    bpm = 60.0 * frame_rate * counts / n
    counts = counts[(bpm >= BPM_RANGE[0]) & (bpm <= BPM_RANGE[1])]
    if not len(counts):  # too short for two of the fastest beats: one beat, its phase where the onsets are
        return 1, 0.0, float(np.angle(spectrum[1])) / (2 * np.pi) % 1.0
    lags = n / counts
    if energy <= 1e-12:  # no onsets: the count nearest the preferred tempo
        return int(counts[np.argmax(_tempo_weights(lags, frame_rate))]), 0.0, 0.0
    ac = np.fft.irfft(np.abs(spectrum) ** 2, n) / energy  # (n,) circular autocorrelation
    low = np.floor(lags).astype(int)
    at = ac[low] + (lags - low) * (ac[(low + 1) % n] - ac[low])  # between lags, linearly
    powers = (counts & (counts - 1)) == 0
    weighted = at * _tempo_weights(lags, frame_rate) * np.where(powers, 1.0, ODD_COUNT_WEIGHT)
    k = int(np.argmax(weighted))
    count = int(counts[k])
    return count, max(0.0, float(at[k])), float(np.angle(spectrum[count])) / (2 * np.pi) % 1.0


def track_beats(env: np.ndarray, frame_rate: float, bpm: float) -> np.ndarray:
    """Frame indices of the beats: the path through the envelope that maximises onset strength at the beats minus
    a penalty on spacing away from the period (squared log ratio)."""
    env = np.asarray(env, dtype=np.float64)
    env = env / (env.std() + 1e-12)
    period = 60.0 * frame_rate / bpm
    n = len(env)
    if n < 2 * period:
        return np.array([int(np.argmax(env))]) if n else np.zeros(0, dtype=int)
    back = np.arange(-int(round(2 * period)), -int(round(period / 2)) + 1)  # candidate spacings to the previous beat
    penalty = -TIGHTNESS * np.log(-back / period) ** 2
    score = env.copy()
    previous = np.full(n, -1)
    for t in range(n):
        candidates = t + back
        ok = candidates >= 0
        if not ok.any():
            continue
        options = score[candidates[ok]] + penalty[ok]
        best = int(np.argmax(options))
        if options[best] > 0:
            score[t] = env[t] + options[best]
            previous[t] = candidates[ok][best]
    # End on the best-scoring frame of the last two periods (a frame a period after the last onset scores less
    # than that onset, since the envelope is negative between onsets), then follow the chain back.
    tail = min(n, int(round(2 * period)))
    last = n - tail + int(np.argmax(score[n - tail :]))
    beats = [last]
    while previous[beats[-1]] >= 0:
        beats.append(int(previous[beats[-1]]))
    beats = np.array(beats[::-1])
    # The chain runs on through whatever comes before the first and after the last onset (a count-in, a fade);
    # beats there that are weaker than half a typical beat are no beats.
    strong = env[beats] >= 0.5 * np.median(env[beats])
    first, stop = int(np.argmax(strong)), len(beats) - int(np.argmax(strong[::-1]))
    return beats[first:stop]


def beat_phase(n_frames: int, beats: np.ndarray, period: float) -> np.ndarray:
    """Beats counted at every frame: (n_frames,) float, integer at the beats, linear between them."""
    t = np.arange(n_frames, dtype=np.float64)
    beats = np.asarray(beats, dtype=np.float64)
    if len(beats) < 2:
        start = beats[0] if len(beats) else 0.0
        return (t - start) / period
    phase = np.interp(t, beats, np.arange(len(beats), dtype=np.float64))
    before, after = t < beats[0], t > beats[-1]
    phase[before] = (t[before] - beats[0]) / period
    phase[after] = len(beats) - 1 + (t[after] - beats[-1]) / period
    return phase


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
    env = onset_strength(mags, samplerate, frame, frame_rate)
    bpm, clarity = estimate_tempo(env, frame_rate)
    beats = track_beats(env, frame_rate, bpm)
    period = 60.0 * frame_rate / bpm
    return Pulse(bpm, clarity, beat_phase(len(mags), beats, period))


def find_loop_pulse(mags: np.ndarray, samplerate: int, frame: int, hop: int) -> Pulse:
    """As `find_pulse`, for a loop's frames (T, n_bins), which go round it once: a whole number of beats fill
    it, counted evenly, so the beat runs on across its end as it does when it is looped."""
    frame_rate = samplerate / hop
    env = onset_strength(mags, samplerate, frame, frame_rate)
    count, clarity, first = loop_tempo(env, frame_rate)
    per_frame = count / len(mags)
    return Pulse(60.0 * frame_rate * per_frame, clarity, first + per_frame * np.arange(len(mags), dtype=np.float64))
