"""A small threaded HTTP server on 127.0.0.1 for tests that download media.

It serves files from a folder and a few routes that misbehave the way real sites do: pages
that answer 404 or 403, a route that stalls longer than a client's timeout, and a route that
promises a whole file (Content-Length) but stops half way and closes. It counts requests per
path, so tests can assert that a cache hit made no request or that a download was retried.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

_CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".webm": "video/webm",
    ".html": "text/html; charset=utf-8",
    ".jpg": "image/jpeg",
    ".png": "image/png",
}


@dataclass(frozen=True)
class _Route:
    kind: str  # page | status | slow | cut
    body: bytes = b""
    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    delay: float = 0.0


class MediaServer:
    """Files from `root` at `/<name>`, plus routes added with the `add_*` methods."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: Counter[str] = Counter()
        self._routes: dict[str, _Route] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def add_page(self, path: str, text: str, content_type: str = "text/html; charset=utf-8") -> str:
        self._routes[_norm(path)] = _Route("page", text.encode(), content_type=content_type)
        return self.url(path)

    def add_status(self, path: str, status: int, body: str = "") -> str:
        page = body or f"<html><body><h1>{status}</h1></body></html>"
        self._routes[_norm(path)] = _Route("status", page.encode(), status=status)
        return self.url(path)

    def add_slow(self, path: str, delay: float) -> str:
        """A route that answers nothing for `delay` seconds (cut short when the server stops)."""
        self._routes[_norm(path)] = _Route("slow", delay=delay)
        return self.url(path)

    def add_cut(self, path: str, file: Path) -> str:
        """A route that announces all of `file` but sends only its first half, then closes."""
        ctype = _CONTENT_TYPES.get(file.suffix.lower(), "application/octet-stream")
        self._routes[_norm(path)] = _Route("cut", file.read_bytes(), content_type=ctype)
        return self.url(path)

    def count(self, path: str) -> int:
        with self._lock:
            return self.requests[_norm(path)]

    def start(self) -> MediaServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MediaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- used by the handler ---

    def _record(self, path: str) -> None:
        with self._lock:
            self.requests[path] += 1


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that time out or hang up mid-answer are what some tests are about


def _norm(path: str) -> str:
    return "/" + path.lstrip("/")


def _handler_for(server: MediaServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep test output clean

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def do_GET(self) -> None:
            self._answer(send_body=True)

        def _answer(self, send_body: bool) -> None:
            path = urlsplit(self.path).path
            server._record(path)
            route = server._routes.get(path)
            if route is None:
                self._serve_file(path, send_body)
            elif route.kind == "slow":
                server._stop.wait(route.delay)
                self._send(200, b"too late", "text/plain", send_body)
            elif route.kind == "cut":
                self.send_response(200)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                if send_body:
                    self.wfile.write(route.body[: len(route.body) // 2])
                    self.wfile.flush()
                self.close_connection = True
            else:
                self._send(route.status, route.body, route.content_type, send_body)

        def _serve_file(self, path: str, send_body: bool) -> None:
            file = (server.root / path.lstrip("/")).resolve()
            if not file.is_file() or server.root.resolve() not in file.parents:
                self._send(404, b"not found", "text/plain", send_body)
                return
            ctype = _CONTENT_TYPES.get(file.suffix.lower(), "application/octet-stream")
            self._send(200, file.read_bytes(), ctype, send_body)

        def _send(self, status: int, body: bytes, ctype: str, send_body: bool) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body:
                    self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True  # the client gave up (a timeout): fine

    return Handler
