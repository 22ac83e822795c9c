"""``SessionStore``: one app's users, their verification, and the tokens they hold.

It connects `User` objects to the app's backend. Besides the backend it remembers which
connections of this process are verified with each token (by the token's digest), so that
a token revoked or expired anywhere unverifies every connection holding it, and so that a
shared backend can announce those tokens again after its store lost them. It is what the
backend is bound to (`Backend.bind`): the backend reports revoked tokens here, and asks
here for the tokens held and for the positions clients asked to resume rooms from.

Every attribute written on a `User` comes through `SessionStore.set_attribute`: the one
place that decides whether it verifies, revokes or is shared with the other processes.
"""

from __future__ import annotations

import time
import weakref
from typing import TYPE_CHECKING, Any
from uuid import UUID

from .backends.base import Backend
from .identity import TokenRecord, UserId
from .security import Token
from .user import User
from .wire import MAX_ROOMS, Position

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection


class SessionStore:
    """Connects `User` objects to a backend, for one app.

    Besides the backend it remembers which users of this process are verified with each
    token (by the token's digest), so that a token revoked or expired anywhere unverifies
    every connection holding it.
    """

    EXPIRED_MEMORY = 10_000
    """Digests of tokens found expired that the store remembers, to tell expired from unknown."""

    def __init__(self, backend: Backend, token_ttl: float) -> None:
        self.backend = backend
        self.token_ttl = token_ttl
        self.shares = backend.shared
        """Whether attributes set on users go to the backend (decided once, at start)."""
        self.revocations = 0
        """Tokens revoked so far (here or on other processes): a change means a check may be stale."""
        self._holders: dict[str, set[User]] = {}
        self._records: dict[str, TokenRecord] = {}
        self._expired: dict[str, None] = {}
        """Digests of tokens seen expired, oldest first, at most `EXPIRED_MEMORY`."""
        self._lapsed: weakref.WeakSet[User] = weakref.WeakSet()
        """Users whose token expired while they held it, until they get another."""
        self._resume_from: dict[UUID, dict[str, Position]] = {}
        """Per connection, the positions it asked to resume rooms from, until the app joins it to them."""

    def connect(self, socket: ServerConnection) -> User:
        user = User(socket, self, self.backend)
        self.backend.add_online(user)
        return user

    def disconnect(self, user: User) -> None:
        """Forget a connection that left; its token stays valid for a reconnecting client."""
        self.backend.remove_online(user)
        self._drop_verified(user)
        self._resume_from.pop(user.client_id, None)

    def set_attribute(self, user: User, name: str, value: Any) -> None:
        """Every write of a `User` attribute: ``id`` and ``token`` verify (`change_identity`);
        other public names are shared with the other processes when the backend is shared."""
        if name == "id" or name == "token":
            self.change_identity(user, name, value)
            return
        object.__setattr__(user, name, value)
        if self.shares and not name.startswith("_"):
            self.backend.user_changed(user)

    def change_identity(self, user: User, name: str, value: Any) -> None:
        """Set ``user.id`` or ``user.token``, keeping the verified index and tokens in step.

        A token that is replaced or cleared is revoked; clearing the id of a verified user
        (logging out) revokes its token too.
        """
        self._change_identity(user, name, value)
        if self.shares:
            self.backend.user_changed(user)

    def _change_identity(self, user: User, name: str, value: Any) -> None:
        old_id, old_token = user.id, user.token
        self._lapsed.discard(user)
        old_record = self._records.get(Token.digest(old_token)) if old_token is not None else None
        self._drop_verified(user)
        object.__setattr__(user, name, value)
        if old_token is not None and old_token != user.token:
            self.revoke(old_token)
        if user.token is None:
            return
        if user.id is None:
            if old_id is not None:  # logging out
                token = user.token
                object.__setattr__(user, "token", None)
                self.revoke(token)
            return
        if (user.id, user.token) != (old_id, old_token):
            record = TokenRecord(user.id, time.time() + self.token_ttl)
            self.backend.remember_token(Token.digest(user.token), record)
            self._mark_verified(user, record)
        else:
            self._mark_verified(user, old_record)

    def issue(self, user_id: UserId) -> str:
        """A new token for ``user_id``, valid for ``token_ttl`` seconds, held by no connection yet."""
        token = Token.generate()
        self.backend.remember_token(Token.digest(token), TokenRecord(user_id, time.time() + self.token_ttl))
        return token

    def adopt(self, user: User, token: str, record: TokenRecord) -> None:
        """Verify ``user`` with a token issued earlier (on another connection), keeping its expiry."""
        self._drop_verified(user)
        self._lapsed.discard(user)
        object.__setattr__(user, "id", record.user_id)
        object.__setattr__(user, "token", token)
        self._mark_verified(user, record)
        if self.shares:
            self.backend.user_changed(user)

    def revoke(self, token: str) -> None:
        """Make ``token`` invalid everywhere; the backend tells every process's store (`revoked`)."""
        digest = Token.digest(token)
        self.backend.forget_token(digest)
        self.revoked(digest)

    def revoked(self, digest: str) -> None:
        """A token was revoked (here or on another process): unverify the connections holding it."""
        self.revocations += 1
        record = self._records.pop(digest, None)
        expired = record is not None and record.expires_at <= time.time()
        if expired:
            self._remember_expired(digest)
        for holder in self._holders.pop(digest, set()):
            if holder.token is not None and Token.digest(holder.token) == digest:
                self._drop_verified(holder)
                object.__setattr__(holder, "token", None)
                if expired:
                    self._lapsed.add(holder)
                if self.shares:
                    self.backend.user_changed(holder)

    async def find_valid_token(self, token: str) -> TokenRecord | None:
        """The record of a token, if it was issued and has not expired.

        A token that a connection of this process holds is answered here, without the
        backend: a revocation anywhere reaches `revoked`, which forgets it.
        """
        digest = Token.digest(token)
        record = self._records.get(digest)
        if record is None:
            record = await self.backend.find_token(digest)
        if record is None:
            return None
        if record.expires_at <= time.time():
            self._remember_expired(digest)
            self.revoke(token)
            return None
        return record

    def expired(self, token: str) -> bool:
        """Whether ``token`` was found expired here (rather than never issued, or revoked).

        Only the last `EXPIRED_MEMORY` such tokens are remembered, by digest; a token that
        expired unseen in a shared backend is unknown, like one never issued.
        """
        return Token.digest(token) in self._expired

    def lapsed(self, user: User) -> bool:
        """Whether ``user`` lost its token by expiry, and has not been given another since."""
        return user in self._lapsed

    def _remember_expired(self, digest: str) -> None:
        self._expired[digest] = None
        if len(self._expired) > self.EXPIRED_MEMORY:
            del self._expired[next(iter(self._expired))]

    def resume_on_join(self, user: User, room: str, since: Position) -> None:
        """Keep the position ``user`` asked to resume ``room`` from, until the app joins it there.

        At most `MAX_ROOMS` rooms wait per connection; past that the oldest is forgotten.
        """
        waiting = self._resume_from.setdefault(user.client_id, {})
        waiting.pop(room, None)
        if len(waiting) >= MAX_ROOMS:
            del waiting[next(iter(waiting))]
        waiting[room] = since

    def take_resume_position(self, user: User, room: str) -> Position | None:
        """The position ``user`` asked to resume ``room`` from, if it did (the backend's call, on joining it)."""
        waiting = self._resume_from.get(user.client_id)
        return None if waiting is None else waiting.pop(room, None)

    def held_tokens(self) -> list[tuple[str, TokenRecord]]:
        """The digest and record of each token that a connection of this process is verified with."""
        return list(self._records.items())

    def _mark_verified(self, user: User, record: TokenRecord | None) -> None:
        assert user.token is not None
        self.backend.add_verified(user)
        digest = Token.digest(user.token)
        self._holders.setdefault(digest, set()).add(user)
        if record is not None:
            self._records[digest] = record

    def _drop_verified(self, user: User) -> None:
        if user.id is not None:
            self.backend.remove_verified(user.id, user)
        if user.token is None:
            return
        digest = Token.digest(user.token)
        holders = self._holders.get(digest)
        if holders is not None:
            holders.discard(user)
            if not holders:
                del self._holders[digest]
                self._records.pop(digest, None)
