"""The exported ONNX step matches the PyTorch step, step after step with the state fed back."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from liveshtr.config import FrameConfig, ModelConfig
from liveshtr.training.export import export_onnx, stabilise_continuation
from liveshtr.training.model import SongModel, StepGraph, order_latents_by_importance, tensor_shapes

STEPS = 200


def small_model(domain: str, layers: int, seed: int = 0) -> SongModel:
    torch.manual_seed(seed)
    frames = FrameConfig(domain=domain, frame=256, hop=64)
    cfg = ModelConfig(dim=frames.dim(24000), layers=layers, hidden=64, latent_dim=8, channels=frames.channels)
    model = SongModel(cfg).eval()
    with torch.no_grad():  # a continuation path like a trained one: a damped copy of each bin
        centre = cfg.band * cfg.channels
        for c in range(cfg.channels):
            model.continuation.weight[:, c, centre + c] = 0.9
    return model


@pytest.mark.parametrize("domain", ["dct", "fft"])
@pytest.mark.parametrize("layers", [1, 3])
def test_onnx_step_matches_torch_over_200_steps(domain, layers):
    model = small_model(domain, layers)
    cfg = model.cfg
    latent_mean, spread = torch.randn(cfg.latent_dim) * 0.1, torch.rand(cfg.latent_dim) + 0.5
    graph = StepGraph(model, latent_mean, spread).eval()
    shapes = tensor_shapes(cfg)
    session = ort.InferenceSession(export_onnx(graph, shapes), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(StepGraph.INPUTS)
    assert [o.name for o in session.get_outputs()] == list(StepGraph.OUTPUTS)
    for tensor in (*session.get_inputs(), *session.get_outputs()):
        assert list(tensor.shape) == shapes[tensor.name]

    rng = np.random.default_rng(1)
    controls = {
        "temperature": np.array([0.8], np.float32),
        "latent_offset": rng.normal(size=(1, cfg.latent_dim)).astype(np.float32),
        "latent_mix": np.array([0.3], np.float32),
        "z_user": rng.normal(size=(1, cfg.latent_dim)).astype(np.float32),
    }
    state = np.zeros(shapes["h_in"], np.float32)
    ort_feeds = {"frame": rng.normal(size=(1, cfg.dim)).astype(np.float32), "h_in": state, "c_in": state}
    torch_feeds = {k: torch.from_numpy(v.copy()) for k, v in ort_feeds.items()}
    worst = 0.0
    with torch.no_grad():
        for _ in range(STEPS):
            eps = rng.normal(size=(1, cfg.latent_dim)).astype(np.float32)
            ort_out = session.run(None, {**ort_feeds, **controls, "eps": eps})
            torch_out = graph(
                torch_feeds["frame"],
                torch_feeds["h_in"],
                torch_feeds["c_in"],
                torch.from_numpy(eps),
                *(torch.from_numpy(controls[k]) for k in ("temperature", "latent_offset", "latent_mix", "z_user")),
            )
            for a, b in zip(ort_out, torch_out, strict=True):
                worst = max(worst, float(np.abs(a - b.numpy()).max()))
            ort_feeds = dict(zip(("frame", "h_in", "c_in"), ort_out[:3], strict=True))
            torch_feeds = dict(zip(("frame", "h_in", "c_in"), torch_out[:3], strict=True))
    assert np.isfinite(ort_out[0]).all()
    assert worst <= 1e-4


def test_controls_act_as_documented():
    model = small_model("fft", 1)
    cfg = model.cfg
    mean, spread = torch.zeros(cfg.latent_dim), torch.full((cfg.latent_dim,), 2.0)
    graph = StepGraph(model, mean, spread).eval()
    frame, h = torch.randn(1, cfg.dim), torch.zeros(1, 1, cfg.hidden)
    zero, one = torch.zeros(1, cfg.latent_dim), torch.ones(1)
    with torch.no_grad():
        _, _, _, mu, z = graph(frame, h, h, zero + 1, torch.zeros(1), zero, torch.zeros(1), zero)
        assert torch.allclose(z, mu)  # temperature 0: z is the prior mean, noise ignored
        offset = torch.zeros(1, cfg.latent_dim)
        offset[0, 2] = 1.5
        _, _, _, mu, z = graph(frame, h, h, zero, one, offset, torch.zeros(1), zero)
        assert torch.allclose(z - mu, offset * 2.0)  # offsets are in spread units
        z_user = torch.full((1, cfg.latent_dim), -1.0)
        _, _, _, _, z = graph(frame, h, h, zero, one, offset, one, z_user)
        assert torch.allclose(z, mean + z_user * 2.0)  # full mix: the performer's z alone


def test_latent_order_puts_the_strongest_dimension_first():
    model = small_model("dct", 1)
    with torch.no_grad():
        model.dec1.weight.mul_(0.01)
        model.dec1.weight[:, 5] *= 300.0  # dimension 5 dominates the decoder
    mu = torch.randn(500, model.cfg.latent_dim)
    order = order_latents_by_importance(model, mu, torch.ones(model.cfg.latent_dim))
    assert int(order[0]) == 5
    assert float(model.dec1.weight[:, 0].abs().mean()) > 50 * float(model.dec1.weight[:, 1].abs().mean())


def test_exported_continuation_can_only_decay():
    model = small_model("dct", 1)
    with torch.no_grad():
        model.continuation.weight.normal_(0.0, 0.5)  # a map with growing modes, as a DCT fit can produce
    operator = model.continuation(torch.eye(model.cfg.dim)).detach().numpy()
    assert np.abs(np.linalg.eigvals(operator)).max() > 1.0
    scale = stabilise_continuation(model)
    operator = model.continuation(torch.eye(model.cfg.dim)).detach().numpy()
    assert scale < 1.0 and np.abs(np.linalg.eigvals(operator)).max() <= 0.98 + 1e-6


@pytest.mark.parametrize("domain", ["dct", "fft"])
def test_exported_continuation_form_equals_the_training_form(domain):
    """The step graph's gather form of the banded map computes what training's einsum form computes,
    edges included."""
    model = small_model(domain, 1)
    with torch.no_grad():
        model.continuation.weight.normal_()
        x = torch.randn(1, model.cfg.dim)
        assert torch.allclose(model.continuation.step(x), model.continuation(x), atol=1e-5)


def test_step_graph_computes_what_the_training_model_computes():
    """The exported step (sequence-first LSTM copy, convolution form of the continuation) is the training model's
    own encode + decode, one frame at a time."""
    model = small_model("fft", 2)
    cfg = model.cfg
    graph = StepGraph(model, torch.zeros(cfg.latent_dim), torch.ones(cfg.latent_dim)).eval()
    L = cfg.latent_dim
    with torch.no_grad():
        frame = torch.randn(1, cfg.dim)
        state = (torch.randn(cfg.layers, 1, cfg.hidden), torch.randn(cfg.layers, 1, cfg.hidden))
        zeros = torch.zeros(1, L)
        out, h, c, mu, z = graph(frame, *state, zeros, torch.zeros(1), zeros, torch.zeros(1), zeros)
        mu_ref, _, (h_ref, c_ref) = model.encode(frame.unsqueeze(1), state)
        assert torch.allclose(mu, mu_ref[:, 0], atol=1e-5) and torch.allclose(z, mu, atol=1e-6)
        assert torch.allclose(h, h_ref, atol=1e-5) and torch.allclose(c, c_ref, atol=1e-5)
        assert torch.allclose(out, model.decode(mu_ref[:, 0], frame), atol=1e-4)
