"""A set list: the models of a set, loaded before it starts, each with its own controls, and the switch between
them: an equal-power crossfade in the producer (live.engine.Crossfade), between models of any size, rate or
latent size.

Each model keeps its own parameter table (its latent size, its clock's tempo, its defaults) and its settings: back
on a model, it plays on from where it was left, as it was set. The output level is the performer's, not the
model's: a switch carries the gain over. Control surfaces follow the model playing through `listeners`, called on
the switching thread with the model switched to.

A model not in the set can be loaded during the set by its folder's path (about a second, while the sound plays
on; the control surfaces do it on a thread of its own and answer when it is done); a bundle that fails to load is
refused with its error and nothing changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from liveshtr.errors import LiveshtrError
from liveshtr.live.engine import MAX_FADE_S
from liveshtr.live.voice import Voice

DEFAULT_FADE_S = 2.0
MAX_MODELS = 64


class SetError(LiveshtrError):
    """A switch that cannot be made: an unknown model, a bundle that does not load, a fade out of range."""


@dataclass
class Model:
    name: str  # the bundle folder's name, made unique in the set
    path: Path
    voice: Voice

    @property
    def params(self):
        return self.voice.params

    @property
    def bundle(self):
        return self.voice.generator.bundle


class SetList:
    def __init__(self, engine, models: list[Model], load: Callable[[Path], Voice] | None = None):
        """`engine` plays models[0]'s voice; `load(path)` makes a voice for a bundle not in the set (or None:
        only the set's models)."""
        if not models or engine.voice is not models[0].voice:
            raise ValueError("the engine must play the set's first model")
        self.engine = engine
        self.models = list(models)
        self.current = 0
        self.load = load
        self.listeners: list[Callable[[Model], None]] = []
        self.on_load: list[Callable[[int, Model], None]] = []  # before a loaded model joins; raising refuses it
        self._lock = threading.Lock()  # switches from several surfaces, one at a time
        self._loading = threading.Lock()  # one bundle loading at a time (outside _lock: it takes a second)

    @staticmethod
    def unique_names(paths: list[Path], taken: tuple[str, ...] = ()) -> list[str]:
        """Folder names, with -2, -3 ... where a name is taken."""
        names: list[str] = list(taken)
        for path in paths:
            name, n = path.name or str(path), 1
            while name in names:
                n += 1
                name = f"{path.name}-{n}"
            names.append(name)
        return names[len(taken) :]

    @property
    def playing(self) -> Model:
        return self.models[self.current]

    def find(self, key) -> int | None:
        """A model's index from its index (a number, or its digits) or its name; None when it is neither."""
        if isinstance(key, bool):
            return None
        if isinstance(key, int) or (isinstance(key, float) and key.is_integer()):
            index = int(key)
            return index if 0 <= index < len(self.models) else None
        text = str(key).strip()
        if text.isdigit():
            return self.find(int(text))
        for i, model in enumerate(self.models):
            if model.name == text:
                return i
        return None

    def switch(self, key, seconds: float = DEFAULT_FADE_S, at_bar: bool = False) -> Model:
        """Crossfade to a model of the set (index or name) or to a bundle loaded from its path (`at_bar`: from the
        next bar of the model playing, `Engine.switch`); returns it."""
        try:
            seconds = float(seconds)
        except (TypeError, ValueError):
            raise SetError(f"fade {seconds!r}: not a number of seconds") from None
        if not 0.0 <= seconds <= MAX_FADE_S:
            raise SetError(f"fade {seconds:g} s: choose 0..{MAX_FADE_S:g} seconds")
        with self._lock:
            index = self.find(key)
        if index is None:
            index = self._load(key)  # slow: outside the lock, so switches between loaded models go on meanwhile
        with self._lock:
            model = self.models[index]
            if index != self.current:
                old = self.models[self.current]
                model.params.set("gain", old.params.get("gain"))  # the level is the performer's
                self.engine.switch(model.voice, seconds, at_bar)
                self.current = index
        for listener in self.listeners:
            listener(model)
        return model

    def add(self, path: Path) -> int:
        """Load a bundle into the set without switching to it (or find it there); returns its index."""
        return self._load(str(Path(path).resolve()))

    def loads(self, key) -> bool:
        """Whether switching to `key` would load a bundle (a folder path not in the set): about a second."""
        return self.find(key) is None and self.load is not None and self._path(key) is not None

    @staticmethod
    def _path(key) -> Path | None:
        text = str(key)
        return Path(text).expanduser() if not isinstance(key, (bool, int, float)) and "/" in text else None

    def _load(self, key) -> int:
        names = ", ".join(f"{i} {m.name}" for i, m in enumerate(self.models))
        path = self._path(key)
        if self.load is None or path is None:
            raise SetError(f"no model {key!r} in the set ({names}); a bundle's folder path loads one")
        for i, model in enumerate(self.models):
            if model.path.resolve() == path.resolve():
                return i
        if len(self.models) >= MAX_MODELS:
            raise SetError(f"the set has {MAX_MODELS} models already")
        if not self._loading.acquire(blocking=False):
            raise SetError(f"{key}: another model is loading; ask again when it has")
        try:
            try:
                voice = self.load(path)
                with self._lock:
                    (name,) = self.unique_names([path], tuple(m.name for m in self.models))
                    model, index = Model(name, path, voice), len(self.models)
                    for hook in self.on_load:
                        hook(index, model)
                    self.models.append(model)
                    return index
            except LiveshtrError as exc:
                raise SetError(f"{key}: not loaded, {exc}") from None
            except Exception as exc:  # whatever the bundle does to the loader, the set plays on
                raise SetError(f"{key}: not loaded, {type(exc).__name__}: {exc}") from None
        finally:
            self._loading.release()

    def describe(self) -> list[dict]:
        """The set as plain data, for listings and the page."""
        return [
            {
                "index": i,
                "name": m.name,
                "path": str(m.path),
                "latent_dim": m.bundle.latent_dim,
                "samplerate": m.voice.model_rate,
                "playing": i == self.current,
            }
            for i, m in enumerate(self.models)
        ]
