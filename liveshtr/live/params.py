"""The parameter table: every control a performer (or an automation file) can set, in one place.

Control threads (OSC, WebSocket, the automation schedule) call `Params.set`, which checks the value, clamps it to
the control's range and publishes a whole new snapshot by swapping one reference. The producer reads `snapshot`
once per hop and the audio callback reads the gain from it once per block: a reference read is atomic, so neither
ever sees half an update or waits on the writers' lock. Actions (reset, panic) are counters in the snapshot; the
producer acts when a counter moves.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from liveshtr.errors import LiveshtrError

LATENT_RANGE = 4.0  # latent controls are in spread units: +-3 covers the song, +-4 goes a little beyond
TEMPO_RANGE = (20.0, 300.0)  # beats a minute of the clock


class ParamError(LiveshtrError):
    """A control message that cannot be applied (unknown name, wrong index, not a finite number)."""


@dataclass(frozen=True)
class Param:
    name: str
    default: float
    low: float
    high: float
    doc: str
    size: int = 1  # > 1: a vector with one value per latent dimension
    action: bool = False  # a trigger: setting it (any value) counts one press


def param_table(latent_dim: int, tempo: float | None = None) -> tuple[Param, ...]:
    """The controls of a model with `latent_dim` latent dimensions; `tempo` (the song's, in beats a minute) adds
    the clock's tempo for a model that has a clock input."""
    L = latent_dim
    clock = ()
    if tempo is not None:
        default = round(min(max(float(tempo), TEMPO_RANGE[0]), TEMPO_RANGE[1]), 2)
        clock = (Param("tempo", default, *TEMPO_RANGE, "beats a minute of the model's clock (default: the song's)"),)
    return (
        Param("gain", 1.0, 0.0, 1.0, "output level, linear; ramped in the audio callback, never above 1"),
        Param("temperature", 1.0, 0.0, 4.0, "how freely it improvises: 0 calmest, 1 its song's events, above 1 wilder"),
        Param("latent", 0.0, -LATENT_RANGE, LATENT_RANGE, "added to each latent dimension, in spread units", L),
        Param("target", 0.0, -LATENT_RANGE, LATENT_RANGE, "the performer's point in latent space (spread units)", L),
        Param("mix", 0.0, 0.0, 1.0, "0: the model's own latent, 1: the target point"),
        Param("drift", 0.0, 0.0, 0.999, "how slowly the sampled latent wanders (per hop, AR(1); 0: fresh each hop)"),
        *clock,
        Param("prime", 0.5, 0.0, 1.0, "where in the song to restart from (0..1); setting it restarts there"),
        Param("freeze", 0.0, 0.0, 1.0, "1: hold the sound still (spectral freeze), 0: play on"),
        Param("reset", 0.0, 0.0, math.inf, "restart from the song at the prime position", action=True),
        Param(
            "panic", 0.0, 0.0, math.inf, "fade to silence (gain 0) and restart; raise gain to play again", action=True
        ),
    )


class Params:
    def __init__(
        self,
        latent_dim: int,
        tempo: float | None = None,
        **initial: float | list[float],
    ):
        self.table = {p.name: p for p in param_table(latent_dim, tempo)}
        self.slots: dict[str, slice] = {}
        start = 0
        for p in self.table.values():
            self.slots[p.name] = slice(start, start + p.size)
            start += p.size
        values = np.zeros(start, dtype=np.float64)
        for p in self.table.values():
            values[self.slots[p.name]] = p.default
        values.flags.writeable = False
        self.snapshot = values  # replaced whole, never written in place
        self._lock = threading.Lock()  # between writers only
        for name, value in initial.items():
            self.set(name, value)

    @classmethod
    def for_bundle(cls, bundle, **initial: float | list[float]) -> Params:
        """The table of a model bundle: its latent size, its clock's tempo, its defaults."""
        return cls(bundle.latent_dim, bundle.tempo, **initial)

    def index(self, name: str) -> int:
        """Position of a scalar control in `snapshot` (the callback reads the gain by index)."""
        return self.slots[name].start

    def get(self, name: str) -> float | np.ndarray:
        self._check_name(name)
        value = self.snapshot[self.slots[name]]
        return float(value[0]) if self.table[name].size == 1 else value.copy()

    def set(self, name: str, value=1.0, index: int | None = None) -> float | list[float]:
        """Apply one control; returns the value as applied (clamped). Raises ParamError for what cannot be."""
        param = self._check_name(name)
        if param.action:
            with self._lock:
                values = self.snapshot.copy()
                values[self.slots[name]] += 1
                if name == "panic":
                    values[self.slots["gain"]] = 0.0
                self._publish(values)
            return float(values[self.slots[name]][0])
        if param.size == 1 and index is not None:
            raise ParamError(f"{name}: takes no index (it is a single value)")
        if param.size > 1 and index is None:
            numbers = _whole(param, value)
        else:
            numbers = np.asarray(_numbers(name, value), dtype=np.float64).reshape(-1)
            if numbers.size != 1:
                raise ParamError(f"{name}: expected one number, got {numbers.size}")
        clamped = np.clip(numbers, param.low, param.high)
        with self._lock:
            values = self.snapshot.copy()
            slot = self.slots[name]
            if param.size > 1 and index is not None:
                if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or not 0 <= index < param.size:
                    raise ParamError(f"{name}: index {index!r} out of range 0..{param.size - 1}")
                values[slot.start + int(index)] = clamped[0]
            else:
                values[slot] = clamped
            self._publish(values)
        return float(clamped[0]) if clamped.size == 1 else clamped.tolist()

    def set_many(self, values: dict[str, float | list[float]]) -> None:
        """Apply several controls at once, in one snapshot (a scene's step): all or, on any ParamError, none."""
        with self._lock:
            snapshot = self.snapshot.copy()
            for name, value in values.items():
                param = self._check_name(name)
                if param.action:
                    raise ParamError(f"{name}: an action cannot be set with others")
                snapshot[self.slots[name]] = np.clip(_whole(param, value), param.low, param.high)
            self._publish(snapshot)

    def values(self, snapshot: np.ndarray | None = None, names=None) -> dict[str, float | list[float]]:
        """Plain values by name (vectors as lists, action counters as counts), for replies and broadcasts."""
        snap = self.snapshot if snapshot is None else snapshot
        out = {}
        for name in self.table if names is None else names:
            value = snap[self.slots[name]]
            out[name] = float(value[0]) if self.table[name].size == 1 else value.tolist()
        return out

    def changed(self, old: np.ndarray, new: np.ndarray) -> dict[str, float | list[float]]:
        """What differs between two snapshots, by name (a vector whole)."""
        if old is new:
            return {}
        names = [n for n, slot in self.slots.items() if not np.array_equal(old[slot], new[slot])]
        return self.values(new, names)

    def describe(self) -> list[dict]:
        """The table as plain data (for help texts and control surfaces)."""
        return [
            {
                "name": p.name,
                "default": p.default,
                "min": p.low,
                "max": p.high,
                "size": p.size,
                "action": p.action,
                "doc": p.doc,
            }
            for p in self.table.values()
        ]

    def _publish(self, values: np.ndarray) -> None:
        values.flags.writeable = False
        self.snapshot = values

    def _check_name(self, name: str) -> Param:
        param = self.table.get(name)
        if param is None:
            raise ParamError(f"unknown control {name!r}; known: {', '.join(self.table)}")
        return param


def _whole(param: Param, value) -> np.ndarray:
    """Every value of a control: as many numbers as it has, or one for all of them."""
    numbers = np.asarray(_numbers(param.name, value), dtype=np.float64).reshape(-1)
    if numbers.size == 1:
        numbers = np.repeat(numbers, param.size)
    if numbers.size != param.size:
        raise ParamError(f"{param.name}: expected {param.size} values (or one for all), got {numbers.size}")
    return numbers


def _numbers(name: str, value) -> list[float]:
    try:
        numbers = [float(v) for v in (value if isinstance(value, (list, tuple, np.ndarray)) else [value])]
    except (TypeError, ValueError):
        raise ParamError(f"{name}: {value!r} is not a number") from None
    if not numbers or not all(math.isfinite(v) for v in numbers):
        raise ParamError(f"{name}: {value!r} is not a finite number")
    return numbers
