"""The benchmark's ``plain`` websuckets app on a RedisBackend at ``$REDIS_URL``, for ``websuckets run --workers``.

REDIS_URL=redis://127.0.0.1:6379/0 websuckets run workers_app:app --workers 2   # in bench/servers
"""

import os

from websuckets_app import create_app

from websuckets.backends.redis import RedisBackend

app = create_app("plain", RedisBackend(os.environ["REDIS_URL"]))
