"""``CommandGroup`` and ``Command``: the names clients send and the handlers they reach."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .context import Middleware
from .exc import AppStateError, DuplicateCommand
from .handlers import CallPlan, CommandHandler, Handler, HandlerKind, analyse

if TYPE_CHECKING:  # pydantic's BaseModel is imported by the apps that define models (see websuckets.handlers)
    from pydantic import BaseModel

H = TypeVar("H", bound=CommandHandler)


@dataclass(eq=False)
class Command:
    """One registered command."""

    name: str
    """The full name clients send as ``event``, prefix included."""
    handler: Handler
    protected: bool
    """Whether the command needs the token of a verified user."""
    plan: CallPlan
    group: CommandGroup
    replies: Mapping[str, Any] = field(default_factory=dict)
    """The events the command answers with, by name, with the type of their payload (``Any``: unsaid).

    Only documentation (`websuckets.asyncapi`, the TypeScript declarations): nothing checks them.
    """

    @property
    def model(self) -> type[BaseModel] | None:
        """The pydantic model the payload is validated against, if the handler takes one."""
        return self.plan.model


class CommandGroup:
    """Commands that share a name prefix and group middlewares.

    ``CommandGroup("user")`` turns ``@group.command("create")`` into the command
    ``"user create"``.
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.middlewares: list[Middleware] = []
        self._commands: dict[str, Command] = {}
        self._listeners: list[Callable[[Command], None]] = []
        self._sealed = False

    def command(
        self, name: str, protected: bool = False, *, replies: Sequence[str] | Mapping[str, Any] = ()
    ) -> Callable[[H], H]:
        """Register the decorated async function as the handler of ``name``.

        An async generator function makes the command a stream: each value it yields is sent
        to the client as it comes, then ``websuckets end`` (see the "Streaming replies" guide).

        Its signature is checked here; the function is returned unchanged. ``replies`` declares
        the events it answers with, for the app's schema: names (``["user created"]``, their
        payloads declared with `WebSuckets.server_event` or left open) or names with the type
        of their payload (``{"user created": UserCreated}``; ``None`` for a ``null`` payload).
        """
        declared = dict(replies) if isinstance(replies, Mapping) else dict.fromkeys(replies, Any)

        def register(handler: H) -> H:
            plan = analyse(cast(Handler, handler), HandlerKind.COMMAND)  # a stream's plan knows it streams
            command = Command(self.full_name(name), plan.handler, protected, plan, self, declared)
            if command.name in self._commands:
                raise DuplicateCommand(command.name)
            for listener in self._listeners:
                listener(command)
            self._commands[command.name] = command
            return handler

        return register

    def add_middleware(self, middleware: Middleware) -> None:
        """Run ``middleware`` around the commands of this group only (inside app middlewares)."""
        if self._sealed:
            raise AppStateError(
                f"cannot add a middleware to group {self.prefix!r} once an app including it has started"
            )
        self.middlewares.append(middleware)

    def seal(self) -> None:
        """Refuse further middlewares: an app including the group has built its chains."""
        self._sealed = True

    def full_name(self, name: str) -> str:
        return f"{self.prefix} {name}" if self.prefix else name

    def subscribe(self, listener: Callable[[Command], None]) -> None:
        """Call ``listener`` with every command registered from now on (the app including us)."""
        self._listeners.append(listener)

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def __len__(self) -> int:
        return len(self._commands)

    def __repr__(self) -> str:
        return f"<CommandGroup prefix={self.prefix!r} commands={list(self._commands)}>"
