"""Generation: prime from the song, then step the model on its own output, one frame and one hop at a time.

Each step plays the current frame and predicts the next: first the prime's real frames from the song (fed to the
model with teacher forcing, so its state knows where it is), then the model's own predictions. The same code
renders the preview, `liveshtr render` and the live engine's producer, so they all sound the same for the same
seed and controls.

The model's frames are log-magnitude features: they become magnitudes (each band's level spread over its bins,
then the output EQ), the phase stage (`liveshtr.sound.phase`) gives them phase, and the spectrum becomes the frame
domain's coefficients (`FrameCodec.from_spectrum`) for the overlap-add. Its clock is an oscillator: the beat count
advances by the tempo every hop, starting where the prime's first frame sat in the song's bar. A model with a
position input is told where in the song it plays: from where the prime lies, one frame of the song a hop, round
from the end to the start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.fft

from liveshtr.bundle import Bundle
from liveshtr.live.runtime import StepModel
from liveshtr.live.safety import SafetyStage
from liveshtr.sound.frames import FrameCodec
from liveshtr.sound.magnitude import FLOOR
from liveshtr.sound.phase import LookaheadPhase
from liveshtr.sound.tempo import BEATS_PER_BAR
from liveshtr.sound.tone import ContrastFilter

ON_BAR = 0.25  # a model switched in at a bar starts from a prime this near (in beats) to a bar's first beat
DEFAULT_PRIME = 0.5  # start from the middle of the song: intros and outros are often sparse or silent
RUNAWAY = 1e3  # a normalised feature this large means the loop has diverged: re-prime
FEATURE_LIMIT = 8.0  # features are held within this many spreads of their mean (a sampled outlier
# would otherwise be exp'd into a blast that only the limiter stops)


@dataclass
class Controls:
    """What the performer steers; latent values are in units of each dimension's spread (+-3 covers the song)."""

    latent_dim: int
    temperature: float = 1.0  # 0: the calmest (the least feature noise); 1: as calibrated; higher: wilder
    latent_mix: float = 0.0  # 0: the model's own z; 1: the performer's z_user
    latent_offset: np.ndarray = field(default=None)  # (L,) added to the model's z
    z_user: np.ndarray = field(default=None)  # (L,) the performer's own point in latent space
    # The latent noise's AR(1) coefficient per step: the latent is an event per frame and is sampled fresh (0);
    # held noise (up to 0.999) pushes the sound one way for many frames.
    drift: float = 0.0
    tempo: float = 0.0  # beats a minute of the clock (a model with a clock input); 0: the song's tempo

    @classmethod
    def for_bundle(cls, bundle: Bundle, **given) -> Controls:
        """Default controls of a model bundle (its latent size), with `given` fields on top."""
        return cls(bundle.latent_dim, **given)

    def __post_init__(self) -> None:
        if self.latent_offset is None:
            self.latent_offset = np.zeros(self.latent_dim, dtype=np.float32)
        if self.z_user is None:
            self.z_user = np.zeros(self.latent_dim, dtype=np.float32)


class SpectralFreeze:
    """Holds the sound still: every frequency keeps its level and keeps turning at the rate it last turned.

    At the start it takes the last two frames played, measures each bin's phase advance between them (the
    phase-vocoder estimate of its frequency) and from then on rotates the newest frame by that advance every hop.
    A steady tone goes on exactly; noise becomes a still, sustained texture. Works on denormalised frames of
    either domain through the frame's spectrum.
    """

    def __init__(self, codec: FrameCodec):
        self.codec = codec
        self._spectrum = np.zeros(codec.frame // 2 + 1, dtype=np.complex128)
        self._turn = np.ones_like(self._spectrum)

    def start(self, previous: np.ndarray, current: np.ndarray) -> None:
        before = scipy.fft.rfft(self.codec.inverse(previous), norm="ortho")
        self._spectrum = scipy.fft.rfft(self.codec.inverse(current), norm="ortho")
        turn = self._spectrum * np.conj(before)
        size = np.abs(turn)
        self._turn = np.where(size > 1e-12, turn / np.maximum(size, 1e-30), 1.0)

    def next(self) -> np.ndarray:
        """The next frozen frame as coefficients (dim,)."""
        self._spectrum *= self._turn
        frame = scipy.fft.irfft(self._spectrum, n=self.codec.frame, norm="ortho")
        return self.codec.forward(frame)


class Generator:
    def __init__(self, bundle: Bundle, model: StepModel | None = None, seed: int = 0):
        self.bundle = bundle
        self.model = model or StepModel(bundle)
        self.codec = FrameCodec(bundle.frames, bundle.audio.samplerate)
        self.synth = self.codec.streaming()
        self.safety = SafetyStage(bundle.audio.samplerate, self.codec.hop)
        self.resets = 0  # times the model diverged (non-finite or runaway frames) and was re-primed
        self._position = 0.0
        self.rng = np.random.default_rng(seed)
        self._played = np.zeros(bundle.dim, dtype=np.float32)  # the normalised frame being played
        self._denorm = np.zeros(self.codec.dim, dtype=np.float32)  # the coefficient frame being played
        self._previous = np.zeros(self.codec.dim, dtype=np.float32)  # the coefficient frame played one hop ago
        self._freeze = SpectralFreeze(self.codec)
        self.frozen = False
        self._beat = 0.0  # beat count of the frame being played, modulo the bar
        self._place = 0.0  # where in its song the frame being played lies (a model with a position input)
        self._place_step = 0.0  # ... and how far one frame moves on
        self._position_feed = self.model.feeds.get("position")
        self.layout = bundle.layout
        # every bin's log-magnitude from the features: one feature each, or a few weighted (`taps`)
        self._taps, self._tap_weights = self.layout.taps  # (n_bins, taps) each
        self._tapped = np.zeros(self._taps.shape, dtype=np.float32)
        self._phase = LookaheadPhase(self.codec)  # one frame late: PGHI refined against the overlap
        self._features = np.zeros(bundle.dim, dtype=np.float32)  # denormalised log features
        self._mag = np.zeros(self.codec.n_bins, dtype=np.float32)
        self._pitch = self._features[: self.layout.pitch_bins]  # a view: the contrast works on it in place
        self._contrast = ContrastFilter(self.layout.pitch_bins)
        self.song_tempo = float(bundle.tempo)
        # The output stage from export (the calibration may try others): the EQ and the partials' contrast.
        self.output_gain = bundle.output_gain.copy()
        self.contrast = bundle.contrast
        self._eps = self.model.feeds["eps"][0]  # the latent noise the model reads: the wander, scaled
        self._wander = np.zeros(bundle.latent_dim, dtype=np.float32)  # unit-variance AR(1) noise
        self._fresh = np.empty(bundle.latent_dim, dtype=np.float32)
        # The bundle's sampling (export may try others): the latent's spread at temperature 0 and 1, in units of
        # its prior's, and the feature noise at temperature 1 (dim,) with the share of it kept at temperature 0.
        self.latent_floor = np.float32(bundle.latent_floor)
        self.latent_scale = np.float32(bundle.latent_scale)
        self.latent_growth = bundle.latent_growth
        self.noise_scale = bundle.noise_scale
        self.noise_floor = np.float32(bundle.noise_floor)
        self._prime: np.ndarray = bundle.primes[0]
        self._prime_left = 0
        self.prime(DEFAULT_PRIME)
        self.synth.reset()
        self.safety.reset()

    @property
    def hop(self) -> int:
        return self.codec.hop

    @property
    def phase_delay(self) -> int:
        """Hops the phase stage holds each frame before it is heard (it refines a frame against the next)."""
        return self._phase.delay

    @property
    def position(self) -> float:
        """Where in the song (0..1) the current prime was taken."""
        return self._position

    @property
    def samplerate(self) -> int:
        return self.bundle.audio.samplerate

    def prime(self, position: float) -> None:
        """Restart from the prime nearest `position` (0..1 through the song): fresh state, the song's frames first.

        The overlap-add keeps what is already sounding, so the restart crossfades over one frame instead of
        clicking; freeze is released."""
        self._position = float(np.clip(position, 0.0, 1.0))
        index = int(np.argmin(np.abs(self.bundle.prime_positions - self._position)))
        self._prime = self.bundle.primes[index]
        self._prime_left = len(self._prime)
        self._beat = float(self.bundle.prime_beats[index])
        self._place, self._place_step = self.bundle.prime_song_place(index)
        self.rng.standard_normal(dtype=np.float32, out=self._wander)
        self.model.reset_state()
        self.frozen = False

    def prime_on_bar(self) -> None:
        """Restart (as `prime`) from the prime nearest where it plays among those that start within ON_BAR beats of
        a bar's first beat (or the nearest to one, where none does): a model switched in at the next bar then
        starts its song's bar with the bar of the model it follows."""
        beats = self.bundle.prime_beats % BEATS_PER_BAR
        off = np.minimum(beats, BEATS_PER_BAR - beats)
        candidates = np.flatnonzero(off <= max(ON_BAR, float(off.min())))
        index = candidates[np.argmin(np.abs(self.bundle.prime_positions[candidates] - self._position))]
        self.prime(float(self.bundle.prime_positions[index]))

    @property
    def beat(self) -> float:
        """The clock: beats into the bar of the frame being played."""
        return self._beat

    def beats_per_hop(self, controls: Controls) -> float:
        """How far the clock moves in a hop at `controls`' tempo (the song's, where it is 0)."""
        tempo = controls.tempo if controls.tempo > 0 else self.song_tempo
        return tempo / 60.0 * self.hop / self.samplerate

    def set_beat(self, beats: float) -> None:
        """Put the clock at `beats` into the bar (a MIDI clock's position: the band's beat)."""
        self._beat = float(beats) % BEATS_PER_BAR

    def next_frame(self, controls: Controls) -> np.ndarray:
        """Step once: returns the normalised frame to play now (dim,) and prepares the next one.

        The array is reused: copy it out. The model's input buffer holds the frame being played, and the
        prediction is written back into it for the next step."""
        feeds = self.model.feeds
        frame = feeds["frame"][0]
        if self._prime_left:
            frame[:] = self._prime[len(self._prime) - self._prime_left]
            self._prime_left -= 1
        # AR(1) noise of unit variance: eps <- rho * eps + sqrt(1 - rho^2) * fresh
        rho = min(max(controls.drift, 0.0), 0.999)
        self.rng.standard_normal(dtype=np.float32, out=self._fresh)
        self._fresh *= math.sqrt(1.0 - rho * rho)
        self._wander *= rho
        self._wander += self._fresh
        # The temperature: the feature noise runs in a line from its floor at 0 through the bundle's at 1; the
        # latent's spread too, and above 1 it grows as the temperature to the bundle's power. The graph is fed 1,
        # the noise scaled.
        t = max(controls.temperature, 0.0)
        line = self.latent_floor + (self.latent_scale - self.latent_floor) * t
        spread = max(float(line), float(self.latent_scale * t**self.latent_growth))
        np.multiply(self._wander, spread, out=self._eps)
        feeds["temperature"][0] = 1.0
        feeds["latent_mix"][0] = controls.latent_mix
        feeds["latent_offset"][0] = controls.latent_offset
        feeds["z_user"][0] = controls.z_user
        noise = feeds["noise"][0]
        self.rng.standard_normal(dtype=np.float32, out=noise)
        noise *= self.noise_scale
        noise *= self.noise_floor + (1.0 - self.noise_floor) * t
        self._beat = (self._beat + self.beats_per_hop(controls)) % BEATS_PER_BAR
        feeds["beat"][0] = self._beat  # the clock of the frame being predicted
        if self._position_feed is not None:  # the song plays on from the prime, around to its start
            self._place = (self._place + self._place_step) % 1.0
            self._position_feed[0] = self._place
        self._played[:] = frame
        predicted = self.model.step()["next_frame"][0]
        if not (-RUNAWAY < float(predicted.min()) and float(predicted.max()) < RUNAWAY):  # NaN fails both
            self.resets += 1
            self.prime(self._position)  # fresh state; the song's own frames play from the next hop on
            self._played.fill(-FEATURE_LIMIT)  # silence
            return self._played
        np.clip(predicted, -FEATURE_LIMIT, FEATURE_LIMIT, out=frame)
        return self._played

    def _denormalise(self, frame: np.ndarray) -> None:
        """A normalised model frame -> the coefficient frame to synthesise, in `_denorm` (output EQ applied)."""
        mag = self.magnitudes(frame)
        mag *= self.output_gain
        self.codec.from_spectrum(self._phase.process(mag), out=self._denorm)

    def magnitudes(self, frame: np.ndarray) -> np.ndarray:
        """A normalised model frame -> magnitudes of every bin (n_bins,), the partials' contrast
        applied, before the output EQ. The array is reused."""
        return self._magnitudes_into(frame, self._features, self._pitch, self._contrast, self._mag)

    def _magnitudes_into(self, frames, features, pitch, contrast: ContrastFilter, mag) -> np.ndarray:
        """`magnitudes` of one frame (dim,) or a block (N, dim) into the given buffers (`pitch` a view of
        `features`' pitch bins, `contrast` a filter of its shape); returns `mag`."""
        stats = self.bundle.stats
        np.multiply(frames, stats.std, out=features)
        np.add(features, stats.mean, out=features)
        contrast.apply(pitch, self.contrast)
        if self._taps.shape[1] == 1:
            np.take(features, self._taps[:, 0], axis=-1, out=mag)
        else:
            tapped = self._tapped if mag.ndim == 1 else np.empty(mag.shape + self._taps.shape[1:], np.float32)
            np.take(features, self._taps, axis=-1, out=tapped)
            tapped *= self._tap_weights
            np.sum(tapped, axis=-1, out=mag)
        np.exp(mag, out=mag)
        mag -= FLOOR
        return np.maximum(mag, 0.0, out=mag)

    def set_freeze(self, on: bool) -> None:
        """Hold the sound still (the model pauses where it is) or play on from where it paused."""
        if on and not self.frozen:
            self._freeze.start(self._previous, self._denorm)
        self.frozen = bool(on)

    def next_hop(self, controls: Controls) -> np.ndarray:
        """One hop of audio (hop,) at the model's rate. The array is reused: copy it out."""
        if self.frozen:
            self._previous, self._denorm = self._denorm, self._previous  # keep last hop's frame for a freeze
            self._denorm[:] = self._freeze.next()
            return self.safety.process(self.synth.process(self._denorm))
        return self.play_frame(self.next_frame(controls))

    def play_frame(self, frame: np.ndarray) -> np.ndarray:
        """One normalised model frame through the output stage, the phase and the overlap-add: the next hop of
        audio (hop,). The array is reused: copy it out."""
        self._previous, self._denorm = self._denorm, self._previous  # keep last hop's frame for a freeze
        self._denormalise(frame)
        return self.safety.process(self.synth.process(self._denorm))

    def play_frames(self, frames: np.ndarray) -> np.ndarray:
        """`play_frame` for a block of normalised frames (N, dim) at once: the N hops of audio (N * hop,), a new
        array, the same samples and the same state after (offline only: it allocates, the engine plays frame by
        frame). Calibration plays thousands of frames through the output stage for every setting it tries."""
        frames = np.asarray(frames, dtype=np.float32)
        return self._play_spectra(self._phase.process_many(self.magnitudes_many(frames) * self.output_gain))

    def _play_spectra(self, spectra: np.ndarray) -> np.ndarray:
        """The phase stage's spectra for a block of frames (N, n_bins) -> the N hops of audio (N * hop,)."""
        coeffs = self.codec.from_spectrum(spectra)
        if len(coeffs):
            self._previous[:] = coeffs[-2] if len(coeffs) > 1 else self._denorm
            self._denorm[:] = coeffs[-1]
        hops = self.synth.process_many(coeffs).reshape(len(coeffs), self.hop)
        for row in hops:
            row[:] = self.safety.process(row)
        return hops.reshape(-1)

    def magnitudes_many(self, frames: np.ndarray) -> np.ndarray:
        """`magnitudes` for a block of normalised frames (N, dim): (N, n_bins), a new array."""
        features = np.empty((len(frames), self.bundle.dim), dtype=np.float32)
        pitch = features[:, : self.layout.pitch_bins]
        mag = np.empty((len(frames), self.codec.n_bins), dtype=np.float32)
        return self._magnitudes_into(frames, features, pitch, ContrastFilter(pitch.shape), mag)

    def render(self, seconds: float, controls: Controls) -> np.ndarray:
        """As fast as possible: `seconds` of audio (N,) float32."""
        n_hops = int(np.ceil(seconds * self.samplerate / self.hop))
        out = np.empty(n_hops * self.hop, dtype=np.float32)
        for i in range(n_hops):
            out[i * self.hop : (i + 1) * self.hop] = self.next_hop(controls)
        return out[: int(seconds * self.samplerate)]


def play_together(players: list[Generator], blocks: list[np.ndarray]) -> list[np.ndarray]:
    """`Generator.play_frames` for several players that have not played yet, each its own block of normalised
    frames (N, dim), all of one length: each player's audio (N * hop,), the samples it would play on its own,
    with the phase stage's transforms done for all of them at once (offline only; calibration plays five renders
    through the output stage for every contrast it tries). The players' own phase stages are not used: each is
    spent after its one block."""
    if not players:
        return []
    first = players[0]
    stage = LookaheadPhase(first.codec, streams=len(players))
    magnitudes = [
        p.magnitudes_many(np.asarray(b, dtype=np.float32)) * p.output_gain for p, b in zip(players, blocks, strict=True)
    ]
    spectra = stage.process_many(np.stack(magnitudes, axis=1))  # (N, players, n_bins)
    return [p._play_spectra(spectra[:, i]) for i, p in enumerate(players)]
