"""The middleware chain: order, group scoping, short-circuits, errors, replaceable built-ins."""

from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import CallNext, ClientEvent, CommandGroup, Context, WebSuckets
from websuckets.exc import InternalError
from websuckets.middleware import map_errors
from websuckets.testing import TestClient


class Model(BaseModel):
    n: int


def tracing(name: str, trace: list[str]):  # type: ignore[no-untyped-def]
    async def middleware(ctx: Context, call_next: CallNext) -> None:
        trace.append(f"{name} in (model={ctx.model is not None})")
        await call_next(ctx)
        trace.append(f"{name} out")

    return middleware


def make_app(trace: list[str]) -> tuple[WebSuckets, CommandGroup, CommandGroup]:
    app = WebSuckets()
    first, second = CommandGroup("first"), CommandGroup("second")

    @first.command("go")
    async def go(socket: ServerConnection, model: Model) -> None:
        trace.append("handler")
        await socket.send(ClientEvent("done"))

    @second.command("go")
    async def go_too(socket: ServerConnection) -> None:
        trace.append("handler")
        await socket.send(ClientEvent("done"))

    app.include_command_group(first)
    app.include_command_group(second)
    return app, first, second


async def test_order_app_then_group_then_validation_then_handler(real: bool) -> None:
    """App middlewares wrap group ones; the model is validated after both, right before the handler."""
    trace: list[str] = []
    app, first, _ = make_app(trace)
    app.add_middleware(tracing("app1", trace))
    app.add_middleware(tracing("app2", trace))
    first.add_middleware(tracing("group", trace))
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        await alice.send("first go", {"n": 1})
        await alice.receive()
    assert trace == [
        "app1 in (model=False)",
        "app2 in (model=False)",
        "group in (model=False)",
        "handler",
        "group out",
        "app2 out",
        "app1 out",
    ]


async def test_group_middleware_runs_for_its_group_only(real: bool) -> None:
    """A group's middleware does not see other groups' commands."""
    trace: list[str] = []
    app, first, _ = make_app(trace)
    first.add_middleware(tracing("group", trace))
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        await alice.send("second go")
        await alice.receive()
    assert trace == ["handler"]


async def test_middleware_may_answer_without_calling_next(real: bool) -> None:
    """A middleware that replies and returns stops the command there."""
    trace: list[str] = []
    app, _, _ = make_app(trace)

    async def maintenance(ctx: Context, call_next: CallNext) -> None:
        await ctx.reply("maintenance", {"retry_in": 60})

    app.add_middleware(maintenance)
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        await alice.send("second go", id=7)
        reply = await alice.receive()
        assert (reply.event, reply.payload, reply.id) == ("maintenance", {"retry_in": 60}, 7)
    assert trace == []


async def test_exceptions_in_middlewares_are_mapped_like_handler_ones(real: bool) -> None:
    """An InternalError raised by a middleware reaches the client as its error."""
    app, _, _ = make_app([])

    async def refuse(ctx: Context, call_next: CallNext) -> None:
        raise InternalError("closed", {"why": "weekend"})

    app.add_middleware(refuse)
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        await alice.send("second go", id="x")
        error = await alice.receive_error("closed")
        assert error.payload == {"name": "closed", "details": {"why": "weekend"}, "event": "second go", "id": "x"}


async def test_state_is_shared_along_one_command_only(real: bool) -> None:
    """ctx.state carries data from a middleware to the handler, fresh for every command."""
    app = WebSuckets()
    group = CommandGroup()
    seen: list[dict[str, object]] = []

    async def stamp(ctx: Context, call_next: CallNext) -> None:
        ctx.state["count"] = ctx.state.get("count", 0) + 1  # type: ignore[operator]
        await call_next(ctx)

    @group.command("look")
    async def look(socket: ServerConnection, ctx: Context) -> None:
        seen.append(dict(ctx.state))
        await ctx.reply("looked")

    app.add_middleware(stamp)
    app.include_command_group(group)
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        for _ in range(2):
            await alice.send("look")
            await alice.receive()
    assert seen == [{"count": 1}, {"count": 1}]


async def test_builtin_error_middleware_is_replaceable(real: bool) -> None:
    """Passing error_middleware wraps (or replaces) the built-in mapping."""
    app_errors: list[str] = []

    async def counting_errors(ctx: Context, call_next: CallNext) -> None:
        try:
            await call_next(ctx)
        except Exception as exc:
            app_errors.append(type(exc).__name__)
            raise

    async def mapping(ctx: Context, call_next: CallNext) -> None:
        await map_errors(ctx, lambda c: counting_errors(c, call_next))

    app = WebSuckets(error_middleware=mapping)
    group = CommandGroup()

    @group.command("fail")
    async def fail(socket: ServerConnection) -> None:
        raise InternalError("nope")

    app.include_command_group(group)
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        await alice.send("fail")
        await alice.receive_error("nope")
    assert app_errors == ["InternalError"]


async def test_two_apps_sharing_a_group_keep_their_own_chains() -> None:
    """Chains belong to the app: a group included in two apps runs each app's middlewares."""
    shared = CommandGroup()

    @shared.command("who")
    async def who(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("who", ctx.state.get("app"))

    def app_named(name: str) -> WebSuckets:
        async def tag(ctx: Context, call_next: CallNext) -> None:
            ctx.state["app"] = name
            await call_next(ctx)

        app = WebSuckets()
        app.add_middleware(tag)
        app.include_command_group(shared)
        return app

    public, admin = app_named("public"), app_named("admin")
    async with TestClient(public) as public_client, TestClient(admin) as admin_client:
        alice, root = await public_client.connect(), await admin_client.connect()
        assert (await alice.request("who")).payload == "public"
        assert (await root.request("who")).payload == "admin"


def make_guarded_app(**options: object) -> tuple[WebSuckets, list[str]]:
    """An app with one protected command and an app middleware that records what reaches it."""
    reached: list[str] = []
    app = WebSuckets(**options)  # type: ignore[arg-type]
    group = CommandGroup()

    @group.command("vault", protected=True)
    async def vault(socket: ServerConnection, model: Model, ctx: Context) -> None:
        await ctx.reply("vault", model.n)

    async def record(ctx: Context, call_next: CallNext) -> None:
        reached.append(ctx.event)
        await call_next(ctx)

    app.add_middleware(record)
    app.include_command_group(group)
    return app, reached


async def test_authentication_runs_before_app_middlewares(real: bool) -> None:
    """A protected command without a valid token is refused before any app middleware sees it."""
    app, reached = make_guarded_app()
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        await alice.send("vault", {"n": 1})
        await alice.receive_error("unauthorized")
    assert reached == []


async def test_builtin_auth_and_validation_are_replaceable(real: bool) -> None:
    """Passing auth_middleware and validation_middleware replaces the built-ins."""

    async def let_everyone_in(ctx: Context, call_next: CallNext) -> None:
        await call_next(ctx)

    async def lenient(ctx: Context, call_next: CallNext) -> None:
        ctx.model = Model(n=int(ctx.payload))  # type: ignore[call-overload]
        await call_next(ctx)

    app, reached = make_guarded_app(auth_middleware=let_everyone_in, validation_middleware=lenient)
    async with TestClient(app, real=real) as client:
        alice = await client.connect()
        assert (await alice.request("vault", "41")).payload == 41
    assert reached == ["vault"]
