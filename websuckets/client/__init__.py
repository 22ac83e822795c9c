"""A Python client for websuckets servers: bots, service-to-service calls, load tests.

::

    from websuckets.client import connect

    async with connect("ws://127.0.0.1:9000") as client:
        client.on("incoming message", print)              # sync or async callbacks
        reply = await client.request("user auth", {"login": "a", "password": "b"})  # keeps the token
        await client.send("chat send", {"text": "hi"})    # no answer awaited
        async for event in client:                         # every event that answers no request
            ...

The sibling of the browser client, websuckets.js: the same wire protocol, options and
client-side events (``open``, ``close``, ``resumed``), in asyncio on `websockets`. It
reconnects with backoff, queues commands while disconnected, and resumes rooms with history
from the last position it saw. ``import websuckets`` does not import it.
"""

from ..wire import Position
from .backoff import Backoff
from .connection import Client
from .errors import ClientError
from .events import ServerEvent
from .listeners import Callback
from .opening import connect
from .positions import Positions

__all__ = ["Backoff", "Callback", "Client", "ClientError", "Position", "Positions", "ServerEvent", "connect"]
