"""A minimal Lambda Runtime API emulator for the benchmark (Python standard library only).

It serves the four paths a custom runtime uses (2018-06-01 API):

  GET  /2018-06-01/runtime/invocation/next             blocks until an invocation is queued
  POST /2018-06-01/runtime/invocation/{id}/response    the handler's result
  POST /2018-06-01/runtime/invocation/{id}/error       the handler's error
  POST /2018-06-01/runtime/init/error                  a start-up failure

and timestamps each with time.perf_counter_ns(), the clock the driver reads when it spawns the
function: the first GET /next is the moment the function is ready, a response ends a step. One
emulator serves one function process at a time; threaded, so a slow reader never blocks a POST.
"""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/2018-06-01/runtime"


class QuietServer(ThreadingHTTPServer):
    """A threaded server that does not print a traceback when a client goes away mid-request
    (every function process is stopped while its GET /next is pending)."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict) -> None:
    """Writes a whole response in one send(). http.server writes the headers and the body
    separately; with Nagle's algorithm on one side and delayed ACKs on the other, the body of a
    keep-alive response can then wait 40 ms, which would be measured as the function's time."""
    head = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head += [f"Content-Length: {len(body)}", "", ""]
    handler.wfile.write("\r\n".join(head).encode("latin-1") + body)
    handler.wfile.flush()


@dataclass
class Invocation:
    """One queued event and, once answered, what the function said and when."""

    payload: bytes
    deadline_ms: int
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    dispatched_ns: int = 0  # when GET /next handed it out
    answered_ns: int = 0  # when the response or error arrived
    ok: bool = False
    body: bytes = b""
    done: threading.Event = field(default_factory=threading.Event)


class RuntimeApi:
    """The emulator. `start()` binds 127.0.0.1 on a free port; `address` is what
    AWS_LAMBDA_RUNTIME_API must be set to."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Invocation] = queue.Queue()
        self._pending: dict[str, Invocation] = {}
        self._lock = threading.Lock()
        self.first_next_ns = 0  # first GET /next since reset()
        self.init_error: bytes | None = None
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the runtime client expects
            disable_nagle_algorithm = True

            def log_message(self, *args) -> None:  # quiet
                pass

            def _reply(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
                send(self, status, body, {**(headers or {}), "Content-Type": "application/json"})

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                now = time.perf_counter_ns()
                if self.path != f"{PREFIX}/invocation/next":
                    self._reply(404, b'{"errorType":"NotFound"}')
                    return
                with emulator._lock:
                    if not emulator.first_next_ns:
                        emulator.first_next_ns = now
                inv = emulator._queue.get()
                with emulator._lock:
                    emulator._pending[inv.request_id] = inv
                inv.dispatched_ns = time.perf_counter_ns()
                self._reply(
                    200,
                    inv.payload,
                    {
                        "Lambda-Runtime-Aws-Request-Id": inv.request_id,
                        "Lambda-Runtime-Deadline-Ms": str(inv.deadline_ms),
                        "Lambda-Runtime-Invoked-Function-Arn":
                            "arn:aws:lambda:us-east-1:123456789012:function:db-secret-rotator",
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                    },
                )

            def do_POST(self) -> None:  # noqa: N802
                now = time.perf_counter_ns()
                body = self._body()
                if self.path == f"{PREFIX}/init/error":
                    emulator.init_error = body
                    self._reply(202, b'{"status":"OK"}')
                    return
                parts = self.path[len(PREFIX) :].strip("/").split("/")
                if len(parts) != 3 or parts[0] != "invocation" or parts[2] not in ("response", "error"):
                    self._reply(404, b'{"errorType":"NotFound"}')
                    return
                with emulator._lock:
                    inv = emulator._pending.pop(parts[1], None)
                if inv is None:
                    self._reply(400, b'{"errorType":"InvalidRequestID"}')
                    return
                inv.answered_ns, inv.ok, inv.body = now, parts[2] == "response", body
                self._reply(202, b'{"status":"OK"}')
                inv.done.set()

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> "RuntimeApi":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self) -> None:
        """Forget the previous process (call before spawning the next one)."""
        with self._lock:
            self.first_next_ns = 0
            self.init_error = None
            self._pending.clear()
        while not self._queue.empty():
            self._queue.get_nowait()

    def enqueue(self, event: dict, timeout_s: int = 30) -> Invocation:
        """Queue an event; the function picks it up with its next GET /next."""
        deadline_ms = int(time.time() * 1000) + timeout_s * 1000
        inv = Invocation(json.dumps(event).encode(), deadline_ms)
        self._queue.put(inv)
        return inv

    def invoke(self, event: dict, wait_s: float = 60.0) -> Invocation:
        inv = self.enqueue(event)
        if not inv.done.wait(wait_s):
            raise TimeoutError(f"no answer to {event.get('Step')} within {wait_s}s")
        return inv
