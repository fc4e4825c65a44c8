"""MIDI as plain logic over the parameter table: one message's bytes in, parameter changes out.

No ports here (`midi.py` opens them with mido and python-rtmidi), so every rule is tested with raw bytes.

- Control change: a bound controller sets its control, 0..127 across the control's range. A control whose range
  straddles 0 (the latent dimensions) has 64 at exactly 0. Controllers 0-31 are also 14-bit: the LSB partner
  (the number + 32) that follows an MSB refines it, and a new MSB starts again from LSB 0 (the MIDI spec's rule).
- Pitch bend: 14 bits to the control bound to the wheel (by default latent 0), the wheel's centre at the control's
  centre: a push that springs back.
- Actions (reset, panic) on a controller: pressed as its value rises through 64 (a button, or a pedal).
- Notes: a note-on moves `prime` across the song, the keys from `low` to `high` spanning it (default C2..C7); with
  the map's `notes` at "scenes", the key `low + n` recalls the n-th scene instead.
- Program change n recalls the n-th scene (in save order), morphing over the map's `morph` seconds.
- MIDI learn: `learn(control, index)` binds the next controller moved (or the pitch-bend wheel) to that control.
- Clock: 24 ticks a beat give a tempo (the slope over the last beat of ticks), which sets `tempo` where the model
  has a clock.
  With the map's `quantize` at "beat" or "bar" (4 beats), prime jumps and scene recalls wait for the next one while
  the clock runs (counted from Start, or from a song position pointer); with no clock they happen at once.
- What cannot be a MIDI message (a data byte >= 128, a wrong length, no status) is counted as an error and dropped,
  as are controllers and notes on another channel than the map's; SysEx and the messages no control uses are
  counted as ignored. Nothing here raises on bad input.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field, replace

from liveshtr.live.params import ParamError, Params
from liveshtr.sound.tempo import BEATS_PER_BAR

TICKS_PER_BEAT = 24
CLOCK_WINDOW = TICKS_PER_BEAT  # ticks the tempo is measured over: one beat
CLOCK_GAP_S = 0.5  # a longer gap between ticks starts the measurement again (the clock stopped, or jumped)
TEMPO_STEP = 0.05  # beats a minute: the tempo follows the clock only by more than this (no re-publish per tick)
KEYS = (36, 96)  # C2..C7: five octaves of a 61-key keyboard span the song
# Ticks between the moments a jump may land.
QUANTA = {"off": 0, "beat": TICKS_PER_BEAT, "bar": BEATS_PER_BAR * TICKS_PER_BEAT}
# Data lengths of channel messages by their high nibble, and of the system messages that carry data.
CHANNEL_LENGTH = {0x80: 3, 0x90: 3, 0xA0: 3, 0xB0: 3, 0xC0: 2, 0xD0: 2, 0xE0: 3}
SYSTEM_LENGTH = {0xF1: 2, 0xF2: 3, 0xF3: 2, 0xF6: 1, 0xF8: 1, 0xFA: 1, 0xFB: 1, 0xFC: 1, 0xFE: 1, 0xFF: 1}


def tick_period(times) -> float:
    """Seconds a tick from the arrival times of evenly sent ticks: the least-squares slope of time over tick. A tick
    that arrives late (a busy machine, a USB frame) moves it by a twelfth as much as it moves the span from the
    first tick to the last, which a 24-tick window turned into 5 beats a minute at 132."""
    n = len(times)
    mean_t = sum(times) / n
    mean_i = (n - 1) / 2
    num = sum((i - mean_i) * (t - mean_t) for i, t in enumerate(times))
    return num / (n * (n * n - 1) / 12)


class MidiMapError(ParamError):
    """A MIDI map (file, or a learn request) that cannot be used."""


@dataclass(frozen=True)
class Binding:
    """What a controller (or the wheel) moves: a control, and for a vector one of its dimensions."""

    control: str
    index: int | None = None

    def __str__(self) -> str:
        return self.control if self.index is None else f"{self.control}/{self.index}"

    @classmethod
    def parse(cls, text: str) -> Binding:
        name, _, index = str(text).partition("/")
        if index and not index.isdigit():
            raise MidiMapError(f"{text!r}: a control, or a control/dimension such as latent/0")
        return cls(name, int(index) if index else None)


@dataclass
class MidiMap:
    """Which controller moves what, where the keyboard goes, and the channel listened to (None: all 16)."""

    cc: dict[int, Binding] = field(default_factory=dict)
    bend: Binding | None = None
    notes: str = "prime"  # a note-on: "prime" (the keyboard spans the song), "scenes" (key low + n: scene n), "none"
    keys: tuple[int, int] = KEYS
    channel: int | None = None  # 0..15 here, 1..16 in files and messages
    clock: bool = True  # a MIDI clock sets the tempo (where the model has one)
    morph: float = 0.0  # seconds a scene recalled by program change morphs over
    quantize: str = "off"  # prime jumps and scene recalls wait for the clock's next "beat" or "bar"

    @classmethod
    def default(cls, params: Params) -> MidiMap:
        """The first controllers of common keyboards and control surfaces: mod wheel temperature, volume gain,
        expression mix, the sustain pedal freeze, 16-23 the latent dimensions, 24-31 the target's."""
        table = params.table
        cc = {1: Binding("temperature"), 7: Binding("gain"), 11: Binding("mix"), 12: Binding("drift")}
        cc[14], cc[64] = Binding("reset"), Binding("freeze")
        if "tempo" in table:
            cc[13] = Binding("tempo")
        for i in range(min(8, table["latent"].size)):
            cc[16 + i], cc[24 + i] = Binding("latent", i), Binding("target", i)
        return cls(cc=cc, bend=Binding("latent", 0))

    def check(self, params: Params) -> MidiMap:
        """Every binding names a control of this model (and a dimension it has); returns self."""
        for number, binding in self.cc.items():
            if not 0 <= number <= 119:  # 120-127 are channel mode messages
                raise MidiMapError(f"controller {number}: choose 0..119 (120-127 are channel mode messages)")
            check_binding(params, binding)
        if self.bend is not None:
            check_binding(params, self.bend)
        if self.notes not in ("prime", "scenes", "none"):
            raise MidiMapError(f"notes {self.notes!r}: choose prime, scenes or none")
        low, high = self.keys
        if not 0 <= low < high <= 127:
            raise MidiMapError(f"keys {low}..{high}: choose two notes 0..127, the lower first")
        if self.quantize not in QUANTA:
            raise MidiMapError(f"quantize {self.quantize!r}: choose {', '.join(QUANTA)}")
        if not 0.0 <= self.morph <= 600.0:
            raise MidiMapError(f"morph {self.morph:g}: choose 0..600 seconds")
        if self.channel is not None and not 0 <= self.channel <= 15:
            raise MidiMapError(f"channel {self.channel + 1}: choose 1..16, or none for all")
        return self

    def to_dict(self) -> dict:
        return {
            "channel": None if self.channel is None else self.channel + 1,
            "cc": {str(n): str(b) for n, b in sorted(self.cc.items())},
            "bend": None if self.bend is None else str(self.bend),
            "notes": self.notes,
            "keys": list(self.keys),
            "clock": self.clock,
            "morph": self.morph,
            "quantize": self.quantize,
        }

    def fitted(self, params: Params) -> MidiMap:
        """A copy without the bindings this model has no control or dimension for (a set list's smaller model)."""

        def fits(binding: Binding) -> bool:
            try:
                check_binding(params, binding)
            except MidiMapError:
                return False
            return True

        cc = {n: b for n, b in self.cc.items() if fits(b)}
        bend = self.bend if self.bend is not None and fits(self.bend) else None
        return replace(self, cc=cc, bend=bend)

    @classmethod
    def from_dict(cls, data: dict, params: Params, fit: bool = False) -> MidiMap:
        """A map from JSON; keys left out keep the default map's (so a file may name only what it changes).
        `fit`: leave out the bindings this model has no control for (a set's other models may have them)."""
        if not isinstance(data, dict):
            raise MidiMapError("a MIDI map is a JSON object (cc, bend, notes, keys, channel, clock)")
        known = ("cc", "bend", "notes", "keys", "channel", "clock", "morph", "quantize")
        unknown = set(data) - set(known)
        if unknown:
            raise MidiMapError(f"unknown key(s) {', '.join(sorted(unknown))}; known: {' '.join(known)}")
        m = cls.default(params)
        try:
            if "cc" in data:
                m.cc = {int(n): Binding.parse(b) for n, b in dict(data["cc"]).items()}
            if "bend" in data:
                m.bend = None if data["bend"] is None else Binding.parse(data["bend"])
            if "notes" in data:
                m.notes = str(data["notes"])
            if "keys" in data:
                low, high = (int(k) for k in data["keys"])
                m.keys = (low, high)
            if "channel" in data:
                m.channel = None if data["channel"] is None else int(data["channel"]) - 1
            if "clock" in data:
                m.clock = bool(data["clock"])
            if "morph" in data:
                m.morph = float(data["morph"])
            if "quantize" in data:
                m.quantize = str(data["quantize"])
        except (TypeError, ValueError) as exc:
            raise MidiMapError(f"malformed MIDI map: {exc}") from None
        return (m.fitted(params) if fit else m).check(params)


def check_binding(params: Params, binding: Binding) -> None:
    param = params.table.get(binding.control)
    if param is None:
        raise MidiMapError(f"unknown control {binding.control!r}; known: {', '.join(params.table)}")
    if param.size > 1 and binding.index is None:
        raise MidiMapError(f"{binding.control} has {param.size} dimensions: name one, e.g. {binding.control}/0")
    if param.size == 1 and binding.index is not None:
        raise MidiMapError(f"{binding.control} has no dimensions")
    if binding.index is not None and not 0 <= binding.index < param.size:
        raise MidiMapError(f"{binding.control} has dimensions 0..{param.size - 1}")


def scale(value: int, top: int, low: float, high: float) -> float:
    """A controller's `value` (0..top) across a control's range. A range that straddles 0 has the controller's
    centre (64 of 127, 8192 of 16383: the pitch wheel at rest) at exactly 0."""
    if low < 0.0 < high:
        centre = (top + 1) // 2
        return low * (1.0 - value / centre) if value < centre else high * (value - centre) / (top - centre)
    return low + value / top * (high - low)


class MidiProtocol:
    def __init__(self, params: Params, midi_map: MidiMap | None = None, on_learn=None, scenes=None, on_beat=None):
        """`on_learn(map)` is called after each binding learned (to keep the map with the model's scenes);
        `scenes` (control.scenes.Scenes) are what program changes recall; `on_beat(beats, bpm, now)` on each beat
        of a running clock whose place in the bar is known (from its Start or a song position pointer): beats
        into the bar (0, 1, 2, 3), its tempo and the moment of the beat's tick, for the engine to follow."""
        self.on_beat = on_beat
        self._placed = False  # whether the clock's ticks count from a known place (Start or a song position)
        self.params = params
        self.scenes = scenes
        self.map = (midi_map or MidiMap.default(params)).check(params)
        self.on_learn = on_learn
        self.errors = 0  # malformed messages, dropped
        self.last_error = ""
        self.ignored = 0  # understood, but nothing is bound to them (SysEx, aftertouch, program change ...)
        self.applied = 0  # messages that changed a control
        self.learning: Binding | None = None
        self.learned: list[tuple[str, Binding]] = []  # ("cc 21" | "bend", binding), newest last, for replies
        self._msb: dict[tuple[int, int], int] = {}  # (channel, controller) -> its last MSB, for 14-bit pairs
        self._level: dict[tuple[int, int], int] = {}  # (channel, controller) -> last value, for rising edges
        self._ticks: deque[float] = deque(maxlen=CLOCK_WINDOW + 1)
        self.clock_bpm: float | None = None  # the tempo the clock gives, once a beat of ticks has arrived
        self._tick = -1  # ticks since Start (the first tick after Start is 0: a downbeat)
        self._last_tick: float | None = None
        self._pending: dict[str, object] = {}  # "prime" / "scene" -> what waits for the next beat or bar
        self._lock = threading.Lock()  # learning (from OSC or the page) against messages (rtmidi's thread)

    def use(self, params: Params, data: dict | None) -> None:
        """Another model's table (a set list's switch): the set's map (`data`, None for the default) fitted to it;
        a learn or a jump waiting for the beat is dropped."""
        midi_map = MidiMap.default(params) if data is None else MidiMap.from_dict(data, params, fit=True)
        with self._lock:
            self.params, self.map = params, midi_map
            self.learning = None
            self._pending.clear()

    # -- learning -------------------------------------------------------------------------------------------------
    def learn(self, control: str, index: int | None = None) -> str:
        """Arm learning: the next controller moved (or the wheel) is bound to `control` (and dimension `index`)."""
        binding = Binding(control, index)
        check_binding(self.params, binding)
        with self._lock:
            self.learning = binding
        return f"move a controller for {binding}"

    def cancel_learn(self) -> None:
        with self._lock:
            self.learning = None

    def _bind(self, source: str, number: int | None) -> None:
        binding, self.learning = self.learning, None
        # the control (dimension) learned answers to this controller from now on, and to no other
        self.map.cc = {n: b for n, b in self.map.cc.items() if b != binding}
        if self.map.bend == binding:
            self.map.bend = None
        if number is None:
            self.map.bend = binding
        else:
            self.map.cc[number] = binding
        self.learned.append((source, binding))
        if self.on_learn is not None:
            try:
                self.on_learn(self.map)
            except ParamError as exc:  # the map could not be saved: it still plays, and the log says so
                self._error(f"learned {binding}, not saved: {exc}")

    # -- messages -------------------------------------------------------------------------------------------------
    def handle(self, data, now: float = 0.0) -> bool:
        """Apply one complete MIDI message (bytes or a list of ints) received at `now` (seconds, monotonic);
        returns whether it changed a control."""
        with self._lock:
            return self._handle(data, now)

    def _handle(self, data, now: float) -> bool:
        try:
            data = [int(b) for b in data]
        except (TypeError, ValueError):
            return self._error(f"not MIDI bytes: {data!r}")
        if not data:
            return self._error("an empty message")
        status = data[0]
        if status < 0x80:
            return self._error(f"data byte {status} without a status byte")
        if status == 0xF0:  # SysEx: nothing here uses it (a flood costs one counter each)
            self.ignored += 1
            return False
        length = CHANNEL_LENGTH.get(status & 0xF0) if status < 0xF0 else SYSTEM_LENGTH.get(status)
        if length is None:
            return self._error(f"status byte {status:#04x} is not a MIDI message")
        if len(data) != length or any(not 0 <= b < 0x80 for b in data[1:]):
            return self._error(f"{_hex(data)}: not a {length}-byte message with data bytes 0..127")
        if status >= 0xF8:
            return self._realtime(status, now)
        if status == 0xF2:  # song position, in sixteenths: where the next tick falls
            self._tick = (data[1] | data[2] << 7) * (TICKS_PER_BEAT // 4) - 1
            self._placed = True
            return False
        if status >= 0xF0:
            self.ignored += 1  # song select, tune request: not used
            return False
        channel, kind = status & 0x0F, status & 0xF0
        if self.map.channel is not None and channel != self.map.channel:
            self.ignored += 1
            return False
        if kind == 0xB0:
            return self._control_change(channel, data[1], data[2])
        if kind == 0xE0:
            return self._bend(data[1] | data[2] << 7)
        if kind == 0x90 and data[2] > 0:
            return self._note(data[1], now)
        if kind == 0xC0 and self.scenes is not None:
            return self._program(data[1], now)
        self.ignored += 1  # note-off, aftertouch, a program change with no scenes
        return False

    def _program(self, number: int, now: float = 0.0) -> bool:
        names = self.scenes.names()
        if number >= len(names):
            self.ignored += 1
            return False
        if self._waits(now):
            self._pending["scene"] = number
            return False
        return self._recall(number)

    def _recall(self, number: int) -> bool:
        names = self.scenes.names()
        if number >= len(names):  # deleted while it waited
            return False
        try:
            self.scenes.recall(names[number], self.map.morph)
        except ParamError as exc:
            return self._error(f"program {number}: {exc}")
        self.applied += 1
        return True

    def _control_change(self, channel: int, number: int, value: int) -> bool:
        if number >= 120:  # channel mode messages (all notes off and the like): nothing sounds by note here
            self.ignored += 1
            return False
        msb_number = number - 32
        if 0 <= msb_number < 32 and msb_number in self.map.cc and (channel, msb_number) in self._msb:
            msb = self._msb[(channel, msb_number)]  # the LSB of a 14-bit pair: refine the value its MSB set
            return self._set(self.map.cc[msb_number], msb << 7 | value, 16383, (channel, msb_number), msb)
        if self.learning is not None:
            self._bind(f"cc {number}", number)
        binding = self.map.cc.get(number)
        if binding is None:
            self.ignored += 1
            return False
        if number < 32:
            self._msb[(channel, number)] = value
        return self._set(binding, value, 127, (channel, number), value)

    def _bend(self, value: int) -> bool:
        if self.learning is not None:
            self._bind("bend", None)
        if self.map.bend is None:
            self.ignored += 1
            return False
        return self._set(self.map.bend, value, 16383, ("bend",), value >> 7)

    def _note(self, note: int, now: float = 0.0) -> bool:
        low, high = self.map.keys
        if self.map.notes == "scenes" and self.scenes is not None and note >= low:
            return self._program(note - low, now)
        if self.map.notes != "prime" or not low <= note <= high:
            self.ignored += 1
            return False
        if self._waits(now):
            self._pending["prime"] = (note - low) / (high - low)  # the latest key wins
            return False
        return self._apply(Binding("prime"), (note - low) / (high - low))

    def _waits(self, now: float) -> bool:
        """Whether a jump waits for the clock: quantizing, and a tick arrived lately."""
        return QUANTA[self.map.quantize] > 0 and self._last_tick is not None and now - self._last_tick <= CLOCK_GAP_S

    def _land(self) -> bool:
        """The beat or bar has come: what waited for it happens now."""
        pending, self._pending = self._pending, {}
        changed = False
        if "scene" in pending:
            changed |= self._recall(pending["scene"])
        if "prime" in pending:
            changed |= self._apply(Binding("prime"), pending["prime"])
        return changed

    def _set(self, binding: Binding, value: int, top: int, key: tuple, level7: int) -> bool:
        param = self.params.table[binding.control]
        if param.action:  # a button: pressed as the value rises through 64
            previous, self._level[key] = self._level.get(key, 0), level7
            if previous < 64 <= level7:
                self.params.set(binding.control)
                self.applied += 1
                return True
            return False
        return self._apply(binding, scale(value, top, param.low, param.high))

    def _apply(self, binding: Binding, value: float) -> bool:
        try:
            self.params.set(binding.control, value, binding.index)
        except ParamError as exc:  # the map is checked against the table, so this is not expected
            return self._error(str(exc))
        self.applied += 1
        return True

    def _realtime(self, status: int, now: float) -> bool:
        if status == 0xFA:  # start: the next tick is the first beat of a bar, and a fresh measurement
            self._tick = -1
            self._ticks.clear()
            self._placed = True
        elif status == 0xFC and self._pending:  # stop: nothing waits for a clock that no longer runs
            self._last_tick = None
            return self._land()
        if status != 0xF8 or not self.map.clock:
            self.ignored += status != 0xF8
            return False
        landed = False
        if self._last_tick is not None and now - self._last_tick > CLOCK_GAP_S:
            self._ticks.clear()
            if self._pending:  # the clock paused: what waited happens now, not at some later bar
                landed = self._land()
        self._last_tick = now
        self._tick += 1
        quantum = QUANTA[self.map.quantize]
        if self._pending and quantum and self._tick % quantum == 0:
            landed |= self._land()
        self._ticks.append(now)
        if self.on_beat is not None and self._placed and self.clock_bpm and self._tick % TICKS_PER_BEAT == 0:
            self.on_beat(float(self._tick // TICKS_PER_BEAT % BEATS_PER_BAR), self.clock_bpm, now)
        if len(self._ticks) <= CLOCK_WINDOW:
            return landed
        tick_s = tick_period(self._ticks)
        if not tick_s > 0.0:
            return landed
        bpm = 60.0 / (TICKS_PER_BEAT * tick_s)
        self.clock_bpm = bpm
        if "tempo" not in self.params.table or abs(self.params.get("tempo") - bpm) <= TEMPO_STEP:
            return landed
        self.params.set("tempo", bpm)
        self.applied += 1
        return True

    def _error(self, problem: str) -> bool:
        self.errors += 1
        self.last_error = problem
        return False

    def summary(self) -> dict:
        return {"applied": self.applied, "errors": self.errors, "ignored": self.ignored, "clock_bpm": self.clock_bpm}


def _hex(data: list[int]) -> str:
    return " ".join(f"{b:02x}" for b in data[:8]) + (" ..." if len(data) > 8 else "")
