"""``Health``: liveness and readiness probes over plain HTTP, on the app's own port.

::

    app.add_instrument(Health())      # GET /healthz and GET /readyz

- ``/healthz`` answers ``200 ok`` while the process serves: its event loop runs the handshake.
- ``/readyz`` answers ``200 ready`` while the app is started and its backend answers
  (``app.backend.health.connected``), ``503`` otherwise: a load balancer stops sending new
  clients to a process whose Redis is away, and sends them again once it has reconnected.

Both are handshake checks (see `websuckets.handshake`): they run per HTTP request, never per
message, and websocket upgrades pass through them untouched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from http import HTTPStatus

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from .http import is_upgrade, json_response, url_path
from .instrument import Instrument, InstrumentedApp

__all__ = ["Health", "json_response"]


class Health(Instrument):
    """Answer ``GET live_path`` (the process serves) and ``GET ready_path`` (the backend answers).

    Args:
        live_path: the liveness probe's path; ``None`` for none.
        ready_path: the readiness probe's path; ``None`` for none.
    """

    def __init__(self, live_path: str | None = "/healthz", ready_path: str | None = "/readyz") -> None:
        self.live_path = live_path
        self.ready_path = ready_path
        self.app: InstrumentedApp | None = None

    def install(self, app: InstrumentedApp) -> None:
        self.app = app

    def ready(self) -> tuple[bool, str]:
        """Whether the app can take new clients, and why not."""
        app = self.app
        if app is None or not app.started:
            return False, "the app is not started"
        if not app.backend.health.connected:
            return False, f"the backend ({type(app.backend).__name__}) does not answer"
        return True, "ready"

    def last_error(self) -> dict[str, str]:
        """The backend's latest failure: its kind and when (ISO 8601, UTC), if it ever failed. Its cause,
        which may name the store's address, stays in the logs."""
        app = self.app
        health = None if app is None or not app.started else app.backend.health
        if health is None or health.last_error is None or health.last_error_at is None:
            return {}
        at = datetime.fromtimestamp(health.last_error_at, UTC).isoformat(timespec="seconds")
        return {"last_error": health.last_error, "last_error_at": at}

    def http(self, connection: ServerConnection, request: Request) -> Response | None:
        if is_upgrade(request):
            return None
        path = url_path(request)
        if path == self.live_path:
            return json_response(HTTPStatus.OK, {"status": "ok"})
        if path == self.ready_path:
            ready, reason = self.ready()
            status = HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE
            body = {"status": "ready" if ready else "unavailable", "reason": reason, **self.last_error()}
            return json_response(status, body)
        return None
