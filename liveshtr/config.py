"""Typed settings for the signal path: how songs are read and how they are cut into frames.

These two dataclasses travel inside every model bundle, so the engine rebuilds exactly the frames the model
was trained on. Defaults are chosen to sound good and to run live on a laptop CPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from liveshtr.errors import ConfigError

DOMAINS = ("dct", "fft")


@dataclass(frozen=True)
class AudioConfig:
    """How a song file becomes the mono signal the model learns from."""

    samplerate: int = 24000  # model rate: 12 kHz of bandwidth, and an exact half of 48 kHz sound cards
    highpass_hz: float = 0.0  # 0 disables; SONGSHTR found songs high-passed above ~500 Hz gave livelier results
    peak_db: float = -1.0  # every file is peak-normalised to this level (files may decode above 1.0)

    def __post_init__(self) -> None:
        if not 4000 <= self.samplerate <= 192000:
            raise ConfigError(f"samplerate {self.samplerate} Hz is outside 4000..192000 Hz")
        if self.highpass_hz < 0 or self.highpass_hz >= self.samplerate / 2:
            raise ConfigError(
                f"highpass {self.highpass_hz:g} Hz must be 0 (off) or below the Nyquist frequency "
                f"({self.samplerate / 2:g} Hz)"
            )
        if not -60.0 <= self.peak_db <= 0.0:
            raise ConfigError(f"peak level {self.peak_db:g} dBFS must lie in -60..0 dBFS")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class FrameConfig:
    """How the signal is cut into windowed frames and moved into the DCT or FFT domain."""

    domain: str = "dct"  # "dct": orthonormal DCT-II, real; "fft": rfft with real and imaginary parts side by side
    frame: int = 1024  # samples per frame (43 ms at 24 kHz): enough frequency detail for pitch
    hop: int = 256  # samples between frames (10.7 ms at 24 kHz): the step of the model and of control latency
    max_hz: float = 0.0  # keep only coefficients below this frequency to shrink the model; 0 keeps all

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ConfigError(f"domain {self.domain!r} is not one of {', '.join(DOMAINS)}")
        if not 16 <= self.frame <= 65536:
            raise ConfigError(f"frame {self.frame} must lie in 16..65536 samples")
        if self.hop < 1:
            raise ConfigError(f"hop {self.hop} must be at least 1 sample")
        if self.hop >= self.frame:
            raise ConfigError(
                f"hop {self.hop} must be shorter than frame {self.frame}: frames must overlap for overlap-add"
            )
        if self.max_hz < 0:
            raise ConfigError(f"max-hz {self.max_hz:g} must be 0 (keep all) or positive")

    def n_bins(self, samplerate: int) -> int:
        """Number of frequency bins kept: all of them, or those strictly below `max_hz`."""
        total = self.frame if self.domain == "dct" else self.frame // 2 + 1
        if self.max_hz <= 0:
            return total
        # DCT-II bin k sits at k * sr / (2 * frame); rfft bin k at k * sr / frame.
        bin_hz = samplerate / (2 * self.frame) if self.domain == "dct" else samplerate / self.frame
        return max(1, min(total, math.ceil(self.max_hz / bin_hz)))

    def dim(self, samplerate: int) -> int:
        """Length of one coefficient vector: the model's input and output size."""
        n = self.n_bins(samplerate)
        return n if self.domain == "dct" else 2 * n

    def to_dict(self) -> dict:
        return asdict(self)
