"""The WebSocket server and the browser page, on one port: `WebProtocol` replies out, feedback broadcast to all.

    GET /, /app.js, /style.css      the page (package data in liveshtr/control/web/, nothing from the internet)
    GET /ws (WebSocket upgrade)     JSON messages, see `web_protocol.py`

It runs an asyncio loop in its own thread. The feedback thread hands it changes and telemetry through
`call_soon_threadsafe`, so the engine and the OSC server never wait for a browser. A client whose socket stops
draining (a phone on bad Wi-Fi) is skipped rather than buffered without bound: it misses telemetry, and when it
drains it gets the whole state again. With a token, the page and the WebSocket both need `?token=...`; a
WebSocket request from a page served by another origin is refused.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
from http import HTTPStatus
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from liveshtr.control.commands import Later
from liveshtr.control.web_protocol import MAX_MESSAGE_BYTES, WebProtocol
from liveshtr.errors import LiveshtrError
from liveshtr.live.sched import CONTROL_PRIORITY, make_realtime, run_later

PAGES = {
    "/": ("index.html", "text/html"),
    "/app.js": ("app.js", "text/javascript"),
    "/style.css": ("style.css", "text/css"),
}
SLOW_CLIENT_BYTES = 256 * 1024  # a client with this much unsent is skipped until it drains
SECURITY_HEADERS = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:"),
]


def load_pages() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("liveshtr.control") / "web"
    try:
        return {path: ((folder / name).read_bytes(), kind) for path, (name, kind) in PAGES.items()}
    except OSError as exc:
        raise LiveshtrError(
            f"the page's files are missing ({exc.filename}); reinstall liveshtr, or use --no-web"
        ) from None


class WebServer:
    def __init__(self, protocol: WebProtocol, host: str = "127.0.0.1", port: int = 0, token: str | None = None):
        self.protocol = protocol
        self.host = host
        self.token = token
        self.pages = load_pages()
        self.clients: set[ServerConnection] = set()
        self.stale: set[ServerConnection] = set()  # skipped while slow: owed the whole state
        self.refused = 0  # requests without the token, or from a foreign origin
        self.skipped = 0  # messages a slow client did not get
        self.received = 0
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._server = None
        self._requested_port = port
        self.port = port

    # -- lifecycle (called from the main thread) -------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="liveshtr-web", daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._open(), self._loop)
        try:
            future.result(timeout=10)
        except OSError as exc:
            self.stop()
            raise LiveshtrError(
                f"--web-port {self._requested_port}: cannot listen on {self.host}:{self._requested_port} "
                f"({exc.strerror or exc})"
            ) from None

    def _run(self) -> None:
        make_realtime(CONTROL_PRIORITY)
        self._loop.run_forever()

    async def _open(self) -> None:
        self._server = await serve(
            self._session,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            max_size=MAX_MESSAGE_BYTES,
            max_queue=64,
            ping_interval=5,  # a vanished client is dropped within ~10 s
            ping_timeout=5,
            close_timeout=1,
            compression=None,  # telemetry is small; deflate would only cost CPU next to the audio
            server_header=None,
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        """Close every connection (a client that does not answer the closing handshake gets a second) and end."""

        async def close():
            if self._server is not None:
                self._server.close()
                await asyncio.wait_for(self._server.wait_closed(), 5)
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        if self._thread is not None and self._loop.is_running():
            try:
                asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
            except Exception as exc:  # the loop is stopped below all the same; the closing counters say so
                self.protocol.errors += 1
                self.protocol.last_error = f"closing the page's server: {type(exc).__name__}: {exc}"
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        if not self._loop.is_running():
            self._loop.close()

    def summary(self) -> dict:
        return {
            "port": self.port,
            "received": self.received,
            "errors": self.protocol.errors,
            "refused": self.refused,
            "skipped": self.skipped,
        }

    # -- feedback (called from the feedback thread) --------------------------------------------------------

    def publish_changes(self, changes: dict) -> None:
        self._send_all({"type": "state", "values": changes})

    def publish(self, message: dict) -> None:
        """News for every page (a MIDI binding learned), from any thread."""
        self._send_all(message)

    def publish_telemetry(self, telemetry: dict) -> None:
        self._send_all({"type": "telemetry", **telemetry})

    def _publish_all(self, messages: list[dict]) -> None:
        """Messages made on the loader's thread, for every page."""
        for message in messages:
            self._send_all(message)

    def _send_all(self, message: dict) -> None:
        if self.clients:
            text = json.dumps(message, separators=(",", ":"))
            self._loop.call_soon_threadsafe(self._broadcast, text)

    # -- the loop's side ------------------------------------------------------------------------------------

    def _broadcast(self, text: str) -> None:
        ready = []
        for client in self.clients:
            transport = client.transport
            if transport is None or transport.get_write_buffer_size() > SLOW_CLIENT_BYTES:
                self.skipped += 1
                self.stale.add(client)
                continue
            if client in self.stale:  # it drained: catch it up with everything it missed
                self.stale.discard(client)
                broadcast([client], json.dumps(self.protocol.full_state()))
            ready.append(client)
        broadcast(ready, text)

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        url = urlsplit(request.path)
        if self.token is not None and url.path in ("/", "/ws"):  # the scripts and styles hold nothing private
            given = parse_qs(url.query).get("token", [""])[0]
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                self.refused += 1
                return connection.respond(HTTPStatus.FORBIDDEN, "liveshtr: this server needs ?token=...\n")
        if url.path == "/ws":
            origin = request.headers.get("Origin")
            host = request.headers.get("Host", "")
            if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
                self.refused += 1  # a page from elsewhere (a web site the performer has open) may not play us
                return connection.respond(HTTPStatus.FORBIDDEN, f"liveshtr: origin {origin} is not this page\n")
            return None  # go on with the WebSocket handshake
        page = self.pages.get(url.path)
        if page is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "liveshtr: not found; the page is at /\n")
        body, kind = page
        headers = Headers(
            [("Content-Type", f"{kind}; charset=utf-8"), ("Content-Length", str(len(body))), *SECURITY_HEADERS]
        )
        return Response(HTTPStatus.OK.value, "OK", headers, body)

    async def _session(self, connection: ServerConnection) -> None:
        self.clients.add(connection)
        try:
            await connection.send(json.dumps(self.protocol.full_state()))
            async for text in connection:
                self.received += 1
                try:
                    replies = self.protocol.handle(text)
                except Exception as exc:  # a protocol bug must not take the page down
                    replies = [{"type": "error", "error": f"internal error: {exc}", "message": None}]
                for reply in replies:
                    if isinstance(reply, Later):  # a bundle to load: what comes of it is news for every page
                        run_later(reply.work, self._publish_all)
                    elif reply.pop("_all", False):  # news for every page (a scene saved or deleted)
                        self._broadcast(json.dumps(reply, separators=(",", ":")))
                    else:
                        await connection.send(json.dumps(reply))
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(connection)
            self.stale.discard(connection)
