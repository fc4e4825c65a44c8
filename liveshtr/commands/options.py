"""What every subcommand's command line shares beyond its own flags: a help that fits a screen, the rest of the
flags behind `--help-all`, and `--config FILE` to set any of them from a TOML file.

A command module lists its research and engine flags in `ADVANCED` (their long option strings); `--help` leaves
them out and says how to see them. `--config FILE` reads a TOML table whose keys are flags' long names (dashes or
underscores) and whose values are what the flag would be given: a number, a string, a list for a flag that takes
several values or a list such as `clock-harmonics = [4, 1, 8]`, true for a switch (or for a flag whose value may
be left out, such as `midi = true`). Each value is checked as the
flag itself checks it, and a wrong one is one line naming the file and the key. The command line wins over the
file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from liveshtr.errors import ConfigError


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" only where the help does not say its default already and there is one to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return super()._get_help_string(action)


def hide_advanced(parser: argparse.ArgumentParser, advanced: tuple[str, ...], command: str) -> None:
    """Leave the flags in `advanced` out of `--help`, and say where they are."""
    hidden = [a for a in parser._actions if set(a.option_strings) & set(advanced)]
    for action in hidden:
        action.help = argparse.SUPPRESS
    if hidden:
        parser.epilog = (
            f"{len(hidden)} more flags for research and the engine: liveshtr {command} --help-all. "
            "Any flag from a file: --config FILE (TOML, the flags' long names as keys)."
        )


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--help-all", action="store_true", help="show every flag, research and engine ones too")
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help="TOML file of settings, keyed by the flags' long names"
    )


def _value_text(action: argparse.Action, key: str, value) -> list[str] | str | bool:
    """A TOML value as the command line would give it, or a ConfigError."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: true or false")
        return value
    if action.nargs == "?" and value is True:  # a flag that may go without its value: `midi = true` is `--midi`
        return action.const
    if isinstance(value, bool) or isinstance(value, dict):
        raise ConfigError(f"{key}: expected {'a list of ' if action.nargs in ('+', '*') else ''}a value, not {value!r}")
    if isinstance(value, list):
        if action.nargs in ("+", "*"):
            return [str(v) for v in value]
        return ",".join(str(v) for v in value)  # a list flag written as a TOML list: clock-harmonics = [4, 1, 8]
    return [str(value)] if action.nargs in ("+", "*") else str(value)


def apply_config(parser: argparse.ArgumentParser, path: Path) -> None:
    """Set the parser's defaults from a TOML file, each value checked as its flag checks it."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        table = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--config {path}: not TOML ({exc})") from None
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "help_all", "config")}
    defaults = {}
    for key, value in table.items():
        dest = key.replace("-", "_")
        action = actions.get(dest)
        if action is None:
            raise ConfigError(
                f"--config {path}: {key!r} is not a setting of this command (its flags' long names; --help-all)"
            )
        try:
            text = _value_text(action, key, value)
            if isinstance(text, bool) or (action.nargs == "?" and value is True):  # a switch, or a flag's const
                defaults[dest] = text
                continue
            items = text if isinstance(text, list) else [text]
            converted = [action.type(t) if action.type else t for t in items]
            for item in converted:
                if action.choices is not None and item not in action.choices:
                    raise ConfigError(f"{key}: {item!r} is not one of {', '.join(map(str, action.choices))}")
            defaults[dest] = converted if isinstance(text, list) else converted[0]
        except ConfigError as exc:
            raise ConfigError(f"--config {path}: {exc}") from None
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise ConfigError(f"--config {path}: {key}: {exc}") from None
    parser.set_defaults(**defaults)
