"""MIDI as raw bytes against the parameter table: scaling, 14-bit pairs, the wheel, buttons, notes, learning, the
clock, maps from JSON, and bad input that is counted and dropped, never raised."""

from __future__ import annotations

import random

import mido
import numpy as np
import pytest

from liveshtr.control.commands import Commands
from liveshtr.control.midi_protocol import Binding, MidiMap, MidiMapError, MidiProtocol, scale
from liveshtr.control.osc_protocol import OscProtocol
from liveshtr.live.params import Params

CC, NOTE, BEND = 0xB0, 0x90, 0xE0


def protocol(tempo: float | None = 100.0, **map_data) -> MidiProtocol:
    params = Params(8, tempo=tempo)
    return MidiProtocol(params, MidiMap.from_dict(map_data, params) if map_data else None)


def test_controllers_scale_to_each_range_and_a_straddling_range_has_its_centre_at_zero():
    m = protocol()
    m.handle([CC, 7, 127])
    assert m.params.get("gain") == 1.0
    m.handle([CC, 1, 0])
    assert m.params.get("temperature") == 0.0
    m.handle([CC, 1, 127])
    assert m.params.get("temperature") == 4.0
    for value, latent in ((0, -4.0), (64, 0.0), (127, 4.0)):
        m.handle([CC, 16, value])  # latent 0: -4..4
        assert m.params.get("latent")[0] == latent
    m.handle([CC, 31, 64])
    assert m.params.get("target")[7] == 0.0
    assert scale(32, 127, -4.0, 4.0) == -2.0 and scale(8192, 16383, -1.0, 3.0) == 0.0
    assert m.errors == 0 and m.applied == 7


def test_a_14_bit_pair_refines_its_msb_and_a_new_msb_starts_from_lsb_zero():
    m = protocol()
    m.handle([CC, 7, 64])  # gain, MSB
    coarse = m.params.get("gain")
    m.handle([CC, 7 + 32, 100])  # its LSB
    assert m.params.get("gain") == pytest.approx((64 * 128 + 100) / 16383)
    assert m.params.get("gain") > coarse
    m.handle([CC, 16, 127])
    m.handle([CC, 48, 127])
    assert m.params.get("latent")[0] == 4.0  # 16383: the top exactly
    m.handle([CC, 16, 64])
    assert m.params.get("latent")[0] == 0.0  # a new MSB: LSB 0, the centre exactly
    before = m.params.snapshot
    m.handle([CC, 40, 5])  # the LSB of controller 8, which nothing is bound to: no change
    assert m.params.snapshot is before


def test_the_pitch_wheel_at_rest_is_the_centre_and_its_ends_are_the_range():
    m = protocol()
    for lsb, msb, latent in ((0, 64, 0.0), (0x7F, 0x7F, 4.0), (0, 0, -4.0)):
        m.handle([BEND, lsb, msb])
        assert m.params.get("latent")[0] == latent


def test_a_button_presses_an_action_once_as_it_rises_through_64():
    m = protocol()
    resets = lambda: m.params.get("reset")  # noqa: E731
    m.handle([CC, 14, 127])
    assert resets() == 1
    m.handle([CC, 14, 100])  # still held
    m.handle([CC, 14, 127])
    assert resets() == 1
    m.handle([CC, 14, 0])
    m.handle([CC, 14, 127])
    assert resets() == 2
    m.handle([CC, 64, 127])  # the sustain pedal holds the sound
    assert m.params.get("freeze") == 1.0


def test_the_keyboard_spans_the_song():
    m = protocol()
    for note, prime in ((36, 0.0), (66, 0.5), (96, 1.0)):
        m.handle([NOTE, note, 100])
        assert m.params.get("prime") == prime
    m.handle([NOTE, 20, 100])  # below the keys
    m.handle([NOTE, 40, 0])  # velocity 0 is a note-off
    m.handle([0x80, 66, 0])
    assert m.params.get("prime") == 1.0
    assert m.ignored == 3
    m = protocol(notes="none")
    m.handle([NOTE, 66, 100])
    assert m.params.get("prime") == 0.5  # the default: notes do nothing


def test_learn_binds_the_next_controller_moved_and_unbinds_the_old_one():
    m = protocol()
    assert "latent/3" in m.learn("latent", 3)
    m.handle([CC, 74, 127])
    assert m.params.get("latent")[3] == 4.0
    assert m.map.cc[74] == Binding("latent", 3) and 19 not in m.map.cc  # CC 19 was latent 3 by default
    assert m.learning is None and m.learned == [("cc 74", Binding("latent", 3))]
    m.handle([CC, 19, 0])
    assert m.params.get("latent")[3] == 4.0  # the old controller no longer moves it
    m.learn("temperature")
    m.handle([BEND, 0, 0])
    assert m.map.bend == Binding("temperature") and m.params.get("temperature") == 0.0
    m.learn("gain")
    m.cancel_learn()
    m.handle([CC, 75, 127])
    assert 75 not in m.map.cc
    for control, index in (("nonsense", None), ("latent", None), ("latent", 8), ("gain", 0)):
        with pytest.raises(MidiMapError):
            m.learn(control, index)


def test_the_clock_sets_the_tempo_over_a_beat_of_ticks():
    m = protocol(tempo=100.0)
    tick = 60.0 / 120.0 / 24  # 120 beats a minute
    for i in range(24):
        m.handle([0xF8], i * tick)
    assert m.params.get("tempo") == 100.0  # not a whole beat yet
    m.handle([0xF8], 24 * tick)
    assert m.params.get("tempo") == pytest.approx(120.0)
    t0 = 24 * tick + 2.0  # the clock stopped for two seconds, then ran at 90
    for i in range(25):
        m.handle([0xF8], t0 + i * 60.0 / 90.0 / 24)
    assert m.params.get("tempo") == pytest.approx(90.0)
    no_clock = protocol(tempo=None)  # a model without a clock: the tempo is measured, nothing is set
    for i in range(30):
        assert not no_clock.handle([0xF8], i * tick)
    assert no_clock.clock_bpm == pytest.approx(120.0) and no_clock.errors == 0
    late = protocol(tempo=100.0)  # at 132, the beat's last tick 23 ms late (a busy machine): within 2 beats a minute
    tick = 60.0 / 132.0 / 24
    for i in range(25):
        late.handle([0xF8], i * tick + (0.023 if i == 24 else 0.0))
    assert late.params.get("tempo") == pytest.approx(132.0, abs=2.0)


def test_only_the_maps_channel_is_heard():
    m = protocol(channel=2)
    m.handle([CC | 0, 7, 0])  # channel 1
    assert m.params.get("gain") == 1.0
    m.handle([CC | 1, 7, 0])  # channel 2
    assert m.params.get("gain") == 0.0


def test_bad_messages_are_counted_and_dropped_without_a_change():
    m = protocol()
    before = m.params.snapshot
    bad = [[], [0x40, 1], [CC, 1], [CC, 1, 200], [CC, 1, 2, 3], [0xF4], [0xF5, 1], "ab", [BEND, -1, 0], None, [1.5]]
    for message in bad:
        assert m.handle(message) is False
    assert m.errors == len(bad) and m.last_error
    for _ in range(10000):  # a SysEx flood
        m.handle([0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7])
    m.handle([CC, 123, 0])  # all notes off: nothing here sounds by note
    assert m.params.snapshot is before and m.ignored == 10001


def test_running_status_is_counted_and_the_next_whole_message_applies():
    # ALSA, JACK and CoreMIDI hand over whole messages; data bytes that lean on an earlier status (running status
    # from a raw serial stream) are counted and dropped, and the stream goes on.
    m = protocol()
    for message in ([CC, 7, 0], [1, 127], [0xF8], [CC, 16, 0]):
        m.handle(message)
    assert m.params.get("gain") == 0.0 and m.params.get("temperature") == 1.0 and m.params.get("latent")[0] == -4.0
    assert m.errors == 1 and "without a status" in m.last_error


def test_random_bytes_never_raise_and_every_control_stays_in_its_range():
    m = protocol()
    rng = random.Random(1)
    parser = mido.Parser()
    for _ in range(3000):
        raw = [rng.randrange(256) for _ in range(rng.randrange(0, 5))]
        m.handle(raw, rng.random())  # whole messages, however wrong
        parser.feed(bytes(raw))  # and the same bytes as a stream
        for message in parser:
            m.handle(message.bytes(), rng.random())
    for p in m.params.table.values():
        value = np.atleast_1d(m.params.get(p.name))
        assert np.all((value >= p.low) & (value <= p.high)), p.name
    assert m.errors > 0 and m.applied > 0


def test_maps_from_json_round_trip_and_bad_ones_are_refused_in_one_line():
    params = Params(8, tempo=120.0)
    data = {"cc": {"21": "latent/2", "22": "temperature", "23": "panic"}, "bend": None, "keys": [48, 72]}
    m = MidiMap.from_dict(data, params)
    assert m.cc[21] == Binding("latent", 2) and m.bend is None and m.keys == (48, 72)
    assert MidiMap.from_dict(m.to_dict(), params) == m
    assert MidiMap.from_dict({}, params) == MidiMap.default(params)
    for bad, words in (
        ({"cc": {"21": "loudness"}}, "unknown control"),
        ({"cc": {"21": "latent"}}, "name one"),
        ({"cc": {"21": "latent/9"}}, "0..7"),
        ({"cc": {"121": "gain"}}, "0..119"),
        ({"cc": {"x": "gain"}}, "malformed"),
        ({"keys": [72, 48]}, "lower first"),
        ({"channel": 17}, "1..16"),
        ({"notes": "chords"}, "prime, scenes or none"),
        ({"knobs": {}}, "unknown key"),
        ([], "JSON object"),
    ):
        with pytest.raises(MidiMapError, match=words):
            MidiMap.from_dict(bad, params)
    assert 13 not in MidiMap.default(Params(8)).cc  # no clock, no tempo controller


def test_osc_learns_and_lists_the_map():
    params = Params(8)
    without = OscProtocol(Commands(params))
    ((address, (where, problem)),) = [tuple(r)[:2] for r in without.handle("/liveshtr/midi/learn", ["gain"])]
    assert address == "/liveshtr/error" and "--midi" in problem
    midi = MidiProtocol(params)
    osc = OscProtocol(Commands(params, midi=midi))
    (reply,) = osc.handle("/liveshtr/midi/learn", ["target", 2.0])  # Pd sends floats
    assert reply.address == "/liveshtr/midi/learning" and reply.args == ("target/2",)
    midi.handle([CC, 90, 0])
    rows = osc.handle("/liveshtr/midi/map", [])
    assert ("/liveshtr/midi/cc", (90, "target/2")) in [(r.address, r.args) for r in rows]
    assert rows[-1].address == "/liveshtr/midi/bend" and rows[-1].args == ("latent/0",)
    for args in ([], [3], ["latent"], ["latent", 1.5], ["latent", 2, 3]):
        (reply,) = osc.handle("/liveshtr/midi/learn", args)
        assert reply.address == "/liveshtr/error", args
    assert osc.handle("/liveshtr/midi/cancel", []) == []
    (reply,) = osc.handle("/liveshtr/midi/forget", [])
    assert reply.address == "/liveshtr/error"


def test_prime_jumps_and_scene_recalls_wait_for_the_clocks_bar(tmp_path):
    from tests.helpers import scenes_for

    params = Params(8, tempo=120.0)
    scenes = scenes_for(params, tmp_path / "scenes.json")
    params.set("mix", 0.9)
    scenes.save("B")
    params.set("mix", 0.0)
    m = MidiProtocol(params, MidiMap.from_dict({"quantize": "bar"}, params), scenes=scenes)
    tick = 60.0 / 120.0 / 24
    m.handle([0xFA], 0.0)  # start: the next tick is a downbeat
    t = 0.0
    for _ in range(30):  # past the first bar's downbeat
        m.handle([0xF8], t)
        t += tick
    m.handle([NOTE, 96, 100], t)  # the end of the song ...
    m.handle([0xC0, 0], t)  # ... and scene B: both wait for the next bar
    assert params.get("prime") == 0.5 and params.get("mix") == 0.0
    for i in range(30, 96):
        m.handle([0xF8], t)
        t += tick
        assert params.get("prime") == 0.5, i  # ticks 30..95: not yet
    m.handle([0xF8], t)  # tick 96: the second bar
    assert params.get("prime") == 1.0 and params.get("mix") == 0.9
    m.handle([NOTE, 36, 100], t + 1.0)  # the clock stopped a second ago: at once
    assert params.get("prime") == 0.0
    m.handle([0xF8], t + 2.0)
    m.handle([NOTE, 66, 100], t + 2.0)  # waits again ...
    m.handle([0xFC], t + 2.1)  # ... until the clock stops: then at once
    assert params.get("prime") == 0.5
    m.handle([0xF2, 8, 0], t + 3.0)  # song position: the 8th sixteenth (half a bar in)
    m.handle([0xF8], t + 3.0)
    m.handle([NOTE, 96, 100], t + 3.0)
    for i in range(47):
        m.handle([0xF8], t + 3.0 + (i + 1) * tick)
    assert params.get("prime") == 0.5  # tick 48+47 = 95
    m.handle([0xF8], t + 3.0 + 48 * tick)
    assert params.get("prime") == 1.0 and m.errors == 0
    with pytest.raises(MidiMapError, match="quantize"):
        MidiMap.from_dict({"quantize": "phrase"}, params)


def test_a_switch_of_model_fits_the_sets_map_to_the_new_table():
    learned = {"cc": {"20": "latent/4", "21": "temperature", "13": "tempo"}, "bend": "latent/6"}
    m = protocol(**learned)
    m.learn("mix")
    smaller = Params(4)  # four latent dimensions and no clock
    m.use(smaller, learned)
    assert m.params is smaller and m.learning is None
    assert 20 not in m.map.cc and 13 not in m.map.cc and m.map.bend is None  # nothing of this model to move
    m.handle([CC, 21, 0])
    m.handle([CC, 20, 127])
    m.handle([BEND, 0, 127])
    assert smaller.get("temperature") == 0.0 and m.errors == 0 and m.ignored == 2
    m.use(Params(8, tempo=90.0), None)  # no map given: the default one, for this model
    assert m.map.cc[13] == Binding("tempo") and m.map.cc[23] == Binding("latent", 7)


def test_a_placed_clock_tells_each_beat_of_the_bar_with_its_tempo():
    beats = []
    params = Params(8, tempo=100.0)
    m = MidiProtocol(params, on_beat=lambda beat, bpm, at: beats.append((beat, round(bpm, 3), at)))
    tick = 60.0 / 120.0 / 24
    for i in range(60):  # running, but from where? No Start, no song position: no beats told
        m.handle([0xF8], i * tick)
    assert beats == [] and m.clock_bpm == pytest.approx(120.0)
    m.handle([0xFA], 60 * tick)  # Start: the next tick is the downbeat
    for i in range(24 * 5):
        m.handle([0xF8], (61 + i) * tick)
    assert [b for b, _, _ in beats] == [0.0, 1.0, 2.0, 3.0, 0.0]
    assert all(bpm == 120.0 for _, bpm, _ in beats) and beats[1][2] == pytest.approx((61 + 24) * tick)
    beats.clear()
    m.handle([0xF2, 6, 0])  # song position: sixteenth 6 (beat 1 and a half); the beat after it is beat 2
    for i in range(24):
        m.handle([0xF8], (200 + i) * tick)
    assert [b for b, _, _ in beats] == [2.0]
    m.handle([0xB0, 7, 0])  # the map's clock setting does not change the others
    assert m.errors == 0
