"""Calibration: how widely a trained model samples, and the output stage that makes it play like its song.

It plays the bundle as the engine will (the ONNX step through `live.generator`, never torch) and measures what it
plays against the song: first the sampling (`calibrate_sampling`: a little noise on the pitch bins, the bands'
noise at which they change as the song's, the latent's spread at which it plays as many events), then the output
EQ and the partials' contrast (`calibrate_output`: each band's level and the flatness of the song,
`analysis.tone`). Export writes the results into model.json; each figure is a number in the bundle, not a rule here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from liveshtr.analysis.spectral import ONSET_FRAME_RATE, band_rise, pick_events
from liveshtr.analysis.tone import harmonic_share, median_flatness, partial_persistence, tone_target
from liveshtr.bundle import Bundle, load_bundle, write_meta
from liveshtr.live.generator import Controls, Generator, play_together
from liveshtr.live.runtime import StepModel
from liveshtr.sound.audio import Song, write_audio
from liveshtr.sound.bands import third_octave_edges

CALIBRATION_PRIMES = (0.1, 0.3, 0.5, 0.7, 0.9)  # free-running renders from across the song ...
CALIBRATION_S_PER_PRIME = 24.0  # ... of this many seconds each measure the model's own spectrum
CALIBRATION_LEVEL_DB = 24.0  # largest overall level correction
CALIBRATION_SHAPE_DB = 12.0  # largest correction of one band against the overall level
SHAPE_RANGE = (-CALIBRATION_SHAPE_DB, CALIBRATION_SHAPE_DB)
LEVEL_RANGE = (-CALIBRATION_LEVEL_DB, CALIBRATION_LEVEL_DB)
BAND_POWER_FLOOR = 1e-10  # added to a band's power before its log (a bin at the features' floor, FLOOR squared)
CONTRAST_RANGE = (0.5, 3.0)  # the partials' contrast is set within this range ...
CONTRAST_STEPS = 8  # ... in at most this many steps inside it ...
CONTRAST_TOLERANCE = 0.02  # ... until the renders' flatness is within 2% of the target
SAMPLING_PRIMES = (0.25, 0.5, 0.75)  # the sampling calibration plays from these places in the song ...
SAMPLING_FRAMES = 600  # ... this many frames each (6.4 s at the default hop), after the prime
FEATURE_NOISE = 0.4  # at temperature 1 the pitch bins are drawn at this fraction of their predicted spread
BAND_NOISE_RANGE = (0.2, 3.0)  # the bands' noise is set within this range ...
BAND_ROUNDS = 3  # ... in this many rounds
LATENT_RANGE = (0.25, 2.0)  # the latent's spread (in units of its prior's) is chosen within this range ...
LATENT_STEPS = 5  # ... in this many bisection steps ...
SUSTAIN_MARGIN = 0.1  # ... and no wider than keeps the renders' harmonic share within this much under the song's
PARTIALS_KEPT = 0.9  # ... and at least this share of the song's partial persistence
PREVIEW_S = 20.0  # every calibrated bundle carries this much of its playing, from the middle of its song


@dataclass(frozen=True)
class Plan:
    """How much the calibration plays: FULL for a trained bundle (the constants above), QUICK for the models that
    `serve --learn` plays while training goes on, in a few seconds of the trainer's time."""

    sampling_primes: tuple[float, ...] = SAMPLING_PRIMES
    sampling_frames: int = SAMPLING_FRAMES
    band_rounds: int = BAND_ROUNDS
    latent_steps: int = LATENT_STEPS
    primes: tuple[float, ...] = CALIBRATION_PRIMES
    seconds_per_prime: float = CALIBRATION_S_PER_PRIME
    contrast_steps: int = CONTRAST_STEPS


FULL = Plan()
QUICK = Plan((0.3, 0.7), 300, 2, 3, (0.3, 0.7), 8.0, 4)
NOISE_AT_ZERO = 0.5  # at temperature 0 the features are drawn with this share of that noise
LATENT_GROWTH = 2.0  # above temperature 1 the latent's spread grows as its square


def frame_change(frames: list[np.ndarray], pitch_bins: int) -> np.ndarray:
    """RMS change from one frame to the next of the pitch bins and of the bands: (2,), over normalised feature
    sequences (each sequence's own changes only)."""
    d = np.concatenate([np.diff(f.astype(np.float64), axis=0) for f in frames if len(f) > 1])
    return np.sqrt([np.mean(d[:, :pitch_bins] ** 2), np.mean(d[:, pitch_bins:] ** 2)])


def song_events(songs: list[Song], samplerate: int) -> tuple[float, float]:
    """The songs' largest rise (`analysis.spectral.band_rise` at ONSET_FRAME_RATE) and their events a second
    against it (`pick_events`)."""
    rises = [band_rise(song.samples, samplerate, ONSET_FRAME_RATE) for song in songs]
    reference = float(max(r.max() for r in rises))
    events = sum(pick_events(r, reference, ONSET_FRAME_RATE) for r in rises)
    return reference, events / (sum(len(song.samples) for song in songs) / samplerate)


def song_stretches(songs: list[Song], seconds: float, primes: tuple[float, ...] = SAMPLING_PRIMES) -> list[np.ndarray]:
    """`seconds` of every song from each of `primes` on (where the sampling's renders start), moved inside the song
    where they would run over its end."""
    out = []
    for song in songs:
        n = min(len(song.samples), int(seconds * song.samplerate))
        out += [song.samples[min(int(p * len(song.samples)), len(song.samples) - n) :][:n] for p in primes]
    return out


def lasting_partials(audio: list[np.ndarray], samplerate: int) -> float:
    """The partial persistence of stretches `audio`, each measured on its own, their mean."""
    return float(np.mean([partial_persistence(a, samplerate) for a in audio]))


def heard_events(audio: list[np.ndarray], samplerate: int, reference: float) -> float:
    """Events a second in renders `audio`, picked against `reference` as `song_events` picks the song's."""
    events = sum(pick_events(band_rise(a, samplerate, ONSET_FRAME_RATE), reference, ONSET_FRAME_RATE) for a in audio)
    return events / (sum(len(a) for a in audio) / samplerate)


def calibrate_sampling(
    bundle: Bundle, songs: list[Song], song_frames: list[np.ndarray], seed: int, plan: Plan = FULL
) -> dict:
    """How widely the model samples at temperature 1 ("noise": [pitch bins, bands], "latent_scale"): the pitch
    bins at FEATURE_NOISE of the spread the model predicts for them; the bands' noise scaled until the bands change
    from one frame to the next as much as the song's do (RMS of their normalised change: too little plays the
    song's noise, its cymbals and breath, as a smooth tone, too much as flicker); and the latent at the spread with
    which the model, heard through the phase stage and the overlap-add, plays as many events a second as its song
    (`heard_events` against `song_events`; bisected within LATENT_RANGE). Below temperature 1 the feature noise
    falls to NOISE_AT_ZERO of itself at 0 ("noise_floor") and the latent keeps its spread ("latent_floor"); above
    1 the noise grows with the temperature and the latent's spread as its square ("latent_growth",
    `Generator.next_frame`): held below 1, the latent's spread left the temperature too little to change (its
    events at 1.5 against 0.3 moved by no more than three seeds' spread on five songs of nine).

    The latent carries the events (the model was trained to put into it what the LSTM cannot predict); noise on
    the pitch bins, drawn on every bin on its own, is what turns partials into a wash: scaled up until the frames
    changed as often as the song's (as export did before), it kept 0.54-0.76 of the lasting partials of the songs.
    With the bands' noise as small, the renders of songs with drums came out far more tonal than their songs
    (harmonic share 0.95 against the electronic song's 0.77, 0.42 against the groove's 0.13). With less latent
    spread than the events need the models fell into a drone or a quiet hiss: the Brahms's at 0.6-0.75 of its
    spread played 0.1 onsets a second against the song's 1.5 (docs/notebook.md). The events are counted in what
    is heard, not in the model's frames: a rise that the frames hold over two or three hops, the phase stage
    plays as one soft swell, and calibrated on its frames (where it played as many rises as its song) the Brahms
    played half its song's onsets. But the spread is no wider than keeps the renders' harmonic share (what lasts,
    `analysis.tone.harmonic_share`) within SUSTAIN_MARGIN under the song's, from the same places: the spread moves
    the sustained partials as well as the events, and the drum and bass stem, whose widest spread played fewer
    events than its song, played its bass line as a wash there (harmonic share 0.37-0.44 against the song's 0.67;
    at 1.5 of its spread 0.68). Nor wider than keeps PARTIALS_KEPT of the song's partial persistence (what lasts
    as a partial, `analysis.tone.partial_persistence`): the drum groove in 2048-point frames holds only an eighth
    of its energy in the harmonic part, so 0.1 of it is all of it, and at the spread the events and the share
    chose (1.27) the kit's resonances no longer lasted (0.42 against the song's 0.79) and its beat fell to 0.30
    (the song's 0.67). Where even the range's widest spread is not too wide, or its narrowest is, the spread
    stays at that end."""
    controls = Controls.for_bundle(bundle)
    model = StepModel(bundle)
    pitch_bins, hop = bundle.meta["features"]["pitch_bins"], bundle.frames.hop
    samplerate = bundle.audio.samplerate
    reference, song_rate = song_events(songs, samplerate)
    primed = len(bundle.primes[0])

    def play(spread: float, bands: float) -> list[np.ndarray]:
        """The model's frames from SAMPLING_PRIMES with the latent at `spread` and the bands' noise at `bands`,
        each the prime's frames first."""
        played = []
        for i, position in enumerate(plan.sampling_primes):
            generator = Generator(bundle, model, seed=seed + i)
            generator.noise_scale[:pitch_bins], generator.noise_scale[pitch_bins:] = FEATURE_NOISE, bands
            generator.latent_scale = np.float32(spread)
            generator.prime(position)
            n = primed + plan.sampling_frames
            played.append(np.array([generator.next_frame(controls).copy() for _ in range(n)]))
        return played

    # The bands first, at the latent's full spread: a few rounds of s <- s * target / played converge, since the
    # change grows about linearly with the noise.
    target = frame_change(song_frames, pitch_bins)[1]
    bands = 1.0
    for _ in range(plan.band_rounds):
        change = frame_change([frames[primed:] for frames in play(1.0, bands)], pitch_bins)[1]
        bands = float(np.clip(bands * target / max(change, 1e-6), *BAND_NOISE_RANGE))

    stretches = song_stretches(songs, plan.sampling_frames * hop / samplerate, plan.sampling_primes)
    song_share = harmonic_share(stretches, samplerate)
    song_partials = lasting_partials(stretches, samplerate)
    heard = {}  # spread -> (events a second, harmonic share, partial persistence) of the renders

    def listen(spread: float) -> list[np.ndarray]:
        played = play(spread, bands)
        audio = play_together([Generator(bundle, model, seed=seed + i) for i in range(len(played))], played)
        return [a[(primed + 1) * hop :] for a in audio]  # after the prime

    def too_wide(spread: float) -> bool:
        """At least as many events a second as the song, or less of the song's harmonic share than it may lose, or
        of its lasting partials: all grow with the spread (the events) or fall with it, so the spreads that are too
        wide lie above one point of the range. (The share and the partials are measured only where the events
        leave them to decide.)"""
        audio = listen(spread)
        events = heard_events(audio, samplerate, reference)
        if events >= song_rate:
            heard[spread] = (events, None, None)
            return True
        heard[spread] = (events, harmonic_share(audio, samplerate), lasting_partials(audio, samplerate))
        return heard[spread][1] < song_share - SUSTAIN_MARGIN or heard[spread][2] < PARTIALS_KEPT * song_partials

    low, high = LATENT_RANGE
    if not too_wide(high):
        scale = high
    elif too_wide(low):
        scale = low
    else:
        for _ in range(plan.latent_steps):  # in log steps: the events grow about with the spread's logarithm
            middle = math.sqrt(low * high)
            low, high = (middle, high) if not too_wide(middle) else (low, middle)
        scale = low  # the widest spread heard that is not too wide
    if heard[scale][1] is None:  # the narrowest spread, too eventful already
        audio = listen(scale)
        heard[scale] = (heard[scale][0], harmonic_share(audio, samplerate), lasting_partials(audio, samplerate))
    return {
        "noise": [FEATURE_NOISE, round(bands, 3)],
        "noise_floor": NOISE_AT_ZERO,
        "latent_scale": round(scale, 4),
        "latent_floor": round(scale, 4),
        "latent_growth": LATENT_GROWTH,
        "events_per_s": {"song": round(song_rate, 2), "reference": round(reference, 4)},
        "harmonic_share": {"song": round(song_share, 3), "played": round(heard[scale][1], 3)},
        "partial_persistence": {"song": round(song_partials, 3), "played": round(heard[scale][2], 3)},
    }


def keeps_the_song(sampling: dict) -> bool:
    """Whether a calibrated model, heard as the calibration heard it, keeps its song's sustained sound: its harmonic
    share within SUSTAIN_MARGIN under the song's and PARTIALS_KEPT of its partial persistence. Where even the
    narrowest spread of LATENT_RANGE does not, it plays a wash (`serve --learn` does not play such a model)."""
    share, partials = sampling["harmonic_share"], sampling["partial_persistence"]
    return share["played"] >= share["song"] - SUSTAIN_MARGIN and partials["played"] >= PARTIALS_KEPT * partials["song"]


def free_renders(bundle: Bundle, seed: int, plan: Plan = FULL) -> list[np.ndarray]:
    """The model playing freely at default controls through ONNX from the plan's primes across the song
    (CALIBRATION_PRIMES), before any output stage: one (its seconds_per_prime of frames, dim) array of normalised
    frames per prime."""
    controls = Controls.for_bundle(bundle)
    n_steps = int(plan.seconds_per_prime * bundle.audio.samplerate / bundle.frames.hop)
    model = StepModel(bundle)
    renders = []
    for i, position in enumerate(plan.primes):
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


def calibrate_output(
    bundle: Bundle, songs: list[Song], song_frames: list[np.ndarray], seed: int, plan: Plan = FULL
) -> dict:
    """The output stage: the partials' contrast and the EQ (`liveshtr.sound.tone`).

    The EQ matches each 1/3-octave band's level in a typical frame (its mean log power) to the song's, and the
    overall mean power to the song's. The mean power alone, matched per band, made a model that plays its attacks
    softer than the song turn up the bands they live in all the time: on the acoustic guitar the bands above 3 kHz
    sat 9 dB above the song's in every frame, a veil of noise over the notes. The contrast is then chosen (by
    `falling_root`) so that the renders through this EQ, the phase and the overlap-add are as tonal as the song:
    the median render's (over the renders, each one's `median_flatness` over the whole render) as the song's.
    Set on the first 8 s of each render (until 2026-12-07), the trumpet loop's model, which drifts flatter as it
    plays on, came out flatter over 60 s than the floor allows (1.4e-4 against 1.2e-4); set on the last 8 s, the
    guitar's, whose renders do the opposite (0.0012 against 0.0010). The median of all the renders' frames together
    matched neither kind of render of a model that plays a held, nearly pure chord from some places in its song and
    a noisier texture from others (the jazz: 1e-6 from two primes, 3-5e-4 from three, its song 1e-4): it fell
    between them, and the renders from the middle of the song came out four times as flat as the song."""
    renders = free_renders(bundle, seed, plan)
    frames = np.concatenate(renders)
    model = StepModel(bundle)
    generator = Generator(bundle, model, seed=seed)
    stats, band = bundle.stats, bin_bands(bundle)
    songs_power = np.concatenate([generator.layout.to_magnitudes(f * stats.std + stats.mean) for f in song_frames]) ** 2
    song_power, song_log = songs_power.mean(axis=0), band_log_power(songs_power, band)
    tone = tone_target([s.samples for s in songs], bundle.audio.samplerate, seed)
    target = tone["target"]

    def stage(contrast: float) -> tuple[float, dict]:
        generator.contrast = contrast
        power = generator.magnitudes_many(frames).astype(np.float64) ** 2
        eq = equaliser(power.mean(axis=0), song_power, band, 10 * (song_log - band_log_power(power, band)))
        players = [Generator(bundle, model, seed=seed + i) for i in range(len(renders))]
        for player in players:
            player.contrast = contrast
            player.output_gain[:] = 10 ** (np.asarray(eq["gain_db"], dtype=np.float32) / 20)
        audio = play_together(players, renders)
        return float(np.median([median_flatness([a], bundle.audio.samplerate) for a in audio])), eq

    staged = {}  # contrast -> (flatness, eq) of every contrast tried, the one found among them

    def excess(log_contrast: float) -> float:  # falls as the contrast grows
        contrast = round(float(np.exp(log_contrast)), 3)
        if contrast not in staged:
            staged[contrast] = stage(contrast)
        return math.log(staged[contrast][0] / target)

    lo, hi = np.log(CONTRAST_RANGE)
    found = falling_root(excess, float(lo), float(hi), plan.contrast_steps, CONTRAST_TOLERANCE)  # a point it evaluated
    contrast = round(float(np.exp(found)), 3)
    flat, eq = staged[contrast]
    flatness = {"song": round(tone["song"], 6), "noise": round(tone["noise"], 6), "render": round(flat, 6)}
    return {**eq, "contrast": contrast, "flatness": flatness}


def identity_calibration(n_bins: int) -> dict:
    """The output stage that changes nothing (a flat EQ at 0 dB), to render with before `calibrate_output`."""
    return {"gain_db": [0.0] * n_bins, "level_db": 0.0}


def calibrate_bundle(
    out: Path, meta: dict, songs: list[Song], song_frames: list[np.ndarray], seed: int, plan: Plan = FULL
) -> Bundle:
    """Calibrate the bundle in `out` (written with `meta`) against its songs and their normalised feature frames,
    write the results into its model.json and return it loaded back: how widely to sample first, since the output
    stage measures the model as it will play."""
    meta["sampling"].update(calibrate_sampling(load_bundle(out), songs, song_frames, seed, plan))
    write_meta(out, meta, with_int8=True)
    meta["calibration"] = calibrate_output(load_bundle(out), songs, song_frames, seed, plan)
    write_meta(out, meta, with_int8=True)
    return load_bundle(out)


def write_preview(out: Path, bundle: Bundle, seed: int) -> np.ndarray:
    """Render PREVIEW_S of the calibrated bundle at default controls (primed at the middle of its song) into
    out/preview.wav; returns the samples (what `Generator.render` plays, made faster)."""
    from liveshtr.analysis.report import render_many

    (preview,) = render_many(bundle, PREVIEW_S, [{"seed": seed}])
    write_audio(out / "preview.wav", preview, bundle.audio.samplerate)
    return preview
