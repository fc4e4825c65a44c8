"""Nothing non-finite, no runaway and no sample over the ceiling leaves the generator."""

from __future__ import annotations

import numpy as np

from liveshtr.live.generator import Controls, Generator
from liveshtr.live.safety import SafetyStage


def test_ceiling_holds_for_loud_bursts_and_quiet_audio_passes():
    stage = SafetyStage(24000, 256)
    rng = np.random.default_rng(0)
    quiet = 0.1 * np.sin(2 * np.pi * 440 * np.arange(256 * 200) / 24000)
    loud = rng.normal(scale=20.0, size=256 * 50)
    signal = np.concatenate([quiet, loud, quiet]).astype(np.float32)
    out = np.concatenate([stage.process(signal[i : i + 256]).copy() for i in range(0, len(signal), 256)])
    assert np.isfinite(out).all()
    assert np.abs(out).max() <= stage.ceiling
    # Quiet audio before the burst is untouched but for the DC blocker.
    head = slice(2400, 256 * 200)
    assert np.max(np.abs(out[head] - quiet[head])) < 0.01
    # After the burst the gain recovers within about a second.
    assert np.abs(out[-2400:]).max() > 0.09


def test_diverging_model_is_reset_and_output_stays_safe(trained):
    from liveshtr.bundle import load_bundle

    bundle = load_bundle(trained[0])
    generator = Generator(bundle, seed=0)
    controls = Controls.for_bundle(bundle)
    real_step = generator.model.step
    poisoned = {"count": 0}

    def step():
        out = real_step()
        poisoned["count"] += 1
        if poisoned["count"] in (50, 51, 120):
            out["next_frame"][:] = np.nan if poisoned["count"] != 120 else 1e9
        return out

    generator.model.step = step
    audio = np.concatenate([generator.next_hop(controls).copy() for _ in range(400)])
    assert generator.resets == 3
    assert np.isfinite(audio).all() and np.abs(audio).max() <= generator.safety.ceiling
    assert np.sqrt(np.mean(audio[-24000:] ** 2)) > 1e-3  # it plays again after the resets
