"""A calendar feed server of the test's own on 127.0.0.1: an .ics with an ETag, 304s, failures, a huge body, a slow answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class FeedServer:
    """What the server serves (change it between fetches) and the requests it saw."""

    body: bytes
    etag: str = '"v1"'
    mode: str = "ok"  # ok | error | huge | huge-declared | slow | html | redirect
    slow_s: float = 3.0
    requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str = "/family.ics") -> str:
        """A URL on this server."""
        return f"http://127.0.0.1:{self.port}{path}"


@contextmanager
def feed_server(body: bytes) -> Iterator[FeedServer]:
    """Serve `body` as text/calendar on a free port until the block ends."""
    state = FeedServer(body)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            state.requests.append({"path": self.path, **{k.lower(): v for k, v in self.headers.items()}})
            mode = state.mode
            if mode == "redirect" and self.path != "/moved.ics":
                self._send(302, b"", {"Location": "/moved.ics"})
            elif mode == "error":
                self._send(500, b"internal error")
            elif mode == "huge-declared":
                self._send(200, b"BEGIN:VCALENDAR\r\n" + b"X" * (2 << 20))
            elif mode == "huge":  # no Content-Length: only counting the bytes read stops it
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for _ in range(64):
                        self.wfile.write(b"X" * 65536)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True
            elif mode == "slow":
                time.sleep(state.slow_s)
                self._send(200, state.body)
            elif mode == "html":
                self._send(200, b"<html><body>Please sign in</body></html>", {"Content-Type": "text/html"})
            elif self.headers.get("If-None-Match") == state.etag:
                self._send(304, b"", {"ETag": state.etag})
            else:
                self._send(200, state.body, {"ETag": state.etag, "Last-Modified": "Mon, 07 Dec 2026 10:00:00 GMT"})

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for k, v in {"Content-Type": "text/calendar", **(headers or {})}.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body:
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="feed-server", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
