"""``RedisBackend``: one app over many processes and machines, sharing one Redis (the ``redis`` extra).

The package, one concept a module, from the bottom up:

================== ==========================================================================
``codec``          the messages processes send each other: a class a kind, one decode
``keys``           key names, channels and the Lua scripts (written with `codec`'s pieces)
``address``        the URL forms, read once (a server, or Sentinel), and the clients built for them
``link``           the ordered writer, the supervised listener and the heartbeat
``mirror``         the other processes' clients in this one's `Presence`; no I/O
``local``          this process's own clients, and delivery to them
``tokens``         tokens by digest, revocations, and what is owed after an outage
``history_sync``   history rooms: catch-up behind a fence, lost messages found; no I/O
``history_store``  history rooms' Streams: append, read, positions
``backend``        `RedisBackend`, which glues them together
================== ==========================================================================
"""

try:
    import redis  # noqa: F401  (only to say what to install)
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError("RedisBackend needs redis-py: pip install 'websuckets[redis]'") from exc

from .backend import RedisBackend

__all__ = ["RedisBackend"]
