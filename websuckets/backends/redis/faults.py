"""How the Redis link names a fault: to the operator (logs, with the cause and the URL without its
password) and to the client (what failed, and nothing of Redis)."""

from __future__ import annotations

import logging
import math
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from redis.exceptions import AuthenticationError, AuthorizationError, NoPermissionError, OutOfMemoryError

from ...exc import BackendFull, BackendMisconfigured, BackendOutcomeUnknown, BackendUnavailable, InternalError

SECRETS = frozenset({"password", "sentinel_password"})
"""Query parameters that a log never shows."""


def redacted(url: str) -> str:
    """The URL without its passwords (``user:password@``, ``?password=``, ``?sentinel_password=``), for
    logs and errors; read as text, so that a URL too broken to parse is still shown without them."""
    try:
        parts = original = urlsplit(url)
    except ValueError:  # an unbalanced "[": too broken to say which part is the password
        return url.partition("://")[0] + "://***"
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        parts = parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{hosts}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key in SECRETS for key, _ in query):
        parts = parts._replace(query=urlencode([(k, "***" if k in SECRETS else v) for k, v in query], safe="*"))
    return url if parts == original else urlunsplit(parts)


def unavailable(what: str) -> BackendUnavailable:
    """The error for the client: what failed, and nothing of Redis's address or the cause (those are logged)."""
    return BackendUnavailable(f"{what} failed: the shared backend is unavailable, try again later")


class MaybeWritten(BackendUnavailable):
    """A command that was sent to Redis and got no answer: it may have run. The client of a command that
    cannot be sent again safely sees `BackendUnavailable`, as for any other; an idempotent one (a history
    room's append) is sent again (`websuckets.backends.redis.history_store`)."""


def maybe_written(what: str) -> MaybeWritten:
    return MaybeWritten(f"{what} failed: the shared backend is unavailable, try again later")


def outcome_unknown(what: str) -> BackendOutcomeUnknown:
    """The error for the client when a write sent again never got an answer either."""
    return BackendOutcomeUnknown(f"{what}: the shared backend did not answer, so it may or may not have happened")


def never_sent(exc: BaseException) -> bool:
    """Whether a connection's failure came before anything was written to it: Redis refused the connection."""
    cause: BaseException | None = exc
    for _ in range(8):  # redis-py wraps the OSError once or twice; a chain may loop
        if cause is None:
            break
        if isinstance(cause, ConnectionRefusedError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


MISCONFIGURED: tuple[type[Exception], ...] = (NoPermissionError, AuthenticationError, AuthorizationError)
"""Redis's answers that only an operator can fix: the client is told ``backend_misconfigured``."""


def refusal(what: str, error: Exception) -> InternalError:
    """The error for the client when Redis answered ``error`` to an operation: misconfigured (a missing
    permission, also one a script lacks), full (``OOM``), or anything else unavailable. Nothing of
    Redis's address or message reaches the client."""
    if isinstance(error, MISCONFIGURED) or "can't run this command" in str(error):  # a script's NOPERM
        return BackendMisconfigured(f"{what} failed: the shared backend refused it, which an operator must fix")
    if isinstance(error, OutOfMemoryError):
        return BackendFull(f"{what} failed: the shared backend is out of memory")
    return unavailable(what)


def reason(exc: BaseException) -> str:
    """``Type: message``, for the middle of a line of ours: without the message's final period."""
    message = str(exc).rstrip().removesuffix(".")
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


class FailureLog:
    """Operations that failed, told to the operator in one line per ``every`` seconds at most, each
    counted once: what `report` has not told yet waits for the next call (the link's heartbeat and
    its close call it, so that failures that stopped coming are told too)."""

    def __init__(self, logger: logging.Logger, every: float = 10.0) -> None:
        self.logger = logger
        self.every = every
        self.untold = 0
        self.latest = ""
        self._told_at = -math.inf

    def add(self, count: int, why: str) -> None:
        self.untold += count
        self.latest = why
        self.report()

    def report(self, now: bool = False) -> None:
        """Log what is untold, if ``every`` seconds have passed since the last line (or ``now``)."""
        at = time.monotonic()
        if self.untold and (now or at - self._told_at >= self.every):
            self.logger.error(
                "%d Redis operations failed since the last report (the latest: %s)", self.untold, self.latest
            )
            self._told_at, self.untold = at, 0
