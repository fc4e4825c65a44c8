"""The magnitude model's exported step matches PyTorch step after step, and its controls act as documented."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from liveshtr.config import DEFAULT_CLOCK, MagnitudeConfig
from liveshtr.sound.magnitude import clock_features
from liveshtr.training.export import export_onnx
from liveshtr.training.magnitude_model import MagnitudeModel, MagnitudeStep, clock, order_latents, step_shapes

STEPS = 200
FEATURES = 40


def small(layers: int, seed: int = 0, position: tuple[int, ...] = ()) -> tuple[MagnitudeModel, MagnitudeStep]:
    torch.manual_seed(seed)
    cfg = MagnitudeConfig(
        features=FEATURES, layers=layers, hidden=64, latent_dim=8, input_size=32, position_harmonics=position
    )
    model = MagnitudeModel(cfg).eval()
    with torch.no_grad():  # a decoder like a trained one (training starts it at zero)
        torch.nn.init.normal_(model.out.weight, std=0.1)
        torch.nn.init.normal_(model.out.bias, std=0.1)
    sharp = torch.where(torch.arange(FEATURES) < 24, 0.55, 1.0)
    step = MagnitudeStep(model, torch.randn(8) * 0.1, torch.rand(8) + 0.5, sharp).eval()
    return model, step


def test_the_clock_is_the_same_in_numpy_and_in_the_graph():
    beats = np.array([0.0, 0.25, 1.0, 2.5, 3.9, 17.3])
    sixteen = tuple(range(1, 17))
    for harmonics in (DEFAULT_CLOCK, sixteen):
        expected = clock_features(beats, harmonics)
        assert expected.shape == (6, 2 * len(harmonics))
        assert np.allclose(clock(torch.tensor(beats, dtype=torch.float32), harmonics).numpy(), expected, atol=1e-4)
        assert np.allclose(clock_features(beats + 4.0, harmonics), expected, atol=1e-4)  # a bar later: the same
    angle = 2 * np.pi * beats  # the default clock: sin and cos of the beat, the bar and the half beat in turn
    default = np.stack([np.sin(angle), np.cos(angle), np.sin(angle / 4), np.cos(angle / 4)], axis=1)
    assert np.allclose(clock_features(beats, DEFAULT_CLOCK)[:, :4], default, atol=1e-6)
    assert np.allclose(clock_features(beats, sixteen)[:, 6:8], clock_features(beats * 4, (1,)), atol=1e-4)


def test_any_pattern_of_sixteenths_is_a_linear_function_of_the_clock():
    """Why 16 harmonics: a drum pattern on the sixteenth-note grid (here a random one) is exactly a linear read-out
    of the clock at the grid's places; the default clock (the beat, the bar, the half beat) cannot express it."""
    rng = np.random.default_rng(0)
    places = np.arange(16) / 4.0  # the sixteenths of a 4-beat bar, in beats
    pattern = rng.random(16)
    for harmonics, fits in ((tuple(range(1, 17)), True), (DEFAULT_CLOCK, False)):
        design = np.concatenate([clock_features(places, harmonics), np.ones((16, 1))], axis=1)
        weights, *_ = np.linalg.lstsq(design, pattern, rcond=None)
        assert np.allclose(design @ weights, pattern, atol=1e-6) == fits


@pytest.mark.parametrize(("layers", "position"), [(1, ()), (3, ()), (2, (1, 2, 3))])
def test_onnx_step_matches_torch_over_200_steps(layers, position):
    _, graph = small(layers, position=position)
    shapes = step_shapes(graph.model.cfg)
    session = ort.InferenceSession(export_onnx(graph, shapes), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(MagnitudeStep.INPUTS) + (["position"] if position else [])
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
                **({"position": np.array([(0.9 + t * 0.003) % 1.0], np.float32)} if position else {}),
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


def test_a_model_with_a_position_input_hears_where_in_the_song_it_is():
    model, _ = small(1, position=(1, 2))
    x, beat, state = torch.randn(1, 1, FEATURES), torch.tensor([[1.0]]), model.initial_state(1)
    with torch.no_grad():
        early, _ = model.play(x, beat, state, position=torch.tensor([[0.1]]))
        late, _ = model.play(x, beat, state, position=torch.tensor([[0.6]]))
        around, _ = model.play(x, beat, state, position=torch.tensor([[1.1]]))
    assert (early - late).abs().max() > 1e-4  # another part of the song sounds different ...
    assert torch.allclose(early, around, atol=1e-5)  # ... and the song's end runs on into its start
    with pytest.raises(ValueError, match="position"):
        model.play(x, beat, state)  # a position input cannot be left out silently
    plain, _ = small(1)
    assert plain.inp.in_features == model.inp.in_features - 4  # sin and cos of each of the two harmonics


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


@pytest.mark.parametrize("share", [0.1, 0.3, 0.7])
def test_own_runs_cover_the_share_in_quarter_second_runs_and_never_the_first_frame(share):
    from liveshtr.training.fit import OWN_RUN, own_runs

    torch.manual_seed(1)
    runs = own_runs(40, 5000, share)
    assert not runs[:, 0].any()
    assert abs(float(runs.float().mean()) - share) < 0.02
    starts = int((runs[:, 1:] & ~runs[:, :-1]).sum())
    assert abs(float(runs.sum()) / starts - OWN_RUN) < 0.1 * OWN_RUN  # mean run length
    assert not torch.equal(runs[0], runs[1])  # each stream has its own runs
    assert own_runs(3, 50, 1.0)[:, 1:].all() and not own_runs(3, 50, 0.0).any()


@pytest.mark.parametrize("position", [(), (1, 2)])
def test_own_samples_play_on_from_the_frames_before_them(position):
    """Every replaced frame is what the model plays after all the frames before it (the song's and its own, through
    a state carried from before the sequence); the others stay the song's. Checked at temperature 0, against
    running the LSTM afresh over everything before each frame."""
    from liveshtr.config import TrainConfig
    from liveshtr.training.fit import MagnitudeObjective

    model, _ = small(2, position=position)
    torch.manual_seed(5)
    x, beat = torch.randn(3, 120, FEATURES), torch.rand(3, 120) * 4
    where = torch.rand(3, 120) if position else None
    state = (torch.randn(2, 3, 64) * 0.5, torch.randn(2, 3, 64) * 0.5)
    replaced = torch.zeros(3, 120, dtype=torch.bool)
    replaced[0, [*range(5, 30), 31, *range(60, 61), *range(100, 120)]] = True
    replaced[1, 40:70] = True  # stream 2 plays none of its own

    def mean_only(h, frames):  # temperature 0: the decoded mean at the prior's mean
        return model.decode(h, model.prior(h)[0], frames)[0]

    mixed = model.play_along(x, beat, state, replaced, where, temperature=0.0)
    assert torch.equal(mixed[~replaced], x[~replaced])
    with torch.no_grad():
        for b, t in replaced.nonzero().tolist():
            h, _ = model.lstm(model.project(mixed[:, :t], beat[:, :t], None if where is None else where[:, :t]), state)
            assert torch.allclose(mixed[b, t], mean_only(h[:, -1], mixed[:, t - 1])[b], atol=1e-5), (b, t)
    with pytest.raises(ValueError, match="first frame"):
        model.play_along(x, beat, state, torch.ones(3, 120, dtype=torch.bool), where)
    objective = MagnitudeObjective(TrainConfig(own_samples=1.0))
    a, b = (objective.own_inputs(model, x, beat, state, where) for _ in range(2))
    assert torch.isfinite(a).all() and torch.equal(a[:, 0], x[:, 0])
    assert not torch.allclose(a[:, 1:], b[:, 1:])  # sampled at temperature 1, not the mean
