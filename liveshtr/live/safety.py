"""The last stage before the ring buffer: nothing non-finite, no DC, and no sample ever above the ceiling.

A DC blocker, then a limiter that works per hop: the gain drops at once to what the hop's peak needs and recovers
with a release time constant, ramped sample by sample so a gain change never clicks; a soft knee after it bends
anything the ramp lets through below the ceiling, so the ceiling holds for every sample.

The DC blocker tracks the signal's mean with a one-pole filter updated once per hop (corner DC_HZ) and subtracts
it as a ramp across the hop, so it costs a mean and a multiply-add instead of a per-sample recursion. A hop whose
mean is not finite (NaN or inf anywhere in it) is muted and the stage starts afresh.
"""

from __future__ import annotations

import math

import numpy as np

CEILING_DB = -1.0  # no sample leaves above this level
KNEE = 0.9  # the soft knee starts at this fraction of the ceiling
RELEASE_S = 0.25  # time constant of the gain's recovery after a loud passage
DC_HZ = 5.0  # corner of the DC blocker: offsets go within ~100 ms, bass is untouched


class SafetyStage:
    def __init__(self, samplerate: int, hop: int, ceiling_db: float = CEILING_DB):
        self.ceiling = float(np.float32(10 ** (ceiling_db / 20)))  # exactly representable in the output
        self.knee = KNEE * self.ceiling
        self.release = math.exp(-hop / (RELEASE_S * samplerate))  # per hop
        self.dc_rate = 1.0 - math.exp(-2 * math.pi * DC_HZ * hop / samplerate)  # per hop
        self._ramp = np.arange(1, hop + 1, dtype=np.float32) / np.float32(hop)  # (hop,) ends at 1
        self._gains = np.empty(hop, dtype=np.float32)
        self._out = np.empty(hop, dtype=np.float32)
        self.gain, self.dc = 1.0, 0.0
        self.limited_hops = 0  # hops where the limiter pulled the gain down
        self.non_finite_hops = 0  # hops that arrived with NaN or inf (muted, state cleared)

    def reset(self) -> None:
        self.gain, self.dc = 1.0, 0.0

    def _ramp_from(self, start: float, end: float) -> np.ndarray:
        """start -> end across the hop, in the reused gains buffer."""
        np.multiply(self._ramp, end - start, out=self._gains)
        self._gains += start
        return self._gains

    def process(self, x: np.ndarray) -> np.ndarray:
        """One hop (hop,) -> the safe hop (hop,), reused between calls: copy it out."""
        out = self._out
        mean = float(x.mean())
        if not math.isfinite(mean):  # the generator re-primes before this can happen; never pass it on
            self.non_finite_hops += 1
            self.reset()
            out.fill(0.0)
            return out
        dc = self.dc + self.dc_rate * (mean - self.dc)
        np.subtract(x, self._ramp_from(self.dc, dc), out=out)
        self.dc = dc
        peak = max(float(out.max()), -float(out.min()))
        target = min(1.0, self.knee / peak) if peak > 0 else 1.0
        new_gain = target if target < self.gain else target + (self.gain - target) * self.release
        if target < 1.0:
            self.limited_hops += 1
        loudest = peak * max(self.gain, new_gain)
        if self.gain != 1.0 or new_gain != 1.0:
            out *= self._ramp_from(self.gain, new_gain)
        self.gain = new_gain
        if loudest > self.knee:  # soft knee: knee + (ceiling - knee) * tanh(excess / (ceiling - knee)) < ceiling
            over = np.abs(out) > self.knee
            span = self.ceiling - self.knee
            mag = self.knee + span * np.tanh((np.abs(out[over]) - self.knee) / span)
            out[over] = np.sign(out[over]) * mag
            np.clip(out, -self.ceiling, self.ceiling, out=out)  # tanh rounds to 1.0 in float32 for large excess
        return out
