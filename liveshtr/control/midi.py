"""A MIDI input for `serve --midi`: a port opened with mido over python-rtmidi, feeding `MidiProtocol`.

`--midi` alone creates a virtual input called `liveshtr` that a DAW or a controller connects to; `--midi NAME`
opens an existing input by its name (or a unique part of it, any case) or its index in `liveshtr devices`. The
MIDI system is ALSA's sequencer on Linux where it exists, else a running JACK server's MIDI (`--midi-api` picks),
CoreMIDI on macOS and Windows MultiMedia on Windows. A port that cannot be opened is one line before any sound;
messages arrive on rtmidi's thread and only touch the parameter table.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from liveshtr.control.midi_protocol import MidiProtocol
from liveshtr.errors import LiveshtrError

VIRTUAL_NAME = "liveshtr"
APIS = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK", "coremidi": "MACOSX_CORE", "windows": "WINDOWS_MM"}


class MidiError(LiveshtrError):
    """A MIDI input that cannot be opened."""


def choose_api(name: str = "auto") -> str:
    """The mido/rtmidi API name for `name` (auto: ALSA where its sequencer exists, else JACK, on Linux)."""
    if name != "auto":
        if name not in APIS:
            raise MidiError(f"--midi-api {name}: choose auto, {', '.join(APIS)}")
        return APIS[name]
    if sys.platform == "darwin":
        return APIS["coremidi"]
    if sys.platform == "win32":
        return APIS["windows"]
    return APIS["alsa"] if os.path.exists("/dev/snd/seq") else APIS["jack"]


def _backend(api: str):
    try:
        import mido
    except ImportError:  # pragma: no cover - a dependency of liveshtr
        raise MidiError("MIDI needs mido and python-rtmidi (pip install mido python-rtmidi)") from None
    try:
        backend = mido.Backend(f"mido.backends.rtmidi/{api}", load=True)
    except ImportError:
        raise MidiError("MIDI needs python-rtmidi (pip install python-rtmidi)") from None
    return backend


@contextlib.contextmanager
def quiet_stderr():
    """Hold back what the MIDI system's C libraries print while a client starts (libjack's "Cannot connect to
    server socket" lines when no JACK server runs): our own error says it in one line."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no stderr to protect
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def input_names(api: str = "auto") -> list[str]:
    """The MIDI inputs the chosen API sees (empty when it has none, or cannot start)."""
    try:
        with quiet_stderr():
            return list(_backend(choose_api(api)).get_input_names())
    except Exception:  # rtmidi raises its own errors when ALSA or JACK is not there
        return []


def resolve_port(spec: str, names: list[str]) -> str:
    """An input's full name from `spec`: an index, the exact name, or a unique part of it in any case."""
    listed = ", ".join(f"{i}: {n}" for i, n in enumerate(names)) or "none"
    if spec.isdigit():
        if int(spec) < len(names):
            return names[int(spec)]
        raise MidiError(f"--midi {spec}: no MIDI input with that index (inputs: {listed})")
    if spec in names:
        return spec
    matches = [n for n in names if spec.lower() in n.lower()]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise MidiError(f"--midi {spec!r} names several inputs ({', '.join(matches)}); give more of the name")
    raise MidiError(f"--midi {spec!r}: no such MIDI input (inputs: {listed}); --midi alone creates one")


class MidiInput:
    """One open MIDI input; `stop()` closes it. `protocol` holds the map, the counters and learning."""

    def __init__(self, protocol: MidiProtocol, port: str | None = None, api: str = "auto"):
        self.protocol = protocol
        self.api = choose_api(api)
        backend = _backend(self.api)
        try:
            with quiet_stderr():
                if port is None or port == "":
                    self.port = backend.open_input(VIRTUAL_NAME, virtual=True, callback=self._receive)
                    self.virtual = True
                else:
                    name = resolve_port(port, list(backend.get_input_names()))
                    self.port = backend.open_input(name, callback=self._receive)
                    self.virtual = False
        except MidiError:
            raise
        except Exception as exc:  # rtmidi: no ALSA sequencer, no JACK server, a port that vanished
            problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise MidiError(f"MIDI input ({self.api}) cannot open: {problem}") from None
        self.name = self.port.name

    def _receive(self, message) -> None:
        try:
            data = message.bytes()
        except Exception:  # mido hands over only what it parsed; keep rtmidi's thread alive whatever happens
            self.protocol.errors += 1
            return
        self.protocol.handle(data, time.monotonic())

    def describe(self) -> str:
        kind = "virtual input" if self.virtual else "input"
        return f"midi      {kind} {self.name!r} ({self.api}); controllers: {len(self.protocol.map.cc)} bound"

    def summary(self) -> dict:
        return self.protocol.summary()

    def stop(self) -> None:
        port, self.port = getattr(self, "port", None), None
        if port is not None:
            try:
                port.close()
            except Exception as exc:  # the set is over; the closing counters say so
                self.protocol.errors += 1
                self.protocol.last_error = f"closing the MIDI port: {type(exc).__name__}: {exc}"
