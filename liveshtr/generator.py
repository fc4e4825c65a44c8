"""Generation: prime from the song, then step the model on its own output, one frame and one hop at a time.

Each step plays the current frame and predicts the next: first the prime's real frames from the song (fed to the
model with teacher forcing, so its state knows where it is), then the model's own predictions. The same code
renders the preview, `liveshtr render` and the live engine's producer, so they all sound the same for the same
seed and controls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from liveshtr.bundle import Bundle
from liveshtr.frames import FrameCodec
from liveshtr.runtime import StepModel
from liveshtr.safety import SafetyStage

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
        self._current = np.zeros(bundle.dim, dtype=np.float32)  # normalised frame to play next
        self._denorm = np.empty(bundle.dim, dtype=np.float32)
        # Denormalisation and the bundle's output calibration folded into one multiply-add per coefficient.
        self._out_scale = (bundle.stats.std * bundle.output_gain).astype(np.float32)
        self._out_offset = (bundle.stats.mean * bundle.output_gain).astype(np.float32)
        self._eps = np.zeros(bundle.latent_dim, dtype=np.float32)  # the wandering latent noise
        self._fresh = np.empty(bundle.latent_dim, dtype=np.float32)
        self._prime: np.ndarray = bundle.primes[0]
        self._prime_left = 0
        self.prime(DEFAULT_PRIME)

    @property
    def hop(self) -> int:
        return self.codec.hop

    @property
    def samplerate(self) -> int:
        return self.bundle.audio.samplerate

    def prime(self, position: float) -> None:
        """Restart from the prime nearest `position` (0..1 through the song): fresh state, the song's frames first."""
        self._position = float(np.clip(position, 0.0, 1.0))
        index = int(np.argmin(np.abs(self.bundle.prime_positions - self._position)))
        self._prime = self.bundle.primes[index]
        self._prime_left = len(self._prime)
        self._eps[:] = self.rng.standard_normal(self.bundle.latent_dim, dtype=np.float32)
        self._current[:] = self._prime[0]
        self.model.reset_state()
        self.synth.reset()
        self.safety.reset()

    def next_frame(self, controls: Controls) -> np.ndarray:
        """Step once: returns the normalised frame to play now (dim,) and prepares the next one."""
        feeds = self.model.feeds
        if self._prime_left:
            self._current[:] = self._prime[len(self._prime) - self._prime_left]
            self._prime_left -= 1
        feeds["frame"][0] = self._current
        # AR(1) noise of unit variance: eps <- rho * eps + sqrt(1 - rho^2) * fresh
        rho = min(max(controls.drift, 0.0), 0.999)
        self.rng.standard_normal(dtype=np.float32, out=self._fresh)
        self._eps *= rho
        self._eps += np.sqrt(1.0 - rho * rho) * self._fresh
        feeds["eps"][0] = self._eps
        feeds["temperature"][0] = controls.temperature
        feeds["latent_mix"][0] = controls.latent_mix
        feeds["latent_offset"][0] = controls.latent_offset
        feeds["z_user"][0] = controls.z_user
        played = self._current.copy()
        predicted = self.model.step()["next_frame"][0]
        if not (np.isfinite(predicted).all() and np.abs(predicted).max() < RUNAWAY):
            self.resets += 1
            self.prime(self._position)  # fresh state; the song's own frames play from the next hop on
            played[:] = 0.0
            return played
        self._current[:] = predicted
        return played

    def next_hop(self, controls: Controls) -> np.ndarray:
        """One hop of audio (hop,) at the model's rate. The array is reused: copy it out."""
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
