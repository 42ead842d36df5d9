"""The small in-process HTTP servers of the plugin tests: started on a free local port, and the JSON reply they send
(OpenSearch's response shape)."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from distilrank.plugin.connection import load_connection
from distilrank.plugin.transport import Transport


def reply_json(handler: BaseHTTPRequestHandler, status: int, body: object = None) -> None:
    """Send ``status`` with ``body`` as JSON (no body for ``None``) and its Content-Length."""
    data = b"" if body is None else json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class ScriptedHandler(BaseHTTPRequestHandler):
    """Answers each request with the next ``(method, path, status, body)`` of ``script``, which must match (the path
    without its query string); anything else is recorded in ``unexpected`` and answered 500. Subclass it per test
    module so that scripts do not leak between modules."""

    script: list[tuple[str, str, int, object]] = []
    unexpected: list[str] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        cls = type(self)
        if not cls.script or cls.script[0][:2] != (self.command, self.path.split("?")[0]):
            cls.unexpected.append(f"{self.command} {self.path}")
            reply_json(self, 500, {"error": "unexpected request"})
            return
        _, _, status, body = cls.script.pop(0)
        reply_json(self, status, body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 at a free port in a daemon thread; yields the base URL, shuts down on exit."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()


@contextlib.contextmanager
def transport_to(handler: type[BaseHTTPRequestHandler]) -> Iterator[Transport]:
    """A :class:`Transport` without retries to ``handler`` served by :func:`serving`."""
    with serving(handler) as url:
        yield Transport(load_connection(env={}, url=url, retries=0))


@contextlib.contextmanager
def scripted(handler: type[ScriptedHandler]) -> Iterator[Transport]:
    """A :func:`transport_to` ``handler`` with an empty script (set ``handler.script`` in the test); on exit, asserts
    that every scripted answer was asked for and that nothing else was."""
    handler.script, handler.unexpected = [], []
    with transport_to(handler) as t:
        yield t
    assert handler.unexpected == [] and handler.script == [], (handler.unexpected, handler.script)
