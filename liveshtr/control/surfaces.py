"""The surfaces of one set, wired together: the OSC server, the WebSocket server and page, the MIDI input, Link,
the scenes and the feedback thread that serves them, over one command core (`commands`) and the set list.

`serve` builds `SurfaceOptions` from its flags (checked before any sound), opens the ports with `Surfaces.open`,
and starts and stops them around the engine. A switch of the set's model reaches every surface through
`Surfaces.switched`; a MIDI binding learned, through `_learned`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from liveshtr.control.access import Exposure

OSC_PORT = 9000
WEB_PORT = 9001


@dataclass(frozen=True)
class SurfaceOptions:
    exposure: Exposure  # who may connect, and which servers run
    osc_port: int = OSC_PORT
    web_port: int = WEB_PORT
    telemetry_hz: float = 20.0  # meters and counters to subscribers and pages, per second (0: none)
    midi: str | None = None  # the MIDI input (a name or its start, "" for serve's own virtual port), None: none
    midi_api: str = "auto"
    midi_map: dict | None = None  # a MIDI map as given, checked against the model's table on open
    midi_map_source: str = ""  # where it came from, for its errors
    link: bool = False  # follow an Ableton Link session's tempo and beat
    scenes: Path | None = None  # the first model's scenes file (default: scenes.json beside its bundle)


def model_info(bundle) -> dict:
    """What a control surface shows about the model."""
    m, f = bundle.meta["model"], bundle.frames
    return {
        "name": bundle.meta.get("name", bundle.path.name),
        "samplerate": bundle.audio.samplerate,
        "latent_dim": m["latent_dim"],
        "layers": m["layers"],
        "hidden": m["hidden"],
        "domain": f.domain,
        "songs": [s["file"] for s in bundle.meta["training"]["songs"]],
    }


class Surfaces:
    """The OSC server, the WebSocket server and page, and the feedback thread that serves both."""

    def __init__(self, options: SurfaceOptions, setlist, recorder=None, learning=None):
        from liveshtr.control.access import check_exposure

        self.options, self.setlist, self.recorder, self.learning = options, setlist, recorder, learning
        self.engine = engine = setlist.engine
        self.exposed = check_exposure(options.exposure)
        self.osc = self.web = self.feedback = self.midi = self.scenes = self.link = self.commands = None
        self.stores: dict[int, object] = {}  # each model's scenes (control.scenes.SceneStore), by its index
        self.midi_data: dict | None = None  # the set's MIDI map as given or learned (None: the default map)
        # What clients can first see: any change after this (even before the feedback thread exists, by a page
        # that connects early or a datagram that waited in the OSC socket) is published to everyone.
        self._since = engine.params.snapshot
        self._logged: dict[str, int] = {}

    def open(self) -> None:
        """Bind the ports (a port in use is a one-line error before any sound)."""
        try:
            self._open()
        except BaseException:
            self.stop()
            raise

    def _open(self) -> None:
        o, engine = self.options, self.engine
        e = o.exposure
        from liveshtr.control.commands import Commands
        from liveshtr.control.scenes import SceneError, SceneMorpher, Scenes
        from liveshtr.errors import ConfigError

        for i, model in enumerate(self.setlist.models):
            try:
                self.prepare(i, model)
            except SceneError as exc:  # a damaged file is never overwritten: the performer decides
                raise ConfigError(str(exc)) from None
        first = self.stores[0]
        self.scenes = Scenes(first, SceneMorpher(engine.params))
        if o.midi is not None:
            from liveshtr.control.midi import MidiInput
            from liveshtr.control.midi_protocol import MidiMap, MidiMapError, MidiProtocol

            data, source = o.midi_map, o.midi_map_source
            if data is None and first.midi_map is not None:
                data, source = first.midi_map, f"the MIDI map learned in {first.path}"
            try:
                midi_map = MidiMap.default(engine.params) if data is None else MidiMap.from_dict(data, engine.params)
            except MidiMapError as exc:
                raise ConfigError(f"{source}: {exc}") from None
            self.midi_data = data
            protocol = MidiProtocol(
                engine.params, midi_map, on_learn=self._learned, scenes=self.scenes, on_beat=engine.sync_beat
            )
            self.midi = MidiInput(protocol, o.midi or None, o.midi_api)
        if o.link:
            from liveshtr.control.link import LinkClock

            params = engine.params
            tempo = params.get("tempo") if "tempo" in params.table else 120.0
            self.link = LinkClock(lambda: self.setlist.playing.params, engine.sync_beat, tempo)
        midi = self.midi.protocol if self.midi is not None else None
        self.commands = Commands(engine.params, self.scenes, midi, self.recorder, self.setlist, self.learning)
        if e.osc:
            from liveshtr.control.osc import OscServer
            from liveshtr.control.osc_protocol import OscProtocol

            protocol = OscProtocol(self.commands)
            self.osc = OscServer(protocol, e.host, o.osc_port, list(e.osc_allow), busy=lambda: engine.producing)
        if e.web:
            from liveshtr.control.telemetry import Spectrum
            from liveshtr.control.web import WebServer
            from liveshtr.control.web_protocol import WebProtocol

            info, spectrum = model_info(engine.generator.bundle), Spectrum(engine.samplerate).describe()
            protocol = WebProtocol(self.commands, info, o.telemetry_hz, spectrum)
            self.web = WebServer(protocol, e.host, o.web_port, e.token)
            self.web.start()

    def prepare(self, index: int, model) -> None:
        """A model's scenes, read before it can play: a damaged file refuses the model (SceneError)."""
        from liveshtr.control.scenes import FILE_NAME, SceneStore

        path = self.options.scenes if index == 0 and self.options.scenes else model.path / FILE_NAME  # one model
        self.stores[index] = SceneStore(path, model.params)

    def switched(self, model) -> None:
        """The set list switched (on the thread that asked): every surface follows the new model's table, and every
        client hears of it with the table and its whole state."""
        from liveshtr.control.osc_protocol import PREFIX, Reply

        index, params = self.setlist.models.index(model), model.params
        self.commands.params = params
        self.scenes.use(self.stores[index])
        if self.midi is not None:
            self.midi.protocol.use(params, self.midi_data)
        if self.feedback is not None:
            self.feedback.use(params)
        if self.osc is not None:
            self.osc.publish([Reply(f"{PREFIX}/model", (index, model.name))])
        if self.web is not None:
            self.web.protocol.model = model_info(model.bundle)
            self.web.publish(self.web.protocol.full_state())

    def learned(self, kind: str, payload: dict) -> None:
        """Training beside the set said something (on the learner's thread): its state to OSC subscribers and every
        page, and each model that came into the set."""
        from liveshtr.control.osc_protocol import PREFIX, OscProtocol, Reply

        if kind == "progress":
            if self.osc is not None:
                self.osc.publish([OscProtocol.learn_progress(payload)])
            if self.web is not None:
                self.web.publish(self.web.protocol.learn_state(payload))
        elif kind == "ready":
            if self.osc is not None:
                self.osc.publish([Reply(f"{PREFIX}/learn/ready", (payload["index"], payload["name"], payload["val"]))])
            if self.web is not None:
                self.web.publish({"type": "models", "models": self.commands.models()})

    def _learned(self, midi_map) -> None:
        """A MIDI binding was learned (on rtmidi's thread): keep it with the scenes, tell every surface."""
        from liveshtr.control.osc_protocol import PREFIX, Reply

        self.midi_data = midi_map.to_dict()
        self.scenes.store.save_midi_map(self.midi_data)
        source, binding = self.midi.protocol.learned[-1]
        if self.osc is not None:
            self.osc.publish([Reply(f"{PREFIX}/midi/learned", (source, str(binding)))])
        if self.web is not None:
            self.web.publish(self.web.protocol.midi_state())

    def describe(self) -> list[str]:
        from liveshtr.control.access import reachable_address

        lines = []
        if self.osc is not None:
            also = f" and udp://[::1]:{self.osc.port}" if self.osc.sock6 is not None else ""
            lines.append(f"osc       udp://{self.osc.host}:{self.osc.port}{also}  (/liveshtr/list names the controls)")
        if self.web is not None:
            address = reachable_address(self.options.exposure.host)
            query = f"?token={self.options.exposure.token}" if self.options.exposure.token else ""
            lines.append(f"page      http://{address}:{self.web.port}/{query}  (WebSocket at /ws)")
        if len(self.setlist.models) > 1:
            models = ", ".join(f"{i} {m.name}" for i, m in enumerate(self.setlist.models))
            lines.append(f"set       {models}  (/liveshtr/model <index|name> [seconds] switches)")
        if self.scenes is not None:
            names = self.scenes.names()
            shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
            lines.append(f"scenes    {len(names)} in {self.scenes.store.path}" + (f": {shown}" if names else ""))
        if self.midi is not None:
            lines.append(self.midi.describe())
        if self.link is not None:
            lines.append(self.link.describe())
        lines += [f"exposed   {line}" for line in self.exposed]
        return lines

    def start(self) -> None:
        from liveshtr.control.telemetry import Feedback

        self.scenes.start()
        if self.link is not None:
            self.link.start()
        listeners = [server for name, server in self._servers() if name != "midi"]  # MIDI only listens
        if self.osc is not None:
            self.osc.start()
        if listeners:
            self.feedback = Feedback(
                self.engine, self.engine.params, listeners, self.options.telemetry_hz, self.errors, since=self._since
            )
            self.feedback.start()

    def errors(self) -> int:
        return sum(server.protocol.errors for _, server in self._servers())

    def error_lines(self) -> list[str]:
        """New malformed-message errors since the last call, one line per surface (the log, at most once a call)."""
        lines = []
        for name, server in self._servers():
            count = server.protocol.errors
            new = count - self._logged.get(name, 0)
            if new:
                self._logged[name] = count
                more = f" (+{new - 1} more)" if new > 1 else ""
                lines.append(f"{name} error: {server.protocol.last_error}{more}")
        return lines

    def stop(self) -> None:
        for part in (self.feedback, self.osc, self.web, self.midi, self.scenes, self.link):
            if part is not None:
                part.stop()

    def summary(self) -> dict:
        out = {name: server.summary() for name, server in self._servers()}
        if self.link is not None:
            out["link"] = self.link.summary()
        return out

    def _servers(self) -> list[tuple[str, object]]:
        surfaces = (("osc", self.osc), ("web", self.web), ("midi", self.midi))
        return [(name, server) for name, server in surfaces if server is not None]
