"""Start-up: what an app decides once, when it starts, so that no message decides it again.

Each command's chain and route (`route_for`), the instruments' hooks the dispatcher calls
(`listeners`), and the checks that refuse to start an app that could not serve
(`check_container`, `check_history`). `websuckets.WebSuckets` calls these from ``__aenter__``;
they read its settings through `StartingApp`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from .answer import answering_errors, request_chain
from .backends.base import Backend
from .context import CallNext, Middleware
from .dispatcher import Listeners, Route
from .exc import AppStateError
from .handlers import CallPlan
from .history import HistoryRules
from .instrument import Instrument
from .middleware import CommandTimeouts, RateLimit, build_chain, endpoint
from .middleware.chain import applies_to, error_answer, fused_parser
from .routing import Command
from .streams import starting, stream_endpoint

if TYPE_CHECKING:  # dishka is imported only by apps that inject (see websuckets.handlers)
    from dishka import AsyncContainer


class StartingApp(Protocol):
    """What start-up reads of the app (`websuckets.WebSuckets` is one)."""

    @property
    def container(self) -> AsyncContainer | None: ...
    @property
    def backend(self) -> Backend: ...
    @property
    def history(self) -> HistoryRules: ...
    @property
    def commands(self) -> dict[str, Command]: ...
    @property
    def connect_hooks(self) -> list[CallPlan]: ...
    @property
    def disconnect_hooks(self) -> list[CallPlan]: ...
    @property
    def error_middleware(self) -> Middleware: ...
    @property
    def auth_middleware(self) -> Middleware: ...
    @property
    def validation_middleware(self) -> Middleware: ...
    @property
    def middlewares(self) -> list[Middleware]: ...
    @property
    def rate_limit(self) -> RateLimit | None: ...
    @property
    def command_timeouts(self) -> CommandTimeouts | None: ...
    @property
    def instruments(self) -> list[Instrument]: ...
    @property
    def max_streams(self) -> int: ...


def route_for(app: StartingApp, command: Command) -> Route:
    """``command`` with its chain, and the chain of the same command sent with an ``id``."""
    middlewares, last = steps_for(app, command)
    chain = build_chain(middlewares, last)
    if command.plan.streams:  # the whole chain runs in the stream's task; items carry the id: no answer to stamp
        start = starting(chain, app.max_streams)
        return Route(command, start, start)
    answer_error = error_answer(middlewares[0])
    if command.plan.takes_context or answer_error is None:
        return Route(command, chain, request_chain(command.plan, chain))
    # a request whose handler answers with socket.send: the pending answer set in the error mapping's step
    return Route(command, chain, answering_errors(build_chain(middlewares[1:], last), answer_error))


def chain_for(app: StartingApp, command: Command) -> CallNext:
    """The command's chain (see `steps_for`)."""
    return build_chain(*steps_for(app, command))


def steps_for(app: StartingApp, command: Command) -> tuple[list[Middleware], CallNext]:
    """The middlewares of the command's chain, outermost first, and its last step: error mapping,
    instruments, rate limit, authentication, app and group middlewares, time limit, then
    validation and the handler.

    A middleware whose ``applies_to`` refuses the command is left out (authentication of a
    command that is not protected, a time limit it does not have); a validation middleware that
    ``fuses_into_endpoint`` runs in the handler's step (see `websuckets.middleware.chain`).
    """
    error_middleware = app.error_middleware
    for instrument in app.instruments:
        error_middleware = instrument.error_middleware(command, error_middleware)
    middlewares = [error_middleware]
    for instrument in app.instruments:
        middleware = instrument.command_middleware(command)
        if middleware is not None:
            middlewares.append(middleware)
    parse = fused_parser(app.validation_middleware)
    last_step = stream_endpoint if command.plan.streams else endpoint
    inner: list[Middleware | None] = [
        app.rate_limit,
        app.auth_middleware,
        *app.middlewares,
        *command.group.middlewares,
        app.command_timeouts,
        app.validation_middleware if parse is None else None,
    ]
    middlewares += [m for m in inner if m is not None and applies_to(m, command)]
    if parse is None:
        return middlewares, last_step(command.plan)
    return middlewares, last_step(command.plan, validate=True, parse=parse)


def listeners(instruments: Sequence[Instrument]) -> Listeners:
    """The dispatcher's hooks: those of ``instruments`` that override `Instrument`'s, in their order."""

    def overriding(name: str) -> tuple[Callable[..., None], ...]:
        default = getattr(Instrument, name)
        return tuple(getattr(i, name) for i in instruments if getattr(type(i), name) is not default)

    return Listeners(
        connection_ready=overriding("connection_ready"),
        frame_refused=overriding("frame_refused"),
        unexpected_error=overriding("unexpected_error"),
    )


def check_container(app: StartingApp) -> bool:
    """Whether any handler or hook injects services; an error if one does and there is no container."""
    plans: list[tuple[str, CallPlan]] = [(c.name, c.plan) for c in app.commands.values()]
    plans += [("a connection hook", plan) for plan in app.connect_hooks + app.disconnect_hooks]
    injecting = [(name, plan) for name, plan in plans if plan.needs_container]
    if injecting and app.container is None:
        name, plan = injecting[0]
        raise AppStateError(
            f"{plan.handler.__qualname__} ({name}) takes FromDishka parameters, "
            "but the app has no container: WebSuckets(container=make_async_container(...))"
        )
    return bool(injecting)


def check_history(app: StartingApp) -> None:
    """Refuse rooms with history on a backend that keeps none."""
    if app.history.active and type(app.backend).recover is Backend.recover:
        name = type(app.backend).__name__
        raise AppStateError(f"{name} keeps no room history: WebSuckets(history=...) needs a backend that does")


def settle_malloc() -> None:
    """Free one 1 MiB block, so that glibc serves asyncio's 256 KiB read buffers from its heap.

    Until a process frees a block that glibc had to mmap, glibc mmaps every allocation over
    128 KiB, so each read of a socket costs three more system calls (mmap, mremap, munmap).
    Freeing one such block raises glibc's threshold to its size; other C libraries ignore this.
    """
    bytearray(2**20)
