"""Quality reports: trained bundles rendered through ONNX, measured beside their songs and two noises per song.

`quality_report` gives the figures the quality tests check (spectral measures, numpy and scipy only);
`music_report` adds what noise cannot pass (the `quality` extra) for the song, its two noises, the default render
and the temperature-0 render side by side. `liveshtr quality MODEL... --songs DIR` prints both tables
(`make quality-report`) and with `--pictures DIR` draws each song's spectrograms and long-term spectra.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from liveshtr.analysis.spectral import (
    band_rise,
    band_spectrogram,
    event_rate,
    ltas_db,
    max_repeat_correlation,
    movement_db,
    phase_convergence_db,
    signature_distance_db,
    window_rms_db,
)
from liveshtr.sound.frames import FrameCodec

SONG_STRETCH_S = 60.0  # the song's measures come from this long a stretch from its middle, as long as a render
RENDER_SEED = 1
PHASE_S = 20.0  # the phase stage is measured on this long a stretch of the song
CONTROL_SEEDS = (1, 2, 3)  # the seeds a control's effect is measured at, beside their spread at default controls


RENDER_STREAMS = 6  # renders played through one phase stage together (the spectra of all of them held at once)


def render(bundle, seconds: float, seed: int = 0, prime: float | None = None, **controls) -> np.ndarray:
    """`seconds` of the bundle through ONNX, from `prime` (default: the middle of the song); `offsetN` sets latent
    offset N and `targetN` the target point's dimension N, other keywords the Controls field of that name."""
    (audio,) = render_many(bundle, seconds, [dict(seed=seed, prime=prime, **controls)])
    return audio


def render_many(bundle, seconds: float, plays: list[dict]) -> list[np.ndarray]:
    """`render` for each of `plays` (its keywords: `seed`, `prime` and the controls): the samples each would play
    on its own, hop by hop in the engine, made faster. The model is loaded once and steps each render's frames in
    turn, then the phase stage's transforms run for RENDER_STREAMS renders at once (`live.generator.play_together`):
    a quality report plays seventeen."""
    from liveshtr.live.generator import Controls, Generator, play_together
    from liveshtr.live.runtime import StepModel

    model = StepModel(bundle)
    n_hops = int(np.ceil(seconds * bundle.audio.samplerate / bundle.frames.hop))
    players, blocks = [], []
    for play in plays:
        controls = dict(play)
        generator = Generator(bundle, model, seed=controls.pop("seed", 0))  # primed: the model's state starts afresh
        if (prime := controls.pop("prime", None)) is not None:
            generator.prime(prime)
        c = Controls.for_bundle(bundle)
        for name, value in controls.items():
            if name.startswith("offset"):
                c.latent_offset[int(name[6:])] = value
            elif name.startswith("target"):
                c.z_user[int(name[6:])] = value
            else:
                setattr(c, name, value)
        players.append(generator)
        blocks.append(np.array([generator.next_frame(c).copy() for _ in range(n_hops)]))
    audio = []
    for i in range(0, len(players), RENDER_STREAMS):
        audio += play_together(players[i : i + RENDER_STREAMS], blocks[i : i + RENDER_STREAMS])
    return [a[: int(seconds * bundle.audio.samplerate)] for a in audio]


def quality_report(bundle, songs: dict[str, np.ndarray], samplerate: int, seconds: float = 60.0) -> dict:
    """The figures the quality tests check, for one bundle rendered at default controls through ONNX.

    `songs` maps song names to their signals at `samplerate` (the bundle's own song among them).
    """

    def spectrum_change(a: np.ndarray, b: np.ndarray) -> float:
        """How far apart the shapes of two long-term spectra are (dB per band), their overall levels aside: renders
        of one model at two seeds can settle a few dB apart in level, which would swamp the yardstick."""
        d = band_spectrogram(a, samplerate).mean(0) - band_spectrogram(b, samplerate).mean(0)
        return float(np.mean(np.abs(d - d.mean())))

    own = bundle.meta["training"]["songs"][0]["name"]
    # Each control is measured at several seeds, beside the spread of the same measure between those seeds at the
    # default controls: one other seed is too uncertain a yardstick of chance (a model's renders can settle in
    # states a few dB apart). The temperature sets how many events the model plays (against the song's largest
    # rise); the latent offset moves the spectrum.
    plays = [{}, {"temperature": 0.0}] + [{"seed": seed} for seed in CONTROL_SEEDS]
    settings = ({"temperature": 1.5}, {"temperature": 0.3}, {"offset0": -2.0}, {"offset0": 2.0})
    plays += [{"seed": seed, **setting} for seed in CONTROL_SEEDS for setting in settings]
    x, greedy, *rest = render_many(bundle, seconds, plays)
    by_seed, rest = rest[: len(CONTROL_SEEDS)], rest[len(CONTROL_SEEDS) :]
    reference = float(band_rise(songs[own], samplerate).max())
    seed_events = [event_rate(y, samplerate, reference) for y in by_seed]
    temperature, offset = [], []
    for i in range(0, len(rest), len(settings)):
        hot, cold, low, high = rest[i : i + len(settings)]
        temperature.append(abs(event_rate(hot, samplerate, reference) - event_rate(cold, samplerate, reference)))
        offset.append(spectrum_change(low, high))
    rendered = ltas_db(x, samplerate)
    distances = {name: signature_distance_db(rendered, ltas_db(s, samplerate)) for name, s in songs.items()}
    training = bundle.meta["training"]
    codec = FrameCodec(bundle.frames, samplerate)
    return {
        "song": own,
        "train_s": training["seconds"],
        "val_mse": training["val_mse"],
        "baseline_mse": min(training["baselines"].values()),
        "min_rms_db": float(window_rms_db(x, samplerate).min()),
        "peak": float(np.abs(x).max()),
        "movement_db": movement_db(x, samplerate),
        "song_movement_db": movement_db(songs[own], samplerate),
        "repeat_corr": max_repeat_correlation(x, samplerate),
        "own_distance_db": distances[own],
        "nearest_other_db": min((d for name, d in distances.items() if name != own), default=float("nan")),
        "temperature_events": float(np.median(temperature)),  # events a second at temperature 1.5 against 0.3
        "seed_events": float(np.ptp(seed_events)),
        "offset_db": float(np.median(offset)),  # the spectrum's shape at latent offset -2 against +2
        "seed_db": float(np.median([spectrum_change(a, b) for a, b in itertools.combinations(by_seed, 2)])),
        "t0_movement_db": movement_db(greedy, samplerate),
        "t0_repeat_corr": max_repeat_correlation(greedy, samplerate),
        # the live phase stage on the song's own magnitudes (20 s from its middle): how much of the sound is lost
        # to the phase before any model
        "phase_db": phase_convergence_db(middle(songs[own], samplerate, PHASE_S), codec),
    }


SIGNALS = ("song", "ltas noise", "envelope noise", "render", "render T=0")


def middle(x: np.ndarray, samplerate: int, seconds: float = SONG_STRETCH_S) -> np.ndarray:
    """`seconds` from the middle of a signal (all of it when shorter)."""
    n = int(seconds * samplerate)
    start = max(0, (len(x) - n) // 2)
    return x[start : start + n]


def music_signals(bundle, song: np.ndarray, samplerate: int, seconds: float = SONG_STRETCH_S) -> dict:
    """The five signals a song's figures compare, all at the measures' rate: a stretch of the song, its two noises,
    the default render and the temperature-0 render (seed RENDER_SEED)."""
    from liveshtr.analysis import music

    stretch = music.to_measure_rate(middle(song, samplerate, seconds), samplerate)
    return {
        "song": stretch,
        "ltas noise": music.ltas_noise(stretch),
        "envelope noise": music.envelope_noise(stretch),
        **{
            name: music.to_measure_rate(y, samplerate)
            for name, y in zip(
                ("render", "render T=0"),
                render_many(bundle, seconds, [{"seed": RENDER_SEED}, {"seed": RENDER_SEED, "temperature": 0.0}]),
                strict=True,
            )
        },
    }


def music_report(song: np.ndarray, samplerate: int, signals: dict) -> dict:
    """Every measure of every signal; pitch classes and copying are compared with the whole song."""
    from liveshtr.analysis import music

    whole = music.to_measure_rate(song, samplerate)
    reference = music.pitch_classes(whole)
    rows = {}
    for name, y in signals.items():
        m = music.measure(y).to_dict()
        m["pitch_corr"] = music.pitch_class_correlation(np.array(m["pitch_classes"]), reference)
        m["copy"] = music.copy_similarity(y, whole) if name.startswith("render") else None
        m["replay_s"] = music.longest_replay_s(y, whole) if name.startswith("render") else None
        rows[name] = m
    return rows


# What the sound issue asks each control to change clearly: two settings, the same seed.
CONTROL_SETTINGS = {
    "temperature 0.5 / 1.5": ({"temperature": 0.5}, {"temperature": 1.5}),
    "latent 0 -2 / +2": ({"offset0": -2.0}, {"offset0": 2.0}),
    "latent 1 -2 / +2": ({"offset1": -2.0}, {"offset1": 2.0}),
    "mix 0 / 1 (target 0 at +2)": ({"target0": 2.0}, {"target0": 2.0, "latent_mix": 1.0}),
    "prime 0.25 / 0.75": ({"prime": 0.25}, {"prime": 0.75}),
}
CONTROL_MEASURES = ("beat", "onsets_per_s", "pitch_corr", "log_flatness", "harmonic_share")
SONG_PRIMES = "the song itself at 0.25 / 0.75"  # the prime's yardstick: how far the song's own stretches differ


def stretch_at(x: np.ndarray, samplerate: int, position: float, seconds: float) -> np.ndarray:
    """`seconds` of a signal about `position` (0..1) through it, moved inside it where it would run over an end."""
    n = min(len(x), int(seconds * samplerate))
    start = min(max(0, int(position * len(x)) - n // 2), len(x) - n)
    return x[start : start + n]


def control_effects(bundle, song: np.ndarray, samplerate: int, seconds: float = 30.0) -> dict:
    """How much each control changes each music measure, against chance: the spread (max - min) of every measure
    over CONTROL_SEEDS at default controls, and for each of CONTROL_SETTINGS the change between its two settings
    (seed RENDER_SEED). A control changes the music clearly where some change exceeds 3x its measure's spread.

    Beside them (SONG_PRIMES), how far the song's own stretches about the two primes' positions differ: a prime
    that follows the song can change the music clearly only where the song's own parts differ so."""
    from liveshtr.analysis import music

    reference = music.pitch_classes(music.to_measure_rate(song, samplerate))

    def measures(x: np.ndarray) -> dict:
        y = music.to_measure_rate(x, samplerate)
        m = music.measure(y).to_dict()
        m["pitch_corr"] = music.pitch_class_correlation(np.array(m["pitch_classes"]), reference)
        m["log_flatness"] = float(np.log10(max(m["flatness"], 1e-12)))
        return m

    plays = [{"seed": seed} for seed in CONTROL_SEEDS]
    plays += [{"seed": RENDER_SEED, **setting} for pair in CONTROL_SETTINGS.values() for setting in pair]
    rendered = [measures(x) for x in render_many(bundle, seconds, plays)]
    seeds, settings = rendered[: len(CONTROL_SEEDS)], rendered[len(CONTROL_SEEDS) :]
    spread = {k: max(m[k] for m in seeds) - min(m[k] for m in seeds) for k in CONTROL_MEASURES}
    effects = {}
    for name, ma, mb in zip(CONTROL_SETTINGS, settings[::2], settings[1::2], strict=True):
        effects[name] = {k: mb[k] - ma[k] for k in CONTROL_MEASURES}
    ma, mb = (measures(stretch_at(song, samplerate, p, seconds)) for p in (0.25, 0.75))
    effects[SONG_PRIMES] = {k: mb[k] - ma[k] for k in CONTROL_MEASURES}
    return {"spread": spread, "effects": effects}


def plot_signals(path: Path, title: str, signals: dict, samplerate: int) -> None:
    """One spectrogram per signal, and their long-term spectra on one plot (levels aligned at their means)."""
    from scipy import signal

    from liveshtr.analysis import figures

    fig, axes = figures.pyplot().subplots(len(signals) + 1, 1, figsize=(10, 2.2 * (len(signals) + 1)), dpi=90)
    for ax, (name, y) in zip(axes, signals.items(), strict=False):
        figures.spectrogram(ax, y, samplerate, f"{title}: {name}")
        ax.set_ylim(0, 6000)
    ax = axes[-1]
    for name, y in signals.items():
        f, p = signal.welch(y, fs=samplerate, nperseg=4096)
        db = 10 * np.log10(p + 1e-20)
        ax.semilogx(f[1:], db[1:] - db[1:].mean(), lw=0.8, label=name)
    ax.set_xlim(30, samplerate / 2)
    ax.set_xlabel("Hz")
    ax.set_ylabel("dB (mean removed)")
    ax.set_title("long-term spectrum", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    figures.save(fig, path)


def music_table(bundles, rows: list[dict], signals: dict, seconds: float, pictures: Path | None) -> list[dict]:
    """Print the music measures of every bundle's song, noises and renders (and draw them into `pictures`, one
    picture a song, numbered where bundles share one); return them in the bundles' order, each signal name ->
    measures."""
    from liveshtr.analysis.music import SR

    print()
    print(
        "| song | signal | beat | onsets/s | pitch classes vs song | harmony moves | flatness | harmonic share | "
        "persistence | copy of song | longest replay s |"
    )
    print("|---" * 11 + "|")
    measured = []
    for i, (bundle, r) in enumerate(zip(bundles, rows, strict=True)):
        song = signals[r["song"]]
        five = music_signals(bundle, song, bundle.audio.samplerate, seconds)
        if pictures:
            before = sum(other["song"] == r["song"] for other in rows[:i])
            plot_signals(pictures / f"{r['song']}{f'-{before + 1}' if before else ''}.png", r["song"], five, SR)
        measured.append(music_report(song, bundle.audio.samplerate, five))
        for name, m in measured[-1].items():
            copy = "" if m["copy"] is None else f"{m['copy']:.2f}"
            replay = "" if m["replay_s"] is None else f"{m['replay_s']:.2f}"
            print(
                f"| {r['song']} | {name} | {m['beat']:.2f} | {m['onsets_per_s']:.2f} | {m['pitch_corr']:.2f} | "
                f"{m['harmony_change']:.2f} | {m['flatness']:.4f} | {m['harmonic_share']:.2f} | "
                f"{m['persistence']:.2f} | {copy} | {replay} |",
                flush=True,
            )
    return measured


def floor_misses(m: dict, bar_s: float) -> list[str]:
    """The sound's floors that one song's measures (`music_report`'s) miss at the default temperature and at 0,
    by name: the beat (half the song's, where the song's is 0.4 or more), the partials' persistence (0.85x), pitch
    classes (0.6 and above both noises), onsets (0.5-2x), flatness (2.5x the song's and under half the ltas
    noise's), harmonic share (within 0.15), copy (under 0.85) and the longest replay (under a bar); at
    temperature 0 onsets (half the song's) and copy (under 0.9)."""
    song, render, zero = m["song"], m["render"], m["render T=0"]
    noises = max(m["ltas noise"]["pitch_corr"], m["envelope noise"]["pitch_corr"])
    checks = {
        "beat": song["beat"] < 0.4 or render["beat"] >= 0.5 * song["beat"],
        "persistence": render["persistence"] >= 0.85 * song["persistence"],
        "pitch classes": render["pitch_corr"] >= max(0.6, noises),
        "onsets": 0.5 <= render["onsets_per_s"] / max(song["onsets_per_s"], 1e-9) <= 2.0,
        "flatness": render["flatness"] <= min(2.5 * song["flatness"], 0.5 * m["ltas noise"]["flatness"]),
        "harmonic": abs(render["harmonic_share"] - song["harmonic_share"]) <= 0.15,
        "copy": render["copy"] < 0.85,
        "replay": render["replay_s"] < bar_s,
        "T=0 onsets": zero["onsets_per_s"] >= 0.5 * song["onsets_per_s"],
        "T=0 copy": zero["copy"] < 0.9,
    }
    return [name for name, held in checks.items() if not held]


def floors_table(bundles, measured: list[dict]) -> None:
    """Print the sound's floors for every bundle's song, song against render, and the floors each misses
    (`measured`: `music_table`'s, in the bundles' order)."""
    print()
    print(
        "| song | beat: song / render | persistence: song / render | pitch classes | onsets/s: song / render | "
        "flatness: song / render | harmonic: song / render | harmony moves: song / render | copy | "
        "longest replay s (a bar) | T=0: onsets, copy | misses |"
    )
    print("|---" * 12 + "|")
    for bundle, m in zip(bundles, measured, strict=True):
        name = bundle.meta["training"]["songs"][0]["name"]
        song, render, zero = m["song"], m["render"], m["render T=0"]
        bar_s = 4 * 60.0 / bundle.tempo
        misses = floor_misses(m, bar_s)
        print(
            f"| {name} | {song['beat']:.2f} / {render['beat']:.2f} | {song['persistence']:.2f} / "
            f"{render['persistence']:.2f} | {render['pitch_corr']:.2f} | {song['onsets_per_s']:.2f} / "
            f"{render['onsets_per_s']:.2f} | {song['flatness']:.4f} / {render['flatness']:.4f} | "
            f"{song['harmonic_share']:.2f} / {render['harmonic_share']:.2f} | "
            f"{song['harmony_change']:.2f} / {render['harmony_change']:.2f} | {render['copy']:.2f} | "
            f"{render['replay_s']:.2f} ({bar_s:.2f}) | {zero['onsets_per_s']:.2f}, {zero['copy']:.2f} | "
            f"{', '.join(misses) or 'none'} |",
            flush=True,
        )


def controls_table(bundles, rows: list[dict], signals: dict, seconds: float) -> None:
    """Print what each control changes in the music of every bundle, beside the seed-to-seed spread."""
    print()
    print("| song | control | beat | onsets/s | pitch classes | log10 flatness | harmonic share | clear |")
    print("|---" * 8 + "|")
    for bundle, r in zip(bundles, rows, strict=True):
        c = control_effects(bundle, signals[r["song"]], bundle.audio.samplerate, seconds)
        cells = " | ".join(f"{c['spread'][k]:.2f}" for k in CONTROL_MEASURES)
        print(f"| {r['song']} | seed spread ({len(CONTROL_SEEDS)} seeds) | {cells} | |", flush=True)
        for name, change in c["effects"].items():
            cells = " | ".join(f"{change[k]:+.2f}" for k in CONTROL_MEASURES)
            clear = any(abs(change[k]) > 3 * c["spread"][k] for k in CONTROL_MEASURES)
            print(f"| {r['song']} | {name} | {cells} | {'yes' if clear else 'no'} |", flush=True)


def spectral_table(rows: list[dict]) -> None:
    """The figures the quality tests check, one row a bundle."""
    print(
        "| song | train s | val / best baseline | min RMS dBFS | peak | moving dB/s (song) | loop corr | "
        "signature own / nearest other dB | T 0.3 vs 1.5: events/s (seeds) | offset0 -2 vs +2: shape dB (seeds) | "
        "T=0: moving, loop corr | phase SC dB |"
    )
    print("|---" * 12 + "|")
    for r in rows:
        print(
            f"| {r['song']} | {r['train_s']:.1f} | {r['val_mse']:.3f} / {r['baseline_mse']:.3f} | "
            f"{r['min_rms_db']:.1f} | {r['peak']:.2f} | {r['movement_db']:.2f} ({r['song_movement_db']:.2f}) | "
            f"{r['repeat_corr']:.2f} | {r['own_distance_db']:.2f} / {r['nearest_other_db']:.2f} | "
            f"{r['temperature_events']:.2f} ({r['seed_events']:.2f}) | {r['offset_db']:.2f} ({r['seed_db']:.2f}) | "
            f"{r['t0_movement_db']:.2f}, {r['t0_repeat_corr']:.2f} | {r['phase_db']:.1f} |"
        )
