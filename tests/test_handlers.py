"""Signature analysis: what handlers may declare, and the errors for what they may not."""

from typing import Any

import pytest
from dishka import FromDishka
from pydantic import BaseModel
from websockets import WebSocketServerProtocol
from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, Context, User
from websuckets.handlers import HandlerKind, analyse


class Model(BaseModel):
    name: str


class Service:
    pass


def test_decorator_returns_the_function_unchanged() -> None:
    """@group.command gives back the very function, still callable in tests."""
    group = CommandGroup()

    async def handler(socket: WebSocketServerProtocol) -> None: ...

    assert group.command("x")(handler) is handler


def test_documented_forms_and_extensions_are_accepted() -> None:
    """The socket alone, socket + model, and socket + services, Context and User register."""
    group = CommandGroup()

    @group.command("a")
    async def a(socket: WebSocketServerProtocol) -> None: ...

    @group.command("b")
    async def b(socket: ServerConnection, model: Model) -> None: ...

    @group.command("c")
    async def c(socket: ServerConnection, model: Model, ctx: Context, user: User, s: FromDishka[Service]) -> None: ...

    assert [command.model for command in group] == [None, Model, Model]
    assert [command.plan.needs_container for command in group] == [False, False, True]


async def no_params() -> None: ...


async def unannotated(socket) -> None: ...  # type: ignore[no-untyped-def]


async def model_first(model: Model, socket: ServerConnection) -> None: ...


async def plain_second(socket: ServerConnection, count: int) -> None: ...


async def two_models(socket: ServerConnection, a: Model, b: Model) -> None: ...


async def varargs(socket: ServerConnection, *args: Any) -> None: ...


def not_async(socket: ServerConnection) -> None: ...


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (not_async, "not_async: must be a coroutine function"),
        (no_params, "no_params: takes no parameters"),
        (unannotated, "unannotated: parameter 'socket' has no annotation"),
        (model_first, "model_first: parameter 'model': the first parameter must be the socket"),
        (plain_second, "plain_second: parameter 'count': int is neither the socket, a pydantic model"),
        (two_models, "two_models: parameter 'b': only one model parameter"),
        (varargs, "varargs: parameter 'args': \\*args and \\*\\*kwargs are not supported"),
    ],
)
def test_bad_handlers_raise_type_error_naming_handler_and_parameter(handler: Any, message: str) -> None:
    """Each malformed signature raises TypeError at definition, saying what is wrong and where."""
    group = CommandGroup()
    with pytest.raises(TypeError, match=f"handler {message}"):
        group.command("x")(handler)
    assert len(group) == 0


def test_a_handler_with_services_cannot_be_called_without_a_scope() -> None:
    """A plan that injects refuses the direct call, which would leave its services out."""

    async def handler(socket: ServerConnection, service: FromDishka[Service]) -> None: ...

    plan = analyse(handler, HandlerKind.COMMAND)
    assert plan.needs_container
    with pytest.raises(TypeError, match="injects services: call it with call_in_scope"):
        plan.invoke(object())
