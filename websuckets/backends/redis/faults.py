"""How the Redis link names a fault: to the operator (logs, with the cause and the URL without its
password) and to the client (what failed, and nothing of Redis)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...exc import BackendUnavailable


def redacted(url: str) -> str:
    """The URL without its password (``user:password@`` or ``?password=``), for logs and errors."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.hostname or ""
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else ""))
    if parts.query:
        query = parse_qsl(parts.query, keep_blank_values=True)
        parts = parts._replace(query=urlencode([(k, "***" if k == "password" else v) for k, v in query], safe="*"))
    return urlunsplit(parts)


def unavailable(what: str) -> BackendUnavailable:
    """The error for the client: what failed, and nothing of Redis's address or the cause (those are logged)."""
    return BackendUnavailable(f"{what} failed: the shared backend is unavailable, try again later")


def reason(exc: BaseException) -> str:
    """``Type: message``, for the middle of a line of ours: without the message's final period."""
    message = str(exc).rstrip().removesuffix(".")
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
