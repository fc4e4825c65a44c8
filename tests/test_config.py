"""The command line a performer holds in their head: `--help` shows the flags for playing and training, the
research and engine flags wait behind `--help-all`, and `--config FILE` sets any flag from a TOML file."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import soundfile

from liveshtr.cli import SUBCOMMANDS, build_parser, command_parser
from liveshtr.commands.options import apply_config
from liveshtr.errors import ConfigError

RESEARCH = {"train": ["--beta", "--prior-weight", "--seq-len", "--clock-harmonics"], "serve": ["--simulate-load-ms"]}


def liveshtr(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "liveshtr", *args], capture_output=True, text=True, timeout=120)


def flags(text: str) -> set[str]:
    return set(re.findall(r"(?:^  |, )(--[\w-]+)", text, flags=re.M))


@pytest.mark.parametrize("command", list(SUBCOMMANDS))
def test_help_fits_a_screen_and_help_all_has_every_flag(command):
    short, full = liveshtr(command, "--help"), liveshtr(command, "--help-all")
    assert short.returncode == 0 and full.returncode == 0, short.stderr + full.stderr
    assert len(short.stdout.splitlines()) <= 60, command
    every = {o for a in command_parser(build_parser(), command)._actions for o in a.option_strings}
    assert flags(full.stdout) == {o for o in every if o.startswith("--")}  # nothing left out of --help-all
    hidden = flags(full.stdout) - flags(short.stdout)
    assert set(RESEARCH.get(command, [])) <= hidden
    if hidden:
        assert f"{len(hidden)} more flags" in short.stdout and f"liveshtr {command} --help-all" in short.stdout
    assert "(default: None)" not in full.stdout and not re.search(r"\(default: [^)]*\) \(default:", full.stdout)


def parsed(command: str, toml: str, tmp_path, *argv: str):
    config = tmp_path / "settings.toml"
    config.write_text(toml)
    parser = build_parser()
    apply_config(command_parser(parser, command), config)
    return parser.parse_args([command, *argv])


def test_a_config_file_sets_any_flag_as_the_flag_would_and_the_command_line_wins(tmp_path):
    toml = 'epochs = 3\nclock-harmonics = [4, 1, 8]\nposition_harmonics = "0"\nbeta = 2\nloop = "on"\n'
    args = parsed("train", toml, tmp_path, "song.wav", "--epochs", "5")
    assert (args.epochs, args.clock_harmonics, args.position_harmonics, args.beta, args.loop) == (
        5,
        (4, 1, 8),
        (),
        2.0,
        "on",
    )
    args = parsed("serve", "latent = [1.5, -2]\nno-web = true\nsink = 'null'\nmidi = true\n", tmp_path)
    assert args.latent == [1.5, -2.0] and args.no_web is True and args.sink == "null"
    assert args.midi == build_parser().parse_args(["serve", "--midi"]).midi  # as the flag without a port
    assert parsed("serve", 'midi = "keys"', tmp_path).midi == "keys"


@pytest.mark.parametrize(
    "toml, said",
    [
        ("bogus = 1", "'bogus' is not a setting of this command"),
        ('epochs = "many"', "epochs: invalid literal"),
        ("no-web = 1", "no-web: true or false"),
        ('precision = "int4"', "precision: 'int4' is not one of auto, float32, int8"),
        ("epochs = [1, 2]", "epochs: invalid literal"),
        ("epochs = 3\nlr = { x = 1 }", "lr: expected a value"),
        ("epochs = = 3", "not TOML"),
    ],
)
def test_a_wrong_setting_is_one_line_naming_the_file_and_the_key(tmp_path, toml, said):
    command = "serve" if "precision" in toml or "web" in toml else "train"
    with pytest.raises(ConfigError, match=re.escape(said)) as caught:
        parsed(command, toml, tmp_path, *(["song.wav"] if command == "train" else []))
    assert str(caught.value).startswith("--config ") and "\n" not in str(caught.value)


def test_render_takes_its_settings_from_a_file_end_to_end(tmp_path):
    config = tmp_path / "render.toml"
    config.write_text("seconds = 1.0\nseed = 3\ntemperature = 0.5\n")
    out = tmp_path / "out.wav"
    result = liveshtr("render", "-o", str(out), "--config", str(config), "--seconds", "0.5")
    assert result.returncode == 0, result.stderr
    assert soundfile.info(out).duration == pytest.approx(0.5, abs=0.01)  # the command line won over the file
    missing = liveshtr("render", "-o", str(out), "--config", str(tmp_path / "none.toml"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "none.toml: cannot read it" in missing.stderr
