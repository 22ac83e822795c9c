from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from redis_server import RedisServer

from websuckets.backends import Backend, MemoryBackend
from websuckets.backends.redis import RedisBackend


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


@pytest.fixture(params=["memory", "redis"])
def make_backend(request: pytest.FixtureRequest) -> Callable[[], Backend]:
    """A factory of fresh backends of one kind; the Redis ones share a real redis-server."""
    if request.param == "memory":
        return MemoryBackend
    url: str = request.getfixturevalue("redis_url")
    return lambda: RedisBackend(url, heartbeat=0.2, dead_after=1.0)
