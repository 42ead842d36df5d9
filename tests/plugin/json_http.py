"""The JSON reply the small in-process HTTP servers of the plugin tests send (OpenSearch's response shape)."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler


def reply_json(handler: BaseHTTPRequestHandler, status: int, body: object = None) -> None:
    """Send ``status`` with ``body`` as JSON (no body for ``None``) and its Content-Length."""
    data = b"" if body is None else json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
