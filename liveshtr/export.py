"""Export: a trained model -> the single-step ONNX graph and a complete, versioned bundle.

Order of work: latent statistics on the training data, latent dimensions sorted by how much they change the
sound, the step graph exported to ONNX in memory, then model.onnx, primes.npy and model.json (last) written
atomically, the bundle loaded back exactly as the engine will load it, and the preview rendered through that
ONNX graph, never through torch.
"""

from __future__ import annotations

import copy
import io
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from liveshtr.atomic import atomic_path
from liveshtr.audio import Song, write_audio
from liveshtr.bundle import Bundle, load_bundle, write_bundle_core
from liveshtr.config import AudioConfig, FrameConfig, TrainConfig
from liveshtr.dataset import FrameData
from liveshtr.generator import Controls, Generator
from liveshtr.model import SongModel, StepGraph, order_latents_by_importance, tensor_shapes
from liveshtr.train import TrainResult

ONNX_OPSET = 17
N_PRIMES = 32  # seed windows spread evenly through the song
PRIME_FRAMES = 24  # frames per seed window (a quarter second at the default hop)
PREVIEW_S = 20.0

TENSOR_DOCS = {
    "frame": "current normalised frame (the previous step's next_frame, or a prime frame)",
    "h_in": "LSTM hidden state of every layer (zeros to start)",
    "c_in": "LSTM cell state of every layer (zeros to start)",
    "eps": "standard normal noise for the latent sample",
    "temperature": "scale of the sampled part of z (0: z = mu)",
    "latent_offset": "added to z, in units of each dimension's spread",
    "latent_mix": "0: the model's z, 1: the performer's z_user",
    "z_user": "the performer's z, in spread units around the latent mean",
    "next_frame": "predicted next normalised frame",
    "h_out": "new hidden state",
    "c_out": "new cell state",
    "mu": "latent mean at this step (before controls)",
    "z": "latent actually decoded",
}


@torch.no_grad()
def latent_statistics(model: SongModel, train: np.ndarray, max_frames: int = 20000) -> torch.Tensor:
    """The posterior's latent means (N, L) over the training frames: the latents the decoder learned to play."""
    model.eval()
    frames = torch.from_numpy(train[: max_frames + 1]).unsqueeze(0)  # (1, N + 1, dim)
    _, mu_q, _, _, _ = model(frames[:, :-1], frames[:, 1:], model.initial_state(1), sample=False)
    return mu_q[0]  # (N, L)


def export_onnx(graph: StepGraph, shapes: dict[str, list[int]]) -> bytes:
    """The step graph as ONNX bytes, one file with weights inside."""
    graph.eval()
    args = tuple(torch.zeros(shapes[name]) for name in StepGraph.INPUTS)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and LSTM batch-size notes
        torch.onnx.export(
            graph,
            args,
            buf,
            input_names=list(StepGraph.INPUTS),
            output_names=list(StepGraph.OUTPUTS),
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return buf.getvalue()


def pick_primes(song_frames: list[np.ndarray], n_primes: int = N_PRIMES, length: int = PRIME_FRAMES):
    """Seed windows evenly spread over all songs: (P, length, dim) and their positions 0..1."""
    total = sum(len(f) for f in song_frames)
    starts = np.linspace(0, total - length - 1, n_primes).astype(int)
    offsets = np.cumsum([0] + [len(f) for f in song_frames])
    primes, positions = [], []
    for start in starts:
        i = int(np.searchsorted(offsets, start, side="right") - 1)
        local = min(start - offsets[i], len(song_frames[i]) - length)
        primes.append(song_frames[i][local : local + length])
        positions.append(float(start / total))
    return np.stack(primes), positions


def plot_loss(path: Path, result: TrainResult) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    h = result.history
    epochs = np.arange(1, len(h.train) + 1)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(epochs, h.train, label="train (reconstruction, sampled z)")
    ax.plot(epochs, h.val, label="validation loss (reconstruction + beta KL)")
    ax.plot(epochs, h.val_mse, label="validation next-frame error (playing, z = prior mean)")
    ax.axhline(result.baselines["repeat_last"], color="grey", ls="--", label="baseline: repeat last frame")
    ax.axhline(result.baselines["mean_frame"], color="grey", ls=":", label="baseline: mean frame")
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE per normalised coefficient")
    ax.set_title("liveshtr training")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def plot_spectrograms(path: Path, song: np.ndarray, preview: np.ndarray, samplerate: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from scipy import signal

    fig, axes = plt.subplots(2, 1, figsize=(9, 6), dpi=100, sharex=True, sharey=True)
    for ax, x, title in ((axes[0], song, "song (training audio)"), (axes[1], preview, "preview (through ONNX)")):
        f, t, s = signal.spectrogram(x, fs=samplerate, nperseg=1024, noverlap=768)
        ax.pcolormesh(t, f, 10 * np.log10(s + 1e-10), shading="auto", vmin=-110, vmax=-20, cmap="magma")
        ax.set_title(title)
        ax.set_ylabel("Hz")
    axes[1].set_xlabel("seconds")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def export_bundle(
    out: Path,
    result: TrainResult,
    data: FrameData,
    songs: list[Song],
    audio: AudioConfig,
    frames: FrameConfig,
    train_cfg: TrainConfig,
) -> Bundle:
    """Write the whole bundle for the best model into `out` and return it as loaded back from disk."""
    model = copy.deepcopy(result.model).eval()  # ordering latents edits weights; the checkpoint keeps the original
    mu = latent_statistics(model, data.train)  # (N, L)
    spread = mu.std(dim=0).clamp_min(1e-3)  # (L,)
    order = order_latents_by_importance(model, mu, spread)
    mu, spread = mu[:, order], spread[order]
    latent_mean = mu.mean(dim=0)
    graph = StepGraph(model, latent_mean, spread)
    shapes = tensor_shapes(model.cfg)
    primes, positions = pick_primes(data.songs)
    n_params = sum(p.numel() for p in model.parameters())
    meta = {
        "name": out.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "audio": audio.to_dict(),
        "frames": frames.to_dict(),
        "model": model.cfg.to_dict(),
        "stats": data.stats.to_dict(),
        "latent": {
            "mean": latent_mean.tolist(),
            "spread": spread.tolist(),
            "order": "dimension 0 changes the sound most",
            "importance_order_from_training": order.tolist(),
        },
        "tensors": {name: {"shape": shape, "doc": TENSOR_DOCS[name]} for name, shape in shapes.items()},
        "inputs": list(StepGraph.INPUTS),
        "outputs": list(StepGraph.OUTPUTS),
        "primes": {"frames": primes.shape[1], "positions": positions},
        "training": {
            "songs": [{"name": s.name, "file": s.path.name, "seconds": round(s.duration_s, 2)} for s in songs],
            "config": train_cfg.to_dict(),
            "device": result.device,
            "epochs_done": result.epochs_done,
            "best_epoch": result.best_epoch,
            "val_loss": result.best_val,
            "val_mse": result.best_val_mse,
            "baselines": result.baselines,
            "interrupted": result.interrupted,
            "seconds": round(result.history.seconds, 2),
            "parameters": n_params,
            "history": asdict(result.history),
        },
    }
    write_bundle_core(out, meta, export_onnx(graph, shapes), primes)
    bundle = load_bundle(out)
    generator = Generator(bundle, seed=train_cfg.seed)
    generator.prime(0.25)
    preview = generator.render(PREVIEW_S, Controls(bundle.latent_dim))
    write_audio(out / "preview.wav", preview, audio.samplerate)
    plot_loss(out / "loss.png", result)
    first = songs[0].samples
    start = max(0, len(first) // 4 - int(PREVIEW_S * audio.samplerate) // 2)
    plot_spectrograms(out / "spectrogram.png", first[start:][: len(preview)], preview, audio.samplerate)
    return bundle
