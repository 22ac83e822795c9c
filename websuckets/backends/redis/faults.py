"""How the Redis link names a fault: to the operator (logs, with the cause and the URL without its
password) and to the client (what failed, and nothing of Redis)."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ...exc import BackendUnavailable

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


def reason(exc: BaseException) -> str:
    """``Type: message``, for the middle of a line of ours: without the message's final period."""
    message = str(exc).rstrip().removesuffix(".")
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
