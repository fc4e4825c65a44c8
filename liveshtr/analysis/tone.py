"""How tonal a sound is: spectral flatness, against that of noise with the same spectrum.

Calibration (`training.calibrate`) sets the partials' contrast so that a model's renders are as tonal as its song,
measured the same way on both (`median_flatness`), or, where the song is nearly as flat as noise with its spectrum,
a little more tonal than the song (`tone_target`); `liveshtr train` calls material that flat percussive
(`noise_likeness`) and trains it with the beat recipe; how much of a sound's energy lasts (`harmonic_share`,
`partial_persistence`). numpy and scipy only.
"""

from __future__ import annotations

import math

import numpy as np

from liveshtr.sound.bands import ltas_noise

TONE_WINDOW_S = 0.085  # flatness is measured on frames about this long (2048 samples at 24 kHz) ...
TONE_AMIN = 1e-10  # ... with power floored here, as librosa's spectral_flatness does
NOISE_SHARE = 0.45  # renders aim at most at this share of the flatness of noise with the song's spectrum
# Material at least this share as flat as noise with its spectrum is percussive (`noise_likeness`): the drum groove
# 0.73, the tonal songs 0.04-0.09 (the electronic song with its drums among them). Over 5 s stretches, what a loop
# is, the electronic song's range 0-0.45 and the groove's 0.35-1.05: a loop of either is taken for what it mostly is.
PERCUSSIVE_SHARE = 0.5
HPSS_KERNEL = 31  # median filters of this many frames (0.66 s) and bins (360 Hz), as librosa's defaults ...
HPSS_MAX_HZ = 6000.0  # ... below this: the partials and nearly all the energy, in half the time (within 0.01)


def tone_window(samplerate: int) -> int:
    """The flatness frame at `samplerate`: the power of two nearest TONE_WINDOW_S."""
    return 2 ** round(math.log2(TONE_WINDOW_S * samplerate))


def flatness_frames(x: np.ndarray, samplerate: int) -> np.ndarray:
    """Spectral flatness (geometric over arithmetic mean of the power spectrum) of every frame of `x`
    (`power_frames`); empty for a signal shorter than one frame."""
    power = np.maximum(power_frames(x, samplerate), TONE_AMIN)
    return np.exp(np.mean(np.log(power), axis=-1)) / np.mean(power, axis=-1) if len(power) else np.zeros(0)


def power_frames(x: np.ndarray, samplerate: int) -> np.ndarray:
    """The power spectrum of every Hann frame of `x` (frames, bins): frames of `tone_window`, hop a quarter frame;
    no frames for a signal shorter than one."""
    n = tone_window(samplerate)
    x = np.asarray(x, dtype=np.float64)
    if len(x) < n:
        return np.zeros((0, n // 2 + 1))
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[:: n // 4]
    return np.abs(np.fft.rfft(frames * np.hanning(n + 1)[:-1], axis=-1)) ** 2


def harmonic_share(signals: list[np.ndarray], samplerate: int) -> float:
    """The share of the energy of `signals` that lasts: the harmonic part's after harmonic/percussive separation by
    median filtering (Fitzgerald 2010, as librosa's `hpss` with its defaults: HPSS_KERNEL frames along time and
    bins along frequency, soft masks of the squared medians) below HPSS_MAX_HZ, over all the signals together
    (0..1; a held chord near 1, a drum kit 0.1-0.2, white noise about 0.5)."""
    from scipy.ndimage import median_filter

    top = int(HPSS_MAX_HZ * tone_window(samplerate) / samplerate) + 1
    harmonic = percussive = 0.0
    for x in signals:
        magnitude = np.sqrt(power_frames(x, samplerate)[:, :top]).astype(np.float32)
        if not len(magnitude):
            continue
        along_time = median_filter(magnitude, size=(HPSS_KERNEL, 1), mode="reflect") ** 2
        along_bins = median_filter(magnitude, size=(1, HPSS_KERNEL), mode="reflect") ** 2
        total = along_time + along_bins
        mask = np.divide(along_time, total, out=np.full_like(total, 0.5), where=total > 0)
        power = magnitude.astype(np.float64) ** 2
        harmonic += float(np.sum(power * mask**2))
        percussive += float(np.sum(power * (1.0 - mask) ** 2))
    return harmonic / (harmonic + percussive) if harmonic + percussive > 0 else 0.0


def median_flatness(signals: list[np.ndarray], samplerate: int) -> float:
    """Median spectral flatness over all frames of all `signals` (lower is more tonal)."""
    frames = np.concatenate([flatness_frames(x, samplerate) for x in signals])
    return float(np.median(frames)) if len(frames) else 1.0


def tone_target(songs: list[np.ndarray], samplerate: int, seed: int = 0) -> dict:
    """How tonal renders of `songs` should be: the songs' median flatness, but never more than NOISE_SHARE of the
    flatness of stationary noise with their 1/3-octave spectrum (`ltas_noise`).

    A drum kit is nearly as flat as that noise (a groove 0.036 against its noise's 0.053), and a render as flat
    as its song would then be heard, and measured, as noise in the song's colours; such material is played a
    little more tonal than itself, its drums' own resonances drawn out. Returns {"song", "noise", "target"}."""
    song = median_flatness(songs, samplerate)
    noise = median_flatness([ltas_noise(s, samplerate, seed) for s in songs], samplerate)
    return {"song": song, "noise": noise, "target": min(song, NOISE_SHARE * noise)}


def noise_likeness(songs: list[np.ndarray], samplerate: int, seed: int = 0) -> float:
    """The songs' median flatness as a share of that of stationary noise with their 1/3-octave spectrum: near 1 for
    a drum kit, which is nearly as flat as such noise, a few hundredths for pitched music."""
    tone = tone_target(songs, samplerate, seed)
    return tone["song"] / max(tone["noise"], TONE_AMIN)


# Partial persistence: peaks of a PERSIST_WINDOW_S spectrum (hop an eighth of it) between PERSIST_BAND_HZ, within
# PERSIST_RANGE_DB of the frame's highest, that have a peak within one bin in every frame of the next PERSIST_S.
PERSIST_WINDOW_S = 0.085  # 2048 points at SR (4096 at 48 kHz): bins of about 11 Hz
PERSIST_BAND_HZ = (60.0, 4000.0)
PERSIST_RANGE_DB = 50.0
PERSIST_S = 0.1


def partial_persistence(y: np.ndarray, samplerate: int) -> float:
    """The share of the spectral peaks' energy (60 Hz-4 kHz, down to 50 dB below each frame's highest) in peaks that
    persist: a peak within one bin of them in each frame of the next 100 ms. Steady partials persist, noise and
    flicker do not; 0 for a signal too short or too quiet to have peaks."""
    n = 2 ** round(np.log2(PERSIST_WINDOW_S * samplerate))
    hop = n // 8
    ahead = int(np.ceil(PERSIST_S * samplerate / hop))
    y = np.asarray(y, dtype=np.float64)
    if len(y) < n + ahead * hop:
        return 0.0
    frames = np.lib.stride_tricks.sliding_window_view(y, n)[::hop]
    power = np.abs(np.fft.rfft(frames * np.hanning(n + 1)[:-1], axis=-1)) ** 2
    lo, hi = (int(round(f * n / samplerate)) for f in PERSIST_BAND_HZ)
    band = 10 * np.log10(power[:, lo - 1 : hi + 2] + 1e-20)  # one bin either side, to tell the edges' peaks
    middle = band[:, 1:-1]
    floor = middle.max(axis=1, keepdims=True) - PERSIST_RANGE_DB
    peaks = (middle > band[:, :-2]) & (middle >= band[:, 2:]) & (middle > floor)
    near = peaks.copy()  # a peak, or one a bin away
    near[:, 1:] |= peaks[:, :-1]
    near[:, :-1] |= peaks[:, 1:]
    count = len(peaks) - ahead
    lasting = peaks[:count].copy()
    for k in range(1, ahead + 1):
        lasting &= near[k : k + count]
    energy = power[:count, lo : hi + 1]
    total = float(energy[peaks[:count]].sum())
    return float(energy[lasting].sum()) / total if total > 0 else 0.0
