"""The magnitude model: log-magnitude features, a beat clock, a recurrent latent and a per-feature Gaussian.

    features_t, clock_{t+1}, position_{t+1} -> input projection -> LSTM x layers -> h_t
    h_t -> prior (mu, logvar) -> z  (training: posterior from h_t and features_{t+1})
    h_t, z -> decoder -> (+ skip * features_t) -> mean and log-variance of every feature of frame t+1

Why this form (the sound issue's measurements): predicting real and imaginary parts with a squared error averaged
the phase away, and Gaussian innovations in that space were noise. Log-magnitudes are predictable; the phase stage
(`liveshtr.sound.phase`) makes partials from them. A per-feature Gaussian trained by its negative log-likelihood
keeps spectra peaky when sampled (a squared error would blur every note into its neighbours). The latent carries
what is new in a frame as one event (an attack touches every band at once, which independent per-feature noise
cannot make), and it is what the performer steers. The clock tells the model where in the bar it is (sin and cos
of harmonics of the bar: by default the beat, the bar and the half beat), so a beat needs no memory of the last
one. With the bar's first 16 harmonics and training partly on its own playing (`own_samples`) a drum groove's
model leans on it (docs/notebook.md). The position (sin and cos of harmonics of the song's length) tells
it which part of the song it plays, so a prime from the chorus goes on as the chorus and the song's form unfolds.
A per-feature skip carries the current frame into the next one's mean (frames overlap by 75%, so most of the next
frame is the current one): without it the LSTM had to squeeze 192 features through its input projection and
predicted the next frame worse than repeating the last one does.

The latent is conditional as in a VRNN: a posterior that sees the next frame is trained against the prior of the
LSTM's head with a balanced KL (the prior pulled more strongly than the posterior, both weighted above the
evidence bound so that the latent carries events rather than every detail), and on stage the prior is
sampled. `MagnitudeStep` is the single step that is exported to ONNX; the engine never imports this file.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from liveshtr.config import MagnitudeConfig
from liveshtr.sound.tempo import BEATS_PER_BAR

LOGVAR_RANGE = (-7.0, 3.0)  # per-feature log-variance of the output, in normalised units
LATENT_LOGVAR_RANGE = (-10.0, 4.0)


def kl_divergence(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) summed over latent dimensions: (..., L) -> (...)."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1.0).sum(-1)


def cycles(turns: torch.Tensor, harmonics: tuple[int, ...]) -> torch.Tensor:
    """Turns of a cycle (...,) -> (..., 2 * len(harmonics)): sin and cos of each harmonic in turn."""
    k = torch.tensor(harmonics, dtype=turns.dtype, device=turns.device)
    angles = turns.unsqueeze(-1) * (2 * math.pi) * k  # (..., harmonics)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)


def clock(beat: torch.Tensor, harmonics: tuple[int, ...]) -> torch.Tensor:
    """Beat counts (...,) -> (..., 2 * len(harmonics)), as `liveshtr.sound.magnitude.clock_features`."""
    return cycles(beat / BEATS_PER_BAR, harmonics)


class Pass(NamedTuple):
    """What a teacher-forced pass returns (B, T, ...); the KL is returned twice with the same value and different
    gradients (balancing): `kl_posterior` reaches only the posterior, `kl_prior` only the prior and the LSTM."""

    mean: torch.Tensor  # (B, T, F) predicted next frames, decoded from the posterior's z
    logvar: torch.Tensor  # (B, T, F)
    mu_q: torch.Tensor  # (B, T, L) posterior mean
    mu_p: torch.Tensor  # (B, T, L) prior mean and log-variance
    logvar_p: torch.Tensor
    kl_posterior: torch.Tensor  # (B, T)
    kl_prior: torch.Tensor
    state: tuple[torch.Tensor, torch.Tensor]
    h: torch.Tensor  # (B, T, H) the LSTM outputs everything above was decoded from


class MagnitudeModel(nn.Module):
    """The training-time model: whole sequences, teacher-forced."""

    def __init__(self, cfg: MagnitudeConfig):
        super().__init__()
        self.cfg = cfg
        n, h, L = cfg.features, cfg.hidden, cfg.latent_dim
        self.inp = nn.Linear(n + 2 * len(cfg.clock_harmonics) + 2 * len(cfg.position_harmonics), cfg.input_size)
        self.lstm = nn.LSTM(cfg.input_size, h, num_layers=cfg.layers, batch_first=True)
        self.head = nn.Linear(h, 2 * L)  # prior -> (mu, logvar)
        self.posterior = nn.Sequential(nn.Linear(h + n, h), nn.GELU(), nn.Linear(h, 2 * L))  # training only
        self.mid = nn.Linear(h + L, h)
        self.out = nn.Linear(h, 2 * n)  # -> (mean, logvar) of every feature
        self.skip = nn.Parameter(torch.full((n,), 0.9))  # per feature: how much of the current frame carries on
        with torch.no_grad():  # start from "the current frame carries on, give or take one spread"
            self.out.weight.zero_()
            self.out.bias.zero_()

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.cfg.layers, batch, self.cfg.hidden)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def project(self, x: torch.Tensor, beat: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        """Features (..., F), the beat count of the frame to predict (...) and, for a model with a position input,
        where that frame lies in its song (..., 0..1) -> the LSTM's input."""
        return torch.tanh(self.inp(torch.cat([x, self.timing(beat, position)], dim=-1)))

    def timing(self, beat: torch.Tensor, position: torch.Tensor | None = None) -> torch.Tensor:
        """What the model is told of the time beside each frame: the clock, and where a model with a position
        input is in the song (..., 2 * harmonics)."""
        parts = [clock(beat, self.cfg.clock_harmonics)]
        if self.cfg.position_harmonics:
            if position is None:
                raise ValueError("this model has a position input: give the frames' positions in the song")
            parts.append(cycles(position, self.cfg.position_harmonics))
        return torch.cat(parts, dim=-1)

    def prior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(h).chunk(2, dim=-1)
        return mu, logvar.clamp(*LATENT_LOGVAR_RANGE)

    def decode(self, h: torch.Tensor, z: torch.Tensor, x: torch.Tensor | None = None):
        """LSTM outputs (..., H), latents (..., L) and the current frames (..., F; None leaves the skip out) ->
        mean and log-variance of the next frame (..., F)."""
        mean, logvar = self.out(F.gelu(self.mid(torch.cat([h, z], dim=-1)))).chunk(2, dim=-1)
        if x is not None:
            mean = mean + self.skip * x
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def forward(self, x, beat, y, state, sample: bool = True, position=None) -> Pass:
        """Teacher-forced pass: features x and next frames y (B, T, F), beat counts and song positions of the next
        frames (B, T)."""
        h, state = self.lstm(self.project(x, beat, position), state)  # (B, T, H)
        mu_p, logvar_p = self.prior(h)
        mu_q, logvar_q = self.posterior(torch.cat([h, y], dim=-1)).chunk(2, dim=-1)
        logvar_q = logvar_q.clamp(*LATENT_LOGVAR_RANGE)
        z = mu_q + torch.exp(0.5 * logvar_q) * torch.randn_like(mu_q) if sample else mu_q
        mean, logvar = self.decode(h, z, x)
        kl_posterior = kl_divergence(mu_q, logvar_q, mu_p.detach(), logvar_p.detach())
        kl_prior = kl_divergence(mu_q.detach(), logvar_q.detach(), mu_p, logvar_p)
        return Pass(mean, logvar, mu_q, mu_p, logvar_p, kl_posterior, kl_prior, state, h)

    @torch.no_grad()
    def play_along(self, x, beat, state, replaced, position=None, temperature: float = 1.0) -> torch.Tensor:
        """Inputs (B, T, F) with the frames where `replaced` (B, T) is set replaced by what the model plays there
        (at temperature 1, as trained), each from the frame before it: inside a run of replaced frames the model
        plays on its own output, as on stage. The frames before the first replaced one go through the LSTM in one
        call, the rest frame by frame (the first frame cannot be replaced: a run starts from a frame of the song).

        Each layer steps with `torch.lstm_cell` (nn.LSTM's overhead is per call), all the streams together: stepping
        each stream alone through its own runs (the song's frames between them in one call) cost more, since a
        step of one stream costs about what a step of 16 does."""
        if bool(replaced[:, 0].any()):
            raise ValueError("the first frame cannot be replaced")
        when = replaced.any(dim=0).nonzero().flatten()
        out = x.clone()
        if len(when) == 0:
            return out
        first, last = int(when[0]), int(when[-1])
        at = (lambda t: None) if position is None else (lambda t: position[:, t])
        h, (hs, cs) = self.lstm(self.project(x[:, :first], beat[:, :first], at(slice(0, first))), state)
        h, hs, cs = h[:, -1], list(hs), list(cs)
        steps = last + 1 - first
        eps_z = temperature * torch.randn(steps, x.shape[0], self.cfg.latent_dim, device=x.device)
        eps_x = temperature * torch.randn(steps, *x.shape[::2], device=x.device)
        layers = [
            tuple(getattr(self.lstm, f"{kind}_l{i}") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            for i in range(self.cfg.layers)
        ]
        for t in range(first, last + 1):
            played = self._sample(h, out[:, t - 1], eps_z[t - first], eps_x[t - first])
            out[:, t] = torch.where(replaced[:, t, None], played, x[:, t])
            if t < last:
                h = self.project(out[:, t], beat[:, t], at(t))
                for i, weights in enumerate(layers):
                    hs[i], cs[i] = torch.lstm_cell(h, (hs[i], cs[i]), *weights)
                    h = hs[i]
        return out

    def _sample(self, h, x, eps_z, eps_x) -> torch.Tensor:
        """One next frame (B, F) from LSTM outputs h (B, H) after frames x (B, F), with the latent's and the
        features' noise (their unit normals times the temperature)."""
        mu, logvar = self.prior(h)
        mean, logvar_x = self.decode(h, mu + torch.exp(0.5 * logvar) * eps_z, x)
        return mean + torch.exp(0.5 * logvar_x) * eps_x

    def play(self, x, beat, state, position=None) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """What the model predicts when playing at temperature 0 (z = prior mean): the next frames' means."""
        h, state = self.lstm(self.project(x, beat, position), state)
        mu_p, _ = self.prior(h)
        return self.decode(h, mu_p, x)[0], state


def gaussian_nll(y: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per value, without the constant: 0.5 * (logvar + (y - mean)^2 / var)."""
    return 0.5 * (logvar + (y - mean).pow(2) * torch.exp(-logvar))


class MagnitudeStep(nn.Module):
    """One autoregressive step with the performer's controls, as exported to ONNX (batch of 1).

        z    = (1 - latent_mix) * (mu + temperature * sigma * eps + latent_offset * spread)
               + latent_mix * (mean + z_user * spread)
        next = mean(h, z) + temperature * sharpness * sd(h, z) * noise

    `sharpness` (per feature, from the bundle) samples the pitch bins more narrowly than the bands above them, so
    partials stay partials. `eps` and `noise` come from outside, so a seed reproduces a render and the graph has no
    random op. `beat` is the beat count of the frame being predicted (the engine's clock); `position`, the last
    input and only in a model with a position input, where that frame lies in the song (0..1).
    """

    INPUTS = ("frame", "beat", "h_in", "c_in", "eps", "noise", "temperature", "latent_offset", "latent_mix", "z_user")
    OUTPUTS = ("next_frame", "h_out", "c_out", "mu", "z")

    def __init__(self, model: MagnitudeModel, latent_mean, latent_spread, sharpness):
        super().__init__()
        self.model = model
        cfg = model.cfg
        self.INPUTS = step_inputs(cfg)
        self.lstm = nn.LSTM(cfg.input_size, cfg.hidden, num_layers=cfg.layers)  # sequence-first: no transposes
        self.lstm.load_state_dict(model.lstm.state_dict())
        self.register_buffer("latent_mean", torch.as_tensor(latent_mean).reshape(1, -1).float())
        self.register_buffer("latent_spread", torch.as_tensor(latent_spread).reshape(1, -1).float())
        self.register_buffer("sharpness", torch.as_tensor(sharpness).reshape(1, -1).float())

    def forward(
        self, frame, beat, h_in, c_in, eps, noise, temperature, latent_offset, latent_mix, z_user, position=None
    ):
        # frame, noise (1, F); beat, temperature, latent_mix, position (1,); h_in, c_in (layers, 1, H); eps... (1, L)
        x = self.model.project(frame, beat, position).unsqueeze(0)  # (1 step, 1 stream, input_size)
        h, (h_out, c_out) = self.lstm(x, (h_in, c_in))
        mu, logvar = self.model.prior(h[0])  # (1, L)
        z_model = mu + temperature * torch.exp(0.5 * logvar) * eps + latent_offset * self.latent_spread
        z = (1.0 - latent_mix) * z_model + latent_mix * (self.latent_mean + z_user * self.latent_spread)
        mean, logvar_x = self.model.decode(h[0], z, frame)
        return mean + temperature * self.sharpness * torch.exp(0.5 * logvar_x) * noise, h_out, c_out, mu, z


def step_inputs(cfg: MagnitudeConfig) -> tuple[str, ...]:
    """The step graph's inputs in order: a model with a position input has it last."""
    return MagnitudeStep.INPUTS + (("position",) if cfg.position_harmonics else ())


def step_shapes(cfg: MagnitudeConfig) -> dict[str, list[int]]:
    """Names and shapes of the step graph's inputs and outputs, as recorded in model.json."""
    state, latent, frame = [cfg.layers, 1, cfg.hidden], [1, cfg.latent_dim], [1, cfg.features]
    position = {"position": [1]} if cfg.position_harmonics else {}
    return {
        **position,
        "frame": frame,
        "beat": [1],
        "h_in": state,
        "c_in": state,
        "eps": latent,
        "noise": frame,
        "temperature": [1],
        "latent_offset": latent,
        "latent_mix": [1],
        "z_user": latent,
        "next_frame": frame,
        "h_out": state,
        "c_out": state,
        "mu": latent,
        "z": latent,
    }


@torch.no_grad()
def order_latents(model: MagnitudeModel, h: torch.Tensor, mu: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """Permute the latent dimensions in place so that dimension 0 changes the predicted frame most.

    Importance of dimension i: mean squared change of the decoded mean when z moves by one spread along i, at the
    model's own LSTM outputs `h` (N, H) and latents `mu` (N, L). Returns the permutation (new -> old index)."""
    L = model.cfg.latent_dim
    base = model.decode(h, mu)[0]
    importance = torch.empty(L)
    for i in range(L):
        moved = mu.clone()
        moved[:, i] += spread[i]
        importance[i] = (model.decode(h, moved)[0] - base).pow(2).mean()
    order = torch.argsort(importance, descending=True)
    rows = torch.cat([order, order + L])  # mu rows, then logvar rows
    for layer in (model.head, model.posterior[2]):
        layer.weight.copy_(layer.weight[rows])
        layer.bias.copy_(layer.bias[rows])
    H = model.cfg.hidden
    model.mid.weight[:, H:] = model.mid.weight[:, H:][:, order]
    return order
