"""Audio in: real recordings decode to finite, normalised mono; every unusable file is one clear error."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from liveshtr.config import AudioConfig
from liveshtr.errors import AudioError, ConfigError
from liveshtr.sound.audio import expand_paths, load_song, load_songs, write_audio
from tests.helpers import SHARED_AUDIO, shared_song


def band_energy(x: np.ndarray, samplerate: int, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / samplerate)
    return float(spec[(freqs >= lo) & (freqs < hi)].sum())


def test_real_recordings_decode_to_normalised_mono(songs):
    cfg = AudioConfig()
    for song in songs:
        assert song.samples.ndim == 1 and song.samples.dtype == np.float32
        assert song.samplerate == cfg.samplerate
        assert np.isfinite(song.samples).all()
        peak = np.abs(song.samples).max()
        assert peak == pytest.approx(10 ** (cfg.peak_db / 20), rel=1e-4)
        # Duration is preserved by resampling (44.1 kHz files -> 24 kHz); the trim takes only quiet edges.
        info = sf.info(str(song.path))
        whole = load_song(song.path, AudioConfig(trim_db=0))
        assert whole.duration_s == pytest.approx(info.frames / info.samplerate, abs=0.01)
        assert 0.9 * whole.duration_s <= song.duration_s <= whole.duration_s


def test_quiet_edges_are_trimmed_and_quiet_passages_kept(tmp_path):
    """Silence and a fade-out's tail go; a quiet passage between loud ones stays; so does a short loop's edge."""
    sr = 24000
    t = np.arange(3 * sr) / sr
    tone = 0.5 * np.sin(2 * np.pi * 220 * t)
    fade = tone[: 2 * sr] * np.logspace(0, -3, 2 * sr)  # 60 dB down over 2 s
    quiet = 0.01 * tone[:sr]  # 34 dB down: a rest inside the music
    x = np.concatenate([np.zeros(sr), tone, quiet, tone, fade, np.zeros(sr)])
    path = tmp_path / "edges.wav"
    sf.write(path, x, sr)
    song = load_song(path, AudioConfig())
    # Kept: the tones, the quiet passage and the fade down to 20 dB below the median (the first 2/3 s of it).
    assert song.duration_s == pytest.approx(3 + 1 + 3 + 2 / 3, abs=0.15)
    assert load_song(path, AudioConfig(trim_db=0)).duration_s == pytest.approx(len(x) / sr, abs=0.01)
    # Too short to lose its edges: a loop keeps them rather than being refused.
    assert load_song(path, AudioConfig(), min_samples=len(x) - sr // 2).duration_s == pytest.approx(len(x) / sr)


def test_file_decoding_above_full_scale_is_brought_below_it(songs):
    loud = next(s for s in songs if s.name.startswith("electronic_happy_song"))
    assert loud.source_peak > 1.0
    assert np.abs(loud.samples).max() < 1.0


def test_other_rates_and_channel_counts(tmp_path):
    t = np.arange(int(1.5 * 32000)) / 32000
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, -tone * 0.5], axis=1)  # (N, 2), 32 kHz
    path = tmp_path / "tone.flac"
    sf.write(path, stereo, 32000)
    song = load_song(path, AudioConfig(samplerate=16000))
    assert song.source_channels == 2 and song.source_samplerate == 32000
    assert len(song.samples) == pytest.approx(1.5 * 16000, abs=2)
    # Mono mix of (tone, -tone/2) is tone/4: still a 440 Hz sine.
    spec = np.abs(np.fft.rfft(song.samples))
    assert np.fft.rfftfreq(len(song.samples), 1 / 16000)[spec.argmax()] == pytest.approx(440, abs=2)


def test_highpass_removes_low_frequencies():
    path = shared_song("hungarian_dance_5_brahms_us_army_strings.ogg")
    plain = load_song(path, AudioConfig())
    hp = load_song(path, AudioConfig(highpass_hz=500))
    sr = plain.samplerate
    low_ratio = band_energy(hp.samples, sr, 20, 250) / band_energy(hp.samples, sr, 1000, 8000)
    plain_ratio = band_energy(plain.samples, sr, 20, 250) / band_energy(plain.samples, sr, 1000, 8000)
    assert low_ratio < plain_ratio / 100  # at least 20 dB less low end relative to the mids


def test_folder_expands_to_its_audio_files(song_files):
    assert expand_paths([SHARED_AUDIO]) == song_files
    assert len(load_songs([song_files[-1], song_files[-2]], AudioConfig())) == 2


def test_write_audio_round_trips(tmp_path):
    x = (0.3 * np.sin(np.linspace(0, 200, 8000))).astype(np.float32)
    write_audio(tmp_path / "a.wav", x, 8000)
    y, sr = sf.read(tmp_path / "a.wav", dtype="float32")
    assert sr == 8000 and np.abs(x - y).max() < 1e-4
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav"]  # no temporary left behind


def _silent_wav(path, seconds=1.0):
    sf.write(path, np.zeros(int(seconds * 8000)), 8000)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_text("not audio at all"), "not a readable audio file"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk"), "not a readable audio file"),
        (lambda p: sf.write(p, np.zeros(0), 8000), "no audio samples"),
        (_silent_wav, "silent"),
        (lambda p: sf.write(p, np.array([0.1, np.nan, 0.2] * 1000), 8000, subtype="FLOAT"), "non-finite"),
    ],
    ids=["missing", "text", "corrupt-header", "empty", "silent", "nan"],
)
def test_unusable_files_raise_one_clear_line(tmp_path, make, message):
    path = tmp_path / "song.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as err:
        load_song(path, AudioConfig())
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_too_short_for_a_training_sequence(tmp_path):
    path = tmp_path / "short.wav"
    sf.write(path, 0.5 * np.sin(np.arange(8000) / 5.0), 8000)  # 1 s
    with pytest.raises(AudioError, match="shorter than one training sequence"):
        load_song(path, AudioConfig(), min_samples=2 * 24000)


def test_silent_after_highpass(tmp_path):
    path = tmp_path / "hum.wav"
    sf.write(path, 0.5 * np.sin(2 * np.pi * 50 * np.arange(48000) / 48000), 48000)
    with pytest.raises(AudioError, match="silent after the 4000 Hz high-pass"):
        load_song(path, AudioConfig(highpass_hz=4000))


def test_folder_without_audio(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(AudioError, match="holds no audio files"):
        expand_paths([tmp_path])


@pytest.mark.parametrize("kwargs", [{"samplerate": 100}, {"highpass_hz": 30000}, {"highpass_hz": -1}])
def test_impossible_audio_settings(kwargs):
    with pytest.raises(ConfigError):
        AudioConfig(**kwargs)
