"""What the processes of one namespace tell each other through Redis: one class a kind, one decode.

Every message is a JSON object whose ``"t"`` names its kind; `decode` looks the kind up in one
table. A history room's message is the one that is more than JSON: a JSON head, a newline, then
the room's message as it was broadcast, so that the message is neither escaped nor parsed on
its way. Some messages are written by the Lua scripts of `keys`; those scripts take their text
from the ``lua`` methods here, built of the same pieces as the Python encoders, so that each
format has one definition.

======== ============== ====================================================== =====================
tag      class          fields                                                 written by
======== ============== ====================================================== =====================
``up``   `Upsert`       ``c`` client id, ``d`` its `ClientRecord`              Python, UPSERT sends
``rm``   `Remove`       ``c`` client id                                        REMOVE, REASSERT, HEARTBEAT
``ping`` `Ping`         (none): the heartbeat's probe of its own channel       HEARTBEAT
``rv``   `Revoke`       ``d`` the token's digest                               Python, REVOKE sends
``b``    `Broadcast`    ``r`` room or null, ``x`` excluded ids, ``o`` origin,  Python
                        ``m`` message (``bin``: base64 of bytes)
``u``    `ToUser`       ``u`` user id, ``o`` origin, ``m`` / ``bin``           Python
``s``    `Direct`       ``c`` client id, ``m`` / ``bin``                       Python (a worker's channel)
``j``    `Join`         ``c`` client id, ``r`` room; ``w`` the asking worker and  Python (a worker's channel)
                        ``k`` a key, when it waits for a `Joined`
``jd``   `Joined`       ``k`` the `Join`'s key, ``ok`` whether the join held      Python (the asker's channel)
``l``    `Leave`        ``c`` client id, ``r`` room                            Python (a worker's channel)
``f``    `Fence`        ``k`` a random key                                     Python, READ_HISTORY sends
``h``    `RoomMessage`  ``r``, ``x``, ``o``, ``e`` epoch, ``n`` offset;        Python head, APPEND ends it
                        newline, the message
======== ============== ====================================================== =====================
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from uuid import UUID

from pydantic_core import to_json

from ...identity import UserId
from ...wire import Position

TAG = "t"
"""The field that names a message's kind."""


def _head(tag: str) -> str:
    """How every message of a kind starts: ``{"t":"<tag>"``."""
    return '{"' + TAG + '":"' + tag + '"'


def _lua(text: str) -> str:
    """``text`` as a Lua string literal, for the scripts that write messages themselves."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def _wire(message: str | bytes) -> dict[str, Any]:
    """A message sent on to clients, as fields: bytes travel as base64, flagged ``bin``."""
    if isinstance(message, str):
        return {"m": message}
    return {"m": base64.b64encode(message).decode(), "bin": True}


def _unwire(fields: Mapping[str, Any]) -> str | bytes:
    message: str = fields["m"]
    return base64.b64decode(message) if fields.get("bin") else message


def _ids(fields: Mapping[str, Any]) -> frozenset[UUID]:
    return frozenset(map(UUID, fields["x"]))


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """What Redis holds of one client (``{ns}:clients``), and what every other process mirrors."""

    worker: str
    """The id of the process the client is connected to."""
    user_id: UserId | None
    """``User.id`` once the client is verified, else ``None``."""
    attributes: dict[str, Any]
    """The attributes its process shares, as JSON values."""
    rooms: tuple[str, ...]
    remote_address: Any
    """``socket.remote_address``: a tuple, a string or ``None``."""

    def encode(self) -> str:
        fields = {"w": self.worker, "u": self.user_id, "a": self.attributes, "r": self.rooms, "ra": self.remote_address}
        return to_json(fields).decode()

    @classmethod
    def decode(cls, fields: Mapping[str, Any]) -> ClientRecord:
        address = fields.get("ra")
        address = tuple(address) if address else address  # a JSON array: the tuple it was
        return cls(fields["w"], fields["u"], fields["a"], tuple(fields["r"]), address)

    @classmethod
    def parse(cls, text: str) -> ClientRecord:
        """A record as Redis stores it."""
        return cls.decode(json.loads(text))


@dataclass(frozen=True, slots=True)
class Upsert:
    """A client's record, new or changed: its process writes it and tells every process (UPSERT)."""

    tag: ClassVar[str] = "up"
    client_id: UUID
    record: ClientRecord

    def encode(self) -> str:
        return self.text(self.client_id.hex, self.record.encode())

    @classmethod
    def text(cls, client_id: str, record: str) -> str:
        """The message, from a client id's hex and a record already encoded (Redis stores it too)."""
        return _head(cls.tag) + ',"c":"' + client_id + '","d":' + record + "}"

    @classmethod
    def decode(cls, fields: Mapping[str, Any], body: str) -> Upsert:
        return cls(UUID(fields["c"]), ClientRecord.decode(fields["d"]))


@dataclass(frozen=True, slots=True)
class Remove:
    """A client gone: it disconnected, or its process stopped beating (written by Lua only)."""

    tag: ClassVar[str] = "rm"
    client_id: UUID

    _START: ClassVar[str] = _head(tag) + ',"c":"'
    _END: ClassVar[str] = '"}'

    def encode(self) -> str:
        return self._START + self.client_id.hex + self._END

    @classmethod
    def lua(cls, client_id: str) -> str:
        """The Lua expression of the message, ``client_id`` being a Lua expression of the id's hex."""
        return f"{_lua(cls._START)} .. {client_id} .. {_lua(cls._END)}"

    @classmethod
    def decode(cls, fields: Mapping[str, Any], body: str) -> Remove:
        return cls(UUID(fields["c"]))


@dataclass(frozen=True, slots=True)
class Ping:
    """The heartbeat's probe of its process's own channel: heard by nobody means a deaf listener."""

    tag: ClassVar[str] = "ping"

    def encode(self) -> str:
        return _head(self.tag) + "}"

    @classmethod
    def lua(cls) -> str:
        return _lua(cls().encode())

    @classmethod
    def decode(cls, fields: Mapping[str, Any], body: str) -> Ping:
        return cls()


@dataclass(frozen=True, slots=True)
class Revoke:
    """A token revoked (deleted from Redis by the same script): its holders everywhere are unverified."""

    tag: ClassVar[str] = "rv"
    digest: str

    def encode(self) -> str:
        return _head(self.tag) + ',"d":"' + self.digest + '"}'

    @classmethod
    def decode(cls, fields: Mapping[str, Any], body: str) -> Revoke:
        return cls(fields["d"])


@dataclass(frozen=True, slots=True)
class Broadcast:
    """A message for a room's members (every client if ``room`` is ``None``) on every process."""

    tag: ClassVar[str] = "b"
    room: str | None
    exclude: frozenset[UUID]
    origin: str
    """The process that sent it, which delivered it to its own clients already."""
    message: str | bytes

    def encode(self) -> bytes:
        exclude = [cid.hex for cid in self.exclude]
        return to_json({TAG: self.tag, "r": self.room, "x": exclude, "o": self.origin, **_wire(self.message)})

    @classmethod
    def decode(cls, fields: Mapping[str, Any], body: str) -> Broadcast:
        return cls(fields["r"], _ids(fields), fields["o"], _unwire(fields))


@dataclass(frozen=True, slots=True)
class ToUser:
    """A message for every connection of a verified user, on every process."""

    tag: ClassVar[str] = "u"
    user_id: UserId
    origin: str
    message: str | bytes

    def encode(self) -> bytes:
        return to_json({TAG: self.tag, "u": self.user_id, "o": self.origin, **_wire(self.message)})

    @classmethod
    def decode(cls, fields: Mapping[str, Any], body: str) -> ToUser:
        return cls(fields["u"], fields["o"], _unwire(fields))


@dataclass(frozen=True, slots=True)
class Direct:
    """A message for one client, sent on the channel of the process holding it."""

    tag: ClassVar[str] = "s"
    client_id: UUID
    message: str | bytes

    def encode(self) -> bytes:
        return to_json({TAG: self.tag, "c": self.client_id.hex, **_wire(self.message)})

    @classmethod
    def decode(cls, fields: Mapping[str, Any], body: str) -> Direct:
        return cls(UUID(fields["c"]), _unwire(fields))


@dataclass(frozen=True, slots=True)
class Join:
    """Another process joins one of this process's clients to a room: only its own process may.

    With ``reply_to`` (the asking worker) and ``key``, the asker waits for a `Joined` carrying
    the key: sent once the client's process hears the room (and, for a room with history, has
    fenced its catch-up), so that whatever the asker broadcasts next reaches the client.
    """

    tag: ClassVar[str] = "j"
    client_id: UUID
    room: str
    reply_to: str | None = None
    key: str | None = None

    def encode(self) -> bytes:
        fields: dict[str, Any] = {TAG: self.tag, "c": self.client_id.hex, "r": self.room}
        if self.reply_to is not None:
            fields |= {"w": self.reply_to, "k": self.key}
        return to_json(fields)

    @classmethod
    def decode(cls, fields: Mapping[str, Any], body: str) -> Join:
        return cls(UUID(fields["c"]), fields["r"], fields.get("w"), fields.get("k"))


@dataclass(frozen=True, slots=True)
class Joined:
    """The answer to a `Join` that waits: the client is in the room (``ok``), or its process failed to join it."""

    tag: ClassVar[str] = "jd"
    key: str
    ok: bool

    def encode(self) -> bytes:
        return to_json({TAG: self.tag, "k": self.key, "ok": self.ok})

    @classmethod
    def decode(cls, fields: Mapping[str, Any], body: str) -> Joined:
        return cls(fields["k"], bool(fields["ok"]))


@dataclass(frozen=True, slots=True)
class Leave:
    """Another process takes one of this process's clients out of a room."""

    tag: ClassVar[str] = "l"
    client_id: UUID
    room: str

    def encode(self) -> bytes:
        return to_json({TAG: self.tag, "c": self.client_id.hex, "r": self.room})

    @classmethod
    def decode(cls, fields: Mapping[str, Any], body: str) -> Leave:
        return cls(UUID(fields["c"]), fields["r"])


@dataclass(frozen=True, slots=True)
class Fence:
    """Published on a process's own channel after a read: hearing it, the process has heard all before."""

    tag: ClassVar[str] = "f"
    key: str

    def encode(self) -> str:
        return _head(self.tag) + ',"k":"' + self.key + '"}'

    @classmethod
    def decode(cls, fields: Mapping[str, Any], body: str) -> Fence:
        return cls(fields["k"])


@dataclass(frozen=True, slots=True)
class RoomMessage:
    """A history room's message with its position: Python writes the head, APPEND numbers and ends it."""

    tag: ClassVar[str] = "h"
    room: str
    exclude: frozenset[UUID]
    origin: str
    position: Position
    message: str

    _EPOCH: ClassVar[str] = ',"e":"'
    _OFFSET: ClassVar[str] = '","n":'
    _BODY: ClassVar[str] = "}\n"

    def encode(self) -> str:
        head = self.head(self.room, self.exclude, self.origin)
        epoch, offset = self.position
        return head + self._EPOCH + epoch + self._OFFSET + str(offset) + self._BODY + self.message

    @classmethod
    def head(cls, room: str, exclude: frozenset[UUID], origin: str) -> str:
        """The message's JSON without its position and closing brace: what APPEND is given."""
        fields = {TAG: cls.tag, "r": room, "x": [cid.hex for cid in exclude], "o": origin}
        return to_json(fields).decode()[:-1]

    @classmethod
    def lua_tail(cls, epoch: str, offset: str, message: str) -> str:
        """The Lua expression that follows the head: the position, the newline, the message (Lua expressions)."""
        return f"{_lua(cls._EPOCH)} .. {epoch} .. {_lua(cls._OFFSET)} .. {offset} .. {_lua(cls._BODY)} .. {message}"

    @classmethod
    def decode(cls, fields: Mapping[str, Any], body: str) -> RoomMessage:
        return cls(fields["r"], _ids(fields), fields["o"], Position(fields["e"], fields["n"]), body)


Message = Upsert | Remove | Ping | Revoke | Broadcast | ToUser | Direct | Join | Joined | Leave | Fence | RoomMessage

_DECODERS: dict[str, Callable[[Mapping[str, Any], str], Message]] = {
    Upsert.tag: Upsert.decode,
    Remove.tag: Remove.decode,
    Ping.tag: Ping.decode,
    Revoke.tag: Revoke.decode,
    Broadcast.tag: Broadcast.decode,
    ToUser.tag: ToUser.decode,
    Direct.tag: Direct.decode,
    Join.tag: Join.decode,
    Joined.tag: Joined.decode,
    Leave.tag: Leave.decode,
    Fence.tag: Fence.decode,
    RoomMessage.tag: RoomMessage.decode,
}

_WITH_BODY = _head(RoomMessage.tag)
"""How a message with a body after its JSON head starts."""


def decode(data: str) -> Message | None:
    """The message ``data`` holds; ``None`` for a kind this process does not know (a newer one sent it).

    Raises (``ValueError``, ``KeyError``, ``TypeError``) on a malformed message.
    """
    head, body = data, ""
    if data.startswith(_WITH_BODY):
        head, _, body = data.partition("\n")
    fields = json.loads(head)
    decoder = _DECODERS.get(fields[TAG])
    return None if decoder is None else decoder(fields, body)
