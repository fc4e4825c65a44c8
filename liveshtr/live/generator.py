"""Generation: prime from the song, then step the model on its own output, one frame and one hop at a time.

Each step plays the current frame and predicts the next: first the prime's real frames from the song (fed to the
model with teacher forcing, so its state knows where it is), then the model's own predictions. The same code
renders the preview, `liveshtr render` and the live engine's producer, so they all sound the same for the same
seed and controls.
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

# Per-step AR(1) coefficient of the latent noise (time constant ~50 frames, ~0.5 s at the default hop). Fresh noise
# every frame averages out within a second and the render turns into stationary noise; slowly wandering noise
# keeps each step's z distributed as trained while the sound moves from second to second.
DRIFT = 0.9
DEFAULT_PRIME = 0.5  # start from the middle of the song: intros and outros are often sparse or silent
RUNAWAY = 1e3  # a normalised coefficient this large means the loop has diverged: re-prime


@dataclass
class Controls:
    """What the performer steers; latent values are in units of each dimension's spread (+-3 covers the song)."""

    latent_dim: int
    temperature: float = 1.0  # 0: no sampling (GRUV-like); 1: as trained; higher: wilder
    latent_mix: float = 0.0  # 0: the model's own z; 1: the performer's z_user
    latent_offset: np.ndarray = field(default=None)  # (L,) added to the model's z
    z_user: np.ndarray = field(default=None)  # (L,) the performer's own point in latent space
    drift: float = DRIFT  # 0: fresh latent noise every frame; towards 1: the sampled z wanders more slowly

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
        self._denorm = np.zeros(bundle.dim, dtype=np.float32)  # the denormalised frame being played
        # Denormalisation and the bundle's output calibration folded into one multiply-add per coefficient.
        self._out_scale = (bundle.stats.std * bundle.output_gain).astype(np.float32)
        self._out_offset = (bundle.stats.mean * bundle.output_gain).astype(np.float32)
        self._previous = np.zeros(bundle.dim, dtype=np.float32)  # the denormalised frame played one hop ago
        self._freeze = SpectralFreeze(self.codec)
        self.frozen = False
        self._eps = self.model.feeds["eps"][0]  # the wandering latent noise, written where the model reads it
        self._fresh = np.empty(bundle.latent_dim, dtype=np.float32)
        self._prime: np.ndarray = bundle.primes[0]
        self._prime_left = 0
        self.prime(DEFAULT_PRIME)
        self.synth.reset()
        self.safety.reset()

    @property
    def hop(self) -> int:
        return self.codec.hop

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
        self.rng.standard_normal(dtype=np.float32, out=self._eps)
        self.model.reset_state()
        self.frozen = False

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
        self._eps *= rho
        self._eps += self._fresh
        feeds["temperature"][0] = controls.temperature
        feeds["latent_mix"][0] = controls.latent_mix
        feeds["latent_offset"][0] = controls.latent_offset
        feeds["z_user"][0] = controls.z_user
        self._played[:] = frame
        predicted = self.model.step()["next_frame"][0]
        if not (-RUNAWAY < float(predicted.min()) and float(predicted.max()) < RUNAWAY):  # NaN fails both
            self.resets += 1
            self.prime(self._position)  # fresh state; the song's own frames play from the next hop on
            self._played.fill(0.0)
            return self._played
        frame[:] = predicted
        return self._played

    def set_freeze(self, on: bool) -> None:
        """Hold the sound still (the model pauses where it is) or play on from where it paused."""
        if on and not self.frozen:
            self._freeze.start(self._previous, self._denorm)
        self.frozen = bool(on)

    def next_hop(self, controls: Controls) -> np.ndarray:
        """One hop of audio (hop,) at the model's rate. The array is reused: copy it out."""
        self._previous, self._denorm = self._denorm, self._previous  # keep last hop's frame for a freeze
        if self.frozen:
            self._denorm[:] = self._freeze.next()
        else:
            frame = self.next_frame(controls)
            np.multiply(frame, self._out_scale, out=self._denorm)
            np.add(self._denorm, self._out_offset, out=self._denorm)
        return self.safety.process(self.synth.process(self._denorm))

    def render(self, seconds: float, controls: Controls) -> np.ndarray:
        """As fast as possible: `seconds` of audio (N,) float32."""
        n_hops = int(np.ceil(seconds * self.samplerate / self.hop))
        out = np.empty(n_hops * self.hop, dtype=np.float32)
        for i in range(n_hops):
            out[i * self.hop : (i + 1) * self.hop] = self.next_hop(controls)
        return out[: int(seconds * self.samplerate)]
