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


@dataclass
class Controls:
    """What the performer steers; latent values are in units of each dimension's spread (+-3 covers the song)."""

    latent_dim: int
    temperature: float = 1.0  # 0: no sampling (GRUV-like); 1: as trained; higher: wilder
    latent_mix: float = 0.0  # 0: the model's own z; 1: the performer's z_user
    latent_offset: np.ndarray = field(default=None)  # (L,) added to the model's z
    z_user: np.ndarray = field(default=None)  # (L,) the performer's own point in latent space

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
        self.rng = np.random.default_rng(seed)
        self._current = np.zeros(bundle.dim, dtype=np.float32)  # normalised frame to play next
        self._denorm = np.empty(bundle.dim, dtype=np.float32)
        self._prime: np.ndarray = bundle.primes[0]
        self._prime_left = 0
        self.prime(0.0)

    @property
    def hop(self) -> int:
        return self.codec.hop

    @property
    def samplerate(self) -> int:
        return self.bundle.audio.samplerate

    def prime(self, position: float) -> None:
        """Restart from the prime nearest `position` (0..1 through the song): fresh state, the song's frames first."""
        index = int(np.argmin(np.abs(self.bundle.prime_positions - np.clip(position, 0.0, 1.0))))
        self._prime = self.bundle.primes[index]
        self._prime_left = len(self._prime)
        self._current[:] = self._prime[0]
        self.model.reset_state()
        self.synth.reset()

    def next_frame(self, controls: Controls) -> np.ndarray:
        """Step once: returns the normalised frame to play now (dim,) and prepares the next one."""
        feeds = self.model.feeds
        if self._prime_left:
            self._current[:] = self._prime[len(self._prime) - self._prime_left]
            self._prime_left -= 1
        feeds["frame"][0] = self._current
        feeds["eps"][0] = self.rng.standard_normal(self.bundle.latent_dim, dtype=np.float32)
        feeds["temperature"][0] = controls.temperature
        feeds["latent_mix"][0] = controls.latent_mix
        feeds["latent_offset"][0] = controls.latent_offset
        feeds["z_user"][0] = controls.z_user
        played = self._current.copy()
        self._current[:] = self.model.step()["next_frame"][0]
        return played

    def next_hop(self, controls: Controls) -> np.ndarray:
        """One hop of audio (hop,) at the model's rate. The array is reused: copy it out."""
        frame = self.next_frame(controls)
        self.bundle.stats.denormalise(frame, out=self._denorm)
        return self.synth.process(self._denorm)

    def render(self, seconds: float, controls: Controls) -> np.ndarray:
        """As fast as possible: `seconds` of audio (N,) float32."""
        n_hops = int(np.ceil(seconds * self.samplerate / self.hop))
        out = np.empty(n_hops * self.hop, dtype=np.float32)
        for i in range(n_hops):
            out[i * self.hop : (i + 1) * self.hop] = self.next_hop(controls)
        return out[: int(seconds * self.samplerate)]
