"""Who may play: safe defaults for the control servers, because performers share Wi-Fi with the audience.

Both servers listen on 127.0.0.1 unless told otherwise. Listening anywhere else needs protection on every open
door (a `--token` for the page and WebSocket, an `--osc-allow` list for OSC, which has no authentication of its
own) or an explicit `--insecure`. `check_exposure` is the rule, as a pure function the CLI and tests call.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from liveshtr.errors import ConfigError

TOKEN = re.compile(r"[A-Za-z0-9._~-]{8,128}")  # URL-safe, so the page can carry it in its address


@dataclass(frozen=True)
class Exposure:
    host: str  # the address both servers bind
    osc: bool  # the OSC server runs
    web: bool  # the WebSocket server and page run
    token: str | None = None
    osc_allow: tuple = ()  # ipaddress networks allowed to send OSC (loopback always is)
    insecure: bool = False

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.host).is_loopback


def parse_host(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(f"--host {host!r}: give an IPv4 address of this machine (0.0.0.0 for every one)") from None
    if address.version != 4:
        raise ConfigError(f"--host {host}: only IPv4 addresses are supported (OSC clients speak IPv4)")
    return host


def parse_networks(specs: list[str] | None) -> tuple:
    networks = []
    for spec in specs or []:
        try:
            networks.append(ipaddress.ip_network(spec, strict=False))
        except ValueError:
            raise ConfigError(f"--osc-allow {spec!r}: give a network as CIDR, such as 192.168.1.0/24") from None
    return tuple(networks)


def check_exposure(e: Exposure) -> list[str]:
    """Refuse an unprotected exposure (ConfigError); otherwise say, in lines for the terminal, what is exposed."""
    if e.token is not None and not TOKEN.fullmatch(e.token):
        raise ConfigError("--token: use 8-128 letters, digits or . _ ~ - (it travels in the page's address)")
    if e.loopback:
        return [f"nothing beyond this machine (servers on {e.host})"]
    missing = []
    if e.web and e.token is None:
        missing.append("--token SECRET (for the page and WebSocket)")
    if e.osc and not e.osc_allow:
        missing.append("--osc-allow CIDR (the networks that may send OSC)")
    if missing and not e.insecure:
        raise ConfigError(
            f"--host {e.host} opens the controls to the network: give {' and '.join(missing)}, or --insecure"
        )
    lines = []
    if e.osc:
        who = ", ".join(str(n) for n in e.osc_allow) if e.osc_allow else "ANYONE (--insecure)"
        lines.append(f"OSC on {e.host} to {who}")
    if e.web:
        lines.append(f"page and WebSocket on {e.host} " + ("with the token" if e.token else "to ANYONE (--insecure)"))
    return lines


def reachable_address(host: str) -> str:
    """An address other machines can use for `host` (for 0.0.0.0: this machine's main interface, if it has one)."""
    if host != "0.0.0.0":
        return host
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # picks the outgoing interface; sends nothing
            return s.getsockname()[0]
        except OSError:
            return socket.gethostname()
