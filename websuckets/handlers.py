"""Signature analysis: what each parameter of a handler or hook is, decided once.

At ``@group.command`` time every parameter gets a role (the socket, the payload model,
an injected service, the ``Context``, the ``User``); at dispatch time websuckets only runs
the `CallPlan` built here.
"""

from __future__ import annotations

import collections.abc
import inspect
import sys
import typing
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from operator import attrgetter
from typing import TYPE_CHECKING, Any, get_args, get_origin, get_type_hints

from websockets.asyncio.server import ServerConnection

from .context import Context
from .exc import InvalidHandler
from .user import User

if TYPE_CHECKING:
    from dishka import AsyncContainer
    from pydantic import BaseModel

Handler = Callable[..., Awaitable[Any]]
CommandHandler = Callable[..., Awaitable[Any] | AsyncIterator[Any]]
"""A command's handler: a coroutine function, or an async generator function (a stream, see `websuckets.streams`).

A `CallPlan` holds either as a `Handler`: whether it streams is its ``streams``.
"""


class HandlerKind(Enum):
    COMMAND = "command"
    """A command handler: the socket first, then at most one model, services, Context, User."""
    HOOK = "hook"
    """A connect/disconnect hook: any of the socket, the User and services."""


class Role(Enum):
    SOCKET = "socket"
    MODEL = "model"
    CONTEXT = "context"
    USER = "user"
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Dependency:
    """A ``FromDishka[T]`` parameter: the type and component to ask the container for."""

    type: Any
    component: str | None


@dataclass(frozen=True, slots=True)
class Parameter:
    name: str
    role: Role
    keyword: bool
    dependency: Dependency | None = None


_from_source: dict[Role, Callable[[Any], Any]] = {
    Role.SOCKET: attrgetter("socket"),
    Role.MODEL: attrgetter("model"),
    Role.USER: attrgetter("user"),
    Role.CONTEXT: lambda source: source,
}


class CallPlan:
    """How to call one handler, decided at registration.

    Each parameter becomes a getter (the socket, model, user or context, read from the
    ``source``) or a `Dependency` resolved from the container. Keyword-only
    parameters come last in any signature, so the first ``len(parameters) - len(keywords)``
    values are passed positionally.
    """

    def __init__(
        self,
        handler: Handler,
        parameters: tuple[Parameter, ...],
        model: type[BaseModel] | None,
        *,
        streams: bool = False,
        item_type: Any = Any,
    ) -> None:
        self.handler = handler
        self.parameters = parameters
        self.model = model
        """The payload model, if the handler takes one."""
        self.streams = streams
        """Whether the handler is an async generator: its command is a stream (see `websuckets.streams`)."""
        self.item_type = item_type
        """What a stream yields, from its return annotation (``AsyncIterator[Hit]``: ``Hit``); ``Any`` if unsaid."""
        self.dependencies = tuple(p.dependency for p in parameters if p.dependency is not None)
        self.needs_container = bool(self.dependencies)
        """Whether calling the handler needs a scope to resolve services from."""
        self.takes_context = any(p.role is Role.CONTEXT for p in parameters) or any(
            dependency.type is Context for dependency in self.dependencies
        )
        """Whether the handler gets the command's `Context` (so it can answer with ``ctx.reply``)."""
        self._arguments = tuple(p.dependency or _from_source[p.role] for p in parameters)
        self._getters = tuple(_from_source[p.role] for p in parameters if p.dependency is None)
        self._keywords = tuple(p.name for p in parameters if p.keyword)
        self._positional_count = len(parameters) - len(self._keywords)
        self.invoke = self._direct_invoker()
        """``invoke(source)`` calls a handler that injects nothing, its arguments read straight from ``source``."""

    def _direct_invoker(self) -> Callable[[Any], Awaitable[Any]]:
        """The cheapest call for a handler without services: the common shapes spelled out."""
        handler, getters = self.handler, self._getters
        if self.needs_container:
            return self._needs_a_scope
        if self._keywords:
            return lambda source: self._call_with([get(source) for get in getters])
        if len(getters) == 1:
            (first,) = getters
            return lambda source: handler(first(source))
        if len(getters) == 2:
            first, second = getters
            return lambda source: handler(first(source), second(source))
        return lambda source: handler(*[get(source) for get in getters])

    async def call_in_scope(self, source: Any, container: AsyncContainer, context: dict[Any, Any] | None = None) -> Any:
        """Open the next scope of ``container`` (with ``context`` in it), resolve the services, call the handler."""
        async with container(context=context) as scope:
            values = []
            for argument in self._arguments:  # a loop, not an async comprehension: no coroutine of its own
                if type(argument) is Dependency:
                    values.append(await scope.get(argument.type, argument.component))
                else:
                    values.append(argument(source))  # type: ignore[operator]
            return await self._call_with(values)

    async def resolve(self, source: Any, scope: AsyncContainer) -> list[Any]:
        """The handler's arguments, services from ``scope`` (a stream's REQUEST scope, open as long as it runs)."""
        values = []
        for argument in self._arguments:
            if type(argument) is Dependency:
                values.append(await scope.get(argument.type, argument.component))
            else:
                values.append(argument(source))  # type: ignore[operator]
        return values

    def call_with(self, values: list[Any]) -> Any:
        """Call the handler with the arguments `resolve` gave (a stream's async generator)."""
        return self._call_with(values)

    def _call_with(self, values: list[Any]) -> Awaitable[Any]:
        if not self._keywords:
            return self.handler(*values)
        count = self._positional_count
        return self.handler(*values[:count], **dict(zip(self._keywords, values[count:], strict=True)))

    def _needs_a_scope(self, source: Any) -> Awaitable[Any]:
        raise TypeError(f"{self.handler.__qualname__} injects services: call it with call_in_scope")


def analyse(handler: Handler, kind: HandlerKind) -> CallPlan:
    """Decide the role of every parameter of ``handler``, or raise `InvalidHandler`."""
    name = getattr(handler, "__qualname__", repr(handler))
    streams = kind is HandlerKind.COMMAND and inspect.isasyncgenfunction(handler)
    if not streams and not inspect.iscoroutinefunction(handler):
        if inspect.isasyncgenfunction(handler):
            raise InvalidHandler(name, "a hook cannot be an async generator: only commands stream")
        raise InvalidHandler(name, "must be a coroutine function (declare it with 'async def')")
    hints = _type_hints(handler, name)
    signature = inspect.signature(handler)
    parameters = tuple(
        _classify(name, parameter, hints.get(parameter.name, inspect.Parameter.empty))
        for parameter in signature.parameters.values()
    )
    _check_roles(name, parameters, kind)
    models = [hints[p.name] for p in parameters if p.role is Role.MODEL]
    item_type = _item_type(hints.get("return", Any)) if streams else Any
    return CallPlan(handler, parameters, models[0] if models else None, streams=streams, item_type=item_type)


_STREAM_ORIGINS = (
    collections.abc.AsyncIterator,
    collections.abc.AsyncIterable,
    collections.abc.AsyncGenerator,
    typing.AsyncIterator,
    typing.AsyncIterable,
    typing.AsyncGenerator,
)


def _item_type(annotation: Any) -> Any:
    """What ``AsyncIterator[T]`` (``AsyncGenerator[T, None]``, ``AsyncIterable[T]``) yields; ``Any`` otherwise."""
    if get_origin(annotation) in _STREAM_ORIGINS and get_args(annotation):
        return get_args(annotation)[0]
    return Any


def _type_hints(handler: Handler, name: str) -> dict[str, Any]:
    try:
        return get_type_hints(handler, include_extras=True)
    except NameError as exc:
        raise InvalidHandler(name, f"an annotation cannot be resolved: {exc}") from None


def _classify(handler: str, parameter: inspect.Parameter, annotation: Any) -> Parameter:
    where = f"parameter {parameter.name!r}"
    if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        raise InvalidHandler(handler, f"{where}: *args and **kwargs are not supported")
    if annotation is inspect.Parameter.empty:
        raise InvalidHandler(handler, f"{where} has no annotation")
    keyword = parameter.kind is inspect.Parameter.KEYWORD_ONLY
    dependency = _injected(parameter, annotation)
    if dependency is not None:
        return Parameter(parameter.name, Role.SERVICE, keyword, dependency)
    role = _role_of(annotation)
    if role is None:
        raise InvalidHandler(
            handler,
            f"{where}: {_type_name(annotation)} is neither the socket, a pydantic model, "
            "Context, User nor FromDishka[...]",
        )
    return Parameter(parameter.name, role, keyword)


def _injected(parameter: inspect.Parameter, annotation: Any) -> Dependency | None:
    """The service a ``FromDishka[T]`` parameter asks for, read by dishka itself; ``None`` for any other parameter.

    Only dishka makes a ``FromDishka[T]``: while nothing has imported dishka, no annotation is one,
    and websuckets does not import it either (an app without a container never loads dishka).
    """
    if "dishka" not in sys.modules:
        return None
    from dishka.integrations.base import default_parse_dependency

    key = default_parse_dependency(parameter, annotation)
    return None if key is None else Dependency(key.type_hint, key.component)


def _role_of(annotation: Any) -> Role | None:
    if _is_socket(annotation):
        return Role.SOCKET
    if not isinstance(annotation, type):
        return None
    pydantic = sys.modules.get("pydantic.main")  # only an app that imported it can have a model
    if pydantic is not None and issubclass(annotation, pydantic.BaseModel):
        return Role.MODEL
    if issubclass(annotation, Context):
        return Role.CONTEXT
    if issubclass(annotation, User):
        return Role.USER
    return None


def _is_socket(annotation: Any) -> bool:
    """``ServerConnection``, or the deprecated ``websockets.WebSocketServerProtocol`` alias.

    The alias is recognised by name so that websuckets never imports the legacy module.
    """
    if not isinstance(annotation, type):
        return False
    if issubclass(annotation, ServerConnection):
        return True
    return annotation.__module__ == "websockets.legacy.server" and annotation.__name__ == "WebSocketServerProtocol"


_SOCKET_FIRST = "the first parameter must be the socket (WebSocketServerProtocol or ServerConnection)"


def _check_roles(handler: str, parameters: tuple[Parameter, ...], kind: HandlerKind) -> None:
    roles = [p.role for p in parameters]
    if kind is HandlerKind.COMMAND:
        if not parameters:
            raise InvalidHandler(handler, f"takes no parameters; {_SOCKET_FIRST}")
        if roles[0] is not Role.SOCKET:
            raise InvalidHandler(handler, f"parameter {parameters[0].name!r}: {_SOCKET_FIRST}")
    else:
        for parameter in parameters:
            if parameter.role in (Role.MODEL, Role.CONTEXT):
                raise InvalidHandler(handler, f"parameter {parameter.name!r}: a hook gets no {parameter.role.value}")
    for role in (Role.SOCKET, Role.MODEL, Role.CONTEXT, Role.USER):
        extra = [p for p in parameters if p.role is role][1:]
        if extra:
            raise InvalidHandler(handler, f"parameter {extra[0].name!r}: only one {role.value} parameter is allowed")


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__qualname__", None) or repr(annotation)
