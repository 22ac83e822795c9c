"""The messages RedisBackend's processes send each other: every kind decodes to what was encoded, without Redis.

The kinds the Lua scripts write are checked against the scripts' own text: the expression a script
concatenates, evaluated here, is what the Python encoder writes.
"""

from __future__ import annotations

import re
from uuid import UUID, uuid4

import pytest

from websuckets import Position
from websuckets.backends.redis import keys
from websuckets.backends.redis.codec import (
    Broadcast,
    ClientRecord,
    Direct,
    Fence,
    Join,
    Joined,
    Leave,
    Message,
    Ping,
    Remove,
    Revoke,
    RoomMessage,
    ToUser,
    Upsert,
    decode,
)

ALICE, BOB = UUID(int=1), UUID(int=2)
RECORD = ClientRecord("host:1:ab", "alice", {"login": "alice", "tags": [1, 2]}, ("chat", "lobby"), ("10.0.0.1", 5))

EVERY_KIND: list[Message] = [
    Upsert(ALICE, RECORD),
    Upsert(BOB, ClientRecord("host:2:cd", None, {}, (), None)),
    Remove(ALICE),
    Ping(),
    Revoke("ab" * 32),
    Broadcast("lobby", frozenset({ALICE, BOB}), "host:1:ab", '{"event":"said","payload":"hi"}'),
    Broadcast(None, frozenset(), "host:1:ab", b"\x00\xffbinary"),
    ToUser("alice", "host:1:ab", "text"),
    ToUser(42, "host:1:ab", b"bytes"),
    Direct(ALICE, "to one client"),
    Direct(ALICE, b"\x01"),
    Join(ALICE, "lobby"),
    Join(ALICE, "lobby", "host:2:cd", "0123456789abcdef"),
    Joined("0123456789abcdef", True),
    Joined("0123456789abcdef", False),
    Leave(ALICE, "lobby"),
    Fence("0123456789abcdef"),
    RoomMessage("lobby", frozenset({BOB}), "host:1:ab", Position("e" * 16, 7), '{"event":"said","payload":"a\\nb"}'),
]


def text(encoded: str | bytes) -> str:
    """What a listener gets: redis-py decodes every message to text."""
    return encoded if isinstance(encoded, str) else encoded.decode()


@pytest.mark.parametrize("message", EVERY_KIND, ids=lambda message: type(message).__name__)
def test_every_kind_decodes_to_what_was_encoded(message: Message) -> None:
    """decode(encode(m)) == m for each kind of message, text and bytes alike."""
    assert decode(text(message.encode())) == message


def test_every_kind_has_its_own_tag() -> None:
    """No two kinds share a tag, and every kind of the Message union is in the list above."""
    kinds = {type(message) for message in EVERY_KIND}
    assert len({kind.tag for kind in kinds}) == len(kinds) == len(Message.__args__)  # type: ignore[attr-defined]


def test_a_join_from_a_process_that_does_not_wait_decodes_as_one() -> None:
    """0.1's processes send a Join without ``w`` and ``k``: it decodes, with nobody to answer."""
    assert decode('{"t":"j","c":"' + ALICE.hex + '","r":"lobby"}') == Join(ALICE, "lobby", None, None)


def test_a_kind_this_process_does_not_know_is_ignored() -> None:
    """A message of a newer process's kind decodes to None: the listener skips it."""
    assert decode('{"t":"new-kind","z":1}') is None


@pytest.mark.parametrize("data", ["not json", '{"no":"tag"}', '{"t":"up","c":"not a uuid","d":{}}', "[1]"])
def test_a_malformed_message_raises(data: str) -> None:
    """The listener counts and logs what it cannot decode (listener_errors)."""
    with pytest.raises((ValueError, KeyError, TypeError)):
        decode(data)


def test_the_upsert_text_is_the_message_of_the_record_redis_stores() -> None:
    """Upsert.text (what the backend publishes beside the stored record) is Upsert.encode."""
    assert Upsert.text(ALICE.hex, RECORD.encode()) == Upsert(ALICE, RECORD).encode()
    assert ClientRecord.parse(RECORD.encode()) == RECORD


def lua_value(expression: str, values: dict[str, str]) -> str:
    """Evaluate a Lua concatenation of string literals and names, as the scripts write messages."""
    result = []
    for piece in expression.split(" .. "):
        if piece.startswith("'"):
            result.append(piece[1:-1].replace("\\n", "\n").replace("\\'", "'").replace("\\\\", "\\"))
        else:
            result.append(values[piece])
    return "".join(result)


def test_the_scripts_write_a_remove_as_python_does() -> None:
    """REMOVE, REASSERT and HEARTBEAT publish the text of Remove(client id)."""
    cid = uuid4()
    assert lua_value(Remove.lua("cid"), {"cid": cid.hex}) == Remove(cid).encode()
    for script, name in ((keys.REMOVE, "ARGV[1]"), (keys.REASSERT, "cid"), (keys.HEARTBEAT, "cid")):
        assert Remove.lua(name) in script.source


def test_the_heartbeat_probe_is_a_ping() -> None:
    """The probe HEARTBEAT publishes on the process's own channel decodes to Ping."""
    assert Ping.lua() in keys.HEARTBEAT.source
    assert decode(lua_value(Ping.lua(), {})) == Ping()


def test_append_ends_a_room_message_as_python_does() -> None:
    """APPEND adds the position, a newline and the message to the head: the text of RoomMessage."""
    message = RoomMessage("lobby", frozenset({ALICE}), "host:1:ab", Position("f" * 16, 12), '{"event":"x"}')
    head = RoomMessage.head(message.room, message.exclude, message.origin)
    tail = RoomMessage.lua_tail("epoch", "offset", "ARGV[7]")
    published = head + lua_value(tail, {"epoch": "f" * 16, "offset": "12", "ARGV[7]": message.message})
    assert published == message.encode()
    assert re.search(r"ARGV\[6\] \.\. " + re.escape(tail), keys.APPEND.source)
