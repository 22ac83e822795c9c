"""Where session state lives: presence, verified users, tokens and rooms.

`MemoryBackend` (the default) keeps them in this process; `websuckets.backends.redis.RedisBackend`
(the ``redis`` extra) shares them between processes and machines.
"""

from .base import Backend, BackendHealth, IndexedBackend, TokenRecord
from .memory import MemoryBackend

__all__ = ["Backend", "BackendHealth", "IndexedBackend", "MemoryBackend", "TokenRecord"]
