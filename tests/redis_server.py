"""A real ``redis-server`` for the tests, on a free port of 127.0.0.1, started and stopped by them; and a
Sentinel setup (`RedisSentinels`: a master, a replica, three sentinels) built of the same binary.

There is no skip: without Debian's ``redis-server`` on the PATH the Redis tests fail, saying
how to install it (``bash scripts/setup --system``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

__all__ = ["RedisCluster", "RedisSentinels", "RedisServer", "free_port", "make_certificates"]


def _binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run 'bash scripts/setup --system' (Debian's package)")
    return binary


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now (``--port 0`` disables TCP in Redis)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cluster_port() -> int:
    """A free port of 127.0.0.1 for a cluster node: at most 55535, its bus port (10000 above) free too."""
    while True:
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def make_certificates(directory: Path) -> Path:
    """A CA (``ca.crt``) and a certificate of 127.0.0.1 it signed (``server.crt``, ``server.key``), made with
    ``openssl`` in ``directory``; the directory."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is not installed: the TLS tests make their certificates with it")
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    commands = [
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 1 -subj /CN=websuckets-test-ca",
        "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1",
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 1 -extfile san.ext",
    ]
    for command in commands:
        subprocess.run([openssl, *command.split()], cwd=directory, check=True, capture_output=True)
    return directory


def _tls_settings(certificates: Path) -> list[tuple[str, str]]:
    """The settings of a server (or sentinel) that speaks only TLS, to clients and to the others alike."""
    return [
        ("tls-cert-file", str(certificates / "server.crt")),
        ("tls-key-file", str(certificates / "server.key")),
        ("tls-ca-cert-file", str(certificates / "ca.crt")),
        ("tls-auth-clients", "no"),
        ("tls-replication", "yes"),
    ]


FILES = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
"""Where the servers keep their files (logs, sockets, a cluster's nodes.conf, a sentinel's configuration):
in memory where the machine has it. A cluster node rewrites and fsyncs nodes.conf in its main thread at each
change of the cluster's configuration, and a sentinel its configuration file; on a CI machine whose disk was
busy, a node of a cluster just made stopped answering for over 2 s, about once a run (the start-up of an app,
25 ms otherwise, timed out)."""


def _directory(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=FILES))


class RedisServer:
    """One ``redis-server`` process without persistence, which a test may kill, stop and restart."""

    def __init__(self, port: int | None = None, options: Sequence[str] = (), tls: Path | None = None) -> None:
        self.binary = _binary()
        self.port = port or free_port()
        self.options = list(options)
        """More arguments for redis-server (``--replicaof HOST PORT``, say)."""
        self.tls = tls
        """A directory of `make_certificates`: then the port speaks TLS only."""
        self.dir = _directory("websuckets-redis-")
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
        if self.tls is not None:
            args[1:3] = ["--port", "0", "--tls-port", str(self.port)]
            args += [item for name, value in _tls_settings(self.tls) for item in (f"--{name}", value)]
        args += ["--dir", str(self.dir), "--logfile", str(self.dir / "redis.log")]
        args += ["--unixsocket", str(self.dir / "redis.sock"), "--unixsocketperm", "700", *self.options]
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
            if self.tls is not None:
                context = ssl.create_default_context(cafile=str(self.tls / "ca.crt"))
                with context.wrap_socket(conn, server_hostname="127.0.0.1") as secure:
                    secure.sendall(b"PING\r\n")
                    return secure.recv(16).startswith((b"+PONG", b"-NOAUTH"))
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith((b"+PONG", b"-NOAUTH"))  # up, with or without a password
        return False

    def __repr__(self) -> str:
        pid = self.process.pid if self.process else None
        return f"<RedisServer {self.url} pid={pid} ({os.path.basename(self.binary)})>"


def _until(check: Callable[[], bool], what: str, within: float = 15.0) -> None:
    """Poll ``check`` every 50 ms until it holds; `RuntimeError` naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(redis.RedisError, OSError):
            if check():
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"not within {within} s: {what}")
        time.sleep(0.05)


class SentinelExited(Exception):
    """A sentinel's process ended while it was awaited; the end of its log."""


class RedisSentinels:
    """A master, its replica and three sentinels (quorum 2) watching them as ``service``, on free ports of
    127.0.0.1, each in a temporary directory; fast to fail over (1 s to call a master down). Kill them with
    `stop`."""

    def __init__(
        self,
        service: str = "websuckets",
        data_password: str | None = None,
        sentinel_password: str | None = None,
        tls: Path | None = None,
    ) -> None:
        self.service = service
        self.tls = tls
        """A directory of `make_certificates`: then every server and sentinel speaks TLS only."""
        self.data_password = data_password
        self.sentinel_password = sentinel_password
        fast = ["--repl-diskless-sync-delay", "0"]  # a replica syncs at once, not after 5 s
        if data_password is not None:
            fast += ["--requirepass", data_password, "--masterauth", data_password]
        self.master = RedisServer(options=fast, tls=tls)
        self.replica = RedisServer(options=[*fast, "--replicaof", "127.0.0.1", str(self.master.port)], tls=tls)
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinel_ids = {port: secrets.token_hex(20) for port in self.sentinel_ports}
        """Each sentinel's id, written in every configuration so that they know each other from the start."""
        self.dir = _directory("websuckets-sentinel-")
        self.processes: list[subprocess.Popen[bytes]] = []

    def url(self, db: int = 0) -> str:
        """``redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/service/db``; with TLS
        ``rediss+sentinel://...?ssl_ca_certs=CA``."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        if self.tls is None:
            return f"redis+sentinel://{hosts}/{self.service}/{db}"
        return f"rediss+sentinel://{hosts}/{self.service}/{db}?ssl_ca_certs={self.tls / 'ca.crt'}"

    def start(self) -> None:
        """Start them all, and wait until every sentinel knows the master, the replica and the other sentinels."""
        try:
            self.master.start()
            self.replica.start()
            replica = redis.Redis(
                port=self.replica.port, password=self.data_password, decode_responses=True, **self._tls()
            )
            _until(lambda: replica.info("replication")["master_link_status"] == "up", "the replica in sync")
            master = redis.Redis(
                port=self.master.port, password=self.data_password, decode_responses=True, **self._tls()
            )
            # and the master streams writes to it: after a diskless sync it holds them until the replica's first
            # ACK (up to a second later), while both already say the link is up
            master.set("websuckets-tests:replicated", "yes")
            _until(lambda: replica.get("websuckets-tests:replicated") == "yes", "the replica gets the master's writes")
            master.delete("websuckets-tests:replicated")
            self._start_sentinels()
        except BaseException:
            self.stop()
            raise

    def _start_sentinels(self, tries: int = 3) -> None:
        """Start the sentinels and wait until each knows everyone. A port taken meanwhile (free when picked,
        then a client's ephemeral port) stops its sentinel at once: then all start again on new ports."""
        for attempt in range(tries):
            for port in self.sentinel_ports:
                self._start_sentinel(port)
            for port, process in zip(self.sentinel_ports, self.processes, strict=True):

                def knows_everyone(port: int = port, process: subprocess.Popen[bytes] = process) -> bool:
                    if process.poll() is not None:
                        raise SentinelExited(self._log(port))
                    return self._knows_everyone(self._client(port))

                try:
                    _until(knows_everyone, f"the sentinel on {port} knows all")
                except RuntimeError as exc:  # running, and not knowing everyone
                    raise RuntimeError(f"{exc}; its log ends:\n{self._log(port)}") from None
                except SentinelExited as exc:
                    if "Address already in use" not in str(exc) or attempt == tries - 1:
                        raise RuntimeError(f"the sentinel on {port} stopped:\n{exc}") from None
                    self.kill_sentinels()
                    self.sentinel_ports = [free_port() for _ in self.sentinel_ports]
                    self.sentinel_ids = {port: secrets.token_hex(20) for port in self.sentinel_ports}
                    break
            else:
                return

    def _log(self, port: int) -> str:
        """The end of the log of the sentinel on ``port``."""
        log_file = self.dir / str(port) / "sentinel.log"
        return log_file.read_text(errors="replace")[-2000:] if log_file.exists() else "(no log)"

    def _start_sentinel(self, port: int) -> None:
        home = self.dir / str(port)
        home.mkdir()
        conf = home / "sentinel.conf"
        listen = f"port {port}\n" if self.tls is None else f"port 0\ntls-port {port}\n"
        if self.tls is not None:
            listen += "".join(f"{name} {value}\n" for name, value in _tls_settings(self.tls))
        conf.write_text(
            listen + f"bind 127.0.0.1\ndir {home}\nlogfile {home / 'sentinel.log'}\n"
            f"sentinel monitor {self.service} 127.0.0.1 {self.master.port} 2\n"
            f"sentinel down-after-milliseconds {self.service} 1000\n"
            f"sentinel failover-timeout {self.service} 5000\n"
            f"sentinel parallel-syncs {self.service} 1\n"
            f"sentinel myid {self.sentinel_ids[port]}\n"
            + (f"sentinel auth-pass {self.service} {self.data_password}\n" if self.data_password else "")
            + (
                f"requirepass {self.sentinel_password}\nsentinel sentinel-pass {self.sentinel_password}\n"
                if self.sentinel_password
                else ""
            )
            + f"sentinel known-replica {self.service} 127.0.0.1 {self.replica.port}\n"
            + "".join(
                f"sentinel known-sentinel {self.service} 127.0.0.1 {other} {self.sentinel_ids[other]}\n"
                for other in self.sentinel_ports
                if other != port
            )
        )
        self.processes.append(
            subprocess.Popen([_binary(), str(conf), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )

    def _knows_everyone(self, sentinel: redis.Redis) -> bool:
        state = sentinel.sentinel_master(self.service)
        others = len(self.sentinel_ports) - 1
        return int(state["num-slaves"]) >= 1 and int(state["num-other-sentinels"]) >= others

    def _tls(self) -> dict[str, Any]:
        if self.tls is None:
            return {}
        return {"host": "127.0.0.1", "ssl": True, "ssl_ca_certs": str(self.tls / "ca.crt")}  # the certificate's

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.sentinel_password, decode_responses=True, **self._tls())

    def sentinel(self) -> redis.Redis:
        """A client of the first sentinel."""
        return self._client(self.sentinel_ports[0])

    def master_port(self) -> int:
        """The port of the master, as the first sentinel names it now."""
        _, port = self.sentinel().sentinel_get_master_addr_by_name(self.service)
        return int(port)

    def failover(self) -> int:
        """``SENTINEL FAILOVER service``, then wait until every sentinel names the new master; its port."""
        old = self.master_port()
        self.sentinel().sentinel_failover(self.service)
        return self.wait_for_new_master(old)

    def wait_for_new_master(self, old: int, within: float = 15.0) -> int:
        """Wait until every sentinel names a master other than the one on port ``old``; its port."""
        clients = [self._client(port) for port in self.sentinel_ports]

        def moved() -> bool:
            ports = {int(client.sentinel_get_master_addr_by_name(self.service)[1]) for client in clients}
            return len(ports) == 1 and old not in ports

        _until(moved, f"every sentinel names a new master of {self.service!r}", within)
        return self.master_port()

    def server(self, port: int) -> RedisServer:
        """The master or the replica, by its port."""
        return self.master if self.master.port == port else self.replica

    def kill_sentinels(self) -> None:
        """Kill every sentinel (SIGKILL); the master and the replica go on."""
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(10)
        self.processes = []

    def stop(self) -> None:
        self.kill_sentinels()
        self.master.stop()
        self.replica.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisCluster:
    """A Redis Cluster of ``masters`` masters, each with ``replicas`` replicas, on free ports of 127.0.0.1
    (``redis-cli --cluster create``), each node in a temporary directory; fast to fail over (1 s node
    timeout). Kill them with `stop`."""

    def __init__(self, masters: int = 3, replicas: int = 1) -> None:
        options = ["--cluster-enabled", "yes", "--cluster-node-timeout", "1000", "--repl-diskless-sync-delay", "0"]
        self.nodes = [
            RedisServer(cluster_port(), options=[*options, "--cluster-config-file", "nodes.conf"])
            for _ in range(masters * (1 + replicas))
        ]
        self.masters = masters
        self.replicas = replicas

    def url(self, scheme: str = "redis+cluster") -> str:
        """``redis+cluster://127.0.0.1:P1,127.0.0.1:P2`` (two seeds: the first two nodes)."""
        return f"{scheme}://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes[:2])

    def start(self) -> None:
        """Start every node, create the cluster, and wait until every node sees every slot served."""
        try:
            for node in self.nodes:
                node.start()
            cli = shutil.which("redis-cli")
            if cli is None:
                raise RuntimeError("redis-cli is not installed: run 'bash scripts/setup --system' (Debian's package)")
            addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
            command = [cli, "--cluster", "create", *addresses, "--cluster-replicas", str(self.replicas)]
            subprocess.run([*command, "--cluster-yes"], check=True, capture_output=True, timeout=30)
            self.wait_healthy()
        except BaseException:
            self.stop()
            raise

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True)

    def running(self) -> list[RedisServer]:
        return [node for node in self.nodes if node.process is not None]

    def wait_healthy(self, within: float = 15.0) -> None:
        """Wait until every running node says the cluster is ok and knows every node, and every replica is in
        sync; the `RuntimeError` names what was missing last."""
        missing = ["no node answered"]

        def healthy() -> bool:
            for node in self.running():
                client = self.client(node.port)
                info = str(client.execute_command("CLUSTER", "INFO"))
                if "cluster_state:ok" not in info or f"cluster_known_nodes:{len(self.nodes)}" not in info:
                    state = dict(line.split(":", 1) for line in info.split() if ":" in line)
                    known = state.get("cluster_known_nodes")
                    missing[0] = f"node {node.port}: cluster_state {state.get('cluster_state')}, knows {known} nodes"
                    return False  # (a node killed stays known, as failed)
                replication = client.info("replication")
                link_down = replication.get("master_link_status", "up") != "up"
                if replication["role"] == "slave" and (link_down or replication.get("master_sync_in_progress")):
                    missing[0] = f"replica {node.port}: link {replication.get('master_link_status')}, still syncing"
                    return False  # a replica still loading its first copy: its master forked, the machine is busy
            masters = self.master_ports()
            missing[0] = f"{len(masters)} masters serve slots"
            return len(masters) == self.masters

        try:
            _until(healthy, "the cluster's state is ok on every node", within)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc} ({missing[0]})") from None

    def nodes_view(self) -> list[dict[str, Any]]:
        """CLUSTER NODES as the first running node sees it: id, port, flags, slots, master id."""
        text = str(self.client(self.running()[0].port).execute_command("CLUSTER", "NODES"))  # unparsed
        nodes = []
        for line in text.splitlines():
            fields = line.split()
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            nodes.append({"id": fields[0], "port": port, "flags": fields[2], "master": fields[3], "slots": fields[8:]})
        return nodes

    def master_ports(self) -> list[int]:
        """The ports of the masters that serve slots, as the first running node sees them."""
        return [
            node["port"]
            for node in self.nodes_view()
            if "master" in node["flags"] and "fail" not in node["flags"] and node["slots"]
        ]

    def slot(self, key: str) -> int:
        """CLUSTER KEYSLOT ``key``."""
        return int(self.client(self.running()[0].port).execute_command("CLUSTER KEYSLOT", key))

    def owner(self, key: str) -> int:
        """The port of the master that serves ``key``'s slot."""
        return self.owner_of_slot(self.slot(key))

    def serves(self, key: str) -> int | None:
        """`owner`, or ``None`` while no master serves ``key``'s slot (during a failover)."""
        try:
            return self.owner(key)
        except (LookupError, redis.RedisError, OSError):
            return None

    def node(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def move_slot(self, slot: int, to_port: int) -> None:
        """Migrate ``slot`` (its keys with it) to the master on ``to_port``: the CLUSTER SETSLOT / MIGRATE
        sequence of ``redis-cli --cluster reshard``, for one slot."""
        view = {node["port"]: node for node in self.nodes_view()}
        source_port = self.owner_of_slot(slot)
        source, target = self.client(source_port), self.client(to_port)
        target.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", view[source_port]["id"])
        source.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", view[to_port]["id"])
        while keys := source.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
            source.execute_command("MIGRATE", "127.0.0.1", to_port, "", 0, 5000, "KEYS", *keys)
        for port in (to_port, source_port, *(port for port in view if port not in (to_port, source_port))):
            flags = view[port]["flags"]
            if "master" in flags and "fail" not in flags and self.node(port).process is not None:
                try:
                    self.client(port).execute_command("CLUSTER SETSLOT", slot, "NODE", view[to_port]["id"])
                except redis.ResponseError as exc:  # a master the busy machine failed over meanwhile: a replica
                    if "only with masters" not in str(exc):
                        raise
        _until(lambda: self.owner_of_slot(slot) == to_port, f"slot {slot} served by the node on {to_port}")

    def owner_of_slot(self, slot: int) -> int:
        """The port of the master that serves ``slot``, as the first running node sees it."""
        for node in self.nodes_view():
            if "master" not in node["flags"] or "fail" in node["flags"]:
                continue
            for span in node["slots"]:
                if span.startswith("["):
                    continue  # a slot being imported or migrated
                start, _, end = span.partition("-")
                if int(start) <= slot <= int(end or start):
                    return int(node["port"])
        raise LookupError(f"no master serves slot {slot}")

    def replica_of(self, port: int) -> int:
        view = self.nodes_view()
        master_id = next(node["id"] for node in view if node["port"] == port)
        return next(node["port"] for node in view if node["master"] == master_id)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
