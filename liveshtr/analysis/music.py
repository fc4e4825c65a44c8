"""Measures that noise cannot pass: beat, onsets, notes, tonality and copying, and the two noises that test them.

A render can carry a song's spectrum and still be noise in the song's colours. These measures ask what a listener
hears instead, with the field's tools (the `quality` extra: librosa, and basic-pitch's note model run through
onnxruntime; never on the serving path):

- `beat_strength`: the highest normalised autocorrelation of librosa's onset-strength envelope at lags 0.3-2 s
  (a steady pulse gives 0.4-0.8; stationary noise about 0.05);
- `onset_rate`: librosa's onsets per second;
- `pitch_classes`: the 12-bin pitch-class histogram of basic-pitch's notes, each weighted by duration x amplitude,
  and `pitch_class_correlation` between two of them;
- `harmony_change`: how far the pitch classes of each 2 s move from the 2 s before (a chord held throughout 0, a
  new chord every 2 s near 1): whether the harmony moves as the song's does;
- `flatness`: the median spectral flatness (lower is more tonal) and `harmonic_share`, the harmonic part's share
  of the energy after librosa's harmonic/percussive separation;
- `partial_persistence`: the share of the spectral peaks' energy in peaks that last 100 ms (partials that hold, not
  a wash that flickers: white noise about 0.3, steady chords about 0.9);
- `copy_similarity`: the best normalised correlation between any 2 s of log-mel spectrogram of one signal and
  any 2 s of another (a render that replays or memorises its song scores near 1);
- `longest_replay_s`: the longest stretch of one signal whose frames' nearest frames in another follow each other
  there: how long it plays the song back as it was (sharper than `copy_similarity`, which cannot tell a replay
  from a close variation below about 0.85).

Two noises are built from every song, so that each measure is shown to tell music from what noise can do:
`ltas_noise` is stationary noise with the song's power in every 1/3 octave (what an output EQ can make of any
noise); `envelope_noise` is a noise vocoder carrying the song's own band envelopes over time (its rhythm, no
pitch).
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from liveshtr.analysis.tone import partial_persistence
from liveshtr.sound import bands

SR = 22050  # every measure runs at basic-pitch's rate
HOP = 512  # onset envelope and flatness hop (23 ms)
BEAT_LAGS_S = (0.3, 2.0)  # beat periods looked for: 30-200 beats a minute
ONSET_FLOOR = 1.0  # onset strength (mean dB rise over the mel bands) an attack must reach: music peaks at 9-32,
# noise at 2-3, a held tone at 0.05
COPY_SEGMENT_S = 2.0
COPY_HOP = 512  # log-mel frame hop for copy detection (43 frames a second)
COPY_MELS = 64
NOISE_FFT, NOISE_HOP = 1024, 256  # the envelope noise's STFT: the song's envelopes at 11.6 ms steps


def to_measure_rate(x: np.ndarray, samplerate: int) -> np.ndarray:
    """A mono signal at any rate -> float32 at SR."""
    x = np.asarray(x, dtype=np.float32)
    return x if samplerate == SR else soxr.resample(x, samplerate, SR).astype(np.float32)


# -- rhythm ------------------------------------------------------------------------------------------------


def onset_envelope(y: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.onset.onset_strength(y=y, sr=SR, hop_length=HOP)


def beat_strength(y: np.ndarray) -> float:
    """Highest normalised autocorrelation of the onset-strength envelope at lags 0.3-2 s (0 for silence)."""
    env = onset_envelope(y).astype(np.float64)
    env -= env.mean()
    energy = float(np.dot(env, env))
    if energy <= 1e-12:
        return 0.0
    spectrum = np.fft.rfft(env, n=2 * len(env))  # zero-padded: linear, not circular, autocorrelation
    ac = np.fft.irfft(np.abs(spectrum) ** 2)[: len(env)] / energy
    lo, hi = (int(round(s * SR / HOP)) for s in BEAT_LAGS_S)
    return float(ac[lo : min(hi, len(ac) - 1) + 1].max()) if lo < len(ac) else 0.0


def onset_rate(y: np.ndarray) -> float:
    """Onsets per second."""
    import librosa

    env = onset_envelope(y)
    env = env - env.min()
    # librosa scales the envelope to its own peak before picking peaks, which turns the rounding noise of a held
    # tone into onsets; below ONSET_FLOOR the peak itself is taken as too small to be an attack.
    env /= max(float(env.max()), ONSET_FLOOR)
    onsets = librosa.onset.onset_detect(onset_envelope=env, sr=SR, hop_length=HOP, normalize=False)
    return len(onsets) / max(len(y) / SR, 1e-9)


# -- tone --------------------------------------------------------------------------------------------------


def flatness(y: np.ndarray) -> float:
    """Median spectral flatness (geometric over arithmetic mean of the power spectrum) of 93 ms frames."""
    import librosa

    return float(np.median(librosa.feature.spectral_flatness(y=y, n_fft=2048, hop_length=HOP)))


def harmonic_share(y: np.ndarray) -> float:
    """Share of the energy in librosa's harmonic part after harmonic/percussive separation (0..1)."""
    import librosa

    spectrum = np.abs(librosa.stft(y, n_fft=2048, hop_length=HOP))
    harmonic, percussive = librosa.decompose.hpss(spectrum)
    h, p = float(np.sum(harmonic**2)), float(np.sum(percussive**2))
    return h / (h + p) if h + p > 0 else 0.0


# -- notes -------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet():
    """basic-pitch warns at import about the runtimes it does not find and prints a line per file."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


_note_model = None


def _basic_pitch():
    """basic-pitch's inference module and its ONNX note model, loaded once (the model ships in the package)."""
    global _note_model
    with _quiet():
        import basic_pitch
        from basic_pitch import inference
    if _note_model is None:
        path = Path(basic_pitch.__file__).parent / "saved_models" / "icassp_2022" / "nmp.onnx"
        with _quiet():
            _note_model = inference.Model(path)
    return inference, _note_model


def notes(y: np.ndarray) -> list[tuple[float, float, int, float]]:
    """basic-pitch's notes: (start s, end s, MIDI pitch, amplitude), with its default thresholds."""
    inference, model = _basic_pitch()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "audio.wav"  # basic-pitch reads files only
        sf.write(path, y, SR, subtype="FLOAT")
        with _quiet():
            _, _, events = inference.predict(str(path), model)
    return [(float(s), float(e), int(p), float(a)) for s, e, p, a, *_ in events]


def pitch_classes(y: np.ndarray, events: list | None = None) -> np.ndarray:
    """12-bin pitch-class histogram (C first) of the notes (`events`, or basic-pitch's of `y`), weighted by
    duration x amplitude; sums to 1 or is 0."""
    hist = np.zeros(12)
    for start, end, pitch, amplitude in notes(y) if events is None else events:
        hist[pitch % 12] += (end - start) * amplitude
    total = hist.sum()
    return hist / total if total > 0 else hist


HARMONY_WINDOW_S = 2.0  # the pitch classes of each this many seconds against the ones before


def harmony_change(events: list, seconds: float) -> float:
    """How much the harmony moves: 1 - the cosine similarity of the pitch classes (duration x amplitude, as
    `pitch_classes`) of each HARMONY_WINDOW_S against the window before, averaged over the pairs that both have
    notes; `events` are `notes`' over a signal `seconds` long. 0 for a chord held throughout, near 1 when every
    window holds another; NaN with fewer than two windows with notes."""
    n = int(seconds // HARMONY_WINDOW_S)
    hist = np.zeros((n, 12))
    for start, end, pitch, amplitude in events:
        for w in range(int(start // HARMONY_WINDOW_S), min(int(end // HARMONY_WINDOW_S) + 1, n)):
            inside = min(end, (w + 1) * HARMONY_WINDOW_S) - max(start, w * HARMONY_WINDOW_S)
            hist[w, pitch % 12] += max(inside, 0.0) * amplitude
    size = np.linalg.norm(hist, axis=1)
    both = (size[:-1] > 0) & (size[1:] > 0)
    if not both.any():
        return float("nan")
    cosine = np.sum(hist[:-1] * hist[1:], axis=1)[both] / (size[:-1] * size[1:])[both]
    return float(np.mean(1.0 - cosine))


def pitch_class_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two pitch-class histograms; 0 when either has no notes or no contrast."""
    if np.std(a) < 1e-12 or np.std(b) < 1e-12:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


# -- copying -----------------------------------------------------------------------------------------------


def _log_mel(y: np.ndarray, centre_bands: bool = True) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=2048, hop_length=COPY_HOP, n_mels=COPY_MELS)
    spec = 10 * np.log10(mel + 1e-10).T  # (frames, mels)
    if centre_bands:
        spec -= spec.mean(axis=0)  # each band around its own long-term level: the spectral tilt is no match
    # ... and each frame around its own level: a pause or a loud hit changes every band at once, and two pauses
    # are no copy of each other (without this, unrelated renders of a song with pauses score like its halves).
    return spec - spec.mean(axis=1, keepdims=True)


def _segments(spec: np.ndarray, step: int) -> np.ndarray:
    """Every `step`-th 2 s window, mean-removed and unit length: (n, frames * mels)."""
    seg = int(COPY_SEGMENT_S * SR / COPY_HOP)
    windows = np.lib.stride_tricks.sliding_window_view(spec, seg, axis=0)[::step]  # (n, mels, seg)
    flat = windows.reshape(len(windows), -1).astype(np.float32)
    flat -= flat.mean(axis=1, keepdims=True)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True) + 1e-9
    return flat


def copy_similarity(y: np.ndarray, reference: np.ndarray) -> float:
    """Best correlation between a 2 s log-mel stretch of `y` and one of `reference` (every frame offset of the
    reference, every second frame of `y`). The halves of a song score 0.45-0.85 against each other, noise and
    unrelated music about 0.1-0.2; a replayed stretch scores 1."""
    a, b = _segments(_log_mel(y), 2), _segments(_log_mel(reference), 1)
    best = -1.0
    for start in range(0, len(a), 256):  # blocks keep the correlation matrix small
        best = max(best, float((a[start : start + 256] @ b.T).max()))
    return best


# -- the two noises ----------------------------------------------------------------------------------------


def ltas_noise(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Stationary noise with the song's power in every 1/3 octave, as long as the song."""
    return bands.ltas_noise(y, SR, seed)


def envelope_noise(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """A noise vocoder: white noise whose 1/3-octave band energies follow the song's frame by frame."""
    import librosa

    rng = np.random.default_rng(seed)
    song = librosa.stft(y, n_fft=NOISE_FFT, hop_length=NOISE_HOP)  # (bins, frames)
    noise = librosa.stft(rng.standard_normal(len(y)).astype(np.float32), n_fft=NOISE_FFT, hop_length=NOISE_HOP)
    edges = bands.band_edges_bins(song.shape[0], SR / NOISE_FFT, SR)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        want = np.sum(np.abs(song[lo:hi]) ** 2, axis=0)  # (frames,)
        have = np.maximum(np.sum(np.abs(noise[lo:hi]) ** 2, axis=0), 1e-30)
        noise[lo:hi] *= np.sqrt(want / have)
    return librosa.istft(noise, hop_length=NOISE_HOP, length=len(y)).astype(np.float32)


# -- all of it ---------------------------------------------------------------------------------------------


@dataclass
class MusicMeasures:
    """What one signal measures on its own."""

    beat: float
    onsets_per_s: float
    flatness: float
    harmonic_share: float
    persistence: float
    pitch_classes: list[float]
    harmony_change: float

    def to_dict(self) -> dict:
        return asdict(self)


def measure(y: np.ndarray) -> MusicMeasures:
    """Every single-signal measure of a signal at SR."""
    events = notes(y)
    return MusicMeasures(
        beat=beat_strength(y),
        onsets_per_s=onset_rate(y),
        flatness=flatness(y),
        harmonic_share=harmonic_share(y),
        persistence=partial_persistence(y, SR),
        pitch_classes=pitch_classes(y, events).tolist(),
        harmony_change=harmony_change(events, len(y) / SR),
    )


REPLAY_SHARE = 0.01  # a frame matches the song frames among its nearest 1% (at least REPLAY_MATCHES of them)
REPLAY_MATCHES = 3
REPLAY_TOLERANCE = 0.01  # ... or within this much cosine similarity of its nearest


def _frame_shapes(y: np.ndarray) -> np.ndarray:
    """Each log-mel frame around its own level, unit length: what it sounds like, not how loud (frames, mels)."""
    spec = _log_mel(y, centre_bands=False).astype(np.float32)
    return spec / (np.linalg.norm(spec, axis=1, keepdims=True) + 1e-9)


def longest_replay_s(y: np.ndarray, reference: np.ndarray) -> float:
    """The longest run of `y`'s log-mel frames (23 ms) that match `reference` frame for frame, in seconds: frame i
    of the run matches frame j + i of the reference (cosine, each frame around its own level: among its nearest
    REPLAY_SHARE of the reference, or within REPLAY_TOLERANCE of its nearest). That is the song played back as it
    was; music that recombines the song's sounds matches a note or a beat of it at a time, and noise nothing for
    long."""
    a = _frame_shapes(y)
    # The reference on four grids a quarter frame apart: a replay need not start on its frames' grid, and an
    # attack sounds different a few milliseconds later in the window
    grids = [_frame_shapes(reference[offset:]) for offset in range(0, COPY_HOP, COPY_HOP // 4)]
    n = min(len(g) for g in grids)
    k = min(n, max(REPLAY_MATCHES, int(REPLAY_SHARE * n)))
    longest, run = 0, np.zeros(n + 1, dtype=np.int32)  # run[j + 1]: the run that ends matched to frame j
    for start in range(0, len(a), 512):
        similarity = np.max([a[start : start + 512] @ g[:n].T for g in grids], axis=0)
        threshold = np.partition(similarity, n - k, axis=1)[:, n - k : n - k + 1]
        # ... or as near as its nearest: a held sound's frames are all alike, and any of them is the one
        threshold = np.minimum(threshold, similarity.max(axis=1, keepdims=True) - REPLAY_TOLERANCE)
        for matched in similarity >= threshold:
            run[1:] = np.where(matched, run[:-1] + 1, 0)
            longest = max(longest, int(run.max()))
    return longest * COPY_HOP / SR
