"""HTTP plumbing: a threading server on 127.0.0.1 that hands each request to a dispatch function.

Keep-alive (HTTP/1.1 with Content-Length) and TCP_NODELAY matter: without them every request
pays the ~40 ms delayed-ACK/Nagle stall, which would dominate a test suite. Streams are sent with
chunked transfer encoding, one chunk per event, so clients see each event as it is written.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from spark.testing._exchange import Reply, json_reply

logger = logging.getLogger("spark")

Dispatch = Callable[[str, str, bytes, dict[str, str]], Reply]

# Ends a chunked body; a stream that is cut short never sends it.
_LAST_CHUNK = b"0\r\n\r\n"
_INTERNAL_ERROR = json_reply(
    {
        "error": {
            "code": 500,
            "message": "spark.testing server bug; see the log",
            "type": "server_error",
        }
    },
    status=500,
)


class _Handler(BaseHTTPRequestHandler):
    """Reads one request, asks the server's dispatch function for a reply, writes it."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: HttpServer

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def _serve(self) -> None:
        body = self._read_body()
        try:
            reply = self.server.dispatch(self.command, self.path, body, dict(self.headers.items()))
        except Exception:  # a bug here must reach the test as an error, not as a hang
            logger.exception("spark.testing: failed to answer %s %s", self.command, self.path)
            reply = _INTERNAL_ERROR
        try:
            self._write(reply)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()  # the blank line after the last chunk (no trailers sent)
                return b"".join(parts)
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _write(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers:
            self.send_header(name, value)
        if reply.stream is None:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        for piece in reply.stream:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        if reply.disconnect:
            self.close_connection = True
        else:
            self.wfile.write(_LAST_CHUNK)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay silent: a test server that prints every request drowns test output."""


class HttpServer(ThreadingHTTPServer):
    """A threading HTTP server that can close its open keep-alive connections on stop."""

    daemon_threads = True
    # A suite's asyncio.gather opens dozens of connections at once; socketserver's default
    # backlog of 5 reset the rest (ConnectionResetError in the SDK).
    request_queue_size = 256

    def __init__(self, port: int, dispatch: Dispatch) -> None:
        self.dispatch = dispatch
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cut every open client connection, so no keep-alive socket outlives the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log quietly: clients dropping connections is normal for a test server."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.debug("spark.testing: client %s went away", client_address, exc_info=True)
        else:
            logger.exception("spark.testing: error serving %s", client_address)
