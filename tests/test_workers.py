"""``websuckets run --workers N``: N supervised processes on one port, over a real Redis.

Every test runs the command in a subprocess, with tests/apps/workers_app.py on a RedisBackend
of the test's own redis-server, and talks to it over real sockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from http_get import http_get
from redis_server import RedisServer, free_port
from test_tls import certificate, client_context  # noqa: F401  (certificate: a fixture, requested by name)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import CloseCode
from websockets.typing import Origin

from websuckets import cli
from websuckets.listening import Balance, listening_socket

APPS = Path(__file__).parent / "apps"
BALANCES = ["reuse-port", "shared"]


@dataclass
class Supervised:
    process: subprocess.Popen[str]
    url: str
    banner: str
    log: Path

    @property
    def stderr(self) -> str:
        return self.log.read_text()

    def worker_pids(self) -> set[int]:
        """The supervisor's worker processes (not multiprocessing's resource tracker)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return {int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()}


def websuckets(
    *args: str, redis_url: str, stderr: Any = subprocess.PIPE, env: dict[str, str] | None = None, **options: Any
) -> subprocess.Popen[str]:
    """``python -m websuckets ARGS`` in tests/apps, with ``REDIS_URL`` set for workers_app."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "REDIS_URL": redis_url, **(env or {})}
    argv = [sys.executable, "-m", "websuckets", *args]
    return subprocess.Popen(argv, cwd=APPS, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, **options)


@contextmanager
def launched(
    tmp_path: Path, redis_url: str, *args: str, app: str = "workers_app:app", **options: Any
) -> Iterator[Supervised]:
    """``websuckets run APP --workers 2 ARGS``, not waited for (no url nor banner yet); its stderr goes to a file."""
    log = tmp_path / "stderr.txt"
    with log.open("w") as stderr:
        process = websuckets(
            "run", app, "--host", "127.0.0.1", "--port", "0", "--workers", "2", *args,
            redis_url=redis_url, stderr=stderr, **options,
        )  # fmt: skip
    server = Supervised(process, "", "", log)
    try:
        yield server
    finally:
        if process.poll() is None:
            for pid in server.worker_pids():
                os.kill(pid, signal.SIGKILL)
            process.kill()
        process.communicate()


@contextmanager
def supervised(
    tmp_path: Path, redis_url: str, *args: str, app: str = "workers_app:app", **options: Any
) -> Iterator[Supervised]:
    """``websuckets run APP --workers 2 ARGS`` until it prints its address; its stderr goes to a file."""
    with launched(tmp_path, redis_url, *args, app=app, **options) as server:
        assert server.process.stdout is not None
        server.banner = server.process.stdout.readline()
        found = re.search(r"wss?://\S+", server.banner)
        assert found, server.banner + server.stderr
        server.url = found.group()
        yield server


async def ask(ws: ClientConnection, event: str, payload: Any = None) -> Any:
    """Send a command; the payload of the event that answers it."""
    await ws.send(json.dumps({"event": event, "payload": payload}))
    return json.loads(await ws.recv())["payload"]


async def logged(server: Supervised, pattern: str) -> str:
    """Wait until the command's stderr matches ``pattern`` (a bounded number of looks); the match."""
    for _ in range(600):
        if found := re.search(pattern, server.stderr):
            return found.group()
        await asyncio.sleep(0.05)
    raise AssertionError(f"never logged: {pattern}\n{server.stderr}")


async def served_by(url: str) -> int:
    """The pid of the worker that serves a new connection."""
    async with connect(url) as ws:
        pid: int = await ask(ws, "job pid")
        return pid


async def workers_serving(url: str, balance: str) -> Counter[int]:
    """How many of the first clients each worker serves: 40 connect at once; with a shared socket whichever worker
    wakes first may take that whole burst, so up to 200 more then come one at a time, held open, until both serve."""
    async with AsyncExitStack() as stack:
        clients = await asyncio.gather(*(stack.enter_async_context(connect(url)) for _ in range(40)))
        pids = Counter(await asyncio.gather(*(ask(ws, "job pid") for ws in clients)))
        for _ in range(200 if balance == "shared" else 0):
            if len(pids) == 2:
                break
            pids[await ask(await stack.enter_async_context(connect(url)), "job pid")] += 1
        return pids


@pytest.mark.parametrize("balance", BALANCES)
async def test_two_workers_serve_the_connections_between_them(tmp_path: Path, redis_url: str, balance: str) -> None:
    """With --workers 2, clients are served by both workers, and the command prints one line with the address."""
    with supervised(tmp_path, redis_url, "--balance", balance) as server:
        pids = await workers_serving(server.url, balance)
        assert set(pids) == server.worker_pids()
        assert len(pids) == 2
        print(f"{balance}: {sum(pids.values())} connections spread {sorted(pids.values())}")
        banner = r"websuckets: serving on ws://127\.0\.0\.1:\d+ with 2 workers \(press Ctrl\+C to stop\)\n"
        assert re.fullmatch(banner, server.banner)
        assert re.search(r"worker\[1\] pid \d+ serving", server.stderr)
        assert re.search(r"worker\[2\] pid \d+ serving", server.stderr)


@pytest.mark.parametrize("balance", BALANCES)
async def test_a_killed_worker_is_logged_and_replaced_while_the_port_stays_open(
    tmp_path: Path, redis_url: str, balance: str
) -> None:
    """kill -9 of a worker: the supervisor logs the signal and starts another; every connection attempt succeeds."""
    with supervised(tmp_path, redis_url, "--balance", balance) as server:
        first = server.worker_pids()
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        await logged(server, rf"worker\[\d\] pid {victim} was killed by SIGKILL; restarting in 0\.5 s")
        seen: set[int] = set()
        for _ in range(500):  # each attempt must connect: the port is never closed
            seen.add(await served_by(server.url))
            if seen - first:
                break
            await asyncio.sleep(0.05)
        assert seen - first, f"no new worker served; seen {seen}\n{server.stderr}"
        assert victim not in seen
        assert server.worker_pids() == (first - {victim}) | (seen - first)


@pytest.mark.parametrize(
    ("target", "stop"),
    [("supervisor", signal.SIGTERM), ("process group", signal.SIGINT), ("process group", signal.SIGTERM)],
)
async def test_a_stop_signal_drains_every_worker_then_exits_0(
    tmp_path: Path, redis_url: str, target: str, stop: signal.Signals
) -> None:
    """SIGTERM to the supervisor, Ctrl+C or systemd's SIGTERM to the whole group: replies, then 1001, exit 0."""
    with supervised(tmp_path, redis_url, start_new_session=True) as server:
        async with AsyncExitStack() as stack:
            clients: dict[int, ClientConnection] = {}
            for _ in range(200):  # one client on each worker
                ws = await stack.enter_async_context(connect(server.url))
                clients.setdefault(await ask(ws, "job pid"), ws)
                if len(clients) == 2:
                    break
            assert len(clients) == 2
            for pid, ws in clients.items():
                assert await ask(ws, "job run", {"seconds": 0.5}) == pid  # started
            if target == "supervisor":
                server.process.send_signal(stop)
            else:
                os.killpg(server.process.pid, stop)
            for ws in clients.values():
                assert json.loads(await ws.recv()) == {"event": "done", "payload": 0.5}
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.recv()
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == CloseCode.GOING_AWAY
        stdout, _ = server.process.communicate(timeout=30)
        assert server.process.returncode == 0, server.stderr
        assert stdout == ""  # no worker prints a serving line of its own
        assert f"{stop.name}: stopping 2 workers" in server.stderr
        for pid in clients:
            assert re.search(rf"worker\[\d\] pid {pid} stopped\n", server.stderr)
        assert "Traceback" not in server.stderr


@pytest.mark.parametrize("moment", ["worker 1 imports the app", "worker 2 imports the app"])
@pytest.mark.parametrize("target", ["supervisor", "process group"])
async def test_a_sigterm_during_the_start_up_stops_every_worker_then_exits_0(
    tmp_path: Path, redis_url: str, moment: str, target: str
) -> None:
    """SIGTERM before every worker is ready (to the supervisor, or systemd's to the whole group): every worker
    started stops without being killed, none serves, no error, exit 0."""
    with launched(tmp_path, redis_url, start_new_session=True) as server:
        for _ in range(1000):  # a worker's start (its import, its app) takes a second or so
            pids = server.worker_pids()
            if moment == "worker 1 imports the app" and pids:
                break
            if len(pids) == 2 and re.search(r"worker\[1\] pid \d+ websuckets: app started", server.stderr):
                break  # worker 2 is spawned only once worker 1 has started the app
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"never reached: {moment}\n{server.stderr}")
        if target == "supervisor":
            server.process.send_signal(signal.SIGTERM)
        else:
            os.killpg(server.process.pid, signal.SIGTERM)
        stdout, _ = server.process.communicate(timeout=60)
    log = server.stderr
    assert server.process.returncode == 0, log
    assert stdout == ""  # no address printed: the port never opened
    assert "SIGTERM: stopping" in log
    spawned = ["worker[1]"] if moment == "worker 1 imports the app" else ["worker[1]", "worker[2]"]
    assert sorted(re.findall(r"(worker\[\d\]) pid \d+ stopped\n", log)) == spawned, log
    assert "was killed" not in log
    assert "Traceback" not in log
    assert "Error" not in log


async def test_a_late_sigterm_does_not_kill_a_worker_on_its_way_out(tmp_path: Path, redis_url: str) -> None:
    """systemd's SIGTERM to the whole group reaches each worker, and so does the supervisor's own, which may
    come after the worker has stopped its app (here: more SIGTERMs to each worker every 2 ms until it has
    exited). Each worker still stops by itself, none is killed by a late one, and the supervisor exits 0."""
    with supervised(tmp_path, redis_url, start_new_session=True) as server:
        workers = server.worker_pids()
        os.killpg(server.process.pid, signal.SIGTERM)
        for _ in range(5000):  # until the supervisor has exited
            if server.process.poll() is not None:
                break
            for pid in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            await asyncio.sleep(0.002)
        server.process.communicate(timeout=60)
    log = server.stderr
    assert server.process.returncode == 0, log
    assert sorted(re.findall(r"worker\[\d\] pid (\d+) stopped\n", log)) == sorted(map(str, workers)), log
    assert "was killed" not in log


@pytest.mark.parametrize("balance", BALANCES)
async def test_the_port_opens_once_every_worker_has_started_the_app(
    tmp_path: Path, redis_url: str, balance: str
) -> None:
    """Nothing answers before both workers have started the app (connections are refused, /readyz too): the
    first /readyz answered is 200 with both started, and the first clients are spread over both workers."""
    port = free_port()
    args = ("--port", str(port), "--balance", balance)
    with launched(tmp_path, redis_url, *args, app="workers_metrics_app:app") as server:
        for _ in range(6000):  # a worker's start (its import, its app) takes a second or so
            try:
                status, _, _ = await http_get(port, "/readyz")
                break
            except ConnectionRefusedError:
                await asyncio.sleep(0.005)
        else:
            raise AssertionError(f"/readyz never answered\n{server.stderr}")
        started = re.findall(r"(worker\[\d\]) pid \d+ websuckets: app started", server.stderr)
        assert sorted(started) == ["worker[1]", "worker[2]"], server.stderr
        assert status == 200
        url = f"ws://127.0.0.1:{port}"
        pids = await workers_serving(url, balance)
        assert len(pids) == 2, f"the first clients all went to one worker\n{server.stderr}"
        assert server.process.stdout is not None
        banner = server.process.stdout.readline()
        assert banner == f"websuckets: serving on {url} with 2 workers (press Ctrl+C to stop)\n"


async def test_a_worker_whose_event_loop_is_stuck_is_killed_and_replaced(tmp_path: Path, redis_url: str) -> None:
    """A handler that blocks the loop stops the heartbeat: the worker's stack is dumped, it is killed and replaced."""
    with supervised(tmp_path, redis_url, "--worker-timeout", "2") as server:
        first = server.worker_pids()
        async with connect(server.url) as ws:
            stuck = await ask(ws, "job block", {"seconds": 60})
            async with asyncio.timeout(45):
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
        await logged(server, rf"worker\[\d\] pid {stuck} was killed by SIGKILL; restarting in")
        seen: set[int] = set()
        for _ in range(500):
            seen.add(await served_by(server.url))
            if seen - first:
                break
            await asyncio.sleep(0.05)
        assert seen - first, server.stderr
        log = server.stderr
        assert re.search(rf"worker\[\d\] pid {stuck} sent no heartbeat for [\d.]+ s: its event loop is blocked", log)
        assert re.search(r'File ".*workers_app\.py", line \d+ in block', log)  # faulthandler's stack dump


def test_a_module_that_fails_in_the_worker_stops_the_command_with_one_error(redis_url: str) -> None:
    """An app that raises when a worker imports it: one error line, exit 1, and no other worker started."""
    process = websuckets("run", "worker_import_fails:app", "--port", "0", "--workers", "2", redis_url=redis_url)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert errors == [
        "Error: worker[1] could not start: RuntimeError: this module refuses to load in a worker "
        "(its traceback is above)"
    ]
    assert "raise RuntimeError" in stderr  # the worker's traceback, for the operator
    assert "worker[2]" not in stderr


async def test_a_replacement_that_cannot_start_is_retried_while_the_others_serve(
    tmp_path: Path, redis_url: str
) -> None:
    """Once the command serves, a replacement worker failing at boot is logged and retried, not fatal."""
    broken = tmp_path / "broken"
    env = {"FAIL_WHILE": str(broken)}
    with supervised(tmp_path, redis_url, app="worker_import_fails:app", env=env) as server:
        first = server.worker_pids()
        victim, survivor = sorted(first)
        broken.touch()
        os.kill(victim, signal.SIGKILL)
        refused = r"could not start: RuntimeError: this module refuses to load in a worker \(its traceback is above\)"
        await logged(server, rf"worker\[\d\] pid \d+ {refused}; retrying in 1\.0 s")
        assert await served_by(server.url) == survivor
        broken.unlink()
        seen: set[int] = set()
        for _ in range(500):
            seen.add(await served_by(server.url))
            if seen - first:
                break
            await asyncio.sleep(0.05)
        assert seen - first, server.stderr
        assert not [line for line in server.stderr.splitlines() if line.startswith("Error:")]
        assert server.process.poll() is None


def test_redis_down_at_start_stops_the_command_with_one_error() -> None:
    """Redis unreachable when the first worker starts its app: one error line naming the URL, exit 1."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    process = websuckets("run", "workers_app:app", "--port", "0", "--workers", "2", redis_url=url)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 1
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert errors[0].startswith("Error: worker[1] could not start: ")
    assert url in errors[0]
    assert "Traceback" not in stderr
    assert "worker[2]" not in stderr


def test_memory_backend_with_several_workers_is_refused_in_one_line(redis_url: str) -> None:
    """The in-memory backend cannot be shared: --workers 2 says so, names the backend and the fix."""
    process = websuckets("run", "cli_app:app", "--workers", "2", redis_url=redis_url)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert stderr == (
        "Error: --workers 2 needs a backend shared between processes; this app uses MemoryBackend: "
        'WebSuckets(backend=RedisBackend("redis://..."))\n'
    )


@pytest.mark.parametrize("workers", ["1", "2"])
@pytest.mark.parametrize(("loop", "module"), [("asyncio", "asyncio"), ("uvloop", "uvloop"), ("auto", "uvloop")])
async def test_loop_chooses_the_event_loop(
    tmp_path: Path, redis_url: str, workers: str, loop: str, module: str
) -> None:
    """``--loop asyncio`` and ``--loop uvloop`` serve on that loop, with or without workers; auto is uvloop here."""
    with supervised(tmp_path, redis_url, "--workers", workers, "--loop", loop) as server:
        async with connect(server.url) as ws:
            assert (await ask(ws, "job loop")).split(".")[0] == module
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 30 s after SIGTERM:\n{server.stderr}")
        assert server.process.returncode == 0, server.stderr


def test_loop_uvloop_without_uvloop_says_what_to_install(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--loop uvloop`` when uvloop is not installed: one line naming the extra."""
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name, *args: None)
    monkeypatch.chdir(APPS)
    monkeypatch.syspath_prepend(str(APPS))
    result = CliRunner().invoke(cli.main, ["run", "cli_app:app", "--loop", "uvloop"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: --loop uvloop needs uvloop, which is not installed: pip install 'websuckets[uvloop]'\n"
    )


def test_reload_with_several_workers_is_refused(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--reload`` runs one process, so it does not combine with ``--workers``."""
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.chdir(APPS)
    monkeypatch.syspath_prepend(str(APPS))
    result = CliRunner().invoke(cli.main, ["run", "workers_app:app", "--workers", "2", "--reload"])
    assert result.exit_code == 2
    assert "--reload runs one process: leave out --workers" in result.output


def test_the_supervisor_holds_the_port_without_listening_with_reuse_port() -> None:
    """With reuse-port the supervisor's socket keeps the port while only the workers' sockets take connections."""
    held = listening_socket("127.0.0.1", 0, Balance.REUSE_PORT)
    with held, socket.socket() as worker:
        address = held.getsockname()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(address, timeout=5).close()
        worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        worker.bind(address)
        worker.listen()
        socket.create_connection(address, timeout=5).close()
        with socket.socket() as intruder, pytest.raises(OSError, match="in use"):  # without SO_REUSEPORT
            intruder.bind(address)


def test_the_shared_socket_listens_once_a_worker_listens_on_it() -> None:
    """The shared socket refuses connections until a worker listens on it (the workers' copies are the same socket)."""
    with listening_socket("127.0.0.1", 0, Balance.SHARED) as shared:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(shared.getsockname(), timeout=5).close()
        shared.listen()
        socket.create_connection(shared.getsockname(), timeout=5).close()


async def test_the_command_line_settings_and_tls_reach_every_worker(
    tmp_path: Path,
    redis_url: str,
    certificate: tuple[Path, Path],  # noqa: F811  (test_tls's fixture)
) -> None:
    """--certfile/--keyfile and --origin apply in each worker: wss:// on both, a foreign origin refused."""
    cert, key = certificate
    tls = ("--certfile", str(cert), "--keyfile", str(key))
    with supervised(tmp_path, redis_url, *tls, "--origin", "https://good.example") as server:
        assert server.url.startswith("wss://127.0.0.1:")
        pids: set[int] = set()
        for _ in range(200):
            async with connect(server.url, ssl=client_context(cert), origin=Origin("https://good.example")) as ws:
                pids.add(await ask(ws, "job pid"))
            if len(pids) == 2:
                break
        assert pids == server.worker_pids()
        for _ in range(10):
            with pytest.raises(InvalidStatus) as refused:
                await connect(server.url, ssl=client_context(cert), origin=Origin("https://evil.example"))
            assert refused.value.response.status_code == 403


async def test_health_and_metrics_answer_under_two_workers(tmp_path: Path, redis_url: str) -> None:
    """/healthz, /readyz and /metrics answer over HTTP under --workers 2; metrics add up both workers, and a
    killed worker's live gauges leave the multi-process directory."""
    from prometheus_client.parser import text_string_to_metric_families

    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with supervised(tmp_path, redis_url, app="workers_metrics_app:app", env=env) as server:
        port = int(server.url.rsplit(":", 1)[1])
        assert (await http_get(port, "/healthz"))[0] == 200
        assert (await http_get(port, "/readyz"))[0] == 200
        sockets = [await connect(server.url) for _ in range(20)]
        try:
            pids = {await ask(ws, "job pid") for ws in sockets}
            assert len(pids) == 2, "both workers hold connections"
            text = ""
            for _ in range(100):  # each worker writes its figures every second
                status, _, body = await http_get(port, "/metrics")
                assert status == 200
                text = body.decode()
                families = {f.name: f for f in text_string_to_metric_families(text)}
                opened = sum(s.value for s in families["websuckets_connections"].samples)
                if opened == 20:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"the connections of both workers never added up to 20:\n{text}")
        finally:
            for ws in sockets:
                await ws.close()
        victim = min(server.worker_pids())
        assert list(metrics_dir.glob(f"gauge_live*_{victim}.db")), sorted(p.name for p in metrics_dir.iterdir())
        os.kill(victim, signal.SIGKILL)
        await logged(server, rf"pid {victim} was killed by SIGKILL")
        for _ in range(100):
            if not list(metrics_dir.glob(f"gauge_live*_{victim}.db")):
                break
            await asyncio.sleep(0.05)
        assert not list(metrics_dir.glob(f"gauge_live*_{victim}.db")), sorted(p.name for p in metrics_dir.iterdir())


async def scraped(port: int, name: str) -> list[float]:
    """The values of metric ``name`` in a scrape of /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    status, _, body = await http_get(port, "/metrics")
    assert status == 200
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    return [s.value for s in families[name].samples]


async def test_backend_connected_is_the_workers_own_under_two_workers(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """websuckets_backend_connected reads 1 while Redis answers both workers and 0 once it is gone: the
    supervisor, which never connects, leaves no live gauge of its own in the multi-process directory."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with supervised(tmp_path, redis_server.url, app="workers_metrics_app:app", env=env) as server:
        port = int(server.url.rsplit(":", 1)[1])
        assert not list(metrics_dir.glob(f"gauge_live*_{server.process.pid}.db"))
        assert await scraped(port, "websuckets_backend_connected") == [1]
        assert await scraped(port, "websuckets_connections") == [0]
        redis_server.kill()
        for _ in range(100):  # each worker notices within a heartbeat and writes it within a second
            if await scraped(port, "websuckets_backend_connected") == [0]:
                break
            await asyncio.sleep(0.1)
        assert await scraped(port, "websuckets_backend_connected") == [0], server.stderr


async def test_a_redis_backed_app_starts_and_stops_without_a_warning(tmp_path: Path, redis_url: str) -> None:
    """With warnings as errors in the supervisor and its workers, a RedisBackend app serves and stops cleanly:
    the installed redis-py (the lock's, or the newest in ``scripts/check-deps newest``) warns of nothing."""
    env = {"PYTHONWARNINGS": "error"}
    with supervised(tmp_path, redis_url, env=env, start_new_session=True) as server:
        pids = set()
        for _ in range(20):
            pids.add(await served_by(server.url))
        assert pids <= server.worker_pids()
        server.process.send_signal(signal.SIGTERM)
        server.process.communicate(timeout=30)
        assert server.process.returncode == 0, server.stderr
        assert "Warning" not in server.stderr
        assert "Traceback" not in server.stderr
