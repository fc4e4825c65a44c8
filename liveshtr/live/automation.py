"""Timed control changes from a JSON-lines file, so a set can be automated offline (render) or live (serve).

One object per line: {"time": seconds, "name": control, "value": number or list, "index": optional int}.
Actions need no value: {"time": 12.5, "name": "reset"}. Blank lines and lines starting with # are skipped.
Times count from the start of the output; events apply at the first hop that starts at or after their time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from liveshtr.errors import LiveshtrError
from liveshtr.live.params import ParamError, Params


@dataclass(frozen=True)
class Event:
    time: float
    name: str
    value: object = 1.0
    index: int | None = None


class Schedule:
    """Events in time order; `due(t)` hands out those whose time has come, each once."""

    def __init__(self, events: list[Event]):
        self.events = sorted(events, key=lambda e: e.time)  # stable: same-time events keep file order
        self._next = 0

    def due(self, now: float) -> list[Event]:
        start = self._next
        while self._next < len(self.events) and self.events[self._next].time <= now:
            self._next += 1
        return self.events[start : self._next]

    def apply_due(self, now: float, params: Params) -> None:
        for event in self.due(now):
            params.set(event.name, event.value, event.index)


def load_schedule(path: str | Path, params: Params) -> Schedule:
    """Parse and check every line against the parameter table up front: a bad line fails before any sound."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LiveshtrError(f"--controls {path}: cannot read it ({exc.__class__.__name__})") from None
    # Every line is checked on a table of its own, of the same controls (a model with a clock has a tempo).
    tempo = params.table["tempo"].default if "tempo" in params.table else None
    scratch = Params(params.table["latent"].size, tempo=tempo)
    events = []
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        where = f"--controls {path}:{number}"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise LiveshtrError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(obj, dict) or "time" not in obj or "name" not in obj:
            raise LiveshtrError(f'{where}: expected {{"time": seconds, "name": control, "value": ...}}')
        when = obj["time"]
        if isinstance(when, bool) or not isinstance(when, (int, float)) or not math.isfinite(when) or when < 0:
            raise LiveshtrError(f"{where}: time must be a number of seconds >= 0, got {when!r}")
        event = Event(float(when), str(obj["name"]), obj.get("value", 1.0), obj.get("index"))
        try:
            scratch.set(event.name, event.value, event.index)
        except ParamError as exc:
            raise LiveshtrError(f"{where}: {exc}") from None
        events.append(event)
    return Schedule(events)
