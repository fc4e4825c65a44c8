"""The OSC address space: a codec around the command core (`commands`), (address, arguments) in, replies out.

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
    /liveshtr/midi/learn s [i]     bind the next MIDI controller moved (or the pitch wheel) to a control (and
                                   dimension); replies /liveshtr/midi/learning control
    /liveshtr/midi/cancel          stop learning
    /liveshtr/midi/map             replies /liveshtr/midi/cc number control per bound controller, then
                                   /liveshtr/midi/bend control (or "none")
    /liveshtr/scene/save s         save the controls as a scene (replies /liveshtr/scene/saved name)
    /liveshtr/scene/recall s [f]   recall a scene, morphing over f seconds (default 0: at once)
    /liveshtr/scene/delete s       delete a scene; /liveshtr/list also replies /liveshtr/scene name per scene
    /liveshtr/record/start         a new take (serve --record DIR); replies /liveshtr/record/started folder
    /liveshtr/record/stop          end the take; replies /liveshtr/record/stopped
    /liveshtr/model m [f]          switch to model m of the set (its index or name, or a bundle's folder path,
                                   loaded then) with an equal-power crossfade of f seconds (default 2);
                                   replies /liveshtr/model/switched index name, and every subscriber gets
                                   /liveshtr/model index name and the new model's whole state
    /liveshtr/models               replies /liveshtr/model index name playing (1 or 0) per model of the set;
                                   /liveshtr/list ends with the same rows
    /liveshtr/learn s [s ...]      train a song (a path on this machine) beside the set: a first model within a
                                   minute, each better one crossfaded in at the next bar; replies
                                   /liveshtr/learn/started folder; subscribers get /liveshtr/learn/progress (stage
                                   epoch epochs fraction val eta_s playing held models) and /liveshtr/learn/ready
                                   index name held-out-error for each model that comes into the set
    /liveshtr/learn/hold [f]       1 (or none): hold the model playing, better ones wait; 0: let go
    /liveshtr/learn/back           back to the model before the last one training brought in, held there
    /liveshtr/learn/stop           end training: the best model so far is saved, the set plays on
    /liveshtr/learn/state          replies /liveshtr/learn/progress

Replies go back to the port a message came from. `/liveshtr/error` and `/liveshtr/clamped` also go to the
feedback ports subscribed from that port: Max's [udpsend], Pd's [netsend] and TouchDesigner's OSC Out send from
one port and listen on another.

Numbers may arrive as ints or floats (Max sends `i` for integers, Pd `f` for everything). A value outside its
range is clamped and the reply `/liveshtr/clamped address applied` says so. Anything that cannot be applied gets
`/liveshtr/error address problem`, and nothing is changed.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from liveshtr.control.commands import Commands, Later
from liveshtr.errors import LiveshtrError
from liveshtr.live.params import Params

PREFIX = "/liveshtr"
SPECTRUM_BANDS = 96  # /liveshtr/spectrum: log-spaced bands from SPECTRUM_LOW_HZ to Nyquist,
SPECTRUM_LOW_HZ = 30.0  # each 0 (FLOOR_DB) .. 255 (0 dBFS)
FLOOR_DB = -100.0  # also the meters' reading for silence
MAX_SUBSCRIBERS = 16  # feedback is sent to the sender's own host only, and to this many ports at most
SUBCOMMANDS = {  # /liveshtr/<command>/<subcommand>
    "midi": ("learn", "cancel", "map"),
    "scene": ("save", "recall", "delete"),
    "record": ("start", "stop"),
    "learn": ("hold", "back", "stop", "state"),
}
LEARN_FIELDS = ("stage", "epoch", "epochs", "fraction", "val", "eta_s", "playing", "held", "models")
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


class Address(NamedTuple):
    """One row of the address table (README, patches/README.md, `liveshtr controls`)."""

    address: str  # `<i>` stands for a dimension index
    args: str  # OSC type tags: f = number (int or float), s = string, ... = repeated; [ ] = optional
    range: str
    doc: str


def _number(x: float) -> str:
    return f"{x:g}"


def client_addresses(params: Params) -> list[Address]:
    """Every address a client may send, built from the parameter table so that no list of them can drift."""
    rows = []
    for p in params.table.values():
        address = f"{PREFIX}/{p.name}"
        if p.action:
            rows.append(Address(address, "", "action", p.doc))
            continue
        span = f"{_number(p.low)}..{_number(p.high)} ({_number(p.default)})"
        if p.size == 1:
            rows.append(Address(address, "f", span, p.doc))
        else:
            rows.append(Address(address, f"f x{p.size}", span, f"{p.doc}; all {p.size} dimensions, or one for all"))
            rows.append(Address(f"{address}/<i>", "f", span, f"one dimension, i = 0..{p.size - 1}"))
    return rows + [
        Address(f"{PREFIX}/get", "[s]", "", "reply with the value(s) of one control, or of all"),
        Address(f"{PREFIX}/list", "", "", f"reply with {PREFIX}/param for each control"),
        Address(f"{PREFIX}/subscribe", "[i]", "port", "feedback (below) to this host at port, default the sender's"),
        Address(f"{PREFIX}/unsubscribe", "[i]", "port", "stop the feedback"),
        Address(f"{PREFIX}/midi/learn", "s [i]", "control [dimension]", "bind the next MIDI controller moved to it"),
        Address(f"{PREFIX}/midi/cancel", "", "", "stop MIDI learn"),
        Address(f"{PREFIX}/midi/map", "", "", f"reply with {PREFIX}/midi/cc per bound controller, then midi/bend"),
        Address(f"{PREFIX}/scene/save", "s", "name", "save every continuous control as a scene (not prime, freeze)"),
        Address(f"{PREFIX}/scene/recall", "s [f]", "name [seconds]", "recall a scene, morphing over the seconds"),
        Address(f"{PREFIX}/scene/delete", "s", "name", "delete a scene"),
        Address(f"{PREFIX}/record/start", "", "", "start a new take (serve --record DIR)"),
        Address(f"{PREFIX}/record/stop", "", "", "end the take being recorded"),
        Address(
            f"{PREFIX}/model",
            "i/s [f]",
            "model [seconds]",
            "crossfade to a model of the set (index, name, or a bundle folder to load) over the seconds (2)",
        ),
        Address(f"{PREFIX}/models", "", "", f"reply with {PREFIX}/model per model of the set"),
        Address(f"{PREFIX}/learn", "s [s ...]", "song path(s)", "train beside the set; better models come in at a bar"),
        Address(f"{PREFIX}/learn/hold", "[i]", "1 or 0", "hold the model playing (better ones wait), or let go"),
        Address(f"{PREFIX}/learn/back", "", "", "back to the model before training's last, held there"),
        Address(f"{PREFIX}/learn/stop", "", "", "end training: the best model so far is saved"),
        Address(f"{PREFIX}/learn/state", "", "", f"reply with {PREFIX}/learn/progress"),
    ]


def feedback_addresses(params: Params) -> list[Address]:
    """Every address the server sends: replies, and the feedback a subscriber gets."""
    sizes = {p.name: p.size for p in params.table.values() if not p.action}
    return [
        Address(
            f"{PREFIX}/<control>",
            "f (x size)",
            "",
            f"state of one control ({', '.join(sizes)}): the whole state on subscribe or get, then every change",
        ),
        Address(
            f"{PREFIX}/telemetry",
            f"f x{len(TELEMETRY_FIELDS)}",
            "",
            f"{' '.join(TELEMETRY_FIELDS)} (to subscribers, --telemetry-hz)",
        ),
        Address(
            f"{PREFIX}/spectrum",
            f"i x{SPECTRUM_BANDS}",
            "0..255",
            f"band levels {FLOOR_DB:g}..0 dBFS, log-spaced {SPECTRUM_LOW_HZ:g} Hz..Nyquist",
        ),
        Address(f"{PREFIX}/midi/learning", "s", "", "reply to midi/learn: the control the next controller moves"),
        Address(f"{PREFIX}/midi/cc", "i s", "", "reply to midi/map: a controller number and its control"),
        Address(f"{PREFIX}/midi/bend", "s", "", "reply to midi/map: the pitch wheel's control, or none"),
        Address(f"{PREFIX}/midi/learned", "s s", "", "to subscribers: a binding learned (controller, control)"),
        Address(f"{PREFIX}/scene", "s", "", "reply to list: one per saved scene, in save order"),
        Address(f"{PREFIX}/scene/saved", "s", "", "reply to scene/save"),
        Address(f"{PREFIX}/scene/recalled", "s f", "", "reply to scene/recall: name, seconds"),
        Address(f"{PREFIX}/scene/deleted", "s", "", "reply to scene/delete"),
        Address(f"{PREFIX}/record/started", "s", "", "reply to record/start: the session folder"),
        Address(f"{PREFIX}/record/stopped", "", "", "reply to record/stop"),
        Address(
            f"{PREFIX}/model",
            "i s [i]",
            "",
            "to subscribers on a switch: index, name (then the new model's whole state); reply to models and list: "
            "index, name, playing",
        ),
        Address(f"{PREFIX}/model/switched", "i s", "", "reply to model: index, name"),
        Address(
            f"{PREFIX}/model/loading", "s", "", "reply to model with a folder: loading it (then switched, or error)"
        ),
        Address(f"{PREFIX}/learn/started", "s", "", "reply to learn: the folder its models go to"),
        Address(
            f"{PREFIX}/learn/progress",
            "s i i f f f s i i",
            "",
            f"to subscribers while training, and reply to learn/state: {' '.join(LEARN_FIELDS)} (val, eta_s: -1 "
            "while unknown)",
        ),
        Address(f"{PREFIX}/learn/ready", "i s f", "", "to subscribers: a model from training came into the set"),
        Address(f"{PREFIX}/learn/held", "i", "", "reply to learn/hold: 1 held, 0 let go"),
        Address(f"{PREFIX}/learn/back", "s", "", "reply to learn/back: the model now playing"),
        Address(f"{PREFIX}/learn/stopping", "", "", "reply to learn/stop"),
        Address(f"{PREFIX}/subscribed", "i", "port", "reply to subscribe"),
        Address(f"{PREFIX}/unsubscribed", "i", "port", "reply to unsubscribe"),
        Address(f"{PREFIX}/param", "s f f f i i s", "", "reply to list: name min max default size action doc"),
        Address(f"{PREFIX}/clamped", "s f ...", "", "a value was out of range: address, value(s) applied"),
        Address(f"{PREFIX}/error", "s s", "", "a message could not be applied (nothing changed): address, problem"),
    ]


class Reply(NamedTuple):
    address: str
    args: tuple
    to: tuple[str, int] | None = None  # None: back to the sender


def error(address: str, problem: str) -> Reply:
    return Reply(f"{PREFIX}/error", (address, problem))


class OscProtocol:
    def __init__(self, commands: Commands):
        """`commands`: what the surfaces may do (control.commands), shared with the page."""
        self.commands = commands
        self.errors = 0  # malformed messages answered with an error
        self.last_error = ""  # the latest of them, for the log
        self.subscribers: list[tuple[str, int]] = []  # (host, port) that get changes and telemetry
        self.reply_to: dict[tuple[str, int], list[tuple[str, int]]] = {}  # sender -> subscribers it asked for

    @property
    def params(self) -> Params:
        return self.commands.params

    def handle(self, address: str, args: tuple | list, sender: tuple[str, int] | None = None) -> list:
        """Apply one message from `sender` (host, port); returns the replies (to the sender unless `to` says) and,
        for a bundle to load, `Later` work whose replies go to the sender in turn."""
        try:
            replies = self._handle(address, tuple(args), sender)
        except LiveshtrError as exc:
            replies = [error(address, str(exc))]
        return self.route(replies, sender)

    def route(self, replies: list, sender) -> list:
        """Count the errors among `replies`, and copy errors and clamps to the feedback ports `sender` subscribed."""
        for r in replies:
            if isinstance(r, Reply) and r.address == f"{PREFIX}/error":
                self.errors += 1
                self.last_error = f"{r.args[0]}: {r.args[1]}"
        # Max's [udpsend], Pd's [netsend] and TouchDesigner's OSC Out never read what comes back to the port they
        # send from, so errors and clamps also go to the feedback port that sender subscribed from it.
        peers = self.reply_to.get(sender, ())
        return replies + [
            r._replace(to=peer)
            for r in replies
            if isinstance(r, Reply) and r.to is None and r.address in (f"{PREFIX}/error", f"{PREFIX}/clamped")
            for peer in peers
        ]

    def _handle(self, address: str, args: tuple, sender) -> list:
        if not address.startswith(PREFIX + "/"):
            return [error(address, f"not under {PREFIX}/")]
        parts = address[len(PREFIX) + 1 :].split("/")
        name, c = parts[0], self.commands
        if len(parts) == 1 and name == "learn":
            if not args or not all(isinstance(a, str) for a in args):
                return [error(address, "expected the path of a song (or several)")]
            return [Reply(f"{PREFIX}/learn/started", (c.learn_start(list(args)),))]
        if len(parts) == 1 and name in ("list", "models", "model", "get", "subscribe", "unsubscribe"):
            if name == "list":
                scenes = [Reply(f"{PREFIX}/scene", (n,)) for n in c.scene_names() or ()]
                return [self._describe(p) for p in self.params.describe()] + scenes + self._models()
            if name == "models":
                return self._models()
            if name == "model":
                return self._switch(address, args, sender)
            if name == "get":
                if len(args) > 1 or (args and not isinstance(args[0], str)):
                    return [error(address, "expected no argument or one control name")]
                return self.state(c.values(*args))
            return self._subscribe(address, args, sender, name == "subscribe")
        if len(parts) == 2 and name in SUBCOMMANDS:
            if parts[1] not in SUBCOMMANDS[name]:
                return [error(address, f"unknown address; {PREFIX}/{name}/ has {', '.join(SUBCOMMANDS[name])}")]
            return getattr(self, f"_{name}")(parts[1], args)
        param = self.params.table.get(name)
        if param is None or len(parts) > 2:
            return [error(address, "unknown address; /liveshtr/list names the controls")]
        if param.action:
            if len(parts) != 1:
                return [error(address, f"{name} is an action and takes no index")]
            c.act(name)
            return []
        if len(parts) == 2 and not parts[1].isdigit():
            return [error(address, f"{name} has no dimension {parts[1]!r}")]
        applied = c.set(name, list(args), int(parts[1]) if len(parts) == 2 else None)
        return [Reply(f"{PREFIX}/clamped", (address, *applied.values))] if applied.clamped else []

    def _models(self) -> list[Reply]:
        return [Reply(f"{PREFIX}/model", (m["index"], m["name"], int(m["playing"]))) for m in self.commands.models()]

    def _switch(self, address: str, args: tuple, sender) -> list:
        if not 1 <= len(args) <= 2:
            return [error(address, "expected a model (index, name or folder) and seconds")]
        key, seconds = self.commands.switch_args(args[0], args[1] if len(args) == 2 else None)

        def switched() -> list[Reply]:
            try:
                index, name = self.commands.switch(key, seconds)
            except LiveshtrError as exc:
                return [error(address, str(exc))]
            return [Reply(f"{PREFIX}/model/switched", (index, name))]

        if self.commands.loads(key):  # a bundle to load: on the server's thread, and "loading" before anything
            later = Later(lambda: [r._replace(to=r.to or sender) for r in self.route(switched(), sender)])
            return [Reply(f"{PREFIX}/model/loading", (str(key),)), later]
        return switched()

    def _learn(self, command: str, args: tuple) -> list[Reply]:
        c = self.commands
        if command == "hold":
            if len(args) > 1:
                return [error(f"{PREFIX}/learn/hold", "expected 1 (hold), 0 (let go) or nothing (hold)")]
            return [Reply(f"{PREFIX}/learn/held", (int(c.learn_hold(args[0] if args else None)),))]
        if command == "back":
            return [Reply(f"{PREFIX}/learn/back", (c.learn_back(),))]
        if command == "stop":
            c.learn_stop()
            return [Reply(f"{PREFIX}/learn/stopping", ())]
        state = c.learn_state()
        if state is None:
            return [error(f"{PREFIX}/learn/state", "nothing has trained yet (/liveshtr/learn SONG starts)")]
        return [self.learn_progress(state)]

    @staticmethod
    def learn_progress(state: dict) -> Reply:
        """A training's state (live.learner.LearnState) as /liveshtr/learn/progress, LEARN_FIELDS in order."""
        unknown = -1.0
        return Reply(
            f"{PREFIX}/learn/progress",
            (
                state["stage"],
                int(state["epoch"]),
                int(state["epochs"]),
                float(state["fraction"]),
                unknown if state["val"] is None else float(state["val"]),
                unknown if state["eta_s"] is None else float(state["eta_s"]),
                state["playing"],
                int(state["held"]),
                len(state["loaded"]),
            ),
        )

    def _record(self, command: str, args: tuple) -> list[Reply]:
        folder = self.commands.record(command)
        if command == "start":
            return [Reply(f"{PREFIX}/record/started", (folder,))]
        return [Reply(f"{PREFIX}/record/stopped", ())]

    def _scene(self, command: str, args: tuple) -> list[Reply]:
        if not 1 <= len(args) <= (2 if command == "recall" else 1):
            want = "expected a scene name" + (" and seconds" if command == "recall" else "")
            return [error(f"{PREFIX}/scene/{command}", want)]
        seconds = self.commands.scene(command, args[0], args[1] if len(args) == 2 else None)
        done = {"save": "saved", "recall": "recalled", "delete": "deleted"}[command]
        return [Reply(f"{PREFIX}/scene/{done}", (args[0],) if seconds is None else (args[0], seconds))]

    def _midi(self, command: str, args: tuple) -> list[Reply]:
        c = self.commands
        if command == "cancel":
            c.cancel_learn()
            return []
        if command == "map":
            m = c.midi_state()["map"]
            rows = [Reply(f"{PREFIX}/midi/cc", (number, str(b))) for number, b in sorted(m.cc.items())]
            return rows + [Reply(f"{PREFIX}/midi/bend", (str(m.bend) if m.bend else "none",))]
        if not 1 <= len(args) <= 2:
            return [error(f"{PREFIX}/midi/learn", "expected a control name and, for a vector, a dimension")]
        return [Reply(f"{PREFIX}/midi/learning", (c.learn(*args),))]

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
            for peers in self.reply_to.values():
                if peer in peers:
                    peers.remove(peer)
            self.reply_to = {s: peers for s, peers in self.reply_to.items() if peers}
            return [Reply(f"{PREFIX}/unsubscribed", (port,))]
        if peer not in self.subscribers:
            if len(self.subscribers) >= MAX_SUBSCRIBERS:
                return [error(address, f"already {MAX_SUBSCRIBERS} subscribers; unsubscribe one first")]
            self.subscribers.append(peer)
        if peer != sender:
            peers = self.reply_to.pop(sender, [])  # re-inserted last: the oldest senders are forgotten first
            self.reply_to[sender] = peers + [peer] if peer not in peers else peers
            while len(self.reply_to) > 4 * MAX_SUBSCRIBERS:  # clients that reconnect from new ports
                del self.reply_to[next(iter(self.reply_to))]
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

    @staticmethod
    def _describe(p: dict) -> Reply:
        high = p["max"] if math.isfinite(p["max"]) else -1.0  # actions count presses; OSC has no inf everywhere
        return Reply(
            f"{PREFIX}/param",
            (p["name"], float(p["min"]), float(high), float(p["default"]), p["size"], int(p["action"]), p["doc"]),
        )
