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

from liveshtr.analysis import figures
from liveshtr.bundle import Bundle, write_bundle_core
from liveshtr.config import AudioConfig, FrameConfig, TrainConfig
from liveshtr.live.generator import DEFAULT_PRIME
from liveshtr.sound.audio import Song
from liveshtr.sound.frames import FrameCodec
from liveshtr.sound.magnitude import MagnitudeLayout
from liveshtr.training.calibrate import FULL, PREVIEW_S, Plan, calibrate_bundle, identity_calibration, write_preview
from liveshtr.training.dataset import FrameData
from liveshtr.training.fit import TrainResult
from liveshtr.training.magnitude_model import MagnitudeModel, MagnitudeStep, order_latents, step_shapes

ONNX_OPSET = 17
N_PRIMES = 32  # seed windows spread evenly through the song
PRIME_FRAMES = 64  # frames per seed window (0.7 s at the default hop): long enough to hear where the beat is
PITCH_SHARPNESS = 0.55  # the pitch bins are sampled at this fraction of the temperature
IMPORTANCE_FRAMES = 2000  # latents sampled from the song to rank the latent dimensions
TENSOR_DOCS = {
    "frame": "current normalised frame (the previous step's next_frame, or a prime frame)",
    "beat": "beat count of the frame being predicted (the clock; the bar is 4 beats)",
    "position": "where the frame being predicted lies in the song, 0..1 (a model with a position input)",
    "noise": "normal noise for sampling the next frame's features (unit variance times sampling.noise)",
    "h_in": "LSTM hidden state of every layer (zeros to start)",
    "c_in": "LSTM cell state of every layer (zeros to start)",
    "eps": "normal noise for the latent sample (unit variance times sampling.latent_scale)",
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
def latent_statistics(model: MagnitudeModel, data: FrameData, max_frames: int = 20000):
    """Over the training frames: the LSTM outputs (N, H), the posterior means (N, L), the latents the decoder
    learned to play, and the spread (L,) of the z the model plays at temperature 1 (prior means plus prior noise),
    so one spread unit of offset is as large a move as the model's own sampling makes and +-3 covers the song. The
    LSTM outputs are what ranking the latent dimensions needs."""
    model.eval()
    frames = torch.from_numpy(data.train[: max_frames + 1]).unsqueeze(0)  # (1, N + 1, F)
    beats = torch.from_numpy(data.train_beats[1 : max_frames + 1]).unsqueeze(0)
    positions = torch.from_numpy(data.train_positions[1 : max_frames + 1]).unsqueeze(0)
    out = model(frames[:, :-1], beats, frames[:, 1:], model.initial_state(1), sample=False, position=positions)
    spread = (out.mu_p[0].var(dim=0) + out.logvar_p[0].exp().mean(dim=0)).sqrt()
    return out.h[0], out.mu_q[0], spread


def export_onnx(graph: MagnitudeStep, shapes: dict[str, list[int]]) -> bytes:
    """The step graph as ONNX bytes, one file with weights inside."""
    graph.eval()
    args = tuple(torch.zeros(shapes[name]) for name in graph.INPUTS)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and LSTM batch-size notes
        torch.onnx.export(
            graph,
            args,
            buf,
            input_names=list(graph.INPUTS),
            output_names=list(graph.OUTPUTS),
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return buf.getvalue()


def quantize_int8(onnx_bytes: bytes) -> bytes:
    """The same graph with int8 weights (onnxruntime dynamic quantisation of the LSTM and the matrix products).

    Activations stay float and are quantised per step; the weights shrink 4x, which is what a batch-1 step is
    bound by: ~3x faster for 3 x 1024, ~1.6x for 1 x 128, at a relative next-frame error of ~1e-5."""
    import logging
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process is for image models
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        source.write_bytes(onnx_bytes)
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, op_types_to_quantize=["LSTM", "MatMul", "Gemm"])
        return target.read_bytes()


def pick_primes(
    song_frames: list[np.ndarray], song_beats: list[np.ndarray], n_primes: int = N_PRIMES, length: int = PRIME_FRAMES
):
    """Seed windows evenly spread over all songs: (P, length, dim), their positions 0..1 through all the songs,
    and for each window's first frame the beat count (modulo the bar), where it lies in its own song (0..1) and
    how many frames that song has (the pace at which a model's position input moves on)."""
    length = min(length, min(len(f) for f in song_frames) - 1)
    total = sum(len(f) for f in song_frames)
    starts = np.linspace(0, total - length - 1, n_primes).astype(int)
    offsets = np.cumsum([0] + [len(f) for f in song_frames])
    primes, positions, beats, in_song, song_lengths = [], [], [], [], []
    for start in starts:
        i = int(np.searchsorted(offsets, start, side="right") - 1)
        local = min(start - offsets[i], len(song_frames[i]) - length)
        primes.append(song_frames[i][local : local + length])
        positions.append(float(start / total))
        beats.append(round(float(song_beats[i][local]) % 4.0, 4))
        in_song.append(round(local / len(song_frames[i]), 6))
        song_lengths.append(len(song_frames[i]))
    places = {"positions": positions, "beats": beats, "song_positions": in_song, "song_frames": song_lengths}
    return np.stack(primes), places


def plot_loss(path: Path, result: TrainResult) -> None:
    plt = figures.pyplot()
    h = result.history
    epochs = np.arange(1, len(h.train) + 1)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(epochs, h.train, label="train (reconstruction, sampled z)")
    ax.plot(epochs, h.val, label="validation loss (reconstruction + beta KL)")
    ax.plot(epochs, h.val_mse, label="validation next-frame error (playing, z = prior mean)")
    ax.axhline(result.baselines["repeat_last"], color="grey", ls="--", label="baseline: repeat last frame")
    ax.axhline(result.baselines["mean_frame"], color="grey", ls=":", label="baseline: mean frame")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss; MSE per normalised feature")
    ax.set_yscale("log")
    ax.set_title("liveshtr training")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    figures.save(fig, path)


def plot_spectrograms(path: Path, song: np.ndarray, preview: np.ndarray, samplerate: int) -> None:
    fig, axes = figures.pyplot().subplots(2, 1, figsize=(9, 6), dpi=100, sharex=True, sharey=True)
    for ax, x, title in ((axes[0], song, "song (training audio)"), (axes[1], preview, "preview (through ONNX)")):
        figures.spectrogram(ax, x, samplerate, title, top_db=-20.0, span_db=90.0)
    axes[1].set_xlabel("seconds")
    fig.tight_layout()
    figures.save(fig, path)


def export_bundle(
    out: Path,
    result: TrainResult,
    data: FrameData,
    songs: list[Song],
    audio: AudioConfig,
    frames: FrameConfig,
    train_cfg: TrainConfig,
    plan: Plan = FULL,
    name: str | None = None,
) -> Bundle:
    """Write the whole bundle for the best model into `out` and return it as loaded back from disk. A quick `plan`
    (the models `serve --learn` plays as training goes on) calibrates on less playing, and writes no preview and
    no pictures."""
    model = copy.deepcopy(result.model).eval()  # ordering latents edits weights; the checkpoint keeps the original
    h, mu, spread = latent_statistics(model, data)
    spread = spread.clamp_min(1e-3)
    every = max(1, len(mu) // IMPORTANCE_FRAMES)
    order = order_latents(model, h[::every], mu[::every], spread)
    layout = MagnitudeLayout.for_codec(FrameCodec(frames, audio.samplerate), model.cfg.pitch_hz, model.cfg.bands)
    sharpness = np.where(np.arange(layout.n_features) < layout.pitch_bins, PITCH_SHARPNESS, 1.0)
    mu, spread = mu[:, order], spread[order]
    latent_mean = mu.mean(dim=0)
    graph = MagnitudeStep(model, latent_mean, spread, torch.from_numpy(sharpness))
    shapes = step_shapes(model.cfg)
    primes, places = pick_primes(data.songs, data.song_beats)
    n_params = sum(p.numel() for p in model.parameters())
    meta = {
        "features": {**layout.to_dict(), "count": layout.n_features, "pitch_bins": layout.pitch_bins},
        "clock": {"bpm": round(data.pulse.bpm, 3), "clarity": round(data.pulse.clarity, 3)},
        "sampling": {"pitch_sharpness": PITCH_SHARPNESS},
        "name": name or out.name,
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
        "inputs": list(graph.INPUTS),
        "outputs": list(graph.OUTPUTS),
        "primes": {"frames": primes.shape[1], **places},
        "training": {
            "songs": [
                {"name": s.name, "file": s.path.name, "seconds": round(s.duration_s, 2)}
                | ({"loop": {"repeated": copies}} if copies else {})
                for s, copies in zip(songs, data.loops, strict=True)
            ],
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
    onnx_bytes = export_onnx(graph, shapes)
    int8_bytes = quantize_int8(onnx_bytes)
    meta["calibration"] = identity_calibration(frames.n_bins(audio.samplerate))
    write_bundle_core(out, meta, onnx_bytes, primes, int8_bytes)
    bundle = calibrate_bundle(out, meta, songs, data.songs, train_cfg.seed, plan)
    if plan != FULL:
        return bundle
    preview = write_preview(out, bundle, train_cfg.seed)  # primed at DEFAULT_PRIME, the middle of the song
    plot_loss(out / "loss.png", result)
    first = songs[0].samples
    start = max(0, int(len(first) * DEFAULT_PRIME) - int(PREVIEW_S * audio.samplerate) // 2)
    plot_spectrograms(out / "spectrogram.png", first[start:][: len(preview)], preview, audio.samplerate)
    return bundle
