"""Training: songs -> frames -> LSTM+VAE fitted by teacher forcing -> best model handed to export.

One epoch is one pass over the training frames in B parallel streams with carried state (several passes for a
short loop, see `dataset.Plan`). Ctrl-C ends the current
step, saves a checkpoint and still exports the best model so far; `--resume` continues from the checkpoint with
the optimiser's state, the epoch count and the loss history.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from liveshtr.atomic import atomic_path
from liveshtr.config import AudioConfig, FrameConfig, MagnitudeConfig, TrainConfig
from liveshtr.errors import ConfigError, LiveshtrError
from liveshtr.live.sched import usable_cores
from liveshtr.training.dataset import FrameData, Plan, baselines, streams
from liveshtr.training.magnitude_model import MagnitudeModel, gaussian_nll

CHECKPOINT_VERSION = 1
FIRST_STEPS = 12  # serve --learn: the first model to play after this many optimiser steps (docs/measurements.md)
SNAPSHOT_GROWTH = 1.5  # later ones once the training time has grown this much since the last ...
SNAPSHOT_GAP_S = 20.0  # ... and by at least this many seconds
PROGRESS_EVERY_S = 1.0  # progress events (serve --learn) at most once a second while an epoch runs
OWN_RUN = 24  # frames (a quarter second) in a run of the model's own playing, on average (see own_runs)


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is usable by this torch build (use --device auto or cpu)")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def own_runs(streams: int, length: int, share: float, device=None) -> torch.Tensor:
    """(streams, length) bool: in each stream apart, runs of OWN_RUN frames on average that cover `share` of the
    frames on average (a two-state chain), never the first frame."""
    if share >= 1.0:
        runs = torch.ones(streams, length, dtype=torch.bool)
    else:
        leave = torch.tensor([1.0 / OWN_RUN, share / (OWN_RUN * (1.0 - share))])  # P(a run ends), P(a gap ends)
        flips = torch.rand(streams, length)
        on = torch.rand(streams) < share
        runs = torch.empty(streams, length, dtype=torch.bool)
        for t in range(length):
            runs[:, t] = on
            on = on ^ (flips[:, t] < leave[(~on).long()])
    runs[:, 0] = False
    return runs.to(device)


@dataclass
class History:
    train: list[float] = field(default_factory=list)  # mean training loss per epoch
    val: list[float] = field(default_factory=list)  # validation loss (the training objective) per epoch
    val_mse: list[float] = field(default_factory=list)  # validation next-frame MSE when playing (z = prior mean)
    kl: list[float] = field(default_factory=list)  # mean KL per epoch
    seconds: float = 0.0  # training time so far, over all runs


@dataclass
class TrainResult:
    model: MagnitudeModel  # the best model (lowest validation loss), on the CPU
    best_epoch: int
    best_val: float  # its validation loss
    best_val_mse: float  # its next-frame validation MSE, to compare with the baselines
    baselines: dict[str, float]
    history: History
    epochs_done: int
    interrupted: bool
    device: str


class Progress:
    """Where training is, for the performer: on a terminal one bar redrawn in place while an epoch runs and a line
    when it ends (printed once a stage where the stream is not a terminal); and, where `events` is given (a text
    file, `serve --learn`'s pipe), the same as JSON lines: {"event": "stage"|"progress"|"ready"|"error", ...}."""

    def __init__(self, total_epochs: int, stream=sys.stderr, events=None):
        self.total, self.stream, self.events = total_epochs, stream, events
        self.tty = stream.isatty()
        self.epoch_times: list[float] = []
        self._sent = 0.0  # when the last progress event went out

    def emit(self, event: str, **fields) -> None:
        """One event on the events stream; a reader that went away (serve stopped) does not stop training."""
        if self.events is None:
            return
        try:
            self.events.write(json.dumps({"event": event, **fields}) + "\n")
            self.events.flush()
        except (OSError, ValueError):
            self.events = None

    def stage(self, name: str, message: str) -> None:
        """A stage begins (reading, training, exporting, done), as an event (`train` prints its own lines)."""
        self.emit("stage", stage=name, message=message)

    def update(self, epoch: int, done: int, steps: int, loss: float, started: float) -> None:
        elapsed = time.perf_counter() - started
        per_epoch = elapsed / max(done, 1) * steps
        remaining = per_epoch - elapsed + per_epoch * (self.total - epoch - 1)
        if self.events is not None and time.perf_counter() - self._sent >= PROGRESS_EVERY_S:
            self._sent = time.perf_counter()
            fraction = (epoch + done / steps) / self.total
            self.emit(
                "progress",
                epoch=epoch + 1,
                epochs=self.total,
                fraction=round(fraction, 4),
                loss=loss,
                eta_s=round(remaining, 1),
            )
        if not self.tty:
            return
        bar = "#" * min(20, int(20 * done / steps))
        self.stream.write(f"\repoch {epoch + 1:3d}/{self.total} [{bar:<20}] loss {loss:.4f}  ETA {_hms(remaining)} ")
        self.stream.flush()

    def end_epoch(self, epoch: int, loss: float, val: float, val_mse: float, kl: float, seconds: float) -> None:
        self.epoch_times.append(seconds)
        eta = float(np.median(self.epoch_times)) * (self.total - epoch - 1)
        line = (
            f"epoch {epoch + 1:3d}/{self.total} loss {loss:.4f} kl {kl:.2f} val {val:.4f} "
            f"next-frame {val_mse:.4f} ({seconds:.1f} s, ETA {_hms(eta)})"
        )
        self.stream.write(("\r" + line + " " * 8 if self.tty else line) + "\n")
        self.stream.flush()
        self._sent = time.perf_counter()
        self.emit(
            "progress",
            epoch=epoch + 1,
            epochs=self.total,
            fraction=round((epoch + 1) / self.total, 4),
            loss=loss,
            val=val,
            eta_s=round(eta, 1),
        )


def _hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class MagnitudeObjective:
    """The magnitude model: Gaussian negative log-likelihood of every feature of the next frame plus
    the KL, balanced (beta on the posterior's side, prior_weight on the prior's) and counted per feature. With
    weights summing to 1 the loss is the evidence bound per feature; the defaults sum to 5, so the latent keeps only
    what is worth more than 5 nats of the frame's likelihood (events), and the LSTM predicts the rest."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg

    def build(self, model_cfg: MagnitudeConfig, data: FrameData | None) -> MagnitudeModel:
        model = MagnitudeModel(model_cfg)
        if data is not None:  # a fresh run: the skip starts from least squares on the song, as the inputs are seen
            x, y = data.train[:-1].astype(np.float64), data.train[1:].astype(np.float64)
            noise = len(x) * self.cfg.input_noise**2
            skip = (x * y).sum(axis=0) / ((x * x).sum(axis=0) + noise)
            with torch.no_grad():
                model.skip.copy_(torch.from_numpy(np.clip(skip, 0.0, 1.0)))
        return model

    def loss(self, model: MagnitudeModel, x, y, beat, state, warm: float, position=None):
        if self.cfg.own_samples > 0:
            x = self.own_inputs(model, x, beat, state, position)
        out = model(x + self.cfg.input_noise * torch.randn_like(x), beat, y, state, position=position)
        nll = gaussian_nll(y, out.mean, out.logvar).mean()
        kl = out.kl_posterior.mean()
        weighted = (self.cfg.beta * warm * out.kl_posterior + self.cfg.prior_weight * out.kl_prior).mean()
        return nll + weighted / model.cfg.features, nll, kl, out.state

    @torch.no_grad()
    def own_inputs(self, model: MagnitudeModel, x, beat, state, position=None) -> torch.Tensor:
        """Inputs (B, T, F) with runs of frames (a share `own_samples` of them) replaced by the model's own
        playing, frame by frame from the frame before, as on stage (scheduled sampling). The targets stay the
        song's: inside a run the model learns to come back from its own inventions (a hit off the beat, a flicker)
        to the song's pattern, which only the clock tells it, instead of timing the next hit from the last one it
        played. Each stream has runs of its own (runs shared by all streams, which leave the frames between them to
        one LSTM call, gave the groove less of its beat: docs/notebook.md)."""
        replaced = own_runs(x.shape[0], x.shape[1], self.cfg.own_samples, x.device)
        return model.play_along(x, beat, state, replaced, position)

    @torch.no_grad()
    def validate(self, model: MagnitudeModel, data: FrameData, device: torch.device) -> tuple[float, float]:
        """On the held-out blocks after a warm-up: the evidence bound per feature (posterior mean), which picks
        the best model, and the next-frame MSE when playing (z = prior mean, no sampling)."""
        nll, kl, mse, n_frames, n_values = 0.0, 0.0, 0.0, 0, 0
        for (frames, ctx), beats, positions in zip(data.val, data.val_beats, data.val_positions, strict=True):
            f = torch.from_numpy(frames).to(device).unsqueeze(0)  # (1, n, F)
            b = torch.from_numpy(beats).to(device).unsqueeze(0)[:, 1:]  # beats of the frames to predict
            p = torch.from_numpy(positions).to(device).unsqueeze(0)[:, 1:]  # and where they lie in the song
            x, y = f[:, :-1], f[:, 1:]
            out = model(x, b, y, model.initial_state(1, device), sample=False, position=p)
            target = y[0, ctx:]
            nll += float(gaussian_nll(target, out.mean[0, ctx:], out.logvar[0, ctx:]).sum())
            kl += float(out.kl_posterior[0, ctx:].sum())
            played = model.decode(out.h, out.mu_p, x)[0]  # playing: z = prior mean
            mse += float((played[0, ctx:] - target).pow(2).sum())
            n_frames += len(target)
            n_values += target.numel()
        return (nll + kl) / n_values, mse / n_values


def run_signature(audio: AudioConfig, frames: FrameConfig, model, train: TrainConfig, songs) -> dict:
    """Everything a resumed run must share with the checkpoint (epochs and device may change)."""
    t = asdict(train)
    for free in ("epochs", "device", "threads"):
        t.pop(free)
    if t["loop"] == "auto":  # as checkpoints from before the flag: the songs' lengths decide
        del t["loop"]
    return {
        "audio": audio.to_dict(),
        "frames": frames.to_dict(),
        "model": model.to_dict(),
        "train": t,
        "songs": [[s.name, len(s.samples)] for s in songs],
    }


def save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: Path, signature: dict) -> dict:
    if not path.is_file():
        raise LiveshtrError(f"--resume: no checkpoint at {path}; train without --resume first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many kinds for a damaged file
        raise LiveshtrError(f"--resume: {path} is not a readable checkpoint ({type(exc).__name__})") from None
    if state.get("version") != CHECKPOINT_VERSION:
        raise LiveshtrError(f"--resume: {path} has checkpoint version {state.get('version')}, expected 1")
    if state["signature"] != signature:
        diff = [k for k in signature if state["signature"].get(k) != signature[k]]
        raise LiveshtrError(
            f"--resume: {path} was trained with other {', '.join(diff)} settings; resume with the same "
            "songs and flags (only --epochs and --device may change), or train afresh with --force"
        )
    return state


def _validate(objective, model, data: FrameData, device: torch.device) -> tuple[float, float]:
    model.eval()
    try:
        return objective.validate(model, data, device)
    finally:
        model.train()


def fit(
    data: FrameData,
    model_cfg: MagnitudeConfig,
    cfg: TrainConfig,
    checkpoint: Path,
    signature: dict,
    resume: dict | None = None,
    log=print,
    progress: Progress | None = None,
    snapshot: Callable[[TrainResult, float], bool | None] | None = None,
    stop=None,
) -> TrainResult:
    """Train (or continue training) and return the best model; Ctrl-C ends early but still returns it.

    `snapshot(result, seconds)` (serve --learn) is handed models to play while training goes on, with the training
    seconds they took: a first one after FIRST_STEPS optimiser steps of a fresh run, then the model of an epoch
    that plays the held-out block better (next-frame error, z = prior mean) than the last one handed over, once the
    training time has grown by SNAPSHOT_GROWTH and at least SNAPSHOT_GAP_S since (exporting one takes seconds of
    the trainer's time, which the epochs' timing leaves out). Not the validation loss, which picks the final model:
    early in training, before the KL's warm-up, it is lower than it will be for epochs (the trumpet loop: -0.09
    after 12 steps, 0.39, 0.11 and 0.12 after one, two and three epochs, where the next-frame error went 0.161,
    0.175, 0.158, 0.155). `stop` (a threading.Event) set ends training at the next step as Ctrl-C does."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    torch.set_num_threads(cfg.threads or usable_cores())
    device = pick_device(cfg.device)
    objective = MagnitudeObjective(cfg)
    model = objective.build(model_cfg, data if resume is None else None).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    history, start_epoch, step = History(), 0, 0
    best_state, best_val, best_val_mse, best_epoch = None, math.inf, math.inf, -1
    if resume is not None:
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        history = History(**resume["history"])
        start_epoch, step = resume["epochs_done"], resume["step"]
        best_state, best_epoch = resume["best_model"], resume["best_epoch"]
        best_val, best_val_mse = resume["best_val"], resume["best_val_mse"]
        torch.set_rng_state(resume["torch_rng"])
        rng.bit_generator.state = resume["numpy_rng"]
    base = baselines(data)
    plan = Plan.make(len(data.train), cfg.batch_size, cfg.seq_len, cfg.min_steps)
    if (line := plan.describe(cfg.batch_size, cfg.seq_len)) is not None:
        log(line)
    seq_len = plan.seq_len
    total_steps = plan.steps_per_epoch * cfg.epochs
    warmup_steps = max(1, int(cfg.kl_warmup * total_steps))
    progress = progress or Progress(cfg.epochs)
    epoch, interrupted = start_epoch, False
    handed = {"mse": math.inf, "at": 0.0}  # the last model handed to `snapshot`: its next-frame error, the time then
    first_pending = snapshot is not None and resume is None

    def own_rng():
        """A hand-over draws nothing from the training's random stream (building a model draws initial weights):
        the same seed trains the same model with snapshots or without, wherever the clock puts them."""
        return torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else [])

    def hand_over(state: dict, epochs: int, val: float, val_mse: float, seconds: float) -> float:
        """A model to `snapshot`; returns the seconds it took. One that `snapshot` turns down (it does not keep the
        song's sustained sound) sets no mark for the next to beat."""
        began = time.perf_counter()
        with own_rng():
            shown = objective.build(model_cfg, None)
            shown.load_state_dict(state)
            result = TrainResult(shown, epochs, val, val_mse, base, history, len(history.val), False, str(device))
            handed["at"] = seconds
            if snapshot(result, seconds) is not False:
                handed["mse"] = val_mse
        return time.perf_counter() - began

    def checkpoint_state(epochs_done: int) -> dict:
        return {
            "version": CHECKPOINT_VERSION,
            "signature": signature,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "history": asdict(history),
            "epochs_done": epochs_done,
            "step": step,
            "best_model": best_state,
            "best_val": best_val,
            "best_val_mse": best_val_mse,
            "best_epoch": best_epoch,
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": rng.bit_generator.state,
        }

    timing = np.stack([data.train_beats, data.train_positions], axis=1)  # (T, 2): the clock beside every frame
    try:
        for epoch in range(start_epoch, cfg.epochs):
            started = time.perf_counter()
            sums, n_steps = np.zeros(2), 0
            for _ in range(plan.passes):  # one pass over the frames: fresh state, a new random start offset
                offset = int(rng.integers(seq_len))
                batch = torch.from_numpy(streams(data.train, plan.batch, seq_len, offset)).to(device)  # (B, S, dim)
                when = torch.from_numpy(streams(timing, plan.batch, seq_len, offset)).to(device)
                beats, positions = when[..., 0], when[..., 1]  # (B, S): the clock and the song's position
                state = model.initial_state(batch.shape[0], device)
                for k in range((batch.shape[1] - 1) // seq_len):
                    x = batch[:, k * seq_len : (k + 1) * seq_len]  # (B, T, dim)
                    y = batch[:, k * seq_len + 1 : (k + 1) * seq_len + 1]  # (B, T, dim)
                    beat = beats[:, k * seq_len + 1 : (k + 1) * seq_len + 1]  # (B, T) beats of the frames to predict
                    position = positions[:, k * seq_len + 1 : (k + 1) * seq_len + 1]
                    for group in opt.param_groups:  # cosine decay to a tenth over the whole run
                        group["lr"] = cfg.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, step / total_steps))))
                    warm = min(1.0, step / warmup_steps)
                    loss, rec, kl, state = objective.loss(model, x, y, beat, state, warm, position)
                    state = (state[0].detach(), state[1].detach())
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    opt.step()
                    step += 1
                    if stop is not None and stop.is_set():
                        raise KeyboardInterrupt
                    n_steps += 1
                    sums += (rec.item(), kl.item())
                    progress.update(epoch, n_steps, plan.steps_per_epoch, sums[0] / n_steps, started)
                    if first_pending and step >= FIRST_STEPS:  # the first model to play: seconds, not minutes
                        first_pending = False
                        with own_rng():
                            val, val_mse = _validate(objective, model, data, device)
                        state_now = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                        trained = history.seconds + time.perf_counter() - started
                        started += hand_over(state_now, 0, val, val_mse, trained)  # epoch 0: within the first
            val, val_mse = _validate(objective, model, data, device)
            history.train.append(sums[0] / n_steps)
            history.kl.append(sums[1] / n_steps)
            history.val.append(val)
            history.val_mse.append(val_mse)
            seconds = time.perf_counter() - started
            history.seconds += seconds
            if val < best_val:
                best_val, best_val_mse, best_epoch = val, val_mse, epoch + 1
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            progress.end_epoch(epoch, history.train[-1], val, val_mse, history.kl[-1], seconds)
            save_checkpoint(checkpoint, checkpoint_state(epoch + 1))
            due = max(handed["at"] * SNAPSHOT_GROWTH, handed["at"] + SNAPSHOT_GAP_S)
            last = epoch + 1 == cfg.epochs  # the final export follows at once
            if snapshot is not None and not last and val_mse < handed["mse"] and history.seconds >= due:
                state_now = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                hand_over(state_now, epoch + 1, val, val_mse, history.seconds)
        epochs_done = cfg.epochs
    except KeyboardInterrupt:
        interrupted = True
        epochs_done = len(history.val)
        log(f"\ninterrupted during epoch {epochs_done + 1}: saving a checkpoint and exporting the best model so far")
        if best_state is None:  # not even one epoch finished: the current weights are the best we have
            (best_val, best_val_mse), best_epoch = _validate(objective, model, data, device), 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        save_checkpoint(checkpoint, checkpoint_state(epochs_done))
    best = objective.build(model_cfg, None)
    best.load_state_dict(best_state)
    return TrainResult(best, best_epoch, best_val, best_val_mse, base, history, epochs_done, interrupted, str(device))
