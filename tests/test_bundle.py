"""Loading a bundle refuses what the engine must not play: unknown versions, missing or mismatched files."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from liveshtr.bundle import FORMAT_FIELDS, BundleError, load_bundle


@pytest.fixture
def bundle_copy(trained, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(trained[0], out)
    return out


def edit_meta(path, change):
    meta = json.loads((path / "model.json").read_text())
    change(meta)
    (path / "model.json").write_text(json.dumps(meta))


def test_unknown_format_version(bundle_copy):
    edit_meta(bundle_copy, lambda m: m.update(format_version=99))
    with pytest.raises(BundleError, match="format version 99 is not supported"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize(
    "older, said",
    [
        ({"format_version": 1}, "format 1 bundle (the coefficient model)"),
        ({"format_version": 2, "kind": "coefficients"}, "format 2 bundle (coefficients model)"),
        ({"format_version": 2, "kind": "magnitude"}, "format 2 bundle (magnitude model)"),
    ],
)
def test_an_older_bundle_is_refused_in_one_line_naming_its_kind_and_version(bundle_copy, older, said):
    edit_meta(bundle_copy, lambda m: m.update(older))
    with pytest.raises(BundleError, match=re.escape(said) + ".* reads format 3: retrain it") as caught:
        load_bundle(bundle_copy)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("section, key", FORMAT_FIELDS)
def test_a_format_3_bundle_without_one_of_its_fields_is_named_as_malformed(bundle_copy, section, key):
    edit_meta(bundle_copy, lambda m: m[section].pop(key))
    with pytest.raises(BundleError, match=f"incomplete or malformed .*{key}"):
        load_bundle(bundle_copy)


def test_a_bundle_says_its_tempo_and_its_eq_covers_every_bin(bundle_copy):
    bundle = load_bundle(bundle_copy)
    assert bundle.tempo and bundle.output_gain.shape == (bundle.frames.n_bins(bundle.audio.samplerate),)


@pytest.mark.parametrize("name", ["model.onnx", "model.int8.onnx", "primes.npy", "model.json"])
def test_missing_file(bundle_copy, name):
    (bundle_copy / name).unlink()
    with pytest.raises(BundleError, match="missing"):
        load_bundle(bundle_copy)


def test_file_from_another_model(bundle_copy):
    primes = np.load(bundle_copy / "primes.npy")
    np.save(bundle_copy / "primes.npy", primes[::-1])
    with pytest.raises(BundleError, match="primes.npy does not match model.json"):
        load_bundle(bundle_copy)


def test_inconsistent_shapes(bundle_copy):
    edit_meta(bundle_copy, lambda m: m["latent"].update(mean=[0.0]))
    with pytest.raises(BundleError, match="latent mean has shape"):
        load_bundle(bundle_copy)


@pytest.mark.parametrize(
    "features, message",
    [
        ({"pitch_step": 2}, "model dim has shape {dim}, expected {other}"),  # the features would be other bins
        ({"pitch_hz": 1500.0}, "model dim has shape {dim}, expected {other}"),
        ({"pitch_step": 0}, "incomplete or malformed .*pitch_step"),
        ({"bands": "many"}, "incomplete or malformed"),
    ],
)
def test_features_that_are_not_the_models_are_refused(bundle_copy, features, message):
    """A magnitude bundle's feature layout must give the model's own number of features: an engine that read its
    values as other bins would play another spectrum."""
    layout = load_bundle(bundle_copy).layout
    dim, other = layout.n_features, layout.n_features - layout.pitch_bins // 2  # half the pitch bins
    edit_meta(bundle_copy, lambda m: m["features"].update(features))
    with pytest.raises(BundleError, match=message.format(dim=dim, other=other)):
        load_bundle(bundle_copy)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="no such model folder"):
        load_bundle(tmp_path / "nothing")
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(BundleError, match="unreadable"):
        load_bundle(tmp_path)


def test_tampered_int8_graph_is_refused(bundle_copy):
    data = bytearray((bundle_copy / "model.int8.onnx").read_bytes())
    data[-10] ^= 0xFF
    (bundle_copy / "model.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.int8.onnx does not match"):
        load_bundle(bundle_copy)


def test_int8_step_tracks_the_float_step(trained):
    """The int8 graph (the CPU default) predicts the same next frames as the float graph, from the song's own frames
    and with the state fed back: the magnitude model's log features to ~2e-3 relative squared error (a twentieth
    of a spread; it samples each feature with a spread of 0.55 or more), at worst ~1e-2."""
    from liveshtr.live.runtime import StepModel

    bundle = load_bundle(trained[0])
    models = [StepModel(bundle, precision=p) for p in ("float32", "int8")]
    assert [m.precision for m in models] == ["float32", "int8"]
    errors = []
    for prime in bundle.primes[::4]:
        for m in models:
            m.reset_state()
        for frame in prime:
            out = []
            for m in models:
                m.feeds["frame"][0] = frame
                out.append(m.step()["next_frame"].copy())
            errors.append(np.mean((out[0] - out[1]) ** 2) / np.mean(out[0] ** 2))
    assert np.median(errors) < 5e-3 and max(errors) < 2e-2, (np.median(errors), max(errors))
