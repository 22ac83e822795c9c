"""Exceptions of websuckets.

The tree::

    WebSucketsError
    ├── InternalError            sent to the client as an ``error`` event
    │   ├── InvalidJSON          invalid_json
    │   ├── InvalidCommand       invalid_command
    │   ├── UnknownCommand       unknown_command
    │   ├── PayloadInvalid       validation_error
    │   ├── Unauthorized         unauthorized
    │   ├── MessageTooLarge      message_too_large
    │   ├── BackendUnavailable   backend_unavailable (the shared backend cannot be reached)
    │   │   └── BackendOutcomeUnknown  backend_outcome_unknown (a write that may or may not have happened)
    │   ├── BackendMisconfigured backend_misconfigured (refused: an operator must fix it)
    │   ├── BackendFull          backend_full (refused: Redis is out of memory)
    │   ├── RateLimited          rate_limited
    │   ├── CommandTimeout       command_timeout
    │   ├── TooManyStreams       too_many_streams (a connection's streams at their limit)
    │   └── UnexpectedError      internal_error (details never reach the client)
    ├── RemoteUserReadOnly(AttributeError)  an attribute set on a user connected to another process
    ├── InvalidHandler(TypeError)       a handler or hook with a signature we cannot call
    ├── DuplicateCommand(ValueError)    a full command name registered twice
    ├── AppStateError(RuntimeError)     the app used before start or changed after it
    ├── websuckets.client.ClientError   the Python client's request got an error, or no answer
    └── WorkerBootError(RuntimeError)   a worker of ``websuckets run --workers`` failed before serving

An `InternalError` is *external*: its ``name`` and ``details`` are what the client
sees. Any other exception raised while handling a command is *internal*: the client
receives ``internal_error`` with no details and the server log gets the traceback.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AppStateError",
    "BackendFull",
    "BackendMisconfigured",
    "BackendOutcomeUnknown",
    "BackendUnavailable",
    "CommandTimeout",
    "DuplicateCommand",
    "InternalError",
    "InvalidCommand",
    "InvalidHandler",
    "InvalidJSON",
    "MessageTooLarge",
    "PayloadInvalid",
    "RateLimited",
    "RemoteUserReadOnly",
    "TooManyStreams",
    "Unauthorized",
    "UnexpectedError",
    "UnknownCommand",
    "WebSucketsError",
    "WorkerBootError",
]


class WebSucketsError(Exception):
    """Base class of every exception that websuckets raises."""


class InternalError(WebSucketsError):
    """An error sent to the client as ``{"event": "error", "payload": {...}}``.

    ``name`` is the error's stable name, ``details`` any JSON-serialisable value.
    Raise an instance, or a subclass whose ``__init__`` takes no arguments
    (``raise UserNotFound``): both reach the client.
    """

    def __init__(self, name: str, details: Any = None) -> None:
        super().__init__(name, details)
        self.name = name
        self.details = details

    def __str__(self) -> str:
        if self.details is None:
            return self.name
        return f"{self.name}: {self.details}"


class _FrameworkError(InternalError):
    """An error of the framework itself, with a fixed, documented name."""

    code: ClassVar[str]

    def __init__(self, details: Any = None, *, event: str | None = None, id: str | int | None = None) -> None:
        super().__init__(self.code, details)
        self.event = event
        """The command's event name, where it was known when the error was raised."""
        self.id = id
        """The command's correlation id, where it was known when the error was raised."""


class InvalidJSON(_FrameworkError):
    """The frame is not a text frame holding valid JSON."""

    code = "invalid_json"


class InvalidCommand(_FrameworkError):
    """The JSON is not an object with a string ``event`` (or a field has the wrong type)."""

    code = "invalid_command"


class UnknownCommand(_FrameworkError):
    """No command is registered under the requested event name."""

    code = "unknown_command"


class PayloadInvalid(_FrameworkError):
    """The payload does not validate against the handler's model.

    ``details`` is pydantic's error list (``loc``, ``msg``, ``type``), without the input.
    """

    code = "validation_error"


class Unauthorized(_FrameworkError):
    """A protected command came without the valid token of a verified user.

    ``details`` says why, in one of three stable texts a client can act on:

    - `MISSING`: no token came with the command (nor with the connection's handshake);
    - `EXPIRED`: the token was valid and has expired: refresh it before it does, or sign in again;
    - `INVALID`: the token is not one the app knows: never issued, revoked, or expired
      too long ago to be told apart.
    """

    code = "unauthorized"

    MISSING: ClassVar[str] = "this command needs a token"
    EXPIRED: ClassVar[str] = "the token has expired"
    INVALID: ClassVar[str] = "the token is invalid or has expired"


class MessageTooLarge(_FrameworkError):
    """The message is larger than the app's ``max_message_size``."""

    code = "message_too_large"


class BackendUnavailable(_FrameworkError):
    """The shared backend (Redis) did not answer in time; what needed it did not happen.

    The client sees ``backend_unavailable`` with a short reason; the server log has the cause.
    """

    code = "backend_unavailable"


class BackendOutcomeUnknown(BackendUnavailable):
    """A write reached the shared backend (Redis) but its answer never came (the connection dropped, or no
    answer in time), and sending it again got no answer either: it may or may not have happened.

    Today this is a broadcast to a room with history: the backend sends it again by itself, with the
    same broadcast id, so that Redis keeps it once, as soon as Redis answers again (three more times at
    most, within twice ``RedisBackend(timeout=...)``). Only when none of those got an answer does the
    sender see this; the message is then in the room's history (and was delivered) at most once. And
    a join of a client of another process whose process did not answer within twice ``timeout``: the
    request reached it, the join may have happened. A subclass of `BackendUnavailable`, so that code
    catching that catches it too.

    The client sees ``backend_outcome_unknown``; the server log has the cause.
    """

    code = "backend_outcome_unknown"


class BackendMisconfigured(_FrameworkError):
    """The shared backend (Redis) refused the operation for a reason only an operator can fix: a
    permission its user lacks (``NOPERM``), a rejected password. Retrying does not help.

    The client sees ``backend_misconfigured``; the server log has the cause.
    """

    code = "backend_misconfigured"


class BackendFull(_FrameworkError):
    """The shared backend (Redis) is out of memory (``maxmemory`` with ``noeviction``) and refused a
    write: room history, say. It may take writes again once memory is freed.

    The client sees ``backend_full``; the server log has the cause.
    """

    code = "backend_full"


class RateLimited(_FrameworkError):
    """The connection sent commands faster than its rate limit allows; ``details`` says when to retry."""

    code = "rate_limited"


class CommandTimeout(_FrameworkError):
    """The handler ran longer than its time limit and was cancelled."""

    code = "command_timeout"


class TooManyStreams(_FrameworkError):
    """The connection already runs as many streams as it may; ``details`` holds the ``limit``.

    See ``WebSuckets(max_streams=...)``: the client may start another once one has ended.
    """

    code = "too_many_streams"


class UnexpectedError(_FrameworkError):
    """What the client sees of any other exception: a name, no details."""

    code = "internal_error"


class RemoteUserReadOnly(WebSucketsError, AttributeError):
    """An attribute was set on a `RemoteUser`: only the process a client is connected to writes its user."""

    def __init__(self, client_id: object, worker: str) -> None:
        super().__init__(client_id, worker)
        self.client_id = client_id
        self.worker = worker

    def __str__(self) -> str:
        return (
            f"client {self.client_id} is connected to another process ({self.worker}): "
            "set its attributes in a handler of its own connection"
        )


class InvalidHandler(WebSucketsError, TypeError):
    """A handler or hook whose signature websuckets cannot call."""

    def __init__(self, handler: str, problem: str) -> None:
        super().__init__(handler, problem)
        self.handler = handler
        self.problem = problem

    def __str__(self) -> str:
        return f"handler {self.handler}: {self.problem}"


class DuplicateCommand(WebSucketsError, ValueError):
    """A full command name is already registered in the group or in the app."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"command {self.name!r} is already registered"


class AppStateError(WebSucketsError, RuntimeError):
    """The app was used in a way its lifecycle does not allow."""


class WorkerBootError(WebSucketsError, RuntimeError):
    """A worker process failed before it served: restarting it would fail the same way.

    ``slot`` is the worker's number (``worker[1]``), ``reason`` one line saying why: the
    backend's own message (``cannot reach Redis at ...``), or an exception's type and message.
    """

    def __init__(self, slot: int, reason: str) -> None:
        super().__init__(slot, reason)
        self.slot = slot
        self.reason = reason

    def __str__(self) -> str:
        return f"worker[{self.slot}] could not start: {self.reason}"
