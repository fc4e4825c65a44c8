"""Feedback: changes by anyone reach every listener once, and telemetry measures what the callback played."""

from __future__ import annotations

import numpy as np
import pytest

from liveshtr.control.telemetry import FLOOR_DB, Feedback, Spectrum
from tests.helpers import make_engine


def test_spectrum_reads_a_full_scale_sine_at_0_dbfs_in_its_band():
    spectrum = Spectrum(48000)
    t = np.arange(4096) / 48000
    for hz in (100.0, 1000.0, 10000.0):
        bands = spectrum(np.sin(2 * np.pi * hz * t).astype(np.float32))
        edges = np.geomspace(spectrum.low_hz, spectrum.high_hz, spectrum.bands + 1)
        band = int(np.searchsorted(edges, hz) - 1)
        assert max(bands) == bands[band] or bands[band] >= 250
        assert max(bands) >= 250  # within ~2 dB of 0 dBFS (window scalloping)
        bin_hz = 48000 / 2048
        far = [
            b
            for lo, b in zip(edges[:-1], bands, strict=True)
            if abs(lo - hz) > 8 * bin_hz and abs(np.log2(lo / hz)) >= 1
        ]
        assert max(far) < 128  # 50 dB below: the leakage of a Hann window stays near the tone
    assert spectrum(np.zeros(100, dtype=np.float32)) == [0] * spectrum.bands
    assert spectrum.describe()["floor_db"] == FLOOR_DB


class Recorder:
    def __init__(self):
        self.changes, self.telemetries = [], []

    def publish_changes(self, changes):
        self.changes.append(changes)

    def publish_telemetry(self, telemetry):
        self.telemetries.append(telemetry)


class Broken:
    def publish_changes(self, changes):
        raise OSError("gone")

    publish_telemetry = publish_changes


def test_changes_are_diffed_and_telemetry_follows_the_callback(bundle):
    engine = make_engine(bundle)
    recorder = Recorder()
    feedback = Feedback(engine, engine.params, [Broken(), recorder], errors=lambda: 3)
    assert feedback.changes() == {}
    engine.params.set("temperature", 2.0)
    engine.params.set("latent", 1.0, index=2)
    engine.params.set("temperature", 2.5)  # two changes to one control between ticks: the last one is sent
    assert feedback.changes() == {"temperature": 2.5, "latent": [0.0, 0.0, 1.0] + [0.0] * 5}
    assert feedback.changes() == {}
    engine.render(0.5)
    t = feedback.telemetry()
    assert t["played_s"] == pytest.approx(0.5, abs=0.01) and t["errors"] == 3
    assert -40 < t["rms_db"] < t["peak_db"] <= -0.9  # the demo plays, under the ceiling
    assert t["step_us"] > 0 and len(t["spectrum"]) == feedback.spectrum.bands and max(t["spectrum"]) > 100
    assert feedback.telemetry()["peak_db"] == FLOOR_DB  # nothing played since: the meters fall
    feedback._tell("publish_telemetry", t)
    assert recorder.telemetries == [t] and feedback.failures == 1  # a broken listener does not stop the others


def test_a_change_made_before_the_feedback_thread_exists_is_still_published(bundle):
    """serve's surfaces take in messages before the feedback thread starts: a subscriber that got the state
    first must still hear what changed next (a race a busy machine made visible)."""
    engine = make_engine(bundle)
    since = engine.params.snapshot  # when the servers opened
    engine.params.set("mix", 0.75)  # an early datagram
    assert Feedback(engine, engine.params, []).changes() == {}  # measured from now: lost
    assert Feedback(engine, engine.params, [], since=since).changes() == {"mix": 0.75}
