"""A loopback stand-in for a Slack incoming webhook: it records every POSTed JSON body.

The URL carries a random secret path, as a real Slack webhook URL does, so a test can check that the
secret never shows up in a message or a log. `fail_next` makes the next N requests answer with a
chosen status (429, 500...) to exercise retries.

    with FakeWebhook() as hook:
        ... LAKE_ALERT_WEBHOOK_URL=hook.url ...
        hook.messages   # the "text" of each message received, in order
"""

from __future__ import annotations

import json
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeWebhook:
    def __init__(self) -> None:
        self.secret = f"T{secrets.token_hex(4)}/B{secrets.token_hex(4)}/{secrets.token_urlsafe(18)}"
        self.bodies: list[dict] = []
        self.requests = 0  # every POST, rejected ones included
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        # A short poll: stop() waits up to one poll interval (the default 0.5 s, in every test's teardown).
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-webhook", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/services/{self.secret}"

    @property
    def messages(self) -> list[str]:
        with self._lock:
            return [body.get("text", "") for body in self.bodies]

    def fail_next(self, count: int, status: int = 500) -> None:
        with self._lock:
            self._failures.extend([status] * count)

    def start(self) -> FakeWebhook:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeWebhook:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _handler(self):
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook._lock:
                    hook.requests += 1
                    status = hook._failures.pop(0) if hook._failures else None
                    if status is None:
                        if self.path != f"/services/{hook.secret}":
                            status = 404  # Slack answers an unknown hook with 404 "no_team" / "invalid_token"
                        else:
                            try:
                                hook.bodies.append(json.loads(body))
                                status = 200
                            except ValueError:
                                status = 400  # "invalid_payload"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"error")

            def log_message(self, *args):  # quiet: the tests read `bodies`, not stderr
                pass

        return Handler
