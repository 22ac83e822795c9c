"""The port that ``websuckets run --workers N`` serves on, and how connections reach each worker.

The supervisor binds it (`listening_socket`); each worker listens on that socket (`Balance.SHARED`)
or on a socket of its own bound to the same address (`Balance.REUSE_PORT`, `reuse_port_socket`).
"""

from __future__ import annotations

import enum
import socket
import sys
from typing import Any


class Balance(enum.Enum):
    """How the kernel hands connections to the workers.

    ``REUSE_PORT`` (the default on Linux): every worker listens on a socket of its own, bound
    with ``SO_REUSEPORT``; Linux spreads new connections over them by a hash of the client's
    address and port, so each worker gets about 1/N of them however the accepts are timed
    (bench/workers.py: the busiest of 4 workers held 1.06 times a fair share of 1,000
    connections, against 1.17 to 1.48 with ``SHARED``). The supervisor keeps the port bound,
    without listening, while workers come and go. The costs: connections waiting in a dying
    worker's queue are reset (``net.ipv4.tcp_migrate_req=1`` moves them instead), and a stuck
    worker goes on receiving its share until it is killed.

    ``SHARED``: one socket, the supervisor's, on which every worker listens and accepts
    (uvicorn's and gunicorn's model; it goes on listening while workers come and go). Whichever
    worker wakes first takes the waiting connections, so the spread depends on timing; a worker
    that dies or is stuck leaves no connection behind. The default where ``SO_REUSEPORT`` does
    not spread connections (macOS, the BSDs).
    """

    REUSE_PORT = "reuse-port"
    SHARED = "shared"

    @classmethod
    def default(cls) -> Balance:
        """``REUSE_PORT`` on Linux, where it spreads connections evenly; ``SHARED`` elsewhere."""
        return cls.REUSE_PORT if sys.platform == "linux" else cls.SHARED


def listening_socket(host: str, port: int, balance: Balance) -> socket.socket:
    """The supervisor's socket on ``host:port``, bound, not listening: the workers listen on it
    (``SHARED``) or on sockets of their own (``REUSE_PORT``) once every one of them is ready.

    ``host`` is one address (``localhost`` is 127.0.0.1): an IPv6 one when it has a colon.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if balance is Balance.REUSE_PORT:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def reuse_port_socket(family: int, address: Any) -> socket.socket:
    """A worker's own socket on the supervisor's address (``REUSE_PORT``); the kernel spreads connections over them."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(address)
    return sock
