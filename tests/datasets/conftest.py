"""A loopback HTTP server that serves files the test writes, so no test touches the internet."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest


@dataclass
class FileServer:
    """Serves `files[path]`; honours `Range: bytes=N-` unless `ignore_range`; logs requests.

    `framing` is how the body's end is marked: 'length' (Content-Length), 'chunked'
    (Transfer-Encoding: chunked) or 'close' (neither: the closing connection ends it).
    `cut_after` sends only that many bytes of the body and then closes the connection (a
    chunked body without its final zero-length chunk). `delay` waits before the body, so
    concurrent clients overlap.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    ignore_range: bool = False
    framing: str = "length"
    cut_after: int | None = None
    delay: float = 0.0
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def paths_requested(self) -> list[str]:
        return [path for path, _ in self.requests]


def _make_handler(server_state: FileServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            range_header = self.headers.get("Range")
            server_state.requests.append((self.path, range_header))
            body = server_state.files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            start = 0
            if range_header and not server_state.ignore_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            if server_state.framing == "length":
                self.send_header("Content-Length", str(len(body) - start))
            elif server_state.framing == "chunked":
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            time.sleep(server_state.delay)
            sent = body[start:] if server_state.cut_after is None else body[start:][: server_state.cut_after]
            if server_state.framing != "chunked":
                self.wfile.write(sent)
                return
            for offset in range(0, len(sent), 1000):
                piece = sent[offset : offset + 1000]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            if server_state.cut_after is None:
                self.wfile.write(b"0\r\n\r\n")

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def file_server():
    state = FileServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL on a port nothing listens on: connection refused, as with no network."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/missing.npz"


@pytest.fixture(autouse=True)
def _no_env_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    # A developer's LAMINA_DATA_DIR must not redirect the tests' temporary caches.
    monkeypatch.delenv("LAMINA_DATA_DIR", raising=False)
