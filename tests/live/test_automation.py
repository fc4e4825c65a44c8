"""Automation files: timed control changes applied at the produced time, every line checked before any sound."""

from __future__ import annotations

import json
import re

import pytest

from liveshtr.errors import LiveshtrError
from liveshtr.live.automation import Event, Schedule, load_schedule
from liveshtr.live.params import Params

L = 8


def write(tmp_path, *lines: str | dict, name: str = "set.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


def test_events_apply_once_at_the_first_hop_at_or_after_their_time(tmp_path):
    params = Params(L)
    path = write(
        tmp_path,
        {"time": 0.5, "name": "gain", "value": 0.25},
        {"time": 1.0, "name": "latent", "index": 3, "value": 2.0},
        {"time": 1.0, "name": "target", "value": [0.5] * L},
        {"time": 2.0, "name": "reset"},
    )
    schedule = load_schedule(path, params)
    schedule.apply_due(0.0, params)
    schedule.apply_due(0.49, params)
    assert params.get("gain") == 1.0  # nothing is due before its time
    schedule.apply_due(0.5, params)  # a hop that starts exactly at the time
    assert params.get("gain") == 0.25 and params.get("latent")[3] == 0.0
    params.set("gain", 0.75)  # a performer moves it after the event
    schedule.apply_due(0.99, params)
    assert params.get("gain") == 0.75  # an event applies once, never again
    schedule.apply_due(1.3, params)  # the first hop after 1.0
    assert params.get("latent")[3] == 2.0 and list(params.get("target")) == [0.5] * L
    schedule.apply_due(5.0, params)
    schedule.apply_due(6.0, params)
    assert params.get("reset") == 1.0  # one press, however many hops follow
    assert params.get("gain") == 0.75


def test_a_late_hop_applies_everything_that_came_due_in_file_order(tmp_path):
    params = Params(L)
    path = write(
        tmp_path,
        {"time": 3.0, "name": "mix", "value": 1.0},
        {"time": 1.0, "name": "mix", "value": 0.2},
        {"time": 1.0, "name": "mix", "value": 0.7},
        {"time": 2.0, "name": "temperature", "value": 2.0},
    )
    schedule = load_schedule(path, params)
    assert [e.time for e in schedule.events] == [1.0, 1.0, 2.0, 3.0]  # sorted by time, same times in file order
    schedule.apply_due(2.5, params)
    assert params.get("mix") == 0.7 and params.get("temperature") == 2.0
    schedule.apply_due(3.0, params)
    assert params.get("mix") == 1.0


def test_due_hands_out_each_event_once():
    events = [Event(2.0, "gain", 0.1), Event(0.0, "mix", 0.5), Event(2.0, "reset")]
    schedule = Schedule(events)
    assert schedule.due(-1.0) == []
    assert schedule.due(0.0) == [events[1]]
    assert schedule.due(1.9) == []
    assert schedule.due(2.0) == [events[0], events[2]]
    assert schedule.due(100.0) == []
    assert schedule.due(0.0) == []  # time going back hands nothing out again


def test_values_are_clamped_when_applied_as_a_control_surface_would(tmp_path):
    params = Params(L)
    schedule = load_schedule(write(tmp_path, {"time": 0, "name": "temperature", "value": 99}), params)
    schedule.apply_due(0.0, params)
    assert params.get("temperature") == 4.0


def test_loading_a_file_checks_it_without_touching_the_live_table(tmp_path):
    params = Params(L)
    held = params.snapshot
    load_schedule(write(tmp_path, {"time": 0, "name": "gain", "value": 0.0}, {"time": 0, "name": "panic"}), params)
    assert params.snapshot is held


def test_comments_and_blank_lines_are_skipped_and_still_counted(tmp_path):
    params = Params(L)
    path = write(
        tmp_path,
        "# intro",
        "",
        "   ",
        '  {"time": 1, "name": "gain", "value": 0.5}  ',
        "# the drop",
        '{"time": 2, "name": "volume", "value": 1}',
    )
    with pytest.raises(LiveshtrError, match=f"^{re.escape(f'--controls {path}:6:')} unknown control 'volume'"):
        load_schedule(path, params)
    assert load_schedule(write(tmp_path, "# nothing yet", "", name="empty.jsonl"), params).events == []


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not JSON"),
        ('{"time": 1, "name": "gain", "value": 1} trailing', "not JSON"),
        ("[1, 2]", 'expected {"time": seconds, "name": control, "value": ...}'),
        ('"gain"', 'expected {"time"'),
        ('{"name": "gain", "value": 1}', 'expected {"time"'),
        ('{"time": 1, "value": 1}', 'expected {"time"'),
        ('{"time": -0.5, "name": "gain", "value": 1}', "time must be a number of seconds >= 0, got -0.5"),
        ('{"time": "1:30", "name": "gain", "value": 1}', "time must be a number of seconds >= 0, got '1:30'"),
        ('{"time": true, "name": "gain", "value": 1}', "time must be a number of seconds >= 0, got True"),
        ('{"time": NaN, "name": "gain", "value": 1}', "time must be a number of seconds >= 0, got nan"),
        ('{"time": Infinity, "name": "gain", "value": 1}', "time must be a number of seconds >= 0, got inf"),
        ('{"time": null, "name": "gain", "value": 1}', "time must be a number of seconds >= 0, got None"),
        ('{"time": 1, "name": "volume", "value": 1}', "unknown control 'volume'; known: gain"),
        ('{"time": 1, "name": "gain", "value": "loud"}', "gain: 'loud' is not a number"),
        ('{"time": 1, "name": "gain", "value": NaN}', "gain: nan is not a finite number"),
        ('{"time": 1, "name": "gain", "value": null}', "gain: None is not a number"),
        ('{"time": 1, "name": "gain", "value": 1, "index": 0}', "gain: takes no index"),
        ('{"time": 1, "name": "latent", "value": 1, "index": 8}', r"latent: index 8 out of range 0\.\.7"),
        ('{"time": 1, "name": "latent", "value": 1, "index": 1.0}', r"latent: index 1\.0 out of range"),
        ('{"time": 1, "name": "latent", "value": [1, 2]}', r"latent: expected 8 values \(or one for all\), got 2"),
        ('{"time": 1, "name": "target", "value": [1, 2], "index": 0}', "target: expected one number, got 2"),
    ],
)
def test_a_malformed_line_is_refused_with_its_line_number(tmp_path, line, message):
    """Every line is checked up front, so a bad one fails before any sound; the error names file and line."""
    params = Params(L)
    path = write(tmp_path, {"time": 0, "name": "gain", "value": 0.5}, "# fine so far", line)
    with pytest.raises(LiveshtrError) as info:
        load_schedule(path, params)
    text = str(info.value)
    assert text.startswith(f"--controls {path}:3: "), text
    assert "\n" not in text
    assert re.search(message, text), text


def test_a_file_that_cannot_be_read_is_a_one_line_error(tmp_path):
    params = Params(L)
    binary = tmp_path / "set.jsonl"
    binary.write_bytes(b'{"time": 0, "name": "gain", "value": 1}\n\xff\xfe\n')
    for path, what in [
        (tmp_path / "missing.jsonl", "FileNotFoundError"),
        (tmp_path, "IsADirectoryError"),
        (binary, "UnicodeDecodeError"),
    ]:
        with pytest.raises(LiveshtrError) as info:
            load_schedule(path, params)
        assert str(info.value) == f"--controls {path}: cannot read it ({what})"


def test_the_file_is_checked_against_the_tables_latent_size(tmp_path):
    path = write(tmp_path, {"time": 0, "name": "latent", "value": 1.0, "index": 5})
    load_schedule(path, Params(8))
    with pytest.raises(LiveshtrError, match=r":1: latent: index 5 out of range 0\.\.3"):
        load_schedule(path, Params(4))


def test_tempo_can_be_automated_on_a_model_with_a_clock(tmp_path):
    params = Params(L, tempo=150.0)
    schedule = load_schedule(write(tmp_path, {"time": 1.0, "name": "tempo", "value": 120.0}), params)
    schedule.apply_due(1.0, params)
    assert params.get("tempo") == 120.0
