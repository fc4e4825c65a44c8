"""The OSC server: UDP datagrams in, `OscProtocol` replies back to the sender.

One thread reads datagrams one at a time (a flood cannot spawn threads), decodes them with python-osc and hands
every message to the protocol at once: bundles are applied on arrival whatever their timetag (TouchDesigner
stamps everything; sleeping until a timetag would stall every later message). Datagrams that are not OSC at all
are counted and dropped; anything parsable but wrong gets `/liveshtr/error` from the protocol. Datagrams from a
host outside the allow-list are dropped unanswered (an answer could be aimed at a spoofed address).

Subscribers (`/liveshtr/subscribe`) get the feedback thread's changes and telemetry from the same socket.
"""

from __future__ import annotations

import ipaddress
import selectors
import socket
import time
from collections.abc import Callable

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

from liveshtr.control.commands import Later
from liveshtr.control.osc_protocol import OscProtocol, Reply
from liveshtr.errors import LiveshtrError
from liveshtr.live.sched import CONTROL_PRIORITY, Worker, run_later

MAX_DATAGRAM = 65535
DRAIN = 64  # datagrams read per wake-up, at most
DEFER_S = 0.005  # the longest a datagram waits for the producer's hop (then it is handled anyway)
DEFER_STEP_S = 0.0002


def encode(reply: Reply) -> bytes:
    builder = OscMessageBuilder(reply.address)
    for arg in reply.args:
        builder.add_arg(arg)
    return builder.build().dgram


class OscServer:
    def __init__(
        self,
        protocol: OscProtocol,
        host: str = "127.0.0.1",
        port: int = 0,
        allow: list | None = None,
        busy: Callable[[], bool] | None = None,
    ):
        """`busy()`: whether the audio producer is making a hop; a datagram waits (at most DEFER_S) until it is
        done, so that a flood of messages does not take the interpreter from the producer mid-hop."""
        self.protocol = protocol
        self.busy = busy
        self._allowed: dict[str, bool] = {}  # by host, as the allow-list answered
        # Loopback is always allowed; other senders only from the allow-list's networks.
        self.allow = [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"), *(allow or [])]
        self.refused = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise LiveshtrError(f"--osc-port {port}: cannot listen on {host}:{port} ({exc.strerror})") from None
        self.host, self.port = self.sock.getsockname()
        self.sockets = [self.sock]
        self.sock6 = None
        if ipaddress.ip_address(self.host).is_loopback:
            # Clients that resolve "localhost" to ::1 first (common on macOS) would otherwise send into the void.
            self.sock6 = _loopback6(self.port)
            if self.sock6 is not None:
                self.sockets.append(self.sock6)
        for sock in self.sockets:
            sock.setblocking(False)
        self.received = 0
        self.unparsable = 0
        self._worker = Worker("liveshtr-osc", self._run, CONTROL_PRIORITY)

    def start(self) -> None:
        self._worker.start()

    def _run(self) -> None:
        with selectors.DefaultSelector() as selector:
            for sock in self.sockets:
                selector.register(sock, selectors.EVENT_READ)
            while not self._worker.stopping.is_set():
                for key, _ in selector.select(timeout=0.2):  # the timeout lets stop() end the thread
                    for _ in range(DRAIN):  # what has arrived, without a select per datagram
                        try:
                            data, sender = key.fileobj.recvfrom(MAX_DATAGRAM)
                        except OSError:  # nothing more (or closing)
                            break
                        self.received += 1
                        if not self.allowed(sender[0]):
                            self.refused += 1
                            continue
                        if self.busy is not None:
                            self._defer()
                        self.handle_datagram(data, sender[:2])

    def _defer(self) -> None:
        """The producer first: Python runs one thread at a time, and a hop that waits for the interpreter
        behind a flood of messages is late."""
        waited = 0.0
        while self.busy() and waited < DEFER_S:
            time.sleep(DEFER_STEP_S)
            waited += DEFER_STEP_S

    def allowed(self, host: str) -> bool:
        known = self._allowed.get(host)
        if known is None:
            address = ipaddress.ip_address(host)
            known = any(address in network for network in self.allow if network.version == address.version)
            if len(self._allowed) < 1024:  # senders, not datagrams: a spoofed flood cannot grow it
                self._allowed[host] = known
        return known

    def handle_datagram(self, data: bytes, sender) -> None:
        try:
            messages = OscPacket(data).messages
        except (ParseError, Exception):  # python-osc raises more than ParseError on some garbage
            self.unparsable += 1
            return
        for timed in messages:
            message = timed.message
            try:
                replies = self.protocol.handle(message.address, list(message.params), sender)
            except Exception as exc:  # a protocol bug must not take the control surface down
                replies = [Reply("/liveshtr/error", (str(message.address), f"internal error: {exc}"))]
            for reply in replies:
                if isinstance(reply, Later):  # a bundle to load: its replies come from the loader's thread
                    run_later(reply.work, self._send_later)
                else:
                    self._send(reply, reply.to or sender)

    def _send_later(self, replies: list[Reply]) -> None:
        """Replies made on the loader's thread, each to its `to`."""
        for reply in replies:
            if reply.to is not None:
                self._send(reply, reply.to)

    def _send(self, reply: Reply, peer) -> None:
        self._sendto(encode(reply), peer)

    def _sendto(self, data: bytes, peer) -> None:
        sock = self.sock6 if ":" in peer[0] and self.sock6 is not None else self.sock
        try:
            sock.sendto(data, peer)
        except OSError:
            pass  # the peer went away (or its port is closed, or its buffer is full): nothing to tell

    def summary(self) -> dict:
        return {
            "port": self.port,
            "received": self.received,
            "errors": self.protocol.errors,
            "unparsable": self.unparsable,
            "refused": self.refused,
            "subscribers": len(self.protocol.subscribers),
        }

    # -- feedback (called from the feedback thread) --------------------------------------------------------

    def publish_changes(self, changes: dict) -> None:
        self._send_subscribers(self.protocol.state(changes))

    def publish_telemetry(self, telemetry: dict) -> None:
        self._send_subscribers(self.protocol.telemetry(telemetry))

    def publish(self, replies: list[Reply]) -> None:
        """News for every subscriber (a MIDI binding learned), from any thread."""
        self._send_subscribers(replies)

    def _send_subscribers(self, replies: list[Reply]) -> None:
        peers = list(self.protocol.subscribers)
        if not peers:
            return
        datagrams = [encode(r) for r in replies]
        for peer in peers:
            for data in datagrams:
                self._sendto(data, peer)

    def stop(self) -> None:
        self._worker.stop()
        for sock in self.sockets:
            sock.close()


def _loopback6(port: int) -> socket.socket | None:
    """A socket on [::1]:port beside the IPv4 one, or None where IPv6 is off or the port is taken there."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError:
        return None
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(("::1", port))
        return sock
    except OSError:
        sock.close()
        return None
