"""The last stage before the ring buffer: nothing non-finite, no DC, and no sample ever above the ceiling.

A one-pole DC blocker (20 Hz), then a limiter that works per hop: the gain drops at once to what the hop's peak
needs and recovers with a release time constant, ramped sample by sample so a gain change never clicks; a soft
knee after it bends anything the ramp lets through below the ceiling, so the ceiling holds for every sample.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

CEILING_DB = -1.0  # no sample leaves above this level
KNEE = 0.9  # the soft knee starts at this fraction of the ceiling
RELEASE_S = 0.25  # time constant of the gain's recovery after a loud passage
DC_HZ = 20.0


class SafetyStage:
    def __init__(self, samplerate: int, hop: int, ceiling_db: float = CEILING_DB):
        self.ceiling = float(np.float32(10 ** (ceiling_db / 20)))  # exactly representable in the output
        self.knee = KNEE * self.ceiling
        self.gain = 1.0
        self.release = math.exp(-hop / (RELEASE_S * samplerate))  # per hop
        r = math.exp(-2 * math.pi * DC_HZ / samplerate)
        self._b, self._a = np.array([1.0, -1.0]), np.array([1.0, -r])
        self._zi = np.zeros(1)
        self._ramp = np.linspace(0.0, 1.0, hop, endpoint=False, dtype=np.float32) + 1.0 / hop  # (hop,) ends at 1
        self._gains = np.empty(hop, dtype=np.float32)
        self._out = np.empty(hop, dtype=np.float32)
        self.limited_hops = 0  # hops where the limiter pulled the gain down

    def reset(self) -> None:
        self._zi[:] = 0.0
        self.gain = 1.0

    def process(self, x: np.ndarray) -> np.ndarray:
        """One hop (hop,) -> the safe hop (hop,), reused between calls: copy it out."""
        y, self._zi = lfilter(self._b, self._a, x, zi=self._zi)
        peak = float(np.max(np.abs(y)))
        target = min(1.0, self.knee / peak) if peak > 0 else 1.0
        new_gain = target if target < self.gain else target + (self.gain - target) * self.release
        if target < 1.0:
            self.limited_hops += 1
        # Ramp from the old gain to the new one across the hop.
        np.multiply(self._ramp, new_gain - self.gain, out=self._gains)
        self._gains += self.gain
        self.gain = new_gain
        out = self._out
        np.multiply(y, self._gains, out=out)
        over = np.abs(out) > self.knee
        if over.any():  # soft knee: knee + (ceiling - knee) * tanh(excess / (ceiling - knee)) < ceiling
            span = self.ceiling - self.knee
            mag = self.knee + span * np.tanh((np.abs(out[over]) - self.knee) / span)
            out[over] = np.sign(out[over]) * mag
        np.clip(out, -self.ceiling, self.ceiling, out=out)  # tanh rounds to 1.0 in float32 for large excess
        return out
