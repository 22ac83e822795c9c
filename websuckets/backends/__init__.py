"""Where session state lives: presence, verified users and tokens.

:class:`~websuckets.backends.memory.MemoryBackend` (the default) keeps them in this process.
"""

from .base import Backend, TokenRecord
from .memory import MemoryBackend

__all__ = ["Backend", "MemoryBackend", "TokenRecord"]
