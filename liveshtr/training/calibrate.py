"""Calibration: how widely a trained model samples, and the output stage that makes it play like its song.

It plays the bundle as the engine will (the ONNX step through `live.generator`, never torch) and measures what it
plays against the song: first the feature noise (`calibrate_sampling`: the frames change from one to the next as
much as the song's, and a model trained on its own playing makes no more events than the song), then the output
EQ and the partials' contrast (`calibrate_output`: each band's level and the flatness of the song,
`analysis.tone`). Export writes the results into model.json; each figure is a number in the bundle, not a rule here.
"""

from __future__ import annotations

import math

import numpy as np

from liveshtr.analysis.tone import median_flatness, tone_target
from liveshtr.bundle import Bundle
from liveshtr.live.generator import Controls, Generator
from liveshtr.live.runtime import StepModel
from liveshtr.sound.audio import Song
from liveshtr.sound.bands import third_octave_edges

CALIBRATION_PRIMES = (0.1, 0.3, 0.5, 0.7, 0.9)  # free-running renders from across the song ...
CALIBRATION_S_PER_PRIME = 24.0  # ... of this many seconds each measure the model's own spectrum
CALIBRATION_LEVEL_DB = 24.0  # largest overall level correction
CALIBRATION_SHAPE_DB = 12.0  # largest correction of one band against the overall level
SHAPE_RANGE = (-CALIBRATION_SHAPE_DB, CALIBRATION_SHAPE_DB)
LEVEL_RANGE = (-CALIBRATION_LEVEL_DB, CALIBRATION_LEVEL_DB)
BAND_POWER_FLOOR = 1e-10  # added to a band's power before its log (a bin at the features' floor, FLOOR squared)
TONE_SECONDS = 8.0  # the contrast is set on this much of every calibration render ...
CONTRAST_RANGE = (0.5, 3.0)  # ... within this range ...
CONTRAST_STEPS = 8  # ... in at most this many steps inside it ...
CONTRAST_TOLERANCE = 0.02  # ... until the renders' flatness is within 2% of the target
SAMPLING_PRIMES = (0.25, 0.5, 0.75)  # the sampling calibration plays from these places in the song ...
SAMPLING_FRAMES = 600  # ... this many frames each (6.4 s at the default hop), after the prime
SAMPLING_ROUNDS = 3  # rounds of the noise scales' fixed-point iteration
NOISE_SCALE_RANGE = (0.2, 3.0)
EVENT_PERCENTILE = 90  # an event: a frame whose rise from the frame before is above this percentile of the song's ...
EVENT_SPACING = 3  # ... and the largest within this many frames either side (about 30 ms at the default hop)
RESTRAINT_RANGE = (0.25, 1.0)  # the sampling is scaled down by at most this much for the song's events ...
RESTRAINT_STEPS = 6  # ... in this many bisection steps


def frame_change(frames: list[np.ndarray], pitch_bins: int) -> np.ndarray:
    """RMS change from one frame to the next of the pitch bins and of the bands: (2,), over normalised feature
    sequences (each sequence's own changes only)."""
    diffs = [np.diff(f.astype(np.float64), axis=0) for f in frames if len(f) > 1]
    d = np.concatenate(diffs)
    return np.sqrt([np.mean(d[:, :pitch_bins] ** 2), np.mean(d[:, pitch_bins:] ** 2)])


def rises(frames: list[np.ndarray]) -> list[np.ndarray]:
    """How much each frame rises from the one before, per normalised feature sequence: the mean over the features
    of their increase (a spectral flux on the model's features; an attack raises many at once)."""
    return [np.maximum(np.diff(f.astype(np.float64), axis=0), 0.0).mean(axis=1) for f in frames if len(f) > 1]


def event_rate(frames: list[np.ndarray], threshold: float) -> float:
    """Events per frame: frames that rise more than `threshold` and the most within EVENT_SPACING frames."""
    events, total = 0, 0
    for rise in rises(frames):
        padded = np.pad(rise, EVENT_SPACING, constant_values=-np.inf)
        window = np.lib.stride_tricks.sliding_window_view(padded, 2 * EVENT_SPACING + 1)
        events += int(np.sum((rise > threshold) & (rise >= window.max(axis=1))))
        total += len(rise)
    return events / max(total, 1)


def calibrate_sampling(bundle: Bundle, song_frames: list[np.ndarray], seed: int, restrain: bool = False) -> dict:
    """The feature noise: how widely its features are drawn at temperature 1 ({"noise": [pitch
    bins, bands]}), with the latent at the bundle's scale (LATENT_SCALE of the prior's spread: at the full spread
    the sampled events lost the beat, see docs/notebook.md).

    The noise is scaled, once for the pitch bins and once for the bands, until the played frames change from one
    to the next as much as the song's do (RMS of the normalised features' change): too little noise plays steady
    tones, too much turns partials and bands into flicker that is heard as noise and counted as percussion. A few
    rounds of s <- s * target / played converge, since the change grows about linearly with the noise.

    Then, with `restrain` (models trained on their own playing), the restraint: where the model plays more events
    than the song has (frames that rise as much as the song's largest tenth of rises, EVENT_PERCENTILE), the latent
    and the noise are scaled down together, as the temperature does, until it plays as many. A model that plays the
    song's pattern in its mean and needs little noise to move (one trained on its own playing) otherwise fills the
    time between the beats with flicker as loud as the song's attacks (the guitar: 8.3 such events a second against
    the song's 4.5, beat 0.19 against its 0.65). Where even RESTRAINT_RANGE's least sampling plays more events than
    the song, they are the model's own, not the noise's, and the sampling stays as it is (the electronic song's
    model plays 9.6 onsets a second at temperature 0, its song 6.1; restrained to the least, it lost its pitch
    classes: 0.34-0.46 against 0.78-0.92). On the teacher-forced models it gained no floor: the guitar's beat rose
    (0.70 against 0.63), its pitch classes fell (0.60 against 0.67), the jazz and the Brahms moved within their
    seeds' spread (docs/notebook.md)."""
    pitch_bins = bundle.meta["features"]["pitch_bins"]
    target = frame_change(song_frames, pitch_bins)
    controls = Controls.for_bundle(bundle)

    def play(noise: np.ndarray, restraint: float = 1.0) -> list[np.ndarray]:
        """The model's frames from SAMPLING_PRIMES with these noise scales (pitch bins, bands) and restraint."""
        played = []
        for i, position in enumerate(SAMPLING_PRIMES):
            generator = Generator(bundle, seed=seed + i)
            generator.noise_scale[:pitch_bins], generator.noise_scale[pitch_bins:] = noise * restraint
            generator.latent_scale = np.float32(bundle.latent_scale * restraint)
            generator.prime(position)
            n = len(bundle.primes[0]) + SAMPLING_FRAMES
            frames = np.array([generator.next_frame(controls).copy() for _ in range(n)])
            played.append(frames[len(bundle.primes[0]) :])
        return played

    scale = np.ones(2)
    for _ in range(SAMPLING_ROUNDS):
        change = frame_change(play(scale), pitch_bins)
        scale = np.clip(scale * target / np.maximum(change, 1e-6), *NOISE_SCALE_RANGE)
    threshold = float(np.percentile(np.concatenate(rises(song_frames)), EVENT_PERCENTILE))
    song_rate = event_rate(song_frames, threshold)

    restraint = 1.0
    low, high = RESTRAINT_RANGE
    if restrain and event_rate(play(scale), threshold) > song_rate >= event_rate(play(scale, low), threshold):
        # bisection: the model's events grow with its sampling (where even the least sampling plays more events
        # than the song has, they are the model's own, not the noise's, and the sampling stays as it is)
        for _ in range(RESTRAINT_STEPS):
            middle = 0.5 * (low + high)
            low, high = (low, middle) if event_rate(play(scale, middle), threshold) > song_rate else (middle, high)
        restraint = low
    hop_s = bundle.frames.hop / bundle.audio.samplerate
    return {
        "noise": np.round(scale * restraint, 3).tolist(),
        "latent_scale": round(float(bundle.latent_scale * restraint), 4),
        "restraint": round(float(restraint), 4),
        "events_per_s": {"song": round(song_rate / hop_s, 2), "threshold": round(threshold, 4)},
    }


def free_renders(bundle: Bundle, seed: int) -> list[np.ndarray]:
    """The model playing freely at default controls through ONNX from CALIBRATION_PRIMES across the song, before
    any output stage: one (CALIBRATION_S_PER_PRIME of frames, dim) array of normalised frames per prime."""
    controls = Controls.for_bundle(bundle)
    n_steps = int(CALIBRATION_S_PER_PRIME * bundle.audio.samplerate / bundle.frames.hop)
    model = StepModel(bundle)
    renders = []
    for i, position in enumerate(CALIBRATION_PRIMES):
        generator = Generator(bundle, model, seed=seed + i)
        generator.prime(position)
        renders.append(np.array([generator.next_frame(controls).copy() for _ in range(n_steps)]))
    return renders


def equaliser(gen_power: np.ndarray, song_power: np.ndarray, band: np.ndarray, shape_db: np.ndarray) -> dict:
    """Output EQ from each 1/3-octave band's correction `shape_db` (n_bins,) and a level that matches the mean
    power `gen_power` (n_bins,) to the song's: the level within +-CALIBRATION_LEVEL_DB, every band's shape within
    +-CALIBRATION_SHAPE_DB of the median band's."""
    shape = np.clip(shape_db - np.median(shape_db[np.unique(band, return_index=True)[1]]), *SHAPE_RANGE)
    shaped = (gen_power * 10 ** (shape / 10)).sum()
    level_db = np.clip(10 * np.log10(song_power.sum() / max(shaped, 1e-30)), *LEVEL_RANGE)
    return {"gain_db": np.round(level_db + shape, 3).tolist(), "level_db": round(float(level_db), 2)}


def bin_bands(bundle: Bundle) -> np.ndarray:
    """The 1/3-octave band of every bin (n_bins,)."""
    sr = bundle.audio.samplerate
    n_bins = bundle.frames.n_bins(sr)
    return np.digitize(np.arange(n_bins) * bundle.frames.bin_hz(sr), third_octave_edges(sr, low_hz=20.0))


def band_log_power(power: np.ndarray, band: np.ndarray) -> np.ndarray:
    """Frames of bin power (T, n_bins) -> every bin's band's mean log10 power over the frames (n_bins,): the
    level of a typical frame, where the mean power is the level of the loudest."""
    out = np.zeros(power.shape[-1])
    for b in np.unique(band):
        members = band == b
        out[members] = np.mean(np.log10(power[:, members].sum(axis=1) + BAND_POWER_FLOOR))
    return out


def falling_root(f, lo: float, hi: float, steps: int, tolerance: float) -> float:
    """Where a falling function `f` crosses zero between `lo` and `hi`: regula falsi with the Illinois rule (the
    secant between the two ends that hold the crossing between them; an end kept twice in a row counts half), which
    on a smooth curve needs a few evaluations where bisection needs many. Returns `lo` or `hi` where `f` does not
    cross between them, else the last point tried: within `tolerance` of zero, or after `steps` of them."""
    f_lo, f_hi = f(lo), f(hi)
    if f_lo <= 0:
        return lo
    if f_hi >= 0:
        return hi
    x, kept = lo, 0  # kept: +1 when `hi` was kept last time, -1 when `lo` was
    for _ in range(steps):
        x = hi - f_hi * (hi - lo) / (f_hi - f_lo)
        fx = f(x)
        if abs(fx) < tolerance:
            break
        if fx > 0:
            lo, f_lo = x, fx
            f_hi = f_hi / 2 if kept == 1 else f_hi
            kept = 1
        else:
            hi, f_hi = x, fx
            f_lo = f_lo / 2 if kept == -1 else f_lo
            kept = -1
    return x


def calibrate_output(bundle: Bundle, songs: list[Song], song_frames: list[np.ndarray], seed: int) -> dict:
    """The output stage: the partials' contrast and the EQ (`liveshtr.sound.tone`).

    The EQ matches each 1/3-octave band's level in a typical frame (its mean log power) to the song's, and the
    overall mean power to the song's. The mean power alone, matched per band, made a model that plays its attacks
    softer than the song turn up the bands they live in all the time: on the acoustic guitar the bands above 3 kHz
    sat 9 dB above the song's in every frame, a veil of noise over the notes. The contrast is then chosen (by
    `falling_root`) so that the renders through this EQ, the phase and the overlap-add are as tonal as the song
    (`median_flatness` of both, the first TONE_SECONDS of every calibration render)."""
    renders = free_renders(bundle, seed)
    frames = np.concatenate(renders)
    model = StepModel(bundle)
    generator = Generator(bundle, model, seed=seed)
    stats, band = bundle.stats, bin_bands(bundle)
    songs_power = np.concatenate([generator.layout.to_magnitudes(f * stats.std + stats.mean) for f in song_frames]) ** 2
    song_power, song_log = songs_power.mean(axis=0), band_log_power(songs_power, band)
    tone = tone_target([s.samples for s in songs], bundle.audio.samplerate, seed)
    target = tone["target"]
    n_tone = int(TONE_SECONDS * bundle.audio.samplerate / bundle.frames.hop)

    def stage(contrast: float) -> tuple[float, dict]:
        generator.contrast = contrast
        power = generator.magnitudes_many(frames).astype(np.float64) ** 2
        eq = equaliser(power.mean(axis=0), song_power, band, 10 * (song_log - band_log_power(power, band)))
        audio = []
        for i, render in enumerate(renders):
            player = Generator(bundle, model, seed=seed + i)
            player.contrast = contrast
            player.output_gain[:] = 10 ** (np.asarray(eq["gain_db"], dtype=np.float32) / 20)
            audio.append(player.play_frames(render[:n_tone]))
        return median_flatness(audio, bundle.audio.samplerate), eq

    staged = {}  # contrast -> (flatness, eq) of every contrast tried, the one found among them

    def excess(log_contrast: float) -> float:  # falls as the contrast grows
        contrast = round(float(np.exp(log_contrast)), 3)
        if contrast not in staged:
            staged[contrast] = stage(contrast)
        return math.log(staged[contrast][0] / target)

    lo, hi = np.log(CONTRAST_RANGE)
    found = falling_root(excess, float(lo), float(hi), CONTRAST_STEPS, CONTRAST_TOLERANCE)  # a point it evaluated
    contrast = round(float(np.exp(found)), 3)
    flat, eq = staged[contrast]
    flatness = {"song": round(tone["song"], 6), "noise": round(tone["noise"], 6), "render": round(flat, 6)}
    return {**eq, "contrast": contrast, "flatness": flatness}
