"""Scenes: named snapshots of the performer's controls, saved per model, recalled at once or morphed over time.

A scene holds every continuous control (gain, temperature, mix, drift, tempo, the latent and target vectors); not
`prime` (setting it restarts the model) nor `freeze`, and no action is ever replayed. The scenes live in one JSON
file beside the model's bundle (`scenes.json`, or `serve --scenes FILE`), with the MIDI map learned on stage, and
every change is written to a temporary file, flushed to the disk and renamed over the old one: a crash, a full
disk or a pulled plug leaves the last saved file whole.

A recall over `seconds` moves each control in a straight line from where it is to the scene's value, a step every
MORPH_STEP_S (`Morph`, driven by `SceneMorpher`'s thread); a control the performer moves during a morph is theirs
from then on and the morph leaves it alone.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path

import numpy as np

from liveshtr.atomic import atomic_path
from liveshtr.live.params import ParamError, Params
from liveshtr.live.sched import Worker

FILE_NAME = "scenes.json"
FORMAT = 1
NOT_IN_SCENES = ("prime", "freeze")  # prime restarts the model when set; freeze is a switch held by hand
MAX_SCENES = 128
MAX_MORPH_S = 600.0
MORPH_STEP_S = 0.01  # 100 steps a second: finer than the producer's hop (10.7 ms), which smooths them further
NAME = re.compile(r"^[\w][\w .+-]{0,63}$")  # letters, digits, _ . + - and spaces; no / (OSC) or control bytes


class SceneError(ParamError):
    """A scene request or scenes file that cannot be used."""


def scene_controls(params: Params) -> list[str]:
    return [p.name for p in params.table.values() if not p.action and p.name not in NOT_IN_SCENES]


def check_name(name) -> str:
    if not isinstance(name, str) or not NAME.match(name) or name != name.strip():
        raise SceneError(f"scene name {name!r}: 1-64 letters, digits, spaces, _ . + - (no / or leading space)")
    return name


class SceneStore:
    """The scenes of one model (in save order) and its MIDI map, kept in `path`."""

    def __init__(self, path: Path, params: Params):
        self.path = Path(path)
        self.params = params
        self.scenes: dict[str, dict] = {}
        self.midi_map: dict | None = None
        self._lock = threading.Lock()
        if self.path.exists():
            self._read()

    def _read(self) -> None:
        try:
            data = json.loads(self.path.read_text())
        except OSError as exc:
            raise SceneError(f"{self.path}: cannot read it ({exc.strerror or exc})") from None
        except ValueError as exc:
            raise SceneError(f"{self.path}: not JSON ({exc}); move it away to start without scenes") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("scenes"), dict):
            raise SceneError(f"{self.path}: not a liveshtr scenes file (format {FORMAT}); move it away to start anew")
        for name, values in data["scenes"].items():
            check_name(name)
            self.scenes[name] = self._checked(name, values)
        midi = data.get("midi")
        self.midi_map = midi if isinstance(midi, dict) else None

    def _checked(self, name: str, values) -> dict:
        """A scene's values for this model's table (a control it lacks, or a vector of another size, refused)."""
        if not isinstance(values, dict):
            raise SceneError(f"scene {name!r}: expected an object of control values")
        out = {}
        for control, value in values.items():
            param = self.params.table.get(control)
            if param is None or control not in scene_controls(self.params):
                raise SceneError(f"scene {name!r}: {control!r} is not a control a scene holds for this model")
            size = len(value) if isinstance(value, list) else 1
            if size != param.size or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
                for v in (value if isinstance(value, list) else [value])
            ):
                raise SceneError(f"scene {name!r}: {control} needs {param.size} finite number(s)")
            out[control] = value
        return out

    def names(self) -> list[str]:
        return list(self.scenes)

    def save(self, name: str) -> None:
        check_name(name)
        with self._lock:
            if name not in self.scenes and len(self.scenes) >= MAX_SCENES:
                raise SceneError(f"already {MAX_SCENES} scenes; delete one first")
            scenes = dict(self.scenes)
            scenes.pop(name, None)  # saved again: it moves to the end, as a new save would
            scenes[name] = self.params.values(names=scene_controls(self.params))
            self._write(scenes, self.midi_map)
            self.scenes = scenes

    def delete(self, name: str) -> None:
        with self._lock:
            self.get(name)  # one that is not there: the same error as a recall's
            scenes = {n: v for n, v in self.scenes.items() if n != name}
            self._write(scenes, self.midi_map)
            self.scenes = scenes

    def get(self, name: str) -> dict:
        scene = self.scenes.get(name)
        if scene is None:
            raise SceneError(f"no scene {name!r}; scenes: {', '.join(self.scenes) or 'none'}")
        return scene

    def save_midi_map(self, midi_map: dict) -> None:
        with self._lock:
            self._write(self.scenes, midi_map)
            self.midi_map = midi_map

    def _write(self, scenes: dict, midi_map: dict | None) -> None:
        """The whole file again, atomically and durably; on failure nothing in memory changes either."""
        data = {"format": FORMAT, "scenes": scenes}
        if midi_map is not None:
            data["midi"] = midi_map
        text = json.dumps(data, indent=1)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.path) as tmp:
                with open(tmp, "w") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)  # the rename itself survives a power cut
            finally:
                os.close(directory)
        except OSError as exc:
            raise SceneError(f"{self.path}: cannot write it ({exc.strerror or exc}); nothing was changed") from None


class Morph:
    """A straight line from the controls' values now to a scene's over `seconds` (wall clock)."""

    def __init__(self, params: Params, scene: dict, seconds: float, now: float):
        self.params = params
        self.start = now
        self.seconds = seconds
        current = params.values(names=list(scene))
        self.paths = {
            name: (np.asarray(current[name], dtype=np.float64), np.asarray(value, dtype=np.float64))
            for name, value in scene.items()
        }
        self.written: dict[str, np.ndarray] = {name: a for name, (a, _) in self.paths.items()}

    def step(self, now: float) -> bool:
        """Move the controls to where the line is at `now`; returns whether the morph goes on."""
        fraction = 1.0 if self.seconds <= 0 else min(1.0, (now - self.start) / self.seconds)
        values = self.params.values(names=list(self.paths))
        for name in list(self.paths):  # a control moved by someone else since the last step is theirs now
            if not np.allclose(np.asarray(values[name], dtype=np.float64), self.written[name], rtol=0, atol=1e-9):
                del self.paths[name], self.written[name]
        out = {}
        for name, (a, b) in self.paths.items():
            value = a + (b - a) * fraction
            self.written[name] = value
            out[name] = value.tolist() if value.ndim else float(value)
        if out:
            self.params.set_many(out)
            for name in out:  # what the table holds after clamping
                self.written[name] = np.asarray(self.params.values(names=[name])[name], dtype=np.float64)
        return fraction < 1.0 and bool(self.paths)


class SceneMorpher:
    """Runs one morph at a time on its own thread; a new recall replaces the running one."""

    def __init__(self, params: Params, clock=time.monotonic):
        self.params = params
        self.clock = clock
        self._morph: Morph | None = None
        self._lock = threading.Lock()  # a recall never interleaves with a step of the morph it replaces
        self._wake = threading.Event()
        self._worker = Worker("liveshtr-scenes", self._run, wake=self._wake)

    def recall(self, scene: dict, seconds: float = 0.0) -> None:
        if not 0.0 <= seconds <= MAX_MORPH_S or not np.isfinite(seconds):
            raise SceneError(f"morph time {seconds!r}: choose 0..{MAX_MORPH_S:g} seconds")
        with self._lock:
            morph = Morph(self.params, scene, seconds, self.clock())
            if seconds == 0.0:
                self._morph = None
                morph.step(self.clock())
                return
            self._morph = morph
        self._wake.set()

    def use(self, params: Params) -> None:
        with self._lock:
            self._morph = None
            self.params = params

    @property
    def running(self) -> bool:
        return self._morph is not None

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        self._worker.stop()

    def _run(self) -> None:
        stopping = self._worker.stopping
        while not stopping.is_set():
            morph = self._morph
            if morph is None:
                self._wake.wait()
                self._wake.clear()
                continue
            with self._lock:
                if self._morph is morph:
                    try:
                        going = morph.step(self.clock())
                    except ParamError:  # the scene no longer fits the table: stop, keep playing
                        going = False
                    if not going:
                        self._morph = None
            stopping.wait(MORPH_STEP_S)


class Scenes:
    """What the control surfaces use: the store and the morpher of one model."""

    def __init__(self, store: SceneStore, morpher: SceneMorpher):
        self.store, self.morpher = store, morpher

    def use(self, store: SceneStore) -> None:
        """Another model's scenes (a set list's switch): a morph under way stops where it is."""
        self.morpher.use(store.params)
        self.store = store

    def names(self) -> list[str]:
        return self.store.names()

    def save(self, name: str) -> None:
        self.store.save(name)

    def recall(self, name: str, seconds: float = 0.0) -> None:
        self.morpher.recall(self.store.get(name), seconds)

    def delete(self, name: str) -> None:
        self.store.delete(name)

    def start(self) -> None:
        self.morpher.start()

    def stop(self) -> None:
        self.morpher.stop()
