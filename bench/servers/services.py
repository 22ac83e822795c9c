"""The two services the DI servers inject: one per connection, one per message."""

from dishka import Provider, Scope, provide


class Visitor:
    """SESSION scope: one per connection."""

    def __init__(self) -> None:
        self.messages = 0


class Trace:
    """REQUEST scope: one per message."""

    def __init__(self) -> None:
        self.n: int | None = None


class BenchProvider(Provider):
    visitor = provide(Visitor, scope=Scope.SESSION)
    trace = provide(Trace, scope=Scope.REQUEST)
