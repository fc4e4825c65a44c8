"""The commands every control surface offers, written once as plain logic over what is playing.

OSC (`osc_protocol`) and the WebSocket (`web_protocol`) are codecs around this: each reads its wire's arguments
into these calls and writes what they return as its own replies, so adding a command means one method here, one
line in each codec and one test. A command that cannot be applied raises a LiveshtrError whose text is the problem
in one line, and changes nothing. There are no threads or sockets here: a switch that must first load a bundle
(a second or so) comes back from the codec as `Later` work, and the server runs it on a thread of its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from liveshtr.live.params import ParamError, Params


class CommandError(ParamError):
    """A command that cannot be applied as given (a wrong type, a missing part, a surface serve was not started
    with); nothing changed."""


class Later(NamedTuple):
    """Work too slow for a control thread (a bundle to load): the server runs `work` on a thread of its own and
    delivers the replies it returns."""

    work: Callable[[], list]


class Applied(NamedTuple):
    values: list[float]  # as applied, one per value given (a value for every dimension: one per dimension)
    clamped: bool  # some value lay outside the control's range


def finite(value, what: str) -> float:
    """A number as OSC or JSON gives it (int or float, never a bool), finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CommandError(f"{what}: expected a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise CommandError(f"{what}: {value} is not a finite number")
    return float(value)


def whole(value, what: str) -> int:
    """A whole number; Pd sends every number as a float, so 3.0 is 3."""
    number = finite(value, what)
    if number != int(number):
        raise CommandError(f"{what}: {value!r} is not a whole number")
    return int(number)


class Commands:
    """What the surfaces may do to the set: `params` is the table of the model playing (a switch replaces it);
    `scenes`, `midi`, `recorder` and `setlist` are None where serve was started without them."""

    def __init__(self, params: Params, scenes=None, midi=None, recorder=None, setlist=None, learning=None):
        self.params = params
        self.scenes = scenes  # control.scenes.Scenes
        self.midi = midi  # control.midi_protocol.MidiProtocol (serve --midi)
        self.recorder = recorder  # live.recorder.Recorder (serve --record DIR)
        self.setlist = setlist  # live.setlist.SetList (several models, or bundles loaded during the set)
        self.learning = learning  # live.learner.Learning: songs trained beside the set

    # -- the controls ------------------------------------------------------------------------------------------

    def control(self, name) -> str:
        if not isinstance(name, str) or name not in self.params.table:
            raise CommandError(f"unknown control {name!r}; known: {', '.join(self.params.table)}")
        return name

    def set(self, name: str, values: list, index: int | None = None) -> Applied:
        """One control: one value, one for every dimension of a vector, or a whole vector (`index`: one
        dimension of it)."""
        param = self.params.table[self.control(name)]
        if param.action:
            raise CommandError(f"{name} is an action and takes no value")
        if index is not None:
            if param.size == 1:
                raise CommandError(f"{name} has no dimension {index!r}")
            if not 0 <= index < param.size:
                raise CommandError(f"{name} has dimensions 0..{param.size - 1}")
        numbers = [finite(v, "value") for v in values]
        expected = 1 if param.size == 1 or index is not None else param.size
        if len(numbers) not in {1, expected}:
            want = "one value" if expected == 1 else f"{expected} values (or one for all)"
            raise CommandError(f"{name}: expected {want}, got {len(numbers)}")
        applied = self.params.set(name, numbers if len(numbers) > 1 else numbers[0], index)
        applied = applied if isinstance(applied, list) else [applied]
        given = numbers if len(numbers) == len(applied) else numbers * len(applied)
        return Applied(applied, applied != given)

    def act(self, name: str) -> None:
        """An action (reset, panic): one press."""
        if not self.params.table[self.control(name)].action:
            raise CommandError(f"{name} is not an action; it takes a value")
        self.params.set(name)

    def values(self, name: str | None = None) -> dict:
        """The current value of one control, or of all, by name."""
        return self.params.values(names=None if name is None else [self.control(name)])

    # -- the set -----------------------------------------------------------------------------------------------

    def models(self) -> list[dict]:
        """The set's models (index, name, playing, ...); none when serve plays one model."""
        return self.setlist.describe() if self.setlist is not None else []

    def switch_args(self, key, seconds) -> tuple[str | int, float]:
        """A switch's model (index, name or a bundle's folder) and fade, checked before anything loads."""
        from liveshtr.live.setlist import DEFAULT_FADE_S

        if self.setlist is None:
            raise CommandError("one model here: start serve with several MODELs")
        if isinstance(key, float) and key.is_integer():  # Pd sends every number as a float
            key = int(key)
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise CommandError(f"model {key!r}: an index, a name or a bundle's folder")
        return key, DEFAULT_FADE_S if seconds is None else finite(seconds, "seconds")

    def loads(self, key) -> bool:
        """Whether switching to `key` loads a bundle first (about a second: the server's thread, not the caller's)."""
        return self.setlist is not None and self.setlist.loads(key)

    def switch(self, key, seconds: float) -> tuple[int, str]:
        """Crossfade to a model of the set over `seconds`; returns its index and name."""
        model = self.setlist.switch(key, seconds)
        return self.setlist.models.index(model), model.name

    # -- scenes ------------------------------------------------------------------------------------------------

    def scene(self, action, name, seconds=None) -> float | None:
        """save | recall | delete a scene by name; a recall morphs over `seconds` (default 0: at once) and returns
        them."""
        if action not in ("save", "recall", "delete"):
            raise CommandError(f"scene {action!r}: expected save, recall or delete")
        if self.scenes is None:
            raise CommandError("no scenes here")
        if not isinstance(name, str):
            raise CommandError(f"scene {action}: expected a scene name, got {name!r}")
        if action == "save":
            self.scenes.save(name)
        elif action == "delete":
            self.scenes.delete(name)
        else:
            seconds = 0.0 if seconds is None else finite(seconds, "seconds")
            self.scenes.recall(name, seconds)
            return seconds
        return None

    def scene_names(self) -> list[str] | None:
        return self.scenes.names() if self.scenes is not None else None

    # -- recording ---------------------------------------------------------------------------------------------

    def record(self, action) -> str | None:
        """start | stop a take; a start returns the take's folder."""
        if action not in ("start", "stop"):
            raise CommandError(f"record {action!r}: expected start or stop")
        if self.recorder is None:
            raise CommandError("not recording here: start serve with --record DIR")
        if action == "start":
            return self.recorder.start_take()
        self.recorder.stop_take()
        return None

    # -- MIDI learn --------------------------------------------------------------------------------------------

    def _midi(self):
        if self.midi is None:
            raise CommandError("no MIDI input: start serve with --midi")
        return self.midi

    def learn(self, name, index=None) -> str:
        """Bind the next MIDI controller moved (or the pitch wheel) to a control, or one dimension of a vector;
        returns what it will bind."""
        midi = self._midi()
        if not isinstance(name, str):
            raise CommandError(f"MIDI learn: expected a control name, got {name!r}")
        index = None if index is None else whole(index, "dimension")
        midi.learn(name, index)
        return name if index is None else f"{name}/{index}"

    def cancel_learn(self) -> None:
        self._midi().cancel_learn()

    def midi_state(self) -> dict:
        """What MIDI learn is doing: the control being learned (or None), the last binding learned (or None), and
        the map in use (control.midi_protocol.MidiMap)."""
        m = self._midi()
        learning = str(m.learning) if m.learning is not None else None
        learned = f"{m.learned[-1][0]} -> {m.learned[-1][1]}" if m.learned else None
        return {"learning": learning, "learned": learned, "map": m.map}

    # -- training beside the set -------------------------------------------------------------------------------

    def _learning(self):
        if self.learning is None:
            raise CommandError("no training here: serve trains songs beside the set")
        return self.learning

    def learn_start(self, songs: list) -> str:
        """Train songs (paths on this machine) beside the set; each better model comes in at the next bar. Returns
        the folder the models go to."""
        learner = self._learning().start(list(songs))
        return str(learner.folder)

    def learn_hold(self, value) -> bool:
        """Hold the model playing (1: better models wait) or let go (0); returns the hold."""
        on = whole(value, "hold") if value is not None else 1
        if on not in (0, 1):
            raise CommandError(f"hold {value!r}: expected 1 (hold) or 0 (let go)")
        self._learning().current().hold(bool(on))
        return bool(on)

    def learn_back(self) -> str:
        """Back to the model before the last one training brought in, held there; returns its name."""
        return self._learning().current().back()

    def learn_stop(self) -> None:
        """End training: the best model so far is saved; the set plays on."""
        self._learning().current().stop()

    def learn_state(self) -> dict | None:
        """The training's state (live.learner.LearnState as a dict), None before any."""
        return self._learning().state()
