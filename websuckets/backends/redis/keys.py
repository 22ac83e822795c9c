"""Key names, channels and Lua scripts of `RedisBackend`: the data model in one place.

Every key of a namespace carries the hash tag ``{namespace}``, so all of them live in one
slot. That is not enough for Redis Cluster (not supported yet): one node would hold all the
data, and every message would cross the cluster bus. Cluster needs the keys and the room
channels spread over slots by room, user and process, sharded pub/sub on them, scripts whose
keys share one of those slots, and liveness checks that do not count PUBLISH's subscribers
(per node on a cluster). Each script changes keys *and*
publishes the matching event in one step, so the mirrors never disagree with the keys. The
messages the scripts write themselves are made of the pieces of `codec`, as Python's are.

=========================== ======== ==================================================
key or channel              type     holds
=========================== ======== ==================================================
``{ns}:clients``            HASH     client id -> JSON record: worker, user id, attributes, rooms
``{ns}:workers``            ZSET     worker id -> last heartbeat (ms, Redis's own clock)
``{ns}:worker:<wid>``       SET      the client ids connected to that worker (for reaping)
``{ns}:token:<sha256>``     STRING   JSON ``{"u": user id, "x": expiry}``; expires (PXAT) with the token
``{ns}:epoch``              STRING   random, set once: a new value means Redis lost its data
``{ns}:hm:<room>``          HASH     a history room's epoch ``e``, top offset ``s``, Redis run id ``r``
``{ns}:h:<room>``           STREAM   its last messages, entry id ``<offset>-0``: ``t`` (ms), ``m``
``{ns}:hi:<room>``          ZSET     the ids of its last `RECENT_IDS` broadcasts -> their offsets
``{ns}:all`` (channel)      pub/sub  presence changes, revocations, fan-out to every client or user
``{ns}:r:<room>`` (channel) pub/sub  a room's broadcasts: heard by the processes with members in it
``{ns}:w:<wid>`` (channel)  pub/sub  direct sends to one worker's clients, and its heartbeat probe
=========================== ======== ==================================================
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
    """The names of one namespace's keys and channels."""

    def __init__(self, namespace: str) -> None:
        prefix = "{" + namespace + "}"
        self.clients = f"{prefix}:clients"
        self.workers = f"{prefix}:workers"
        self.worker_prefix = f"{prefix}:worker:"
        self.token_prefix = f"{prefix}:token:"
        self.epoch = f"{prefix}:epoch"
        self.all = f"{prefix}:all"
        self.worker_channel_prefix = f"{prefix}:w:"
        self.room_channel_prefix = f"{prefix}:r:"
        self.history_prefix = f"{prefix}:h:"
        self.history_meta_prefix = f"{prefix}:hm:"
        self.history_ids_prefix = f"{prefix}:hi:"

    def worker(self, worker_id: str) -> str:
        return self.worker_prefix + worker_id

    def token(self, digest: str) -> str:
        return self.token_prefix + digest

    def worker_channel(self, worker_id: str) -> str:
        return self.worker_channel_prefix + worker_id

    def room_channel(self, room: str) -> str:
        return self.room_channel_prefix + room

    def history(self, room: str) -> str:
        return self.history_prefix + room

    def history_meta(self, room: str) -> str:
        return self.history_meta_prefix + room

    def history_ids(self, room: str) -> str:
        return self.history_ids_prefix + room

    def history_keys(self, room: str) -> tuple[str, str, str]:
        """The keys of a history room's scripts: its meta, stream and recent broadcast ids."""
        return self.history_meta_prefix + room, self.history_prefix + room, self.history_ids_prefix + room


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

HEARTBEAT = Script(f"""#!lua flags=allow-oom
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
local heard = redis.call('PUBLISH', ARGV[5], {Ping.lua()})
return {{heard, reaped}}
""")
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
if not epoch or meta[2] ~= ARGV[2] then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'e', epoch, 's', 0, 'r', ARGV[2])
end
"""
"""The room's epoch: a new one, with an emptied stream (and no broadcast ids), when its meta is missing or
was written before Redis last started (``r``, the server's run id: a restarted Redis may hold older data, whose offsets
would be reused)."""

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
"""Redis's clock, in milliseconds."""

RECENT_IDS = 1000
"""How many of a history room's latest broadcasts APPEND knows by their id: a broadcast sent again (after
its first sending got no answer) is kept once if fewer messages than this were kept in the room since."""

APPEND = Script(
    _EPOCH
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
    _EPOCH
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

SCRIPTS = (UPSERT, REMOVE, REASSERT, HEARTBEAT, REVOKE, APPEND, READ_HISTORY)
