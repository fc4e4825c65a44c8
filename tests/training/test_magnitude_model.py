"""The magnitude model's exported step matches PyTorch step after step, and its controls act as documented."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from liveshtr.config import MagnitudeConfig
from liveshtr.sound.magnitude import clock_features
from liveshtr.training.export import export_onnx
from liveshtr.training.magnitude_model import MagnitudeModel, MagnitudeStep, clock, order_latents, step_shapes

STEPS = 200
FEATURES = 40


def small(layers: int, seed: int = 0) -> tuple[MagnitudeModel, MagnitudeStep]:
    torch.manual_seed(seed)
    cfg = MagnitudeConfig(features=FEATURES, layers=layers, hidden=64, latent_dim=8, input_size=32)
    model = MagnitudeModel(cfg).eval()
    with torch.no_grad():  # a decoder like a trained one (training starts it at zero)
        torch.nn.init.normal_(model.out.weight, std=0.1)
        torch.nn.init.normal_(model.out.bias, std=0.1)
    sharp = torch.where(torch.arange(FEATURES) < 24, 0.55, 1.0)
    step = MagnitudeStep(model, torch.randn(8) * 0.1, torch.rand(8) + 0.5, sharp).eval()
    return model, step


def test_the_clock_is_the_same_in_numpy_and_in_the_graph():
    beats = np.array([0.0, 0.25, 1.0, 2.5, 3.9, 17.3])
    expected = clock_features(beats)
    assert np.allclose(clock(torch.tensor(beats, dtype=torch.float32)).numpy(), expected, atol=1e-5)
    assert np.allclose(clock_features(beats + 4.0), expected, atol=1e-4)  # a bar later: the same clock


@pytest.mark.parametrize("layers", [1, 3])
def test_onnx_step_matches_torch_over_200_steps(layers):
    _, graph = small(layers)
    shapes = step_shapes(graph.model.cfg)
    session = ort.InferenceSession(export_onnx(graph, shapes), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(MagnitudeStep.INPUTS)
    assert [o.name for o in session.get_outputs()] == list(MagnitudeStep.OUTPUTS)
    for tensor in (*session.get_inputs(), *session.get_outputs()):
        assert list(tensor.shape) == shapes[tensor.name]
    rng = np.random.default_rng(1)
    L = graph.model.cfg.latent_dim
    controls = {
        "temperature": np.array([0.8], np.float32),
        "latent_offset": rng.normal(size=(1, L)).astype(np.float32),
        "latent_mix": np.array([0.3], np.float32),
        "z_user": rng.normal(size=(1, L)).astype(np.float32),
    }
    state = np.zeros(shapes["h_in"], np.float32)
    feeds = {"frame": rng.normal(size=(1, FEATURES)).astype(np.float32), "h_in": state, "c_in": state}
    torch_feeds = {k: torch.from_numpy(v.copy()) for k, v in feeds.items()}
    worst = 0.0
    with torch.no_grad():
        for t in range(STEPS):
            per_step = {
                "beat": np.array([(t * 0.037) % 4.0], np.float32),
                "eps": rng.normal(size=(1, L)).astype(np.float32),
                "noise": rng.normal(size=(1, FEATURES)).astype(np.float32),
            }
            ort_out = session.run(None, {**feeds, **controls, **per_step})
            torch_out = graph(**torch_feeds, **{k: torch.from_numpy(v) for k, v in {**controls, **per_step}.items()})
            for a, b in zip(ort_out, torch_out, strict=True):
                worst = max(worst, float(np.abs(a - b.numpy()).max()))
            feeds = dict(zip(("frame", "h_in", "c_in"), ort_out[:3], strict=True))
            torch_feeds = dict(zip(("frame", "h_in", "c_in"), torch_out[:3], strict=True))
    assert np.isfinite(ort_out[0]).all()
    assert worst <= 1e-4


def test_controls_act_as_documented():
    model, graph = small(2)
    L, H = 8, 64
    frame, h = torch.randn(1, FEATURES), torch.zeros(2, 1, H)
    zero, one, beat = torch.zeros(1, L), torch.ones(1), torch.tensor([1.5])
    noise = torch.randn(1, FEATURES)
    with torch.no_grad():
        out, _, _, mu, z = graph(frame, beat, h, h, zero + 1, noise, torch.zeros(1), zero, torch.zeros(1), zero)
        assert torch.allclose(z, mu)  # temperature 0: z is the prior mean and the frame its decoded mean
        h1, _ = graph.lstm(model.project(frame, beat).unsqueeze(0), (h, h))
        assert torch.allclose(out, model.decode(h1[0], mu, frame)[0], atol=1e-5)
        offset = torch.zeros(1, L)
        offset[0, 2] = 1.5
        _, _, _, mu, z = graph(frame, beat, h, h, zero, noise, one, offset, torch.zeros(1), zero)
        assert torch.allclose(z - mu, offset * graph.latent_spread, atol=1e-6)  # offsets are in spread units
        z_user = torch.full((1, L), -1.0)
        _, _, _, _, z = graph(frame, beat, h, h, zero, noise, one, offset, one, z_user)
        assert torch.allclose(z, graph.latent_mean + z_user * graph.latent_spread, atol=1e-6)  # full mix
        # the feature noise is scaled by the temperature and, on the pitch bins, by the sharpness
        quiet, _, _, _, _ = graph(frame, beat, h, h, zero, zero[:, :1].expand(1, FEATURES), one, zero, one, zero)
        loud, _, _, _, _ = graph(frame, beat, h, h, zero, torch.ones(1, FEATURES), one, zero, one, zero)
        step = (loud - quiet)[0]
        _, logvar = model.decode(h1[0], graph.latent_mean)
        sd = torch.exp(0.5 * logvar[0])
        assert torch.allclose(step[:24], 0.55 * sd[:24], atol=1e-5)
        assert torch.allclose(step[24:], sd[24:], atol=1e-5)


def test_clock_changes_the_prediction():
    model, graph = small(1)
    with torch.no_grad():
        x = torch.randn(1, 1, FEATURES)
        state = model.initial_state(1)
        a, _ = model.play(x, torch.tensor([[0.0]]), state)
        b, _ = model.play(x, torch.tensor([[0.5]]), state)
        c, _ = model.play(x, torch.tensor([[4.0]]), state)
    assert (a - b).abs().max() > 1e-4  # off the beat sounds different ...
    assert torch.allclose(a, c, atol=1e-5)  # ... and a bar later is the same place


def test_latent_order_puts_the_strongest_dimension_first():
    model, _ = small(1)
    H = model.cfg.hidden
    with torch.no_grad():
        model.mid.weight[:, H:] *= 0.01
        model.mid.weight[:, H + 5] *= 300.0  # dimension 5 dominates the decoder
        h = torch.randn(300, H)
        mu = torch.randn(300, 8)
        head_row = model.head.weight[5].clone()
        order = order_latents(model, h, mu, torch.ones(8))
    assert int(order[0]) == 5
    assert torch.equal(model.head.weight[0], head_row)  # the prior's mean row moved with it
    weight = model.mid.weight.detach()
    assert float(weight[:, H].abs().mean()) > 50 * float(weight[:, H + 1].abs().mean())
