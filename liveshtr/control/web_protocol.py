"""The WebSocket messages: a codec around the command core (`commands`), one JSON text in, replies for its sender
out.

No sockets here (the server in `web.py` only moves text), so every rule is tested directly. Every message is a
JSON object with a "type":

    {"type": "set", "name": "temperature", "value": 1.2}
    {"type": "set", "name": "latent", "index": 3, "value": 0.5}       one dimension of a vector
    {"type": "set", "name": "latent", "value": [0.1, ...]}             a whole vector, or one number for all
    {"type": "action", "name": "reset"}                                reset, panic
    {"type": "get"}                                                    the whole state again
    {"type": "get", "name": "temperature"}                             {"type": "state", "values": {...}}
    {"type": "scene", "action": "save", "name": "verse"}               also "recall" (with "seconds"), "delete"
    {"type": "midi", "action": "learn", "name": "latent", "index": 3}  also "cancel", and "get" (learning, map)
    {"type": "record", "action": "start"}                              also "stop" (serve --record DIR)
    {"type": "model", "model": 1, "seconds": 2}                        crossfade to a model of the set (an index,
                                                                       a name or a bundle's folder to load)
    {"type": "learn", "action": "start", "songs": ["/path/song.mp3"]}  train beside the set; also "hold" (with
                                                                       "value": 1 or 0), "back", "stop", "get"

The server answers with "state" (on connect with "full": true, the table and the model; then only what changed,
broadcast to everyone whoever changed it), "telemetry", "scenes" (the scene names, to everyone after a save or
delete), "midi" (to the sender: what is being learned and the map), "learn" (to everyone: a training's state, as it
goes on), and "error" for anything it cannot apply (with
the request's "id" when it had one). Values out of range are clamped: the broadcast state carries what was applied.
A reply with "_all": true is sent to every client (the server strips the key).
"""

from __future__ import annotations

import json
import math

from liveshtr.control.commands import Commands, Later
from liveshtr.errors import LiveshtrError

MAX_MESSAGE_BYTES = 16 * 1024  # a whole latent vector is well under 1 KiB; the server refuses bigger frames


class WebProtocol:
    def __init__(self, commands: Commands, model: dict, telemetry_hz: float, spectrum: dict):
        """`commands`: what the surfaces may do (control.commands), shared with OSC; `model`: the description of
        the model playing (a switch replaces it)."""
        self.commands = commands
        self.model = model
        self.telemetry_hz = telemetry_hz
        self.spectrum = spectrum
        self.errors = 0  # messages answered with an error
        self.last_error = ""  # the latest of them, for the log

    @property
    def params(self):
        return self.commands.params

    def full_state(self) -> dict:
        c = self.commands
        table = [dict(p, max=p["max"] if math.isfinite(p["max"]) else None) for p in self.params.describe()]
        return {
            "type": "state",
            "full": True,
            "model": self.model,
            "params": table,
            "values": self.params.values(),
            "telemetry_hz": self.telemetry_hz,
            "spectrum": self.spectrum,
            "scenes": c.scene_names(),
            "midi": self.midi_state() if c.midi is not None else None,
            "record": self.record_state() if c.recorder is not None else None,
            "models": c.models() if c.setlist is not None else None,
            "learn": c.learn_state() if c.learning is not None else None,
        }

    def record_state(self) -> dict:
        r = self.commands.recorder
        return {"type": "record", "recording": r.recording, "folder": str(r.folder), "takes": r.takes}

    def midi_state(self) -> dict:
        state = self.commands.midi_state()
        return {"type": "midi", **state, "map": state["map"].to_dict()}

    def handle(self, text: str | bytes) -> list:
        """Apply one message; returns the replies for its sender (changes reach everyone by broadcast) and, for a
        bundle to load, `Later` work whose replies go to every page."""
        try:
            message = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            return [self._error(f"not JSON: {exc}", None)]
        if not isinstance(message, dict):
            return [self._error('expected a JSON object with a "type"', message)]
        try:
            return self._handle(message)
        except LiveshtrError as exc:
            return [self._error(str(exc), message)]

    def _handle(self, m: dict) -> list:
        kind, name, c = m.get("type"), m.get("name"), self.commands
        if kind == "get":
            if name is None:
                return [self._with_id(self.full_state(), m)]
            return [self._with_id({"type": "state", "values": c.values(name)}, m)]
        if kind == "scene":
            action = m.get("action")
            c.scene(action, name, m.get("seconds"))  # a recall's changes reach everyone as state
            return [] if action == "recall" else [{"type": "scenes", "names": c.scene_names(), "_all": True}]
        if kind == "model":
            return self._switch(m)
        if kind == "midi":
            action = m.get("action")
            if action == "learn":
                c.learn(name, m.get("index"))
            elif action == "cancel":
                c.cancel_learn()
            elif action != "get":
                return [self._error(f"midi action {action!r}: expected learn, cancel or get", m)]
            return [self._with_id(self.midi_state(), m)]
        if kind == "record":
            c.record(m.get("action"))
            return [dict(self.record_state(), _all=True)]
        if kind == "learn":
            return self._learn(m)
        if kind not in ("set", "action"):
            return [
                self._error(f"unknown type {kind!r}; expected set, action, get, scene, model, midi, record or learn", m)
            ]
        if kind == "action" or self.params.table[c.control(name)].action:
            c.act(name)
            return []
        value, index = m.get("value"), m.get("index")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int)):
            return [self._error(f"{name}: index must be an integer, got {index!r}", m)]
        c.set(name, value if isinstance(value, list) else [value], index)
        return []

    def _learn(self, m: dict) -> list:
        """Training beside the set: its state goes to every page as it changes (the learner's listener); the
        sender gets it at once."""
        c, action = self.commands, m.get("action")
        if action == "start":
            songs = m.get("songs")
            if isinstance(songs, str):
                songs = [songs]
            if not isinstance(songs, list):
                return [self._error('learn start: expected "songs", a list of paths', m)]
            c.learn_start(songs)
        elif action == "hold":
            c.learn_hold(m.get("value", 1))
        elif action == "back":
            c.learn_back()
        elif action == "stop":
            c.learn_stop()
        elif action != "get":
            return [self._error(f"learn action {action!r}: expected start, hold, back, stop or get", m)]
        return [self._with_id(self.learn_state(c.learn_state()), m)]

    @staticmethod
    def learn_state(state: dict | None) -> dict:
        return {"type": "learn", "state": state}

    def _switch(self, m: dict) -> list:
        """{"type": "model", "model": index | name | folder, "seconds": s}: every page gets the new model's whole
        state (from the switch's listener); the sender, an error if it cannot be."""
        c = self.commands
        key, seconds = c.switch_args(m.get("model"), m.get("seconds"))
        if c.loads(key):  # a bundle to load: on the server's thread; an error is news for every page

            def load() -> list[dict]:
                try:
                    c.switch(key, seconds)
                except LiveshtrError as exc:
                    return [self._error(str(exc), m)]
                return []

            return [self._with_id({"type": "model", "loading": key}, m), Later(load)]
        c.switch(key, seconds)
        return []

    def _error(self, problem: str, message) -> dict:
        self.errors += 1
        self.last_error = problem
        try:  # echo the request, unless it holds what strict JSON (a browser) cannot read back: NaN, Infinity
            json.dumps(message, allow_nan=False)
        except ValueError:
            message = None
        reply = {"type": "error", "error": problem, "message": message}
        return self._with_id(reply, message)

    @staticmethod
    def _with_id(reply: dict, message) -> dict:
        if isinstance(message, dict) and "id" in message:
            reply["id"] = message["id"]
        return reply
