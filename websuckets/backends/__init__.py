"""Where session state lives: presence, verified users and tokens.

`MemoryBackend` (the default) keeps them in this process.
"""

from .base import Backend, TokenRecord
from .memory import MemoryBackend

__all__ = ["Backend", "MemoryBackend", "TokenRecord"]
