"""Fixtures shared by the suite, and the backend contract's one parametrisation.

Every test that asks for ``make_backend`` (directly, or through ``serve``) is part of the backend
contract: it runs once on each backend of the list, and carries the ``backend_contract`` marker. The
list is MemoryBackend and RedisBackend (on a real redis-server of the test's own) unless
``--backend`` names others, so a third-party backend runs the same contract from a clone::

    pytest -m backend_contract --backend mypkg.backend:make_backend

``--backend redis-cluster`` runs it on RedisBackend on a Redis Cluster (three masters and three
replicas, started once for the session, a namespace for each test).
"""

from __future__ import annotations

import importlib
import inspect
import secrets
from collections.abc import Callable, Iterator

import pytest
from redis_server import RedisCluster, RedisServer

from websuckets import WebSuckets
from websuckets.backends import Backend, MemoryBackend
from websuckets.backends.redis import RedisBackend
from websuckets.testing import TestClient

BackendFactory = Callable[[], Backend]
Serve = Callable[..., TestClient]

BUILT_IN = ("memory", "redis")
OPT_IN = ("redis-cluster",)
"""Built-in backends the contract runs on only when ``--backend`` names them."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        default=[],
        metavar="MODULE:FACTORY",
        help="run the backend contract on this backend instead of memory and redis (repeat for several; "
        "'memory' and 'redis' name the built-in ones). FACTORY returns a websuckets Backend; it is called for "
        "each backend a test needs, with the URL of a fresh redis-server if it takes a positional argument.",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Check each ``--backend`` at once, so a typo is a usage error rather than a failure in every test."""
    for spec in config.getoption("backend"):
        if spec not in BUILT_IN + OPT_IN:
            load_factory(spec)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrise every test that uses ``make_backend`` over the backend list, once, in one place."""
    if "backend_name" in metafunc.fixturenames:
        names = metafunc.config.getoption("backend") or list(BUILT_IN)
        metafunc.parametrize(
            "backend_name", [pytest.param(name, id=name, marks=pytest.mark.backend_contract) for name in names]
        )


def load_factory(spec: str) -> Callable[..., Backend]:
    """``MODULE:FACTORY`` -> the callable; a usage error names what is wrong."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise pytest.UsageError(f"--backend {spec!r}: expected MODULE:FACTORY, 'memory' or 'redis'")
    try:
        factory: Callable[..., Backend] = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise pytest.UsageError(f"--backend {spec!r}: {error}") from error
    return factory


def takes_the_url(factory: Callable[..., Backend]) -> bool:
    """Whether ``factory`` takes a positional argument, optional or not: then it is given a redis-server's URL."""
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return any(parameter.kind in positional for parameter in inspect.signature(factory).parameters.values())


@pytest.fixture(params=["memory", "real"])
def real(request: pytest.FixtureRequest) -> bool:
    """Run the test twice: in memory, and against a real server on 127.0.0.1."""
    return request.param == "real"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh, empty redis-server of this test's own, on a free port; killed afterwards."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster for the session (three masters, a replica each); killed afterwards."""
    cluster = RedisCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def make_backend(request: pytest.FixtureRequest, backend_name: str) -> BackendFactory:
    """A factory of fresh backends of one kind, for the backend contract; the Redis ones share a real
    redis-server. Asking for it makes the test run on every backend of the list (see the module's docstring)."""
    if backend_name == "memory":
        return MemoryBackend
    if backend_name == "redis":
        url: str = request.getfixturevalue("redis_url")
        return lambda: RedisBackend(url, heartbeat=0.2, dead_after=1.0)
    if backend_name == "redis-cluster":
        seeds, namespace = request.getfixturevalue("redis_cluster").url(), "c" + secrets.token_hex(4)
        return lambda: RedisBackend(seeds, namespace=namespace, heartbeat=0.2, dead_after=1.0)
    factory = load_factory(backend_name)
    if takes_the_url(factory):
        url = request.getfixturevalue("redis_url")
        return lambda: factory(url)
    return factory


@pytest.fixture(params=["socket", "in-process"])
def serve(request: pytest.FixtureRequest, make_backend: BackendFactory) -> Serve:
    """``serve(make_app, **options)``: a TestClient of the app ``make_app(backend=<a fresh backend of the
    contract's list>, **options)``, served on a real server on 127.0.0.1 and, in a second run, in memory."""
    real = request.param == "socket"

    def serving(factory: Callable[..., WebSuckets], **options: object) -> TestClient:
        return TestClient(factory(backend=make_backend(), **options), real=real)

    return serving
