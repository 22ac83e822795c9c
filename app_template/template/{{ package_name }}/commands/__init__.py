"""The commands clients send: one ``CommandGroup`` a module, named after its prefix."""

from .notes import notes
from .system import system

GROUPS = (notes, system)
"""Every group, in the order the app includes them."""

__all__ = ["GROUPS", "notes", "system"]
