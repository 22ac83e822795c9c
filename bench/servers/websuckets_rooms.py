"""websuckets fan-out through a room: every connection joins ``lobby``; ``chat say`` broadcasts to it.

The same ``chat`` event reaches the same receivers as in the other fan-out servers (every
connection but the sender), through ``Session.broadcast(..., room="lobby", exclude=socket.id)``.
``--backend redis --redis-url URL`` runs it on `RedisBackend` (one process: what Redis adds
to a local fan-out); ``memory`` (the default) on `MemoryBackend`. ``--history SIZE`` makes
``lobby`` keep its last SIZE messages (``WebSuckets(history={"lobby": History(size=SIZE)})``):
every message is then numbered, kept, and reaches clients with its position. ``--profile FILE``
writes a cProfile of the whole run to FILE when the server stops (SIGTERM).
"""

from _serving import serve, server_options
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import ClientEvent, CommandGroup, History, Session, WebSuckets
from websuckets.backends.base import Backend


class Echo(BaseModel):
    nickname: str
    text: str
    n: int


chat = CommandGroup("chat")


@chat.command("say")
async def say(socket: ServerConnection, model: Echo) -> None:
    await Session.broadcast(ClientEvent("chat", model), room="lobby", exclude=socket.id)


async def join_lobby(socket: ServerConnection) -> None:
    await Session.join(socket.id, "lobby")


def create_app(backend: Backend, history: int = 0) -> WebSuckets:
    rooms = {"lobby": History(size=history)} if history else None
    app = WebSuckets(backend=backend, rate_limit=None, history=rooms)  # the other servers limit nothing either
    app.include_command_group(chat)
    app.on_connect(join_lobby)
    return app


if __name__ == "__main__":
    parser = server_options(__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=0, metavar="SIZE", help="lobby keeps its last SIZE messages")
    options = parser.parse_args()
    serve(options, lambda backend: create_app(backend, options.history), namespace="bench-rooms")
