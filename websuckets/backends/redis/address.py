"""Where Redis is: the URL forms `RedisBackend` takes, read once, and the clients built for them.

``redis://``, ``rediss://`` and ``unix://`` URLs go to redis-py's ``Redis.from_url`` as they
are. ``redis+sentinel://[user:password@]host:port[,host:port...]/service[/db]`` (and
``rediss+sentinel://``, TLS to the sentinels and the data nodes alike) names the sentinels
and the service they watch: clients are ``Sentinel.master_for(service)``, so every new
connection asks the sentinels for the current master. The URL's user and password are the data
nodes'; the sentinels get ``?sentinel_username=`` and ``?sentinel_password=`` when given, and no
credentials otherwise. The other query parameters mean what they mean for ``redis://``.
``redis+cluster://[user:password@]host:port[,host:port...]`` (and ``rediss+cluster://``) names
seed nodes of a Redis Cluster: clients are redis-py's asyncio ``RedisCluster`` (`cluster`),
which asks the seeds for the cluster's layout and follows its changes.

A URL that cannot be used raises `UnusableURL`, whose message names the URL (password hidden)
and the forms accepted.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from .cluster import ShardedSubscriber, check_redis_py, cluster_client, node_run_id
from .faults import reason, redacted

logger = logging.getLogger("websuckets.redis")

FORMS = (
    "redis://[user:password@]host:port/db, rediss:// (TLS), unix:///path/redis.sock?db=0, "
    "redis+sentinel://[user:password@]host:port[,host:port...]/service[/db], rediss+sentinel:// (TLS), "
    "redis+cluster://[user:password@]host:port[,host:port...], rediss+cluster:// (TLS)"
)
"""The URL forms `RedisBackend` takes, as an error names them."""

PLAIN_SCHEMES = ("redis", "rediss", "unix")
"""Schemes that go to redis-py's ``Redis.from_url`` as they are."""

SENTINEL_SCHEMES = {"redis+sentinel": "redis", "rediss+sentinel": "rediss"}
"""A Sentinel scheme, and the plain one whose query parameters it takes."""

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""A Redis Cluster scheme, and the plain one whose query parameters it takes."""

SENTINEL_PORT = 26379
CLUSTER_PORT = 6379
SENTINEL_AUTH = ("sentinel_username", "sentinel_password")
"""Query parameters for the sentinels' own credentials (the URL's are the data nodes')."""


Client = Redis | RedisCluster
"""A client of one Redis (plain, or the master through Sentinel), or of a cluster."""


def is_cluster(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (its keys then take the cluster's layout)."""
    return url.partition("://")[0].lower() in CLUSTER_SCHEMES


class UnusableURL(ValueError):
    """A URL that names no Redis this backend can reach; the message says why and what it takes."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(f"cannot use the Redis URL {redacted(url)}: {why}; expected {FORMS}")


@dataclass(frozen=True)
class Address:
    """A URL, read: a plain one (``service`` empty), the sentinels and the service they watch, or a
    cluster's seed nodes."""

    url: str = field(repr=False)
    service: str = ""
    sentinels: tuple[tuple[str, int], ...] = ()
    options: dict[str, Any] = field(default_factory=dict, repr=False)  # a password: never in a repr
    """For Sentinel and Cluster: the data nodes' connection options read from the URL (db, credentials, TLS, ...)."""
    sentinel_options: dict[str, Any] = field(default_factory=dict, repr=False)
    """For Sentinel: the sentinels' own (credentials, TLS)."""
    seeds: tuple[tuple[str, int], ...] = ()
    """For Cluster: the nodes first asked for the cluster's layout."""

    @property
    def is_sentinel(self) -> bool:
        return bool(self.sentinels)

    @property
    def is_cluster(self) -> bool:
        return bool(self.seeds)

    @property
    def is_unix(self) -> bool:
        return urlsplit(self.url).scheme == "unix"


def parse(url: str) -> Address:
    """Read ``url``; `UnusableURL` if it is none of the forms or cannot be read."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise UnusableURL(url, "no scheme")
    cluster_scheme = CLUSTER_SCHEMES.get(scheme.lower())
    if cluster_scheme is not None:
        return _cluster(url, cluster_scheme, rest)
    plain_scheme = SENTINEL_SCHEMES.get(scheme.lower())
    if plain_scheme is None and scheme.lower() not in PLAIN_SCHEMES:
        raise UnusableURL(url, f"unknown scheme {scheme!r}")
    if plain_scheme is None:
        try:
            parse_url(url)
        except (ValueError, TypeError) as exc:
            raise UnusableURL(url, str(exc).rstrip(".")) from None
        return Address(url)
    return _sentinel(url, plain_scheme, rest)


def _cluster(url: str, plain_scheme: str, rest: str) -> Address:
    """``redis+cluster://[user:password@]host:port[,host:port...][/0][?query]``: the seeds, and the nodes' options."""
    location, _, query = rest.partition("?")
    netloc, _, path = location.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        userinfo, hosts = "", netloc
    seeds = tuple(_host_port(url, host, CLUSTER_PORT, "node") for host in hosts.split(","))
    too_old = check_redis_py()
    if too_old is not None:
        raise UnusableURL(url, too_old)
    if path.strip("/") not in ("", "0"):
        raise UnusableURL(url, f"a cluster has the database 0 only, not {path.strip('/')!r}")
    plain = f"{plain_scheme}://{userinfo}{at}cluster/0" + (f"?{query}" if query else "")
    try:
        options: dict[str, Any] = dict(parse_url(plain))
    except (ValueError, TypeError) as exc:
        raise UnusableURL(url, str(exc).rstrip(".")) from None
    for name in ("host", "port", "db"):
        options.pop(name, None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True  # RedisCluster's switch to TLS connections
    return Address(url, options=options, seeds=seeds)


def _sentinel(url: str, plain_scheme: str, rest: str) -> Address:
    location, _, query = rest.partition("?")
    netloc, _, path = location.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        userinfo, hosts = "", netloc
    sentinels = tuple(_host_port(url, host, SENTINEL_PORT, "sentinel") for host in hosts.split(","))
    service, _, db = path.partition("/")
    service, db = unquote(service), db.rstrip("/")
    if not service:
        raise UnusableURL(url, "no service name after the sentinels' addresses")
    if db and not db.isdigit():
        raise UnusableURL(url, f"the database {db!r} is not a number")
    pairs = parse_qsl(query, keep_blank_values=True)
    sentinel_auth = {key.removeprefix("sentinel_"): value for key, value in pairs if key in SENTINEL_AUTH}
    data_query = urlencode([(key, value) for key, value in pairs if key not in SENTINEL_AUTH])
    # the data nodes' options as redis-py reads a plain URL: the same parsers for the same parameters
    plain = f"{plain_scheme}://{userinfo}{at}sentinel/{db or 0}" + (f"?{data_query}" if data_query else "")
    try:
        options: dict[str, Any] = dict(parse_url(plain))
    except (ValueError, TypeError) as exc:
        raise UnusableURL(url, str(exc).rstrip(".")) from None
    options.pop("host", None)
    options.pop("port", None)
    tls = options.pop("connection_class", None) is SSLConnection
    sentinel_options: dict[str, Any] = dict(sentinel_auth)
    if tls:
        options["ssl"] = True  # SentinelConnectionPool's switch to TLS connections
        sentinel_options.update({key: value for key, value in options.items() if key.startswith("ssl")})
    return Address(url, service, sentinels, options, sentinel_options)


def _host_port(url: str, host: str, default_port: int, what: str) -> tuple[str, int]:
    """``host:port``, ``host`` (``default_port``) or ``[v6]:port``, as a pair; ``what`` names it in an error."""
    if host.startswith("["):
        name, _, port = host[1:].partition("]")
        port = port.removeprefix(":")
    else:
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
    if not name:
        raise UnusableURL(url, f"no host in the {what} address {host!r}")
    if not port:
        return name, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UnusableURL(url, f"the port of the {what} address {host!r} is not a port number")
    return name, int(port)


class _Sentinels(Sentinel):
    """redis-py's `Sentinel`, whose `MasterNotFoundError` says in a short line what each sentinel answered
    (redis-py's names each by its client's whole repr)."""

    async def discover_master(self, service_name: str) -> tuple[str, int]:
        try:
            host, port = await super().discover_master(service_name)
            return str(host), int(port)
        except MasterNotFoundError:
            pass
        answers = []
        for sentinel in self.sentinels:
            options = sentinel.connection_pool.connection_kwargs
            where = f"{options.get('host')}:{options.get('port')}"
            try:
                masters = await sentinel.sentinel_masters()
            except Exception as exc:
                answers.append(f"{where}: {reason(exc)}")
                continue
            known = isinstance(masters, dict) and service_name in masters
            answers.append(f"{where}: sees no master up" if known else f"{where}: knows no such service")
        raise MasterNotFoundError(f"no sentinel names a master of {service_name!r} ({'; '.join(answers)})")


class Connector:
    """Builds this process's clients for an `Address`; for Sentinel it keeps one `Sentinel` (its
    connections to the sentinels), closed by `aclose`."""

    def __init__(self, address: Address, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self._sentinel: Sentinel | None = None
        self._sentinels_away = False
        if address.is_sentinel:
            sentinel_options = {
                "socket_timeout": timeout,
                "socket_connect_timeout": timeout,
                "socket_keepalive": True,
                "decode_responses": True,
                **address.sentinel_options,
            }
            self._sentinel = _Sentinels(address.sentinels, sentinel_kwargs=sentinel_options)

    def client(self, socket_timeout: float | None) -> Client:
        """A client of the (current) master, or of the cluster; it surfaces every failure (no silent retry:
        a cluster's client still follows MOVED and ASK)."""
        options: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": self.timeout,
            "retry": Retry(NoBackoff(), 0),  # every failure surfaces to the link: no silent reconnect
            "decode_responses": True,
        }
        if not self.address.is_unix:  # TCP keepalive: a unix socket has none
            options["socket_keepalive"] = True
        if self.address.is_cluster:
            return cluster_client(self.address.seeds, {**options, **self.address.options})
        if self._sentinel is None:
            return Redis.from_url(self.address.url, **options)
        options.update(self.address.options)  # the URL's parameters win, as Redis.from_url has them
        return self._sentinel.master_for(self.address.service, **options)  # type: ignore[no-any-return]

    def subscriber(self) -> PubSub | ShardedSubscriber:
        """A new subscriber, on connections of its own: sharded on a cluster."""
        client = self.client(socket_timeout=None)
        return ShardedSubscriber(client) if isinstance(client, RedisCluster) else client.pubsub()

    async def reset(self, client: Client) -> None:
        """Drop ``client``'s pooled connections, which may predate a loss (a cluster's client asks for
        the layout again)."""
        if isinstance(client, RedisCluster):
            await client.aclose()  # its next command connects, and reads the cluster's layout, again
        else:
            await client.connection_pool.disconnect()

    async def run_id(self, client: Client, key: str) -> str:
        """The ``run_id`` of the server that holds ``key`` (on a cluster, the master of its slot)."""
        if isinstance(client, RedisCluster):
            return await node_run_id(client, key)
        return str((await client.info("server"))["run_id"])

    async def master(self) -> tuple[str, int] | None:
        """Where the sentinels say the master is now (``None`` for a plain URL); raises if none says."""
        if self._sentinel is None:
            return None
        async with asyncio.timeout(self.timeout):
            host, port = await self._sentinel.discover_master(self.address.service)
        return str(host), int(port)

    def connected_to(self, client: Client) -> tuple[str, int] | None:
        """The master address ``client``'s connections were made to, for Sentinel (else ``None``)."""
        pool = getattr(client, "connection_pool", None)
        if isinstance(pool, SentinelConnectionPool) and pool.master_address is not None:
            host, port = pool.master_address
            return str(host), int(port)
        return None

    @property
    def longest_backoff(self) -> float:
        """5 s between attempts to reconnect at most; 1 s through Sentinel or on a cluster, where an attempt
        that finds no master costs one question, and the master is back (elsewhere) within seconds of a failover."""
        return 1.0 if self.address.is_sentinel or self.address.is_cluster else 5.0

    def describe(self, client: Client) -> str:
        """`` (the master of 'service', host:port)`` for ``client`` through Sentinel, for log lines; else nothing."""
        where = self.connected_to(client)
        return "" if where is None else f" (the master of {self.address.service!r}, {where[0]}:{where[1]})"

    async def moved(self, client: Client) -> str | None:
        """Through Sentinel, why ``client`` must reconnect if the sentinels name another master than its
        own; ``None`` if they name the same, or for a plain URL. Sentinels that do not answer are said once
        (the master may be fine), until they answer again."""
        connected = self.connected_to(client)
        if connected is None:
            return None
        try:
            master = await self.master()
        except Exception as exc:
            if not self._sentinels_away:
                self._sentinels_away = True
                logger.warning(
                    "no sentinel names the master: %s; until one does, a failover is noticed only when the "
                    "master fails or refuses writes",
                    reason(exc),
                )
            return None
        if self._sentinels_away:
            self._sentinels_away = False
            logger.info("the sentinels answer again")
        if master is None or master == connected:
            return None
        return f"the sentinels name {master[0]}:{master[1]} the master, not {connected[0]}:{connected[1]}"

    async def aclose(self) -> None:
        if self._sentinel is not None:
            for sentinel in self._sentinel.sentinels:  # redis-py 5.0 has no Sentinel.aclose; each client has one
                await sentinel.aclose()
