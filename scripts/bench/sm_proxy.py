"""A counting HTTP proxy in front of the Secrets Manager emulator (Python standard library only).

Every request is forwarded unchanged to the upstream (moto) over a keep-alive connection per
client connection, and counted by its X-Amz-Target header (`secretsmanager.GetSecretValue` →
`GetSecretValue`). The driver reads and resets the counts between rotations.
"""

from __future__ import annotations

import collections
import http.client
import threading
from http.server import BaseHTTPRequestHandler

from runtime_api import QuietServer, send

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-connection", "content-length"}


class CountingProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                self.upstream = http.client.HTTPConnection(upstream_host, upstream_port, timeout=30)

            def finish(self) -> None:
                try:
                    self.upstream.close()
                finally:
                    super().finish()

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                target = self.headers.get("X-Amz-Target", "")
                with proxy._lock:
                    proxy.counts[target.rsplit(".", 1)[-1] or f"{self.command} {self.path}"] += 1
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                try:
                    self.upstream.request(self.command, self.path, body=body, headers=headers)
                    resp = self.upstream.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException):
                    # The upstream closed an idle keep-alive connection: reconnect once.
                    self.upstream.close()
                    self.upstream.request(self.command, self.path, body=body, headers=headers)
                    resp = self.upstream.getresponse()
                    data = resp.read()
                headers = {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP}
                send(self, resp.status, data, headers)

            do_POST = _forward  # noqa: N815
            do_GET = _forward  # noqa: N815

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "CountingProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def take(self) -> dict[str, int]:
        """The counts since the last call, and reset."""
        with self._lock:
            counts = dict(self.counts)
            self.counts.clear()
        return counts
