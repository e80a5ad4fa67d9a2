"""A fault-injecting HTTP proxy on 127.0.0.1 in front of an S3 API: what a real network and
a busy bucket do to a run. A seeded share of requests gets a 500 InternalError, a 503
SlowDown, a dropped connection (closed without an answer) or a slow answer."""

from __future__ import annotations

import http.client
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_ERRORS = {
    500: ("InternalError", "We encountered an internal error. Please try again."),
    503: ("SlowDown", "Please reduce your request rate."),
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


@dataclass
class Faults:
    """Shares of requests (0..1) that fail each way; the rest pass through unharmed."""

    error_500: float = 0.08
    slow_down_503: float = 0.08
    drop: float = 0.05
    slow: float = 0.05
    slow_seconds: float = 0.5  # answers arrive out of order; the suite does not wait on them
    seed: int = 7
    # The first N requests whose path contains a text answer 503: more than boto3's 5
    # attempts fails the task itself, for Airflow to retry.
    fail_first: dict[str, int] = field(default_factory=dict)
    seen: Counter = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self, path: str = "") -> str:
        with self._lock:
            for text, left in self.fail_first.items():
                if text in path and left > 0:
                    self.fail_first[text] = left - 1
                    self.seen["forced 503"] += 1
                    return "503"
            x = self._random.random()
            for kind, share in (("500", self.error_500), ("503", self.slow_down_503), ("drop", self.drop), ("slow", self.slow)):
                if x < share:
                    self.seen[kind] += 1
                    return kind
                x -= share
            self.seen["ok"] += 1
            return "ok"


@contextmanager
def faulty_proxy(upstream: str, faults: Faults) -> Iterator[str]:
    """Serve a proxy to `upstream` (http://host:port) on 127.0.0.1; yields its endpoint URL."""
    target = urlsplit(upstream)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _any(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            kind = faults.draw(self.path)
            if kind == "drop":
                self.close_connection = True
                self.connection.close()
                return
            if kind in ("500", "503"):
                code, message = _ERRORS[int(kind)]
                payload = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                           f"<Message>{message}</Message></Error>").encode()
                self.send_response(int(kind))
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            if kind == "slow":
                time.sleep(faults.slow_seconds)
            conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP and k.lower() != "expect"}
            conn.request(self.command, self.path, body=body if body or self.command in ("PUT", "POST") else None, headers=headers)
            answer = conn.getresponse()
            payload = answer.read()
            self.send_response(answer.status, answer.reason)
            for k, v in answer.getheaders():
                if k.lower() not in _HOP_BY_HOP and k.lower() != "content-length":
                    self.send_header(k, v)
            self.send_header("Content-Length", answer.getheader("Content-Length", "0") if self.command == "HEAD" else str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            conn.close()

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
