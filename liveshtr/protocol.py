"""The OSC address space, as plain logic over the parameter table: (address, arguments) in, replies out.

No sockets here, so every rule is tested directly; the OSC server only moves datagrams in and replies out.

    /liveshtr/<control> v          a scalar control (gain, temperature, mix, drift, prime, freeze)
    /liveshtr/<vector> v v ...     a whole vector (latent, target), or one value for every dimension
    /liveshtr/<vector>/<i> v       one dimension (TouchDesigner's OSC Out CHOP: one value per named channel)
    /liveshtr/<action>             reset, panic (any arguments are ignored)
    /liveshtr/get [control]        replies /liveshtr/<control> with the current value(s), for one or all
    /liveshtr/list                 replies /liveshtr/param name min max default size action doc, per control
    /liveshtr/subscribe [port]     feedback to the sender's address (at `port`, or the port it sent from):
                                   every change by anyone as /liveshtr/<control> value(s), and telemetry as
                                   /liveshtr/telemetry played_s fill_ms underruns device_xruns resets step_us load
                                   peak_db rms_db errors; replies /liveshtr/subscribed port, then the whole state
    /liveshtr/unsubscribe [port]   stop it

Numbers may arrive as ints or floats (Max sends `i` for integers, Pd `f` for everything). A value outside its
range is clamped and the reply `/liveshtr/clamped address applied` says so. Anything that cannot be applied gets
`/liveshtr/error address problem`, and nothing is changed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from liveshtr.params import ParamError, Params

PREFIX = "/liveshtr"
MAX_SUBSCRIBERS = 16  # feedback is sent to the sender's own host only, and to this many ports at most
TELEMETRY_FIELDS = (
    "played_s",
    "fill_ms",
    "underruns",
    "device_xruns",
    "resets",
    "step_us",
    "load",
    "peak_db",
    "rms_db",
    "errors",
)


class Reply(NamedTuple):
    address: str
    args: tuple
    to: tuple[str, int] | None = None  # None: back to the sender


def error(address: str, problem: str) -> Reply:
    return Reply(f"{PREFIX}/error", (address, problem))


class OscProtocol:
    def __init__(self, params: Params):
        self.params = params
        self.errors = 0  # malformed messages answered with an error
        self.last_error = ""  # the latest of them, for the log
        self.subscribers: list[tuple[str, int]] = []  # (host, port) that get changes and telemetry

    def handle(self, address: str, args: tuple | list, sender: tuple[str, int] | None = None) -> list[Reply]:
        """Apply one message from `sender` (host, port); returns the replies for the sender."""
        replies = self._handle(address, tuple(args), sender)
        for r in replies:
            if r.address == f"{PREFIX}/error":
                self.errors += 1
                self.last_error = f"{r.args[0]}: {r.args[1]}"
        return replies

    def _handle(self, address: str, args: tuple, sender) -> list[Reply]:
        if not address.startswith(PREFIX + "/"):
            return [error(address, f"not under {PREFIX}/")]
        parts = address[len(PREFIX) + 1 :].split("/")
        name = parts[0]
        if name == "list" and len(parts) == 1:
            return [self._describe(p) for p in self.params.describe()]
        if name == "get" and len(parts) == 1:
            return self._get(address, args)
        if name in ("subscribe", "unsubscribe") and len(parts) == 1:
            return self._subscribe(address, args, sender, name == "subscribe")
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

    def _subscribe(self, address: str, args: tuple, sender, on: bool) -> list[Reply]:
        if sender is None:
            return [error(address, "no sender address to reply to")]
        if len(args) > 1 or (args and (isinstance(args[0], bool) or not isinstance(args[0], (int, float)))):
            return [error(address, "expected no argument or one port number")]
        port = sender[1]
        if args:  # Pd sends every number as a float
            if not math.isfinite(args[0]) or args[0] != int(args[0]) or not 1 <= args[0] <= 65535:
                return [error(address, f"port {args[0]!r} is not 1..65535")]
            port = int(args[0])
        peer = (sender[0], port)  # never another host: a spoofed subscribe cannot aim feedback elsewhere
        if not on:
            if peer in self.subscribers:
                self.subscribers.remove(peer)
            return [Reply(f"{PREFIX}/unsubscribed", (port,))]
        if peer not in self.subscribers:
            if len(self.subscribers) >= MAX_SUBSCRIBERS:
                return [error(address, f"already {MAX_SUBSCRIBERS} subscribers; unsubscribe one first")]
            self.subscribers.append(peer)
        state = [r._replace(to=peer) for r in self.state(self.params.values())]
        return [Reply(f"{PREFIX}/subscribed", (port,)), *state]

    def state(self, values: dict) -> list[Reply]:
        """Values by name as the messages a client also sends: /liveshtr/<control> value(s)."""
        return [
            Reply(f"{PREFIX}/{name}", tuple(value) if isinstance(value, list) else (value,))
            for name, value in values.items()
        ]

    @staticmethod
    def telemetry(t: dict) -> list[Reply]:
        """Telemetry as two messages: the numbers in TELEMETRY_FIELDS order, and the spectrum's band levels."""
        return [
            Reply(f"{PREFIX}/telemetry", tuple(float(t[f]) for f in TELEMETRY_FIELDS)),
            Reply(f"{PREFIX}/spectrum", tuple(t["spectrum"])),
        ]

    def _get(self, address: str, args: tuple) -> list[Reply]:
        if len(args) > 1 or (args and not isinstance(args[0], str)):
            return [error(address, "expected no argument or one control name")]
        if args and args[0] not in self.params.table:
            return [error(address, f"unknown control {args[0]!r}")]
        return self.state(self.params.values(names=args or None))

    @staticmethod
    def _describe(p: dict) -> Reply:
        high = p["max"] if math.isfinite(p["max"]) else -1.0  # actions count presses; OSC has no inf everywhere
        return Reply(
            f"{PREFIX}/param",
            (p["name"], float(p["min"]), float(high), float(p["default"]), p["size"], int(p["action"]), p["doc"]),
        )
