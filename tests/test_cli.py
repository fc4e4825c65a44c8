"""The command line: useful help, planned subcommands only, one-line errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from liveshtr.cli import SUBCOMMANDS, main
from tests.helpers import shared_song


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "liveshtr", *args], capture_output=True, text=True, timeout=300)


def test_help_lists_exactly_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out
    for planned_later in ("serve", "render", "bench", "devices"):
        if planned_later not in SUBCOMMANDS:
            assert f"    {planned_later}" not in out


@pytest.mark.parametrize("name", list(SUBCOMMANDS))
def test_every_subcommand_has_help_with_defaults(name, capsys):
    with pytest.raises(SystemExit):
        main([name, "--help"])
    out = capsys.readouterr().out
    assert "usage: liveshtr" in out


def test_inspect_reports_and_writes_resynthesis(tmp_path):
    out = tmp_path / "resynth.wav"
    result = run_cli("inspect", str(shared_song("violent_groove_4_berklee_olpc.mp3")), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "round-trip SNR" in result.stdout
    snr = float(result.stdout.split("round-trip SNR ")[1].split(" dB")[0])
    assert snr > 80  # 16-bit file output aside, the frames reproduce the drum groove
    audio, sr = sf.read(out)
    assert sr == 24000 and len(audio) == pytest.approx(37.15 * 24000, rel=1e-3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["inspect", "/no/such/song.wav"], "no such file or folder"),
        (["inspect", "{song}", "--hop", "4096"], "must be shorter than frame"),
        (["inspect", "{song}", "--highpass", "20000"], "Nyquist"),
        (["inspect", "{textfile}"], "not a readable audio file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    textfile = tmp_path / "notes.mp3"
    textfile.write_text("hello")
    song = tmp_path / "tone.wav"
    sf.write(song, 0.5 * np.sin(np.arange(24000) / 3.0), 24000)
    result = run_cli(*(a.format(song=song, textfile=textfile) for a in args))
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_wrong_flag_is_an_argparse_error():
    result = run_cli("inspect", "--no-such-flag")
    assert result.returncode == 2 and "usage:" in result.stderr
