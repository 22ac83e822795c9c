"""Streams: a command whose handler is an async generator answers with every item it yields.

::

    @group.command("search")
    async def search(socket: ServerConnection, query: Query) -> AsyncIterator[Hit]:
        async for hit in index.search(query.text):
            yield hit

Whether a handler streams is decided when it is registered (`websuckets.handlers`); when the
app starts, a stream's route gets `starting` around its chain. Per command it then costs one
task: the whole chain (error mapping, instruments, rate limit, authentication, middlewares,
time limit, validation, the REQUEST scope) runs in the stream's own task, so the connection
goes on reading (a ``websuckets cancel`` among them) while the stream runs. On the wire, for
the command ``{"event": "search", "payload": ..., "id": 17}``:

- each item, as it is yielded: ``{"event": "search", "payload": <item>, "id": 17}`` (an item
  that is a `ClientEvent` goes out as that event, with the ``id`` added);
- then ``{"event": "websuckets end", "payload": {"items": 3, "cancelled": false}, "id": 17}``;
- or, when the handler (or a middleware) raises, the usual ``error`` event for ``id`` 17,
  which ends the stream too.

Each item is sent with ``await socket.send(...)``: a stream never runs ahead of its reader by
more than the connection's write buffer, and a reader that reads nothing for ``send_timeout``
is closed with 1013, as for any send. ``{"event": "websuckets cancel", "id": 17}`` cancels the
stream: its task is cancelled, the generator closed (its ``finally`` blocks run, then the
REQUEST scope's finalizers), and it ends with ``"cancelled": true``. A disconnect cancels every
stream of the connection the same way, with nothing sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .context import CallNext, Connection, Context
from .envelope import error_event
from .events import ClientEvent, dump_event, with_id
from .exc import InvalidCommand, TooManyStreams
from .handlers import CallPlan
from .middleware.validation import parse_payload
from .routing import CommandGroup
from .wire import STREAM_END_EVENT

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .negotiation import WireFormat


logger = logging.getLogger("websuckets.streams")

PayloadParser = Callable[["type[BaseModel]", object], "BaseModel"]


class StreamStats:
    """Counters of this process's streams, for metrics (plain integers, only growing)."""

    __slots__ = ("cancelled", "items", "refused", "started")

    def __init__(self) -> None:
        self.started = 0
        """Streams started (past the checks of `starting`)."""
        self.refused = 0
        """Streams refused before their chain: no ``id``, an ``id`` in use, or ``too_many_streams``."""
        self.items = 0
        """Items sent, over every stream."""
        self.cancelled = 0
        """Streams cancelled by their client (``websuckets cancel``) or by its disconnect."""


stats = StreamStats()


class Stream:
    """One running stream: its task, and whether its client cancelled it."""

    __slots__ = ("cancelled", "items", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.items = 0
        """Items sent so far."""
        self.cancelled = False
        """Set by ``websuckets cancel``: the stream ends with ``"cancelled": true``."""


def starting(chain: CallNext, limit: int) -> CallNext:
    """The route of a stream command: ``chain`` started in a task of its own, once the stream may start.

    A stream needs an ``id`` not in use by another stream of the connection (else
    ``invalid_command``), and the connection may run ``limit`` streams at once (else
    ``too_many_streams``).
    """

    async def start(ctx: Context) -> None:
        connection = ctx.connection
        streams = connection.streams
        if streams is None:
            streams = connection.streams = {}
        refused = _refusal(ctx, streams, limit)
        if refused is not None:
            stats.refused += 1
            await ctx.socket.send(error_event(refused, ctx.event, ctx.id))
            return
        assert ctx.id is not None
        stream = streams[ctx.id] = Stream()
        stream.task = asyncio.get_running_loop().create_task(_run(ctx, chain, stream))
        stats.started += 1

    start.__qualname__ = f"starting({getattr(chain, '__qualname__', chain)!s})"
    return start


def _refusal(ctx: Context, streams: dict[str | int, Stream], limit: int) -> InvalidCommand | TooManyStreams | None:
    if ctx.id is None:
        return InvalidCommand(f"{ctx.event!r} is a stream: send it with an 'id'")
    if ctx.id in streams:
        return InvalidCommand(f"a stream with id {ctx.id!r} is running already")
    if len(streams) >= limit:
        return TooManyStreams({"limit": limit})
    return None


async def _run(ctx: Context, chain: CallNext, stream: Stream) -> None:
    """The stream's task: its chain, then what its end needs (an exception reaching here is logged)."""
    try:
        await chain(ctx)
    except asyncio.CancelledError:
        stats.cancelled += 1
        if stream.cancelled:  # the client asked (not a disconnect): tell it the stream ended
            end = ClientEvent(STREAM_END_EVENT, _end(stream.items, cancelled=True), id=ctx.id)
            await _send_quietly(ctx.socket, end)
    except ConnectionClosed:
        pass  # the client left: its streams are being cancelled
    except Exception as exc:  # the error middleware re-raised, or there is none
        ctx.connection.report_unexpected(exc, ctx)
    finally:
        streams = ctx.connection.streams
        if streams is not None and ctx.id is not None and streams.get(ctx.id) is stream:
            del streams[ctx.id]


def stream_endpoint(plan: CallPlan, *, validate: bool = False, parse: PayloadParser = parse_payload) -> CallNext:
    """The last step of a stream's chain: validate, open the REQUEST scope, send every item, then the end."""
    model = plan.model if validate else None

    async def run_stream(ctx: Context) -> None:
        if model is not None:
            ctx.model = parse(model, ctx.payload)
        if not plan.needs_container:
            await _pump(ctx, plan.invoke(ctx))  # type: ignore[arg-type]
            return
        container = ctx.connection.container
        assert container is not None, "checked when the app started"
        async with container(context={Context: ctx}) as scope:  # held open until the stream ends
            await _pump(ctx, plan.call_with(await plan.resolve(ctx, scope)))

    return run_stream


async def _pump(ctx: Context, items: AsyncIterator[Any]) -> None:
    """Send each item as it comes, waiting for the reader (``send`` drains); close the generator whatever happens.

    Once the generator is exhausted the stream leaves the connection's streams, before its end
    is sent: a ``websuckets cancel`` arriving now finds nothing to cancel, and one end goes out.
    """
    send, name, id = ctx.socket.send, ctx.event, ctx.id
    codec: WireFormat | None = getattr(ctx.socket, "codec", None)
    frame = _item_text if codec is None else _item_packer(codec)
    streams = ctx.connection.streams
    stream = Stream() if streams is None or id is None else streams.get(id, Stream())
    try:
        async for item in items:
            await send(frame(name, item, id))
            stream.items += 1
            stats.items += 1
    finally:
        await items.aclose()  # type: ignore[attr-defined]  # an async generator's: runs its finally blocks
    if streams is not None and id is not None and streams.get(id) is stream:
        del streams[id]
    await send(ClientEvent(STREAM_END_EVENT, _end(stream.items, cancelled=False), id=id))


def _item_text(name: str, item: Any, id: str | int | None) -> str:
    if isinstance(item, ClientEvent):
        return item if item.id is not None or id is None else with_id(item, id)
    return dump_event(name, item, id)


def _item_packer(codec: WireFormat) -> Callable[[str, Any, str | int | None], bytes]:
    """Items framed by ``codec`` (MessagePack) from their parts, so that their ``bytes`` stay binaries."""

    def item_frame(name: str, item: Any, id: str | int | None) -> bytes:
        if isinstance(item, ClientEvent):
            return codec.encode_event(item.event, item.payload, item.id if item.id is not None else id)
        return codec.encode_event(name, item, id)

    return item_frame


def _end(items: int, *, cancelled: bool) -> dict[str, Any]:
    """The end event's payload: the items sent, and whether the client cancelled the stream."""
    return {"items": items, "cancelled": cancelled}


async def _send_quietly(socket: ServerConnection, message: str) -> None:
    with contextlib.suppress(ConnectionClosed):  # the client left meanwhile: nobody to tell
        await socket.send(message)


def cancel(connection: Connection, id: str | int) -> bool:
    """Cancel the stream ``id`` of ``connection`` for its client; ``False`` if none runs (it may have just ended)."""
    streams = connection.streams
    stream = None if streams is None else streams.get(id)
    if stream is None or stream.task is None:
        return False
    stream.cancelled = True
    stream.task.cancel()
    return True


async def cancel_all(streams: dict[str | int, Stream]) -> None:
    """Cancel every stream of a connection that has gone, and wait for their ``finally`` blocks and finalizers."""
    tasks = [stream.task for stream in streams.values() if stream.task is not None]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


def stream_commands() -> CommandGroup:
    """A group holding ``websuckets cancel``, for an app that has streams."""
    group = CommandGroup("websuckets")
    group.command("cancel")(cancel_stream)
    return group


async def cancel_stream(socket: ServerConnection, ctx: Context) -> None:
    """``{"event": "websuckets cancel", "id": 17}``: cancel the stream ``17``; nothing is sent if none runs."""
    if ctx.id is not None and not cancel(ctx.connection, ctx.id):
        logger.debug("client %s cancelled stream %r, which is not running", socket.id, ctx.id)
