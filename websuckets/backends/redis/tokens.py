"""Tokens in Redis, by digest: written in order, revoked everywhere, re-sent after an outage.

A token is a key ``{ns}:token:<digest>`` holding its user id and expiry, which expires with
the token. A revocation deletes the key and tells every process (`Revoke`) in one script. On a
Redis Cluster each token's key is on a slot of its own (``{ns:token:<digest>}``, `keys`), so the
revocation is two commands, in order: the deletion, then the `Revoke` on the namespace's channel;
if either fails, both are sent again.
A write or a revocation that failed while Redis was away is kept and sent again by the
rebuild after the reconnection. So is every revocation of the last `RECENT_REVOCATIONS`
seconds when the rebuild finds another server (a Sentinel failover): one that the old master
took but never passed to its replica would leave the token valid on the new one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable

from pydantic_core import to_json
from redis.asyncio.cluster import RedisCluster

from ...identity import TokenRecord
from .address import Client
from .codec import Revoke
from .keys import REVOKE, Keys
from .link import RedisLink
from .writer import Command

TOKEN_RETRIES = (0.05, 0.2)
"""Seconds to wait before asking Redis again for a token it does not know (issued a moment ago?)."""

RECENT_REVOCATIONS = 60.0
"""Seconds a revocation is kept, to be sent again to another server (a new master) that may not have it."""


class RedisTokens:
    """The tokens of one namespace, through ``link``."""

    def __init__(self, link: RedisLink, keys: Keys) -> None:
        self._link = link
        self._keys = keys
        self._unwritten: dict[str, TokenRecord] = {}
        self._unsent_revocations: set[str] = set()
        self._recent_revocations: dict[str, float] = {}
        """Digest -> when it was revoked (monotonic), oldest first, for `RECENT_REVOCATIONS` seconds."""

    def remember(self, digest: str, record: TokenRecord) -> None:
        self._link.enqueue(
            self._write(digest, record),
            "token",
            on_fail=lambda: self._unwritten.__setitem__(digest, record),
        )

    def _write(self, digest: str, record: TokenRecord) -> Command:
        value = to_json({"u": record.user_id, "x": record.expires_at}).decode()
        return ("SET", self._keys.token(digest), value, "PXAT", max(1, int(record.expires_at * 1000)))

    def forget(self, digest: str) -> None:
        self._unwritten.pop(digest, None)
        now = time.monotonic()
        recent = self._recent_revocations
        recent.pop(digest, None)
        recent[digest] = now
        while recent[oldest := next(iter(recent))] < now - RECENT_REVOCATIONS:  # the newest is now: never empty
            del recent[oldest]
        for command in self._revoke(digest):
            self._link.enqueue(command, "revocation", on_fail=lambda: self._unsent_revocations.add(digest))

    def _revoke(self, digest: str) -> list[Command]:
        """The commands that delete a token and tell every process: one script, or on a cluster (the token's
        slot is not the channel's) a deletion, then the `Revoke`."""
        key, event = self._keys.token(digest), Revoke(digest).encode()
        if self._keys.sharded:
            return [("DEL", key), ("SPUBLISH", self._keys.all, event)]
        return [("EVALSHA", REVOKE.sha, 1, key, self._keys.all, event)]

    async def find(self, digest: str) -> TokenRecord | None:
        """Look the digest up in Redis; a miss is asked again after 50 and 200 ms (a token just
        issued on another process, whose write may still be on its way)."""
        stored = await self._link.call(("GET", self._keys.token(digest)), "token look-up")
        for delay in TOKEN_RETRIES:
            if stored is not None:
                break
            await asyncio.sleep(delay)
            stored = await self._link.call(("GET", self._keys.token(digest)), "token look-up")
        if stored is None:
            return None
        data = json.loads(stored)
        return TokenRecord(data["u"], data["x"])

    # after a reconnection

    def rebuild_commands(self, held: Iterable[tuple[str, TokenRecord]], another_server: bool) -> list[Command]:
        """Writes of ``held`` and of the tokens whose write failed, then the revocations that failed (and
        the recent ones, on ``another_server``)."""
        writes = dict(held)
        writes.update(self._unwritten)
        commands = [self._write(digest, record) for digest, record in writes.items()]
        revocations = set(self._unsent_revocations)
        if another_server:
            horizon = time.monotonic() - RECENT_REVOCATIONS
            revocations.update(digest for digest, when in self._recent_revocations.items() if when >= horizon)
        return commands + [command for digest in revocations for command in self._revoke(digest)]

    def rebuilt(self) -> None:
        """The `rebuild_commands` were written: nothing is owed any more."""
        self._unwritten.clear()
        self._unsent_revocations.clear()

    async def vanished(self, client: Client, digests: list[str]) -> list[str]:
        """Those of ``digests`` that Redis no longer holds: revoked while this process heard nothing."""
        if not digests:
            return []
        keys = [self._keys.token(digest) for digest in digests]
        if isinstance(client, RedisCluster):  # one MGET a slot (a token's key has a slot of its own)
            exists = await client.mget_nonatomic(keys)
        else:
            exists = await client.mget(keys)
        return [digest for digest, value in zip(digests, exists, strict=True) if value is None]
