"""The OSC address space, as plain logic over the parameter table: (address, arguments) in, replies out.

No sockets here, so every rule is tested directly; the OSC server only moves datagrams in and replies out.

    /liveshtr/<control> v          a scalar control (gain, temperature, mix, drift, prime, freeze)
    /liveshtr/<vector> v v ...     a whole vector (latent, target), or one value for every dimension
    /liveshtr/<vector>/<i> v       one dimension (TouchDesigner's OSC Out CHOP: one value per named channel)
    /liveshtr/<action>             reset, panic (any arguments are ignored)
    /liveshtr/get [control]        replies /liveshtr/<control> with the current value(s), for one or all
    /liveshtr/list                 replies /liveshtr/param name min max default size action doc, per control

Numbers may arrive as ints or floats (Max sends `i` for integers, Pd `f` for everything). A value outside its
range is clamped and the reply `/liveshtr/clamped address applied` says so. Anything that cannot be applied gets
`/liveshtr/error address problem`, and nothing is changed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from liveshtr.params import ParamError, Params

PREFIX = "/liveshtr"


class Reply(NamedTuple):
    address: str
    args: tuple


def error(address: str, problem: str) -> Reply:
    return Reply(f"{PREFIX}/error", (address, problem))


class OscProtocol:
    def __init__(self, params: Params):
        self.params = params
        self.errors = 0  # malformed messages answered with an error

    def handle(self, address: str, args: tuple | list) -> list[Reply]:
        replies = self._handle(address, tuple(args))
        self.errors += sum(r.address == f"{PREFIX}/error" for r in replies)
        return replies

    def _handle(self, address: str, args: tuple) -> list[Reply]:
        if not address.startswith(PREFIX + "/"):
            return [error(address, f"not under {PREFIX}/")]
        parts = address[len(PREFIX) + 1 :].split("/")
        name = parts[0]
        if name == "list" and len(parts) == 1:
            return [self._describe(p) for p in self.params.describe()]
        if name == "get" and len(parts) == 1:
            return self._get(address, args)
        param = self.params.table.get(name)
        if param is None or len(parts) > 2:
            return [error(address, "unknown address; /liveshtr/list names the controls")]
        if param.action:
            if len(parts) != 1:
                return [error(address, f"{name} is an action and takes no index")]
            self.params.set(name)
            return []
        index = None
        if len(parts) == 2:
            if param.size == 1 or not parts[1].isdigit():
                return [error(address, f"{name} has no dimension {parts[1]!r}")]
            index = int(parts[1])
            if index >= param.size:
                return [error(address, f"{name} has dimensions 0..{param.size - 1}")]
        numbers = []
        for value in args:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return [error(address, f"expected numbers, got {type(value).__name__} {value!r}")]
            if not math.isfinite(value):
                return [error(address, f"{value} is not a finite number")]
            numbers.append(float(value))
        expected = 1 if param.size == 1 or index is not None else param.size
        if len(numbers) not in ((1, expected) if expected > 1 else (1,)):
            want = "one value" if expected == 1 else f"{expected} values (or one for all)"
            return [error(address, f"expected {want}, got {len(numbers)}")]
        given = numbers if len(numbers) > 1 else numbers[0]
        try:
            applied = self.params.set(name, given, index)
        except ParamError as exc:
            return [error(address, str(exc))]
        applied = applied if isinstance(applied, list) else [applied]
        if applied != (numbers if len(numbers) == len(applied) else numbers * len(applied)):
            return [Reply(f"{PREFIX}/clamped", (address, *applied))]
        return []

    def _get(self, address: str, args: tuple) -> list[Reply]:
        if len(args) > 1 or (args and not isinstance(args[0], str)):
            return [error(address, "expected no argument or one control name")]
        names = [args[0]] if args else list(self.params.table)
        replies = []
        for name in names:
            param = self.params.table.get(name)
            if param is None:
                return [error(address, f"unknown control {name!r}")]
            value = self.params.get(name)
            values = (value,) if param.size == 1 else tuple(float(v) for v in value)
            replies.append(Reply(f"{PREFIX}/{name}", values))
        return replies

    @staticmethod
    def _describe(p: dict) -> Reply:
        high = p["max"] if math.isfinite(p["max"]) else -1.0  # actions count presses; OSC has no inf everywhere
        return Reply(
            f"{PREFIX}/param",
            (p["name"], float(p["min"]), float(high), float(p["default"]), p["size"], int(p["action"]), p["doc"]),
        )
