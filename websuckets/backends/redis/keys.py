"""Key names, channels and Lua scripts of `RedisBackend`: the data model in one place.

There are two layouts of the same keys. On one Redis (plain or through Sentinel) every key
of a namespace carries the hash tag ``{ns}``, as it always has. On a Redis Cluster the keys
are spread over slots, so that the load spreads over the masters: a room's history keys and
its channel share a tag of their own (``{ns:room:<room>}``), as does a process's channel
(``{ns:worker:<wid>}``) and each token (``{ns:token:<digest>}``). The *control plane* stays
on one slot (``{ns:ctl}``): the clients' records, the processes' heartbeats and client sets,
the epoch and the namespace's channel, because each script that changes them publishes the
matching event in the same step (the mirrors never disagree with the keys), and a script's
keys and channels must share one slot. A token's revocation is two commands there, in order:
its key's deletion, then the `Revoke` on the namespace's channel (`tokens`). The messages the
scripts write themselves are made of the pieces of `codec`, as Python's are.

On a cluster the channels are sharded (SPUBLISH and SSUBSCRIBE, `cluster`) and the scripts
publish with SPUBLISH (`Scripts`, one set a layout); a history room's script reads the run id
of the node it runs on, not one passed in, and a read's fence goes on the room's channel (its
slot), not on the reader's own. A namespace of ``""`` is tagged ``{ns:ctl}`` with an empty
``ns`` on a cluster, a valid tag; one Redis keeps its ``{}`` names (a tag means nothing there,
and a rolling upgrade keeps its keys).

===================== ========================== ======= ===================================================
one Redis             Redis Cluster              type    holds
===================== ========================== ======= ===================================================
``{ns}:clients``      ``{ns:ctl}:clients``       HASH    client id -> JSON record: worker, user, attributes, rooms
``{ns}:workers``      ``{ns:ctl}:workers``       ZSET    worker id -> last heartbeat (ms, Redis's own clock)
``{ns}:worker:<wid>`` ``{ns:ctl}:worker:<wid>``  SET     the client ids connected to that worker (for reaping)
``{ns}:token:<sha>``  ``{ns:token:<sha>}``       STRING  JSON ``{"u": user id, "x": expiry}``; expires with it
``{ns}:epoch``        ``{ns:ctl}:epoch``         STRING  random, set once: a new value means Redis lost its data
``{ns}:hm:<room>``    ``{ns:room:<room>}:hm``    HASH    a history room's epoch ``e``, top ``s``, run id ``r``
``{ns}:h:<room>``     ``{ns:room:<room>}:h``     STREAM  its last messages, id ``<offset>-0``: ``t`` (ms), ``m``
``{ns}:hi:<room>``    ``{ns:room:<room>}:hi``    ZSET    the ids of its last `RECENT_IDS` broadcasts -> offsets
``{ns}:all``          ``{ns:ctl}:all``           channel presence, revocations, fan-out to every client or user
``{ns}:r:<room>``     ``{ns:room:<room>}:r``     channel a room's broadcasts: heard where it has members
``{ns}:w:<wid>``      ``{ns:worker:<wid>}:w``    channel direct sends to one worker's clients, its heartbeat probe
===================== ========================== ======= ===================================================
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from .codec import Ping, Remove, RoomMessage


@dataclass(frozen=True, slots=True)
class Script:
    source: str
    sha: str = field(init=False)
    """The SHA1 of ``source``, as EVALSHA names it: computed once, not for every call."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


class Keys:
    """The names of one namespace's keys and channels, in the layout of one Redis or of a cluster
    (``sharded``), and the scripts of that layout."""

    def __init__(self, namespace: str, *, sharded: bool = False) -> None:
        self.namespace = namespace
        self.sharded = sharded
        self.scripts = SHARDED_SCRIPTS if sharded else SCRIPT_SET
        self.publish = "SPUBLISH" if sharded else "PUBLISH"
        """The command that publishes on this layout's channels."""
        self.counts_listeners = not sharded
        """Whether `publish`'s answer (how many subscribers heard it) can be trusted: on one Redis; on a
        cluster a slot's move or failover makes it 0 for live listeners until they subscribe again."""
        prefix = "{" + namespace + ":ctl}" if sharded else "{" + namespace + "}"
        self.clients = f"{prefix}:clients"
        self.workers = f"{prefix}:workers"
        self.worker_prefix = f"{prefix}:worker:"
        self.epoch = f"{prefix}:epoch"
        self.all = f"{prefix}:all"
        self._prefix = prefix

    def worker(self, worker_id: str) -> str:
        return self.worker_prefix + worker_id

    def token(self, digest: str) -> str:
        """A token's key: on a cluster, a slot of its own (``{ns:token:<digest>}``)."""
        if self.sharded:
            return "{" + self.namespace + ":token:" + digest + "}"
        return f"{self._prefix}:token:{digest}"

    def worker_channel(self, worker_id: str) -> str:
        if self.sharded:
            return "{" + self.namespace + ":worker:" + worker_id + "}:w"
        return f"{self._prefix}:w:{worker_id}"

    def _room(self, room: str, kind: str) -> str:
        if self.sharded:
            return "{" + self.namespace + ":room:" + room + "}:" + kind
        return f"{self._prefix}:{kind}:{room}"

    def room_channel(self, room: str) -> str:
        return self._room(room, "r")

    def history(self, room: str) -> str:
        return self._room(room, "h")

    def history_meta(self, room: str) -> str:
        return self._room(room, "hm")

    def history_ids(self, room: str) -> str:
        return self._room(room, "hi")

    def history_keys(self, room: str) -> tuple[str, str, str]:
        """The keys of a history room's scripts: its meta, stream and recent broadcast ids."""
        return self._room(room, "hm"), self._room(room, "h"), self._room(room, "hi")

    def fence_channel(self, room: str, own_channel: str) -> str:
        """Where a read of ``room``'s history publishes its fence: the reader's own channel, or on a
        cluster the room's (the script's slot; the reader hears it, having members in the room)."""
        return self.room_channel(room) if self.sharded else own_channel


UPSERT = Script("""
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return redis.call('PUBLISH', ARGV[3], ARGV[4])
""")
"""KEYS clients, worker set; ARGV client id, record, channel, event (`Upsert.text`)."""

REMOVE = Script(f"""
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
return redis.call('PUBLISH', ARGV[2], {Remove.lua("ARGV[1]")})
""")
"""KEYS clients, worker set; ARGV client id, channel. Publishes a `Remove`."""

REASSERT = Script(f"""
local keep = {{}}
for i = 2, #ARGV do keep[ARGV[i]] = true end
local removed = 0
for _, cid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if not keep[cid] then
    redis.call('SREM', KEYS[1], cid)
    redis.call('HDEL', KEYS[2], cid)
    redis.call('PUBLISH', ARGV[1], {Remove.lua("cid")})
    removed = removed + 1
  end
end
return removed
""")
"""KEYS worker set, clients; ARGV channel, then the ids of the clients the worker holds now.

Removes the worker's other clients, publishing a `Remove` for each.
"""


def _heartbeat(probe: str) -> Script:
    return Script(f"""#!lua flags=allow-oom
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
local reaped = 0
for _, wid in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))) do
  local set = ARGV[3] .. wid
  for _, cid in ipairs(redis.call('SMEMBERS', set)) do
    redis.call('HDEL', KEYS[2], cid)
    redis.call('PUBLISH', ARGV[4], {Remove.lua("cid")})
    reaped = reaped + 1
  end
  redis.call('DEL', set)
  redis.call('ZREM', KEYS[1], wid)
end
{probe}
return {{heard, reaped}}
""")


HEARTBEAT = _heartbeat(f"local heard = redis.call('PUBLISH', ARGV[5], {Ping.lua()})")
"""KEYS workers, clients; ARGV worker id, dead after (ms), worker set prefix, channel, own channel.

It runs when Redis is out of memory too (``allow-oom``: it writes nothing that grows), so that a full
Redis does not make live processes look dead, nor their listeners deaf.

Records this worker's heartbeat, reaps every worker silent for longer
than dead after, and probes this worker's own channel: the number of subscribers that
heard the probe (a `Ping`) is 0 when this worker's listener is not subscribed.
"""

REVOKE = Script("""
redis.call('DEL', KEYS[1])
return redis.call('PUBLISH', ARGV[1], ARGV[2])
""")
"""KEYS token; ARGV channel, event (a `Revoke`)."""

_EPOCH = """
local meta = redis.call('HMGET', KEYS[1], 'e', 'r')
local epoch = meta[1]
if not epoch or meta[2] ~= RUN then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0, 'r', RUN)
end
"""
"""The room's epoch (``RUN``: the server's run id): a new one, with an emptied stream (and no broadcast ids),
when its meta is missing or was written before Redis last started (``r``, the server's run id: a restarted
Redis may hold older data, whose offsets would be reused)."""

_ARGV_RUN = "local RUN = ARGV[2]\n"
_NODE_RUN = "local RUN = string.match(redis.call('INFO', 'server'), 'run_id:(%x+)')\n"
"""``RUN``, the run id: passed in (one Redis), or the node's own (a cluster, where each room's node has one)."""

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
"""Redis's clock, in milliseconds."""

RECENT_IDS = 1000
"""How many of a history room's latest broadcasts APPEND knows by their id: a broadcast sent again (after
its first sending got no answer) is kept once if fewer messages than this were kept in the room since."""

APPEND = Script(
    _ARGV_RUN
    + _EPOCH
    + """
local seen = redis.call('ZSCORE', KEYS[3], ARGV[9])
if seen then
  return {epoch, tonumber(seen)}
end
local offset = tonumber(redis.call('HGET', KEYS[1], 's')) + 1
if ARGV[8] == '1' then
"""
    + _NOW
    + f"""
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], offset .. '-0', 't', now, 'm', ARGV[7])
else
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], offset .. '-0', 'm', ARGV[7])
end
redis.call('HSET', KEYS[1], 's', offset)
redis.call('ZADD', KEYS[3], offset, ARGV[9])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', offset - {RECENT_IDS})
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[6] .. {RoomMessage.lua_tail("epoch", "offset", "ARGV[7]")})
return {{epoch, offset}}
"""
)
"""KEYS meta, stream, ids; ARGV new epoch, run id, size, idle (ms), channel, event head, message, timed
('1' or '0'), broadcast id.

Numbers a history room's message, keeps it (with Redis's time when the room has a ttl), and
publishes it with its position, once per broadcast id: an id among the room's last `RECENT_IDS`
(a broadcast sent again because its first sending got no answer) only answers the position it
was kept at, keeping and publishing nothing. The top offset ``s`` is written only once XADD has
kept the message: a script refused halfway (XADD denied by an ACL, say; Redis does not undo a
script's writes) takes no offset, so that members see no gap. The event published
(`RoomMessage.head`: JSON without its closing brace) gains ``"e"`` and ``"n"``, then a newline
and the message (`RoomMessage.lua_tail`). The stream is trimmed roughly (``MAXLEN ~``,
cheaper): readers keep to the last ``size`` offsets exactly.
"""

READ_HISTORY = Script(
    _ARGV_RUN
    + _EPOCH
    + _NOW
    + """
redis.call('PEXPIRE', KEYS[1], ARGV[3])
local top = tonumber(redis.call('HGET', KEYS[1], 's'))
local entries = {}
local first = math.max(tonumber(ARGV[5]) + 1, top - tonumber(ARGV[6]) + 1)
if ARGV[4] == epoch and tonumber(ARGV[5]) < top then
  entries = redis.call('XRANGE', KEYS[2], first .. '-0', '+', 'COUNT', ARGV[6])
end
redis.call('PUBLISH', ARGV[7], ARGV[8])
return {epoch, top, now, entries}
"""
)
"""KEYS meta, stream, ids; ARGV new epoch, run id, idle (ms), since epoch, since offset, size, own channel, fence.

A history room's position and its entries after ``since`` among the last ``size``; then a
fence (a `Fence`) on the reader's own channel: once the reader hears it, it has heard every message
published before the read.
"""

POSITION = Script(
    _NODE_RUN
    + """
local meta = redis.call('HMGET', KEYS[1], 'e', 's', 'r')
redis.call('SPUBLISH', ARGV[1], ARGV[2])
return {meta[1], meta[2], meta[3], RUN}
"""
)
"""KEYS meta; ARGV the room's channel, fence. On a cluster: a history room's position, the run id of the node
that serves it, and a fence on the room's channel."""


@dataclass(frozen=True)
class Scripts:
    """The scripts of one layout."""

    upsert: Script
    remove: Script
    reassert: Script
    heartbeat: Script
    append: Script
    read_history: Script
    more: tuple[Script, ...] = ()
    """Those of this layout alone."""

    @property
    def all(self) -> tuple[Script, ...]:
        """Every script to load."""
        named = (self.upsert, self.remove, self.reassert, self.heartbeat, self.append, self.read_history)
        return named + self.more


def _sharded(script: Script, run: bool = False) -> Script:
    """``script`` for a cluster: SPUBLISH, and (``run``) the node's own run id."""
    source = script.source.replace("redis.call('PUBLISH',", "redis.call('SPUBLISH',")
    return Script(source.replace(_ARGV_RUN, _NODE_RUN) if run else source)


SCRIPT_SET = Scripts(UPSERT, REMOVE, REASSERT, HEARTBEAT, APPEND, READ_HISTORY, (REVOKE,))
"""One Redis's."""

SHARDED_SCRIPTS = Scripts(
    _sharded(UPSERT),
    _sharded(REMOVE),
    _sharded(REASSERT),
    _sharded(
        _heartbeat("local heard = 1")
    ),  # the probe of the process's channel (another slot) is an SPUBLISH of its own
    _sharded(APPEND, run=True),
    _sharded(READ_HISTORY, run=True),
    (POSITION,),
)
"""A cluster's: the HEARTBEAT probe is left to the link, whose channel is on another slot, and a token's
revocation to `tokens` (its key is on a slot of its own)."""

SCRIPTS = SCRIPT_SET.all
