"""``Tracing``: an OpenTelemetry span per command, and one per connection.

::

    from websuckets.tracing import Tracing

    app.add_instrument(Tracing())   # spans go to the global TracerProvider you configure

It needs the ``otel`` extra (``pip install 'websuckets[otel]'``, for ``opentelemetry-api``);
exporting spans needs the SDK and an exporter of your choice, set up as OpenTelemetry says.

- Each command gets a span named after its event (``"chat send"``, kind ``SERVER``), with the
  attributes ``websuckets.client_id``, ``websuckets.command_id`` (the command's ``id``, if any),
  ``websuckets.outcome`` (``ok`` or the error name) and, on errors, ``error.type`` (the error
  name) and an ``ERROR`` status; unexpected exceptions are recorded on the span.
- A client may send a W3C ``traceparent`` in the command's envelope
  (``{"event": ..., "traceparent": "00-<trace id>-<span id>-01"}``): the command's span is then
  a child of the client's span, in the client's trace. Without one, the span starts a trace.
- Each connection gets a ``websocket session`` span, from the end of its connect hooks to its
  close; command spans link to it, rather than being its children, so that a connection open
  for hours does not make one trace of hours.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

from ._version import __version__
from .context import CallNext, Context, Middleware
from .exc import InternalError
from .instrument import Instrument
from .middleware.errors import client_error

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, TracerProvider
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError as exc:  # pragma: no cover - exercised without the extra only
    raise ImportError("websuckets.tracing needs opentelemetry-api: pip install 'websuckets[otel]'") from exc

if TYPE_CHECKING:
    from .context import Connection
    from .routing import Command

__all__ = ["SESSION_SPAN", "Tracing"]

SESSION_SPAN = "websocket session"


class Tracing(Instrument):
    """Trace commands and connections with OpenTelemetry.

    Args:
        tracer_provider: where spans go; the global one (``trace.set_tracer_provider``) by default.
        sessions: whether each connection gets a ``websocket session`` span that commands link to.
    """

    traces_envelopes = True

    def __init__(self, tracer_provider: TracerProvider | None = None, *, sessions: bool = True) -> None:
        self.tracer = trace.get_tracer("websuckets", __version__, tracer_provider=tracer_provider)
        self.sessions = sessions
        self.propagator = TraceContextTextMapPropagator()
        self._session_spans: dict[UUID, Span] = {}

    def connection_ready(self, connection: Connection) -> None:
        """Open the connection's ``websocket session`` span, ended when it closes."""
        if not self.sessions:
            return
        socket = connection.socket
        span = self.tracer.start_span(
            SESSION_SPAN, kind=SpanKind.SERVER, attributes={"websuckets.client_id": str(socket.id)}
        )
        client_id = socket.id
        self._session_spans[client_id] = span

        def close(_: object) -> None:
            self._session_spans.pop(client_id, None)
            span.set_attribute("websuckets.close_code", socket.close_code if socket.close_code is not None else 1006)
            span.end()

        socket.connection_lost_waiter.add_done_callback(close)

    def command_middleware(self, command: Command) -> Middleware:
        """A span named after ``command``'s event around the rest of its chain."""
        tracer, name, sessions = self.tracer, command.name, self._session_spans
        extract = self.propagator.extract
        attach, detach, set_span_in_context = otel_context.attach, otel_context.detach, trace.set_span_in_context

        async def trace_command(ctx: Context, call_next: CallNext) -> None:
            parent = None if ctx.traceparent is None else extract({"traceparent": ctx.traceparent})
            session = sessions.get(ctx.socket.id)
            links = None if session is None else [Link(session.get_span_context())]
            span = tracer.start_span(name, parent, SpanKind.SERVER, links=links)
            token = attach(set_span_in_context(span, parent))  # handlers' own spans become children
            try:
                await call_next(ctx)
            except BaseException as exc:
                if span.is_recording():
                    _record_error(span, ctx, exc)
                raise
            else:
                if span.is_recording():
                    span.set_attributes(_attributes(ctx, "ok"))
            finally:
                detach(token)
                span.end()

        return trace_command


def _attributes(ctx: Context, outcome: str) -> dict[str, Any]:
    attributes: dict[str, Any] = {"websuckets.client_id": str(ctx.socket.id), "websuckets.outcome": outcome}
    if ctx.id is not None:
        attributes["websuckets.command_id"] = ctx.id
    return attributes


def _record_error(span: Span, ctx: Context, exc: BaseException) -> None:
    outcome = client_error(exc).name
    span.set_attributes(_attributes(ctx, outcome) | {"error.type": outcome})
    span.set_status(Status(StatusCode.ERROR, outcome))
    if not isinstance(exc, InternalError):
        span.record_exception(exc)
