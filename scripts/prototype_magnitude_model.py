"""Prototype of the sound issue's model (issue 13): the measurement behind its notes, not product code.

A log-magnitude LSTM trained with Gaussian NLL, a beat-phase clock input (librosa's beat tracker), sampling at a
lower temperature on the pitch bins, and the streaming phase stage (`liveshtr.sound.phase`); 60 s renders are
measured with `liveshtr.analysis.music` at three pitch-bin temperatures. It trains for a wall-clock budget, so
the step count depends on the machine's load. The product model replaces it; delete it then.

    python scripts/prototype_magnitude_model.py SONG SECONDS HIDDEN LAYERS SEQ clock|none [bins|bands]

Measured on the 2-core VM: `... acoustic_guitar_arrangement_trow.mp3 300 384 2 256 clock bands` (698 steps)
passed every floor on the guitar; with 100 s (about 270 steps) the guitar came out a drone.
"""

import json
import sys
import time

import librosa
import numpy as np
import torch
from torch import nn

from liveshtr.analysis import music as M
from liveshtr.config import AudioConfig, FrameConfig
from liveshtr.sound.audio import load_song, write_audio
from liveshtr.sound.frames import FrameCodec
from liveshtr.sound.phase import PhaseReconstructor

path, seconds_budget = sys.argv[1], float(sys.argv[2])
HID, LAYERS, SEQ, B = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), 16
use_clock = sys.argv[6] == "clock"
torch.manual_seed(0)
batch_rng = np.random.default_rng(0)
torch.set_num_threads(2)
SR = 24000
codec = FrameCodec(FrameConfig(), SR)
nb = codec.n_bins
hop_s = 256 / SR
song = load_song(path, AudioConfig())
x = song.samples
C = codec.analyse(x)
mag = np.abs(C[:, :nb] + 1j * C[:, nb:])  # (T, nb)
MODE = sys.argv[7] if len(sys.argv) > 7 else "bins"
if MODE == "bands":
    edges = np.unique(np.round(np.geomspace(128, nb, 65)).astype(int))
    edges[-1] = nb

    def to_feat(m):
        hi = [np.sqrt(np.mean(m[..., a:b] ** 2, -1)) for a, b in zip(edges[:-1], edges[1:], strict=False)]
        return np.concatenate([m[..., :128], np.stack(hi, -1)], -1)

    def to_mag(f):
        out = np.empty(nb)
        out[:128] = f[:128]
        for j, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=False)):
            out[a:b] = f[128 + j]
        return out

    mag = to_feat(mag)
else:

    def to_mag(f):
        return f


nf = mag.shape[1]
logm = np.log(mag + 1e-5)
mu, sd = logm.mean(0), logm.std(0) + 1e-3
feat = ((logm - mu) / sd).astype(np.float32)
# tempo and beat phase
tempo, beats = librosa.beat.beat_track(y=x, sr=SR, hop_length=256, units="frames")
tempo = float(np.atleast_1d(tempo)[0])
period = 60.0 / tempo / hop_s  # frames per beat
t0 = np.median((beats - np.arange(len(beats)) * period)[: len(beats)]) if len(beats) else 0.0


def clock(frames_idx):
    ph = (frames_idx - t0) / period
    return np.stack(
        [
            np.sin(2 * np.pi * ph),
            np.cos(2 * np.pi * ph),
            np.sin(np.pi * ph / 2),
            np.cos(np.pi * ph / 2),
            np.sin(4 * np.pi * ph),
            np.cos(4 * np.pi * ph),
        ],
        1,
    ).astype(np.float32)


clk = clock(np.arange(len(feat))) if use_clock else np.zeros((len(feat), 6), np.float32)
print(f"{song.name}: {len(feat)} frames, tempo {tempo:.1f} bpm", flush=True)


class Net(nn.Module):
    def __init__(s):
        super().__init__()
        s.inp = nn.Linear(nf + 6, 256)
        s.lstm = nn.LSTM(256, HID, LAYERS, batch_first=True)
        s.out = nn.Linear(HID, 2 * nf)

    def forward(s, x, c, st=None):
        h, st = s.lstm(torch.tanh(s.inp(torch.cat([x, c], -1))), st)
        m, lv = s.out(h).chunk(2, -1)
        return m, lv.clamp(-8, 4), st


net = Net()
opt = torch.optim.Adam(net.parameters(), 1e-3)
F = torch.from_numpy(feat)
K = torch.from_numpy(clk)
start = time.time()
step = 0
losses = []
while time.time() - start < seconds_budget:
    off = int(batch_rng.integers(SEQ))
    L = (len(F) - off - 1) // B // SEQ * SEQ
    idx = off + np.arange(B)[:, None] * ((len(F) - off - 1) // B)
    st = None
    for k in range(L // SEQ):
        i = idx + k * SEQ + np.arange(SEQ)[None]
        xin, cin, y = F[i], K[i + 1], F[i + 1]  # clock of the frame being predicted
        m, lv, st = net(xin + 0.3 * torch.randn_like(xin), cin, st)
        st = tuple(t.detach() for t in st)
        loss = 0.5 * (lv + (y - m) ** 2 / lv.exp()).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        step += 1
        losses.append(loss.item())
        if time.time() - start > seconds_budget:
            break
print(f"trained {step} steps in {time.time() - start:.0f} s, loss {np.mean(losses[-50:]):.3f}", flush=True)


@torch.no_grad()
def generate(seconds, T_low=0.55, T_high=1.0, seed=1, prime_at=0.5):
    g = torch.Generator().manual_seed(seed)
    n = int(seconds / hop_s)
    p0 = int(len(F) * prime_at)
    temp = torch.where(torch.arange(nf) < 128, T_low, T_high)
    rec = PhaseReconstructor(1024, 256, nb)
    synth = codec.streaming()
    out = []
    st = None
    frame = F[p0]
    for t in range(n):
        c = torch.from_numpy(clock(np.array([p0 + t + 1]))) if use_clock else torch.zeros(1, 6)
        m, lv, st = net(frame[None, None], c[None], st)
        if t < 50:
            nxt = F[p0 + t + 1]
        else:
            nxt = m[0, 0] + temp * (0.5 * lv[0, 0]).exp() * torch.randn(nf, generator=g)
        frame = nxt
        mg = to_mag(np.exp(nxt.numpy() * sd + mu) - 1e-5)
        spec = rec.process(np.maximum(mg, 0))
        out.append(synth.process(np.concatenate([spec.real, spec.imag]).astype(np.float32)).copy())
    return np.concatenate(out)


whole = M.to_measure_rate(x, SR)
ref = M.pitch_classes(whole)
for TL in (0.55, 0.8, 1.0):
    t = time.time()
    y = generate(60.0, T_low=TL)
    gen_s = time.time() - t
    y = np.clip(y / max(1e-9, np.abs(y).max()) * 0.9, -1, 1)
    write_audio(f"/tmp/exp/{song.name[:10]}_{HID}x{LAYERS}_{SEQ}_{sys.argv[6]}_{MODE}.wav", y, SR)
    yr = M.to_measure_rate(y, SR)
    m = M.measure(yr)
    mid = M.to_measure_rate(x[len(x) // 2 - 30 * SR : len(x) // 2 + 30 * SR], SR)
    ms = M.measure(mid)
    res = dict(
        TL=TL,
        song=song.name,
        cfg=sys.argv[3:],
        steps=step,
        gen_x_rt=60 / gen_s,
        beat=(round(ms.beat, 2), round(m.beat, 2)),
        onsets=(round(ms.onsets_per_s, 2), round(m.onsets_per_s, 2)),
        pitch=round(M.pitch_class_correlation(np.array(m.pitch_classes), ref), 2),
        flat=(round(ms.flatness, 4), round(m.flatness, 4)),
        harm=(round(ms.harmonic_share, 2), round(m.harmonic_share, 2)),
        copy=round(M.copy_similarity(yr[2 * M.SR :], whole), 2),
    )
    print(json.dumps(res), flush=True)
