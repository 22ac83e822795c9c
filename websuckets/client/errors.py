"""`ClientError`: a request that did not get its answer, from the server or from the client itself."""

from __future__ import annotations

import json
from typing import Any

from ..exc import WebSucketsError

LOCAL_NAMES = frozenset({"timeout", "disconnected", "closed", "queue_full"})
"""The names of the errors the client raises by itself (the server's are its error names)."""


class ClientError(WebSucketsError):
    """The server answered a command with an ``error`` event, or the client could not get an answer.

    Attributes:
        name: the server's error name (``"validation_error"``, ``"unauthorized"``, or one a
            handler raised), or one of the client's own: ``"timeout"`` (no answer in time),
            ``"disconnected"`` (the connection dropped after the command was sent: it may or may
            not have run), ``"closed"`` (the client is closed, or gave up reconnecting),
            ``"queue_full"`` (disconnected, and ``max_queue`` commands already wait).
        details: the error's ``details``, or for the client's own errors a sentence.
        payload: the ``error`` event's whole payload (``name``, ``details``, ``event``, ``id``);
            ``None`` for the client's own errors.
    """

    def __init__(self, name: str, details: Any = None, payload: dict[str, Any] | None = None) -> None:
        super().__init__(name, details, payload)
        self.name = name
        self.details = details
        self.payload = payload

    @classmethod
    def from_payload(cls, payload: Any) -> ClientError:
        """The error an ``error`` event's payload describes."""
        if not isinstance(payload, dict):
            return cls("invalid_error", payload, None)
        return cls(str(payload.get("name")), payload.get("details"), payload)

    def __str__(self) -> str:
        if self.details is None:
            return self.name
        details = self.details if isinstance(self.details, str) else json.dumps(self.details, default=str)
        return f"{self.name}: {details}"
