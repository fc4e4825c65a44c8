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
import socket
import threading

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

from liveshtr.errors import LiveshtrError
from liveshtr.protocol import OscProtocol, Reply
from liveshtr.sched import CONTROL_PRIORITY, make_realtime

MAX_DATAGRAM = 65535


def encode(reply: Reply) -> bytes:
    builder = OscMessageBuilder(reply.address)
    for arg in reply.args:
        builder.add_arg(arg)
    return builder.build().dgram


class OscServer:
    def __init__(self, protocol: OscProtocol, host: str = "127.0.0.1", port: int = 0, allow: list | None = None):
        self.protocol = protocol
        # Loopback is always allowed; other senders only from the allow-list's networks.
        self.allow = [ipaddress.ip_network("127.0.0.0/8"), *(allow or [])]
        self.refused = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self.sock.bind((host, port))
        except OSError as exc:
            self.sock.close()
            raise LiveshtrError(f"--osc-port {port}: cannot listen on {host}:{port} ({exc.strerror})") from None
        self.sock.settimeout(0.2)  # lets stop() end the thread
        self.host, self.port = self.sock.getsockname()
        self.received = 0
        self.unparsable = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="liveshtr-osc", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        make_realtime(CONTROL_PRIORITY)
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(MAX_DATAGRAM)
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    break
                continue
            self.received += 1
            if not self.allowed(sender[0]):
                self.refused += 1
                continue
            self.handle_datagram(data, sender)

    def allowed(self, host: str) -> bool:
        address = ipaddress.ip_address(host)
        return any(address in network for network in self.allow if network.version == address.version)

    def handle_datagram(self, data: bytes, sender) -> None:
        try:
            messages = OscPacket(data).messages
        except (ParseError, Exception):  # python-osc raises more than ParseError on some garbage
            self.unparsable += 1
            return
        for timed in messages:
            message = timed.message
            try:
                replies = self.protocol.handle(message.address, list(message.params), sender[:2])
            except Exception as exc:  # a protocol bug must not take the control surface down
                replies = [Reply("/liveshtr/error", (str(message.address), f"internal error: {exc}"))]
            for reply in replies:
                self._send(reply, reply.to or sender)

    def _send(self, reply: Reply, peer) -> None:
        try:
            self.sock.sendto(encode(reply), peer)
        except OSError:
            pass  # the peer went away (or its port is closed): nothing to tell

    # -- feedback (called from the feedback thread) --------------------------------------------------------

    def publish_changes(self, changes: dict) -> None:
        self._send_subscribers(self.protocol.state(changes))

    def publish_telemetry(self, telemetry: dict) -> None:
        self._send_subscribers(self.protocol.telemetry(telemetry))

    def _send_subscribers(self, replies: list[Reply]) -> None:
        peers = list(self.protocol.subscribers)
        if not peers:
            return
        datagrams = [encode(r) for r in replies]
        for peer in peers:
            for data in datagrams:
                try:
                    self.sock.sendto(data, peer)
                except OSError:
                    pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sock.close()
