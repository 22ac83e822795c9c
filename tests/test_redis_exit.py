"""``RedisBackend(exit_after=...)``: a process whose Redis stays unusable that long stops, non-zero, for its
orchestrator to restart it; a shorter outage changes nothing.

Every test runs ``websuckets run`` in a subprocess (tests/apps/exit_app.py) on the test's own
redis-server, and talks to it over real sockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from redis_server import RedisServer
from test_workers import Supervised, ask, launched, websuckets
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

pytestmark = pytest.mark.timeout(90)

ROOT = str(Path(__file__).resolve().parent.parent)
"""On the subprocesses' path first: the package under test, not another checkout installed in the venv."""
GAVE_UP = (
    r"ERROR (?:worker\[\d\] pid \d+ )?websuckets\.redis: "
    r"Redis at redis://127\.0\.0\.1:\d+/0 unusable for (\d+\.\d) s \(exit_after={}\)"
)


@contextmanager
def serving(tmp_path: Path, redis_url: str, exit_after: float, *args: str) -> Iterator[Supervised]:
    """``websuckets run exit_app:app ARGS`` (one process unless ARGS say otherwise), once it prints its address."""
    log = tmp_path / "stderr.txt"
    env = {"EXIT_AFTER": str(exit_after), "PYTHONPATH": ROOT}
    with log.open("w") as stderr:
        argv = ("run", "exit_app:app", "--host", "127.0.0.1", "--port", "0", *args)
        process = websuckets(*argv, redis_url=redis_url, stderr=stderr, env=env)
    server = Supervised(process, "", "", log)
    try:
        assert process.stdout is not None
        server.banner = process.stdout.readline()
        found = re.search(r"ws://\S+", server.banner)
        assert found, server.banner + server.stderr
        server.url = found.group()
        yield server
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def exit_code_within(process: subprocess.Popen[str], seconds: float) -> int | None:
    """The process's exit code once it has exited, waiting ``seconds`` at most; None if it still runs."""
    try:
        return process.wait(seconds)
    except subprocess.TimeoutExpired:
        return None


async def test_redis_away_longer_than_exit_after_stops_the_process_non_zero(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Redis killed: after exit_after seconds the process logs one ERROR line with the cause and the
    duration, closes its connections with 1001 and exits 1, within a bounded time."""
    with serving(tmp_path, redis_server.url, 1.0) as server:
        async with connect(server.url) as ws:
            assert await ask(ws, "job pid") == server.process.pid
            redis_server.kill()
            killed = time.monotonic()
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == CloseCode.GOING_AWAY
        code = await asyncio.to_thread(exit_code_within, server.process, 10)
        took = time.monotonic() - killed
        assert code == 1, server.stderr
        assert 1.0 <= took < 1.0 + 4.0, took
        lines = list(re.finditer(GAVE_UP.format(1) + r".*", server.stderr))
        assert len(lines) == 1, server.stderr
        assert 1.0 <= float(lines[0].group(1)) < 1.5
        assert "the latest failure: ConnectionError" in lines[0].group()
        assert "Traceback" not in server.stderr


async def test_an_outage_shorter_than_exit_after_changes_nothing(tmp_path: Path, redis_server: RedisServer) -> None:
    """Redis back 0.3 s after it went, with exit_after=3: past those 3 s the process still serves,
    logged no such line, and stops on SIGTERM with 0."""
    with serving(tmp_path, redis_server.url, 3.0) as server:
        redis_server.kill()
        await asyncio.sleep(0.3)
        redis_server.start()
        await asyncio.sleep(4.0)  # past exit_after, counted from the loss
        assert server.process.poll() is None, server.stderr
        async with connect(server.url) as ws:
            assert await ask(ws, "job pid") == server.process.pid
        assert "reconnected to Redis" in server.stderr
        assert "unusable for" not in server.stderr
        server.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(exit_code_within, server.process, 20) == 0, server.stderr


async def test_with_workers_redis_away_for_good_ends_the_command_non_zero(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """--workers 2: each worker gives up (ERROR line, exit code 4, logged by the supervisor), its
    replacement cannot start without Redis, and the command exits 1 naming why."""
    env = {"EXIT_AFTER": "0.5", "PYTHONPATH": ROOT}
    with launched(tmp_path, redis_server.url, app="exit_app:app", env=env) as server:
        assert server.process.stdout is not None
        assert "serving on" in server.process.stdout.readline(), server.stderr
        redis_server.kill()
        killed = time.monotonic()
        code = await asyncio.to_thread(exit_code_within, server.process, 30)
        assert code == 1, server.stderr
        assert time.monotonic() - killed < 15
        assert re.search(GAVE_UP.format(0.5), server.stderr), server.stderr
        assert re.search(r"worker\[\d\] pid \d+ gave up on its backend \(exit code 4\); restarting", server.stderr)
        assert "could not start: cannot reach Redis at" in server.stderr, server.stderr
