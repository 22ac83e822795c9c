"""The settings, read from the environment once, when the app starts."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "localhost"
    """The interface to listen on (``HOST``)."""
    port: int = 9000
    """The port to listen on; 0 picks a free one (``PORT``)."""
    max_notes: int = 100
    """How many notes the notebook keeps; the oldest go first (``MAX_NOTES``)."""
    log_level: str = "INFO"
    """The level of the log on stderr (``LOG_LEVEL``)."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Self:
        """The settings from ``environ``; a variable left unset keeps its default."""
        try:
            return cls(
                host=environ.get("HOST", "localhost"),
                port=int(environ.get("PORT", "9000")),
                max_notes=int(environ.get("MAX_NOTES", "100")),
                log_level=environ.get("LOG_LEVEL", "INFO").upper(),
            )
        except ValueError as exc:
            raise ValueError(f"bad setting in the environment: {exc}") from None
