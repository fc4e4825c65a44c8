"""The model: next-frame prediction with a stacked LSTM and a variational latent (PyTorch, training side only).

    frame (normalised) -> input projection -> LSTM x layers -> VAE head (mu, logvar) -> z -> decoder -+
    frame ----------------------------------------------------> continuation (per-bin, banded) ----+-> next frame

With 75% overlap most of the next frame is the current one shifted by a hop. In the FFT or DCT domain that shift
is nearly local in frequency (a per-bin rotation smeared by the window over a few bins), so a banded per-bin
linear map carries it for O(dim) parameters; it is initialised by least squares on the song. Everything the song
adds beyond that continuation (new notes, rhythm, timbre) must pass through the latent z, so the performer's
controls (temperature, latent offsets, a mix towards a chosen z) act on the very thing that makes the music, and
the KL term cannot be satisfied by ignoring z.

The latent is conditional (VRNN-style): during training a posterior network sees the true next frame and encodes
what is new in it, and the LSTM's head learns the prior over that innovation given the past; KL(posterior ||
prior) ties them. At play time the prior is sampled (temperature scales its spread), so the model invents the
song's kind of onsets and changes instead of averaging them away. The posterior is never exported.

`StepGraph` is the single step that is exported to ONNX, with the recurrent state and the controls as explicit
inputs; the engine never imports this file.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from liveshtr.config import ModelConfig

ENVELOPE_BANDS = 24  # log-spaced bands of the z-driven innovation level


class Continuation(nn.Module):
    """Per-bin linear prediction of the next frame from the current frame's neighbouring bins.

    Bin k of the output (C values) is a learned linear function of bins k-band..k+band of the input (C values
    each), with weights of its own for every bin: (n_bins, C, (2*band+1)*C) parameters in all.
    """

    def __init__(self, n_bins: int, channels: int, band: int):
        super().__init__()
        self.n_bins, self.channels, self.band = n_bins, channels, band
        self.weight = nn.Parameter(torch.zeros(n_bins, channels, (2 * band + 1) * channels))
        width = 2 * band + 1
        shifts = torch.eye(width).repeat(channels, 1).unsqueeze(1)  # (C*width, 1, width): one-hot taps
        self.register_buffer("shifts", shifts, persistent=False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (..., dim) -> neighbourhoods (..., n_bins, (2*band+1)*C)."""
        nb, c, b = self.n_bins, self.channels, self.band
        bins = x.unflatten(-1, (c, nb)).transpose(-1, -2)  # (..., nb, C): FFT layout is [re..., im...]
        padded = F.pad(bins, (0, 0, b, b))  # (..., nb + 2b, C)
        return torch.cat([padded[..., j : j + nb, :] for j in range(2 * b + 1)], dim=-1)  # (..., nb, K)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.einsum("...nk,nck->...cn", self.features(x), self.weight)  # (..., C, nb)
        return out.flatten(-2)  # (..., dim)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """`forward` for frames (B, dim) as exported: the neighbourhoods come from one grouped convolution with
        one-hot taps (channel c'*width + j holds bin n+j-band of channel c'), then one multiply-sum. Onnxruntime
        runs this ~10x faster than the einsum form, whose slicing and gathering cost more than the arithmetic."""
        nb, c, b = self.n_bins, self.channels, self.band
        width = 2 * b + 1
        feats = F.conv1d(x.view(-1, c, nb), self.shifts, padding=b, groups=c)  # (B, C*width, nb)
        # weight (nb, C, K) with k = j*C + c'  ->  (C, C'*width, nb) in the convolution's channel order
        weight = self.weight.view(nb, c, width, c).permute(1, 3, 2, 0).reshape(c, c * width, nb)
        return (feats.unsqueeze(1) * weight).sum(2).flatten(1)  # (B, C, nb) -> (B, dim)

    @torch.no_grad()
    def fit_least_squares(self, frames: torch.Tensor, ridge: float = 1e-3, chunk: int = 2048) -> None:
        """Initialise from consecutive frames (T, dim) by per-bin ridge regression of frame t+1 on frame t.

        The normal equations are accumulated over chunks of frames, so memory stays at a few chunk-sized arrays.
        """
        k = (2 * self.band + 1) * self.channels
        gram = torch.zeros(self.n_bins, k, k, dtype=torch.float64)
        rhs = torch.zeros(self.n_bins, k, self.channels, dtype=torch.float64)
        for start in range(0, len(frames) - 1, chunk):
            block = frames[start : start + chunk + 1]
            feats = self.features(block[:-1]).transpose(0, 1).contiguous()  # (nb, n, K)
            target = block[1:].unflatten(-1, (self.channels, self.n_bins)).permute(2, 0, 1)  # (nb, n, C)
            gram += (feats.transpose(1, 2) @ feats).double()  # float32 per chunk, summed in float64
            rhs += (feats.transpose(1, 2) @ target).double()
        gram += ridge * (len(frames) - 1) * torch.eye(k, dtype=torch.float64)
        self.weight.copy_(torch.linalg.solve(gram, rhs).transpose(1, 2).float())  # (nb, C, K)


class TeacherForced(NamedTuple):
    """What a teacher-forced pass returns; latents (B, T, L), KL per frame (B, T).

    The KL is returned twice with the same value and different gradients (KL balancing): `kl_posterior` reaches
    only the posterior (a weak pull, weighted by beta, that keeps the latent informative), `kl_prior` reaches only
    the prior and the LSTM below it (a strong pull, so what is sampled on stage follows what the song does next).
    """

    pred: torch.Tensor  # (B, T, dim) predicted next frames, decoded from the posterior's z
    mu_q: torch.Tensor  # posterior mean: the latents the decoder learns to play
    mu_p: torch.Tensor  # prior mean and log-variance: what is sampled on stage
    logvar_p: torch.Tensor
    kl_posterior: torch.Tensor
    kl_prior: torch.Tensor
    state: tuple[torch.Tensor, torch.Tensor]


class SongModel(nn.Module):
    """The training-time model: whole sequences at once, teacher-forced."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.inp = nn.Linear(cfg.dim, cfg.hidden)
        self.lstm = nn.LSTM(cfg.hidden, cfg.hidden, num_layers=cfg.layers, batch_first=True)
        self.head = nn.Linear(cfg.hidden, 2 * cfg.latent_dim)  # prior -> (mu, logvar)
        self.posterior = nn.Sequential(  # (LSTM output, next frame) -> (mu, logvar); training only
            nn.Linear(2 * cfg.hidden, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, 2 * cfg.latent_dim)
        )
        self.dec1 = nn.Linear(cfg.latent_dim, cfg.hidden)
        self.dec2 = nn.Linear(cfg.hidden, cfg.dim)
        self.continuation = Continuation(cfg.n_bins, cfg.channels, cfg.band)
        # Per-band level of the innovation, set by z: an offset on a latent dimension then changes how loud each
        # frequency band's new material is (a constant complex offset alone would mostly cancel in the loop).
        band_of_bin = band_index(cfg.n_bins, ENVELOPE_BANDS)
        self.register_buffer("band_of_bin", band_of_bin.repeat(cfg.channels), persistent=False)  # (dim,)
        self.envelope = nn.Linear(cfg.latent_dim, int(band_of_bin.max()) + 1)
        nn.init.zeros_(self.envelope.weight)
        nn.init.zeros_(self.envelope.bias)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        shape = (self.cfg.layers, batch, self.cfg.hidden)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    def run_lstm(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """Frames (B, T, dim) -> LSTM outputs (B, T, H) and the new state."""
        return self.lstm(torch.tanh(self.inp(x)), state)

    def prior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(h).chunk(2, dim=-1)  # (B, T, L) each
        return mu, logvar.clamp(-12.0, 6.0)

    def encode(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]):
        """Frames (B, T, dim) -> prior mu, logvar (B, T, L) and the new state."""
        h, state = self.run_lstm(x, state)
        mu, logvar = self.prior(h)
        return mu, logvar, state

    def innovation(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (..., L) -> what the next frame adds to the continuation (..., dim)."""
        level = torch.exp(self.envelope(z).clamp(-6.0, 3.0))[..., self.band_of_bin]  # (..., dim)
        return level * self.dec2(F.gelu(self.dec1(z)))

    def decode(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Latents (..., L) and current frames (..., dim) -> next frames (..., dim)."""
        return self.continuation(x) + self.innovation(z)

    def decode_step(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """`decode` for one frame (1, L), (1, dim), in the form that runs fastest once exported."""
        return self.continuation.step(x) + self.innovation(z)

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], sample: bool = True
    ) -> TeacherForced:
        """Teacher-forced pass on inputs x and next frames y (B, T, dim); z from the posterior (its mean if not
        `sample`)."""
        h, state = self.run_lstm(x, state)  # (B, T, H)
        mu_p, logvar_p = self.prior(h)  # (B, T, L)
        mu_q, logvar_q = self.posterior(torch.cat([h, torch.tanh(self.inp(y))], dim=-1)).chunk(2, dim=-1)
        logvar_q = logvar_q.clamp(-12.0, 6.0)
        z = mu_q + torch.exp(0.5 * logvar_q) * torch.randn_like(mu_q) if sample else mu_q  # (B, T, L)
        kl_posterior = kl_divergence(mu_q, logvar_q, mu_p.detach(), logvar_p.detach())
        kl_prior = kl_divergence(mu_q.detach(), logvar_q.detach(), mu_p, logvar_p)
        return TeacherForced(self.decode(z, x), mu_q, mu_p, logvar_p, kl_posterior, kl_prior, state)


def band_index(n_bins: int, n_bands: int) -> torch.Tensor:
    """Bin -> band for up to `n_bands` log-spaced bands (empty bands dropped): (n_bins,) long."""
    edges = torch.logspace(0, math.log10(n_bins), n_bands + 1)
    raw = torch.bucketize(torch.arange(n_bins).clamp_min(1).float(), edges[1:-1], right=True)
    return torch.unique(raw, return_inverse=True)[1]


def kl_divergence(mu_q, logvar_q, mu_p, logvar_p) -> torch.Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) summed over latent dimensions: (..., L) -> (...)."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1.0).sum(-1)


class StepGraph(nn.Module):
    """One autoregressive step with the performer's controls, as exported to ONNX (batch of 1).

    Latent controls are in units of each dimension's spread over the training data, so +-3 covers the song:
        z_model = mu + temperature * sigma * eps + latent_offset * spread
        z       = (1 - latent_mix) * z_model + latent_mix * (mean + z_user * spread)
    `eps` comes from outside, so generation is reproducible from a seed and the graph has no random op.
    """

    INPUTS = ("frame", "h_in", "c_in", "eps", "temperature", "latent_offset", "latent_mix", "z_user")
    OUTPUTS = ("next_frame", "h_out", "c_out", "mu", "z")

    def __init__(self, model: SongModel, latent_mean: torch.Tensor, latent_spread: torch.Tensor):
        super().__init__()
        self.model = model
        # The same LSTM laid out sequence-first: with one step of one stream the layouts hold the same numbers,
        # and the export needs no transposes around the LSTM node.
        cfg = model.cfg
        self.lstm = nn.LSTM(cfg.hidden, cfg.hidden, num_layers=cfg.layers)
        self.lstm.load_state_dict(model.lstm.state_dict())
        self.register_buffer("latent_mean", latent_mean.reshape(1, -1).float())  # (1, L)
        self.register_buffer("latent_spread", latent_spread.reshape(1, -1).float())  # (1, L)

    def forward(self, frame, h_in, c_in, eps, temperature, latent_offset, latent_mix, z_user):
        # frame (1, dim); h_in, c_in (layers, 1, H); eps, latent_offset, z_user (1, L); temperature, latent_mix (1,)
        x = torch.tanh(self.model.inp(frame)).unsqueeze(0)  # (1 step, 1 stream, H)
        h, (h_out, c_out) = self.lstm(x, (h_in, c_in))
        mu, logvar = self.model.prior(h[0])  # (1, L) each
        z_model = mu + temperature * torch.exp(0.5 * logvar) * eps + latent_offset * self.latent_spread
        z_target = self.latent_mean + z_user * self.latent_spread
        z = (1.0 - latent_mix) * z_model + latent_mix * z_target  # (1, L)
        return self.model.decode_step(z, frame), h_out, c_out, mu, z


def tensor_shapes(cfg: ModelConfig) -> dict[str, list[int]]:
    """Names and shapes of the step graph's inputs and outputs, as recorded in model.json."""
    state = [cfg.layers, 1, cfg.hidden]
    latent = [1, cfg.latent_dim]
    return {
        "frame": [1, cfg.dim],
        "h_in": state,
        "c_in": state,
        "eps": latent,
        "temperature": [1],
        "latent_offset": latent,
        "latent_mix": [1],
        "z_user": latent,
        "next_frame": [1, cfg.dim],
        "h_out": state,
        "c_out": state,
        "mu": latent,
        "z": latent,
    }


@torch.no_grad()
def order_latents_by_importance(model: SongModel, mu: torch.Tensor, spread: torch.Tensor) -> torch.Tensor:
    """Permute the latent dimensions in place so that dimension 0 changes the output most.

    Importance of dimension i: mean squared change of the decoded frame when z moves by one spread along i,
    measured at the model's own latents `mu` (N, L). The continuation path does not depend on z, so only the
    latent decoder is compared. Returns the permutation applied (new -> old index).
    """
    L = model.cfg.latent_dim
    latent_part = model.innovation
    base = latent_part(mu)  # (N, dim)
    importance = torch.empty(L)
    for i in range(L):
        moved = mu.clone()
        moved[:, i] += spread[i]
        importance[i] = (latent_part(moved) - base).pow(2).mean()
    order = torch.argsort(importance, descending=True)
    head_rows = torch.cat([order, order + L])  # mu rows then logvar rows
    model.head.weight.copy_(model.head.weight[head_rows])
    model.head.bias.copy_(model.head.bias[head_rows])
    model.dec1.weight.copy_(model.dec1.weight[:, order])
    model.envelope.weight.copy_(model.envelope.weight[:, order])
    return order
