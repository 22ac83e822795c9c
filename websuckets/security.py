"""Access tokens: generation, constant-time comparison, and the digest used as a lookup key."""

from __future__ import annotations

import hashlib
import hmac
import secrets

__all__ = ["Token"]


class Token:
    """Helpers for the access tokens that protected commands require."""

    BYTES = 16
    """Random bytes in a generated token: 128 bits, 32 hex characters."""

    @staticmethod
    def generate(nbytes: int = BYTES) -> str:
        """A new random token: ``nbytes`` (at least 16) from :mod:`secrets`, as lowercase hex."""
        if nbytes < Token.BYTES:
            raise ValueError(f"a token needs at least {Token.BYTES} random bytes, not {nbytes}")
        return secrets.token_hex(nbytes)

    @staticmethod
    def matches(expected: str, given: str) -> bool:
        """Compare two tokens in constant time."""
        return hmac.compare_digest(expected.encode(), given.encode())

    @staticmethod
    def digest(token: str) -> str:
        """The SHA-256 of a token: what backends key on, so no raw token is stored as a key."""
        return hashlib.sha256(token.encode()).hexdigest()
