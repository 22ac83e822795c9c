"""A real ``redis-server`` for the tests, on a free port of 127.0.0.1, started and stopped by them.

There is no skip: without Debian's ``redis-server`` on the PATH the Redis tests fail, saying
how to install it (``bash scripts/setup --system``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RedisServer", "free_port"]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now (``--port 0`` disables TCP in Redis)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One ``redis-server`` process without persistence, which a test may kill, stop and restart."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run 'bash scripts/setup --system' (Debian's package)")
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="websuckets-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        """The same server through its unix socket."""
        return f"unix://{self.dir / 'redis.sock'}?db=0"

    def start(self) -> None:
        """Start the server (on the same port as before) and wait until it answers PING."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
        args += ["--unixsocket", str(self.dir / "redis.sock"), "--unixsocketperm", "700"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log_file = self.dir / "redis.log"
                log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
                raise RuntimeError(f"redis-server did not start on port {self.port}:\n{log}")
            time.sleep(0.01)

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would; its data is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        """Kill it, then start an empty server on the same port."""
        self.kill()
        self.start()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _answers(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
        return False

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"<RedisServer {self.url} pid={pid} ({os.path.basename(self.binary)})>"
