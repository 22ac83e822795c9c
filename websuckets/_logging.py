"""Logging shared by the server and the Python client: websockets' loggers without frame dumps.

At DEBUG, ``websockets`` logs every frame it sends and receives, and frames carry tokens and
passwords. The server (`websuckets.app`), the test client (`websuckets.testing`) and the Python
client (`websuckets.client`) hand websockets a logger that drops those records.
"""

from __future__ import annotations

import logging
from typing import Any


class QuietFrames(logging.LoggerAdapter[logging.Logger]):
    """``logger`` without DEBUG records, and without the messages (format strings) in ``skip``."""

    def __init__(self, logger: logging.Logger, skip: frozenset[str] | set[str] = frozenset()) -> None:
        super().__init__(logger)
        self.skip = frozenset(skip)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802  (the logging API's name)
        return level > logging.DEBUG and self.logger.isEnabledFor(level)

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if msg not in self.skip:
            super().log(level, msg, *args, **kwargs)


def quiet_frames(logger: logging.Logger) -> logging.LoggerAdapter[logging.Logger]:
    """``logger`` for websockets, with its DEBUG frame dumps off: frames carry tokens and passwords.

    Pass your own ``logger=`` to `WebSuckets.serve` to get them back while debugging.
    """
    return QuietFrames(logger)
