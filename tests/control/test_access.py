"""Who may play: loopback by default; anything wider needs a token and an OSC allow-list, or --insecure."""

from __future__ import annotations

import pytest

from liveshtr.control.access import Exposure, check_exposure, parse_host, parse_networks
from liveshtr.errors import ConfigError


def test_loopback_needs_nothing():
    assert "nothing beyond this machine" in check_exposure(Exposure("127.0.0.1", osc=True, web=True))[0]
    assert parse_host("localhost") == "127.0.0.1"


@pytest.mark.parametrize(
    "exposure, missing",
    [
        (Exposure("0.0.0.0", osc=True, web=True), ["--token", "--osc-allow"]),
        (Exposure("0.0.0.0", osc=True, web=True, token="s3cret-token"), ["--osc-allow"]),
        (Exposure("192.168.1.20", osc=True, web=True, osc_allow=parse_networks(["192.168.1.0/24"])), ["--token"]),
        (Exposure("0.0.0.0", osc=False, web=True), ["--token"]),
        (Exposure("0.0.0.0", osc=True, web=False), ["--osc-allow"]),
    ],
)
def test_an_unprotected_door_is_refused(exposure, missing):
    with pytest.raises(ConfigError) as info:
        check_exposure(exposure)
    message = str(info.value)
    assert "\n" not in message and "--insecure" in message
    for flag in missing:
        assert flag in message


def test_protected_or_insecure_exposures_say_what_is_open():
    lines = check_exposure(
        Exposure("0.0.0.0", True, True, token="s3cret-token", osc_allow=parse_networks(["192.168.1.7"]))
    )
    assert lines == ["OSC on 0.0.0.0 to 192.168.1.7/32", "page and WebSocket on 0.0.0.0 with the token"]
    lines = check_exposure(Exposure("0.0.0.0", True, True, insecure=True))
    assert all("ANYONE" in line for line in lines)
    assert check_exposure(Exposure("0.0.0.0", False, True, token="s3cret-token"))  # OSC off: the token is enough


@pytest.mark.parametrize("host", ["example.com", "::1", "300.1.1.1", ""])
def test_bad_hosts(host):
    with pytest.raises(ConfigError):
        parse_host(host)


@pytest.mark.parametrize("token", ["short", "has space!", "x" * 200, "a/b?c=d&e"])
def test_tokens_must_be_long_and_url_safe(token):
    with pytest.raises(ConfigError, match="--token"):
        check_exposure(Exposure("127.0.0.1", True, True, token=token))


def test_bad_networks():
    with pytest.raises(ConfigError, match="CIDR"):
        parse_networks(["192.168.1.0/33"])
