"""What the producer plays: a `Voice` is one model (its generator, its parameter table, the controls as played and
its resampler to the output rate); a `Crossfade` takes the engine from one voice to another at equal power. A set
list holds a voice per model; the engine plays one, or two while it crossfades.
"""

from __future__ import annotations

import math

import numpy as np

from liveshtr.live.generator import Controls, Generator
from liveshtr.live.params import Params
from liveshtr.live.safety import KNEE, RELEASE_S
from liveshtr.sound.resample import make_resampler

SMOOTH_S = 0.03  # time constant of the producer's smoothing of temperature, latent offsets, target and mix
RECOVER_S = 0.05  # how fast a crossfade's limiter lets go once the fade is over (a switch asked for waits for it)


class Voice:
    """One model as the producer plays it: its generator and parameter table, the controls as played (smoothed
    towards the table's snapshot) and its resampler to the output rate. A set list holds one per model; the engine
    plays one, or two while it crossfades."""

    def __init__(self, generator: Generator, params: Params, samplerate: int):
        self.generator = generator
        self.params = params
        self.model_rate = generator.samplerate
        self.samplerate = samplerate
        hop = generator.hop
        # Steady output with a ~2 ms delay for integer ratios (24 -> 48 kHz); soxr, under 1 ms, for most others.
        self.resampler = make_resampler(self.model_rate, samplerate, probe_hop=hop)
        self.ceiling = generator.safety.ceiling
        self.controls = Controls.for_bundle(generator.bundle)
        self._smooth = 1.0 - math.exp(-hop / (SMOOTH_S * self.model_rate))
        self._slots = params.slots
        self._snap: np.ndarray | None = None
        self._counters: tuple[float, float, float] | None = None
        self._settled = False
        self.overs = 0  # resampled hops with an inter-sample peak over the ceiling (clipped to it)
        self._held = np.zeros(0, dtype=np.float32)  # made and not yet taken, while it fades out
        self.initial = params.snapshot  # the controls it was made with (a recording's replay starts from them)
        self.sync(params.snapshot, smooth=False)

    def sync(self, snap: np.ndarray, smooth: bool = True) -> None:
        """Bring the generator in line with a snapshot: actions once, continuous controls smoothed per hop.

        Cheap when nothing moves: a new snapshot is looked at once, and smoothing stops when it has arrived."""
        s, g = self._slots, self.generator
        if snap is not self._snap:
            self._snap = snap
            self._settled = False
            self._targets = (
                float(snap[s["temperature"]][0]),
                float(snap[s["mix"]][0]),
                snap[s["latent"]].astype(np.float32),
                snap[s["target"]].astype(np.float32),
            )
            self.controls.drift = float(snap[s["drift"]][0])
            if "tempo" in s:
                self.controls.tempo = float(snap[s["tempo"]][0])
            counters = (float(snap[s["prime"]][0]), float(snap[s["reset"]][0]), float(snap[s["panic"]][0]))
            if counters != self._counters:
                if self._counters is not None or counters[0] != g.position:
                    g.prime(counters[0])  # a new position, a reset or a panic: restart from the song there
                self._counters = counters
            g.set_freeze(snap[s["freeze"]][0] >= 0.5)
        if self._settled:
            return
        c = self.controls
        temperature, mix, offset, target = self._targets
        a = self._smooth if smooth else 1.0
        c.temperature += a * (temperature - c.temperature)
        c.latent_mix += a * (mix - c.latent_mix)
        c.latent_offset += a * (offset - c.latent_offset)
        c.z_user += a * (target - c.z_user)
        gap = max(abs(temperature - c.temperature), abs(mix - c.latent_mix))
        gap = max(gap, float(np.abs(offset - c.latent_offset).max()), float(np.abs(target - c.z_user).max()))
        if gap < 1e-5:
            c.temperature, c.latent_mix = temperature, mix
            c.latent_offset[:] = offset
            c.z_user[:] = target
            self._settled = True

    def next(self, snap: np.ndarray) -> np.ndarray:
        """One hop at the output rate (a burst or nothing, from some resamplers), at the controls of `snap`."""
        self.sync(snap)
        hop = self.generator.next_hop(self.controls)
        if self.resampler is None:
            return hop
        out = self.resampler.process(hop)
        # Resampling can put a peak between the safe samples (up to ~2% over); hold the ceiling here too.
        if len(out) and (out.max() > self.ceiling or out.min() < -self.ceiling):
            self.overs += 1
            np.clip(out, -self.ceiling, self.ceiling, out=out)
        return out

    def take(self, n: int) -> np.ndarray:
        """Exactly `n` samples at the output rate (the voice that fades out), at the controls it last played with:
        the performer has moved on to the next model, and a replay fades it out the same way."""
        while len(self._held) < n:
            self._held = np.concatenate([self._held, self.next(self._snap)])
        out, self._held = self._held[:n], self._held[n:]
        return out

    def release(self) -> None:
        """It has faded out: what it held back is not played."""
        self._held = self._held[:0]


class Crossfade:
    """Equal power from the voice going out to the voice coming in over `samples`: the cosine and sine of a quarter
    turn, so two unrelated sounds keep their loudness through it. The sum of two safe signals can pass the ceiling
    by up to 3 dB where both are loud: a limiter like the safety stage's (down at once, released over RELEASE_S),
    ramped across each hop, and a clip at the ceiling hold it; once the fade is over it lets go within RECOVER_S."""

    def __init__(self, outgoing: Voice, samples: int, ceiling: float):
        self.outgoing = outgoing
        self.samples = max(1, samples)
        self.done = 0
        self.ceiling = ceiling
        self.gain = 1.0
        self.release = math.exp(-1.0 / (RELEASE_S * outgoing.samplerate))  # per sample
        self.recover = math.exp(-1.0 / (RECOVER_S * outgoing.samplerate))  # after the fade: soon free for the next

    def mix(self, incoming: np.ndarray) -> np.ndarray:
        n = len(incoming)
        mixing = self.done < self.samples
        if mixing:
            angle = (np.pi / 2) * np.minimum((self.done + np.arange(1, n + 1)) / self.samples, 1.0)
            out = (np.cos(angle) * self.outgoing.take(n) + np.sin(angle) * incoming).astype(np.float32)
        else:  # faded: the incoming voice is safe on its own, only the limiter's recovery is left
            out = incoming.copy()
        self.done += n
        peak = float(np.abs(out).max()) if n and mixing else 0.0
        target = min(1.0, KNEE * self.ceiling / peak) if peak > 0 else 1.0
        gain = (
            target
            if target < self.gain
            else target + (self.gain - target) * (self.release if mixing else self.recover) ** n
        )
        if gain != 1.0 or self.gain != 1.0:
            out *= np.linspace(self.gain, gain, n, dtype=np.float32)
        self.gain = gain
        np.clip(out, -self.ceiling, self.ceiling, out=out)
        return out

    @property
    def finished(self) -> bool:
        return self.done >= self.samples and self.gain > 0.999
