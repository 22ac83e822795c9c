"""The app as an AsyncAPI 3.0 document: every command, every event, every framework error.

No I/O: `document` reads the app's registry (commands, their payload models, ``protected``,
their declared ``replies``, the app's `WebSuckets.server_event` declarations) and returns a
plain dict. The wire frames are the messages: a command's message is the whole JSON object a
client sends (``event``, ``payload``, ``token``, ``id``), so the schema says exactly what goes
over the socket, and the ``id`` is the messages' correlation id.

A stream (a command whose handler is an async generator, see `websuckets.streams`) says so with
``x-websuckets-stream``; its reply lists its item event (named after the command, the payload
typed by the handler's ``AsyncIterator[T]``; an item that is a ``ClientEvent`` is one of the
command's declared ``replies`` instead), ``websuckets end`` and ``error``.

`AsyncAPIPage` serves the document at ``/asyncapi.json`` and a plain HTML rendering at
``/asyncapi`` on the app's own port (opt-in: ``app.add_instrument(AsyncAPIPage())``).
"""

from __future__ import annotations

import html
import inspect
import json
import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from . import exc
from .events import ClientEvent
from .http import is_upgrade, json_response, url_path
from .instrument import Instrument, InstrumentedApp
from .wire import CANCEL_EVENT, ERROR_EVENT, STREAM_END_EVENT

if TYPE_CHECKING:
    from .routing import Command

__all__ = ["CHANNEL", "ERROR_EVENT", "AsyncAPIPage", "document", "framework_error_names", "message_id"]

ASYNCAPI_VERSION = "3.0.0"
CHANNEL = "websocket"
"""The one channel: the websocket connection, on any path."""
SCHEMAS = "#/components/schemas/{model}"

ID_SCHEMA: dict[str, Any] = {
    "description": "A correlation id chosen by the client, copied into replies and errors.",
    "oneOf": [{"type": "string", "maxLength": 128}, {"type": "integer"}],
}
SUBPROTOCOL_HEADER: dict[str, Any] = {
    "type": "object",
    "properties": {
        "Sec-WebSocket-Protocol": {
            "type": "string",
            "description": (
                "The wire format: websuckets.v1.json (JSON text frames, as with no subprotocol) or"
                " websuckets.v1.msgpack (MessagePack binary frames, when the server has websuckets[msgpack])."
                " Only unknown websuckets.v... versions: refused with HTTP 400."
            ),
        }
    },
}
"""The ws binding's handshake header: the subprotocols of `websuckets.negotiation`."""
CORRELATION = {"correlationId": {"$ref": "#/components/correlationIds/id"}}
STREAM_END: dict[str, Any] = {
    "type": "object",
    "description": "The end of a stream: the items it sent, and whether its client cancelled it.",
    "required": ["items", "cancelled"],
    "properties": {"items": {"type": "integer", "minimum": 0}, "cancelled": {"type": "boolean"}},
}
"""The payload of ``websuckets end``."""


def framework_error_names() -> list[str]:
    """The stable names of every error the framework itself sends, from `websuckets.exc`."""
    names = {getattr(error, "code", None) for error in vars(exc).values() if isinstance(error, type)}
    return sorted(name for name in names if isinstance(name, str))


def message_id(event: str) -> str:
    """An AsyncAPI identifier for an event name: ``"user create"`` -> ``"user_create"``."""
    return re.sub(r"[^\w.-]", "_", event) or "_"


def document(app: InstrumentedApp, **info: Any) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``app``: a JSON-ready dict.

    ``info`` overrides the ``info`` object (``title``, ``version``, ``description``...).
    """
    return _Builder(app).build(info)


class _Builder:
    def __init__(self, app: InstrumentedApp) -> None:
        self.app = app
        self.inputs: list[tuple[tuple[str, str], Any, str]] = []  # (key, type, mode)
        self.ids: dict[str, str] = {}

    def identify(self, kind: str, event: str) -> str:
        """A unique message id for ``event`` (commands and server events may share a name)."""
        key = f"{kind}:{event}"
        if key not in self.ids:
            base = message_id(event) if kind == "command" else f"{message_id(event)}.event"
            taken = set(self.ids.values())
            candidate, n = base, 2
            while candidate in taken:
                candidate, n = f"{base}_{n}", n + 1
            self.ids[key] = candidate
        return self.ids[key]

    def build(self, info: dict[str, Any]) -> dict[str, Any]:
        app = self.app
        commands = sorted(app.commands.values(), key=lambda command: command.name)
        events = dict(app.server_events)
        for command in commands:
            for name, payload in command.replies.items():
                if payload is not Any or name not in events:  # a name alone takes the app's declaration
                    events[name] = payload
        for command in commands:
            if command.plan.streams:
                events[STREAM_END_EVENT] = STREAM_END
                if command.name not in command.replies and _items_named_after(command):
                    events.setdefault(command.name, command.plan.item_type)
        if app.welcome:
            events.setdefault("welcome", _WELCOME)
        for command in commands:
            if command.model is not None:
                self.inputs.append((("command", command.name), command.model, "validation"))
        for name, payload in events.items():
            self.inputs.append((("event", name), payload, "serialization"))
        schemas, definitions = _schemas(self.inputs)

        messages: dict[str, Any] = {}
        operations: dict[str, Any] = {}
        for command in commands:
            mid = self.identify("command", command.name)
            messages[mid] = self.command_message(command, schemas.get(("command", command.name)))
            operations[mid] = self.command_operation(command, mid)
        for name in sorted(events):
            mid = self.identify("event", name)
            messages[mid] = self.event_message(name, schemas[("event", name)])
            operations[f"send.{mid}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{CHANNEL}"},
                "title": name,
                "summary": f"The server sends {name!r}.",
                "messages": [{"$ref": f"#/channels/{CHANNEL}/messages/{mid}"}],
            }
        messages[ERROR_EVENT] = self.error_message()
        operations[f"send.{ERROR_EVENT}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{CHANNEL}"},
            "title": ERROR_EVENT,
            "summary": "An error, caused by a command or a frame; the connection stays open.",
            "messages": [{"$ref": f"#/channels/{CHANNEL}/messages/{ERROR_EVENT}"}],
        }
        return {
            "asyncapi": ASYNCAPI_VERSION,
            "info": {
                "title": "websuckets app",
                "version": "1.0.0",
                "description": (
                    "Commands and events of a websuckets app over one websocket: JSON text frames, or"
                    " MessagePack binary frames with the subprotocol websuckets.v1.msgpack."
                ),
            }
            | info,
            "defaultContentType": "application/json",
            "channels": {
                CHANNEL: {
                    "address": "/",
                    "title": "The websocket connection",
                    "description": "Clients send commands; the server answers and pushes events, on any path.",
                    "messages": {mid: {"$ref": f"#/components/messages/{mid}"} for mid in messages},
                    "bindings": {"ws": {"headers": SUBPROTOCOL_HEADER, "bindingVersion": "0.1.0"}},
                }
            },
            "operations": operations,
            "components": {
                "schemas": definitions,
                "messages": messages,
                "correlationIds": {
                    "id": {
                        "description": "The command's id, copied into replies and errors.",
                        "location": "$message.payload#/id",
                    }
                },
            },
        }

    def command_message(self, command: Command, payload: dict[str, Any] | None) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "event": {"const": command.name},
            "payload": payload if payload is not None else {"description": "Any JSON value, or left out."},
            "token": {"type": "string", "description": "The token of a verified user."},
            "id": ID_SCHEMA,
            "traceparent": {"type": "string", "description": "A W3C trace context, read when tracing is on."},
        }
        required = ["event"]
        if command.model is not None:
            required.append("payload")
        if command.plan.streams or command.name == CANCEL_EVENT:
            required.append("id")
        if command.protected:
            required.append("token")
        message: dict[str, Any] = {
            "name": command.name,
            "title": command.name,
            "payload": {"type": "object", "required": required, "properties": properties},
            **CORRELATION,
            "x-websuckets-protected": command.protected,
        }
        summary = _summary(command.handler)
        if summary:
            message["summary"] = summary
        if command.protected:
            message["tags"] = [{"name": "protected", "description": "Needs the token of a verified user."}]
        if command.plan.streams:
            message["x-websuckets-stream"] = True
        return message

    def command_operation(self, command: Command, mid: str) -> dict[str, Any]:
        names = list(command.replies)
        if command.plan.streams:
            items = [command.name] if _items_named_after(command) and command.name not in names else []
            names = [*items, *names, STREAM_END_EVENT]
        replies = [{"$ref": f"#/channels/{CHANNEL}/messages/{self.identify('event', name)}"} for name in names]
        replies.append({"$ref": f"#/channels/{CHANNEL}/messages/{ERROR_EVENT}"})
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{CHANNEL}"},
            "title": command.name,
            "summary": _summary(command.handler) or f"The command {command.name!r}.",
            "messages": [{"$ref": f"#/channels/{CHANNEL}/messages/{mid}"}],
            "reply": {"channel": {"$ref": f"#/channels/{CHANNEL}"}, "messages": replies},
            "x-websuckets-protected": command.protected,
        }
        if command.protected:
            operation["tags"] = [{"name": "protected"}]
        if command.plan.streams:
            operation["x-websuckets-stream"] = True
            operation["description"] = (
                "A stream: each item is its own event carrying the command's id, then "
                f"{STREAM_END_EVENT!r} (or an error). {CANCEL_EVENT!r} with the id cancels it."
            )
        return operation

    def event_message(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "title": name,
            "payload": {
                "type": "object",
                "required": ["event", "payload"],
                "properties": {
                    "event": {"const": name},
                    "payload": payload or {"description": "Not declared: any JSON value."},
                    "id": ID_SCHEMA,
                },
            },
            **CORRELATION,
        }

    def error_message(self) -> dict[str, Any]:
        names = framework_error_names()
        return {
            "name": ERROR_EVENT,
            "title": "error",
            "summary": "An error: a framework error name below, or one a handler raised (InternalError).",
            "payload": {
                "type": "object",
                "required": ["event", "payload"],
                "properties": {
                    "event": {"const": ERROR_EVENT},
                    "payload": {
                        "type": "object",
                        "required": ["name", "details", "event", "id"],
                        "properties": {
                            "name": {
                                "type": "string",
                                "description": "The error's stable name: " + ", ".join(names) + ", or an app's own.",
                                "examples": names,
                            },
                            "details": {"description": "Any JSON value, or null."},
                            "event": {"type": ["string", "null"], "description": "The command's event, if known."},
                            "id": {**ID_SCHEMA, "oneOf": [*ID_SCHEMA["oneOf"], {"type": "null"}]},
                        },
                    },
                },
            },
            **CORRELATION,
            "x-websuckets-framework-errors": names,
        }


_WELCOME = {
    "type": "object",
    "required": ["client_id"],
    "properties": {"client_id": {"type": "string", "description": "This connection's id (socket.id)."}},
}


def _schemas(
    inputs: Iterable[tuple[tuple[str, str], Any, str]],
) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[str, Any]]:
    """JSON Schemas of every payload type at once, shared models under ``components.schemas``."""
    adapters = []
    plain: dict[tuple[str, str], dict[str, Any]] = {}
    for key, kind, mode in inputs:
        if isinstance(kind, dict):  # already a JSON Schema
            plain[key] = kind
        else:
            adapters.append((key, mode, TypeAdapter(kind)))
    if not adapters:
        return plain, {}
    found, definitions = TypeAdapter.json_schemas(adapters, ref_template=SCHEMAS)  # type: ignore[arg-type]
    schemas = {key: schema for (key, _mode), schema in found.items()}
    return schemas | plain, definitions.get("$defs", {})


def _items_named_after(command: Command) -> bool:
    """Whether a stream's items go out as events named after the command: all but yielded ``ClientEvent``s."""
    item = command.plan.item_type
    return not (isinstance(item, type) and issubclass(item, ClientEvent))


def _summary(handler: Any) -> str:
    doc = inspect.getdoc(handler)
    return doc.strip().splitlines()[0] if doc else ""


class AsyncAPIPage(Instrument):
    """Serve the app's AsyncAPI document at ``path`` and a readable page at ``html_path``.

    The document is built once, when the app starts. ``info`` goes to `document`.
    """

    def __init__(self, path: str | None = "/asyncapi.json", html_path: str | None = "/asyncapi", **info: Any) -> None:
        self.path = path
        self.html_path = html_path
        self.info = info
        self._json = b""
        self._html = b""

    async def startup(self, app: InstrumentedApp) -> None:
        spec = document(app, **self.info)
        self._json = json.dumps(spec, indent=1).encode()
        self._html = render_html(spec).encode()

    def http(self, connection: ServerConnection, request: Request) -> Response | None:
        if is_upgrade(request):
            return None
        path = url_path(request)
        if path == self.path:
            return json_response(HTTPStatus.OK, self._json)
        if path == self.html_path:
            return json_response(HTTPStatus.OK, self._html, "text/html; charset=utf-8")
        return None


def render_html(spec: dict[str, Any]) -> str:
    """A self-contained HTML page listing the document's commands, events and schemas."""
    messages = spec["components"]["messages"]
    escape = html.escape
    parts = [
        "<!doctype html><meta charset='utf-8'>",
        f"<title>{escape(spec['info']['title'])}</title>",
        "<style>body{font:15px system-ui;max-width:60em;margin:2em auto;padding:0 1em}"
        "pre{background:#f4f4f4;padding:.6em;overflow:auto}.tag{color:#a40}</style>",
        f"<h1>{escape(spec['info']['title'])} <small>{escape(spec['info']['version'])}</small></h1>",
        f"<p>{escape(spec['info'].get('description', ''))}</p>",
        "<p>AsyncAPI document: <a href='asyncapi.json'>asyncapi.json</a></p>",
    ]
    for action, heading in (("receive", "Commands (client to server)"), ("send", "Events (server to client)")):
        parts.append(f"<h2>{heading}</h2>")
        for operation in spec["operations"].values():
            if operation["action"] != action:
                continue
            mid = operation["messages"][0]["$ref"].rsplit("/", 1)[1]
            message = messages[mid]
            tag = " <span class='tag'>needs a token</span>" if operation.get("x-websuckets-protected") else ""
            parts.append(f"<h3><code>{escape(operation['title'])}</code>{tag}</h3>")
            parts.append(f"<p>{escape(operation.get('summary', ''))}</p>")
            if "reply" in operation:
                replies = [ref["$ref"].rsplit("/", 1)[1] for ref in operation["reply"]["messages"]]
                names = ", ".join(f"<code>{escape(messages[r]['name'])}</code>" for r in replies)
                parts.append(f"<p>Answers with: {names}</p>")
            payload = message["payload"]["properties"]["payload"]
            parts.append(f"<pre>{escape(json.dumps(payload, indent=2))}</pre>")
    if spec["components"]["schemas"]:
        parts.append("<h2>Schemas</h2>")
        for name, schema in spec["components"]["schemas"].items():
            parts.append(
                f"<h3 id='{escape(name)}'>{escape(name)}</h3><pre>{escape(json.dumps(schema, indent=2))}</pre>"
            )
    return "\n".join(parts)
