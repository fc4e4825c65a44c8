"""The WebSocket messages, as plain logic over the parameter table: one JSON text in, replies for its sender out.

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

The server answers with "state" (on connect with "full": true, the table and the model; then only what changed,
broadcast to everyone whoever changed it), "telemetry", "scenes" (the scene names, to everyone after a save or
delete), "midi" (to the sender: what is being learned and the map), and "error" for anything it cannot apply (with
the request's "id" when it had one). Values out of range are clamped: the broadcast state carries what was applied.
A reply with "_all": true is sent to every client (the server strips the key).
"""

from __future__ import annotations

import json
import math
import threading

from liveshtr.errors import LiveshtrError
from liveshtr.live.params import ParamError, Params

MAX_MESSAGE_BYTES = 16 * 1024  # a whole latent vector is well under 1 KiB; the server refuses bigger frames


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class WebProtocol:
    def __init__(
        self,
        params: Params,
        model: dict,
        telemetry_hz: float,
        spectrum: dict,
        scenes=None,
        midi=None,
        recorder=None,
        setlist=None,
    ):
        """`params` and `model`: the table and description of the model playing (a switch replaces them)."""
        self.params = params
        self.setlist = setlist  # live.setlist.SetList, or None
        self.later = None  # how a message made later reaches every page (the server's publish), or None
        self.recorder = recorder  # live.recorder.Recorder (serve --record DIR), or None
        self.scenes = scenes  # control.scenes.Scenes, or None
        self.midi = midi  # control.midi_protocol.MidiProtocol (serve --midi), or None
        self.model = model
        self.telemetry_hz = telemetry_hz
        self.spectrum = spectrum
        self.errors = 0  # messages answered with an error
        self.last_error = ""  # the latest of them, for the log

    def full_state(self) -> dict:
        table = [dict(p, max=p["max"] if math.isfinite(p["max"]) else None) for p in self.params.describe()]
        return {
            "type": "state",
            "full": True,
            "model": self.model,
            "params": table,
            "values": self.params.values(),
            "telemetry_hz": self.telemetry_hz,
            "spectrum": self.spectrum,
            "scenes": self.scenes.names() if self.scenes is not None else None,
            "midi": self.midi_state() if self.midi is not None else None,
            "record": self.record_state() if self.recorder is not None else None,
            "models": self.setlist.describe() if self.setlist is not None else None,
        }

    def record_state(self) -> dict:
        r = self.recorder
        return {"type": "record", "recording": r.recording, "folder": str(r.folder), "takes": r.takes}

    def midi_state(self) -> dict:
        m = self.midi
        learning = str(m.learning) if m.learning is not None else None
        last = f"{m.learned[-1][0]} -> {m.learned[-1][1]}" if m.learned else None
        return {"type": "midi", "learning": learning, "learned": last, "map": m.map.to_dict()}

    def handle(self, text: str | bytes) -> list[dict]:
        """Apply one message; returns the replies for its sender (changes reach everyone by broadcast)."""
        try:
            message = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            return [self._error(f"not JSON: {exc}", None)]
        if not isinstance(message, dict):
            return [self._error('expected a JSON object with a "type"', message)]
        try:
            replies = self._handle(message)
        except ParamError as exc:
            return [self._error(str(exc), message)]
        return replies

    def _handle(self, m: dict) -> list[dict]:
        kind, name = m.get("type"), m.get("name")
        if kind == "get":
            if name is None:
                return [self._with_id(self.full_state(), m)]
            if not isinstance(name, str) or name not in self.params.table:
                return [self._error(f"unknown control {name!r}; known: {', '.join(self.params.table)}", m)]
            return [self._with_id({"type": "state", "values": self.params.values(names=[name])}, m)]
        if kind == "scene":
            return self._scene(m)
        if kind == "model":
            return self._switch(m)
        if kind == "midi":
            return self._midi(m)
        if kind == "record":
            return self._record(m)
        if kind not in ("set", "action"):
            return [self._error(f"unknown type {kind!r}; expected set, action, get, scene or midi", m)]
        if not isinstance(name, str) or name not in self.params.table:
            return [self._error(f"unknown control {name!r}; known: {', '.join(self.params.table)}", m)]
        param = self.params.table[name]
        if kind == "action" or param.action:
            if not param.action:
                return [self._error(f'{name} is not an action; send {{"type": "set", ...}}', m)]
            self.params.set(name)
            return []
        value, index = m.get("value"), m.get("index")
        if index is not None and not (isinstance(index, int) and not isinstance(index, bool)):
            return [self._error(f"{name}: index must be an integer, got {index!r}", m)]
        if isinstance(value, list):
            if not value or len(value) > param.size or not all(_number(v) for v in value):
                return [self._error(f"{name}: expected {param.size} finite numbers", m)]
        elif not _number(value):
            return [self._error(f"{name}: value must be a finite number, got {value!r}", m)]
        self.params.set(name, value, index)
        return []

    def _switch(self, m: dict) -> list[dict]:
        """{"type": "model", "model": index | name | folder, "seconds": s}: every page gets the new model's whole
        state (from the switch's listener); the sender, an error if it cannot be."""
        from liveshtr.live.setlist import DEFAULT_FADE_S

        if self.setlist is None:
            return [self._error("one model here: start serve with several MODELs", m)]
        key, seconds = m.get("model"), m.get("seconds", DEFAULT_FADE_S)
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            return [self._error('"model": an index, a name or a bundle folder', m)]
        if isinstance(seconds, bool) or not _number(seconds):
            return [self._error('"seconds": a number', m)]
        if self.later is not None and self.setlist.loads(key):  # a bundle to load: a second, on its own thread

            def load() -> None:
                try:
                    self.setlist.switch(key, seconds)
                except LiveshtrError as exc:  # news for every page: the set did not change
                    self.later(self._error(str(exc), m))

            threading.Thread(target=load, name="liveshtr-loader", daemon=True).start()
            return [self._with_id({"type": "model", "loading": key}, m)]
        try:
            self.setlist.switch(key, seconds)
        except LiveshtrError as exc:
            return [self._error(str(exc), m)]
        return []

    def _scene(self, m: dict) -> list[dict]:
        action, name = m.get("action"), m.get("name")
        if self.scenes is None:
            return [self._error("no scenes here", m)]
        if action not in ("save", "recall", "delete"):
            return [self._error(f"scene action {action!r}: expected save, recall or delete", m)]
        if not isinstance(name, str):
            return [self._error("a scene needs a name", m)]
        if action == "recall":
            seconds = m.get("seconds", 0.0)
            if not _number(seconds):
                return [self._error(f"seconds must be a finite number, got {seconds!r}", m)]
            self.scenes.recall(name, float(seconds))  # the controls' changes reach everyone as state
            return []
        self.scenes.save(name) if action == "save" else self.scenes.delete(name)
        return [{"type": "scenes", "names": self.scenes.names(), "_all": True}]

    def _record(self, m: dict) -> list[dict]:
        action = m.get("action")
        if self.recorder is None:
            return [self._error("not recording here: start serve with --record DIR", m)]
        if action not in ("start", "stop"):
            return [self._error(f"record action {action!r}: expected start or stop", m)]
        try:
            self.recorder.start_take() if action == "start" else self.recorder.stop_take()
        except LiveshtrError as exc:
            return [self._error(str(exc), m)]
        return [dict(self.record_state(), _all=True)]

    def _midi(self, m: dict) -> list[dict]:
        action = m.get("action")
        if self.midi is None:
            return [self._error("no MIDI input: start serve with --midi", m)]
        if action == "learn":
            name, index = m.get("name"), m.get("index")
            whole = index is None or isinstance(index, int) and not isinstance(index, bool)
            if not isinstance(name, str) or not whole:
                return [self._error("learn needs a control name and, for a vector, an integer index", m)]
            self.midi.learn(name, index)
        elif action == "cancel":
            self.midi.cancel_learn()
        elif action != "get":
            return [self._error(f"midi action {action!r}: expected learn, cancel or get", m)]
        return [self._with_id(self.midi_state(), m)]

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
