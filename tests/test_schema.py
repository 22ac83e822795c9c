"""The app as a schema: `WebSuckets.asyncapi` checked by @asyncapi/parser, TypeScript checked by tsc."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from examples_loader import EXAMPLES, load_example
from http_get import http_get
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection

from websuckets import CommandGroup, WebSuckets
from websuckets.asyncapi import framework_error_names
from websuckets.cli import main
from websuckets.static import CLIENT_JS
from websuckets.typescript import declarations, type_of

NODE = Path(__file__).resolve().parent / "node"
NODE_TIMEOUT = 60


def node_tools() -> Path:
    """tests/node/node_modules, installed by ``npm ci`` in tests/node (scripts/setup does it)."""
    modules = NODE / "node_modules"
    if shutil.which("node") is None or not (modules / "@asyncapi" / "parser").is_dir():
        raise RuntimeError("the schema tests need node and 'npm ci' in tests/node: run 'bash scripts/setup --system'")
    return modules


def validate(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    node_tools()
    return subprocess.run(
        ["node", str(NODE / "validate_asyncapi.mjs"), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=False,
    )


def example_apps() -> dict[str, WebSuckets]:
    return {
        "chat": load_example("chat.py").create_app(),
        "quickstart": load_example("quickstart.py").app,
        "rooms": load_example("rooms.py").app,
        "di_scopes": load_example("di_scopes.py").create_app(),
    }


def chat_spec() -> dict[str, Any]:
    return load_example("chat.py").create_app().asyncapi()


def test_the_chat_document_describes_commands_replies_events_and_errors() -> None:
    """Every command is a receive operation with its payload schema, token need, replies and the error event."""
    spec = chat_spec()
    assert spec["asyncapi"] == "3.0.0"
    assert spec["info"]["title"] == "websuckets app"
    operations, messages = spec["operations"], spec["components"]["messages"]
    create = operations["user_create"]
    assert create["action"] == "receive"
    assert create["summary"] == "Sign up: a new login and its password."
    assert [ref["$ref"] for ref in create["reply"]["messages"]] == [
        "#/channels/websocket/messages/user_created.event",
        "#/channels/websocket/messages/error",
    ]
    frame = messages["user_create"]["payload"]
    assert frame["required"] == ["event", "payload"]
    assert frame["properties"]["payload"] == {"$ref": "#/components/schemas/Credentials"}
    assert spec["components"]["schemas"]["Credentials"]["properties"]["login"]["maxLength"] == 32
    assert messages["chat_send"]["payload"]["required"] == ["event", "payload", "token"]
    assert messages["chat_send"]["x-websuckets-protected"] is True
    assert operations["user_auth"]["x-websuckets-protected"] is False
    assert messages["incoming_message.event"]["payload"]["properties"]["payload"] == {
        "$ref": "#/components/schemas/IncomingMessage"
    }
    assert messages["users_list.event"]["payload"]["properties"]["payload"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    assert messages["message_sent.event"]["payload"]["properties"]["payload"] == {"type": "null"}
    assert messages["error"]["x-websuckets-framework-errors"] == framework_error_names()
    assert {"unknown_command", "validation_error", "unauthorized", "rate_limited"} <= set(framework_error_names())
    assert spec["components"]["correlationIds"]["id"]["location"] == "$message.payload#/id"
    assert "send.incoming_message.event" in operations


def test_the_original_decorator_still_works_and_an_undeclared_command_is_documented() -> None:
    """group.command(name, True) as the original documentation writes it; no model and no replies still document."""
    app = WebSuckets(welcome=True)
    group = CommandGroup("g")

    @group.command("bare", True)
    async def bare(socket: ServerConnection) -> None: ...

    @group.command("named", replies=["pushed"])
    async def named(socket: ServerConnection) -> None: ...

    app.include_command_group(group)
    spec = app.asyncapi(title="mine", version="2.0")
    assert spec["info"]["title"] == "mine"
    assert spec["operations"]["g_bare"]["x-websuckets-protected"] is True
    assert spec["components"]["messages"]["g_bare"]["payload"]["required"] == ["event", "token"]
    assert spec["components"]["messages"]["pushed.event"]["payload"]["properties"]["payload"] == {
        "description": "Not declared: any JSON value."
    }
    assert "welcome.event" in spec["components"]["messages"]


def test_the_examples_documents_are_valid_for_the_reference_parser(tmp_path: Path) -> None:
    """@asyncapi/parser (the reference validator) finds no error and no warning in any example's document."""
    files = []
    for name, app in example_apps().items():
        file = tmp_path / f"{name}.json"
        file.write_text(json.dumps(app.asyncapi()))
        files.append(file)
    result = validate(files)
    assert result.returncode == 0, result.stdout + result.stderr
    problems = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p for p in problems if p["severity"] <= 1] == []  # 0: error, 1: warning


def test_the_parser_does_catch_a_broken_document(tmp_path: Path) -> None:
    """The validator run above does reject a document that is wrong (an operation without its action)."""
    spec = chat_spec()
    del spec["operations"]["user_create"]["action"]
    file = tmp_path / "broken.json"
    file.write_text(json.dumps(spec))
    result = validate([file])
    assert result.returncode == 1
    assert "action" in result.stdout


GOOD_TS = """
import { WebSucketsClient, connect } from "./websuckets.js";

async function main(): Promise<void> {
  const client: WebSucketsClient = await connect("ws://localhost:9000");
  const created = await client.request("user create", { login: "alice", password: "wonderland" });
  const login: string = created.login;
  const auth = await client.request("user auth", { login, password: "wonderland" }, { timeout: 500 });
  const token: string = auth.token;
  const users: string[] = await client.request("user list");
  client.send("chat send", { to: users[0], text: "hi" });
  client.on("incoming message", (message) => console.log(message.from.toUpperCase(), message.text, token));
  client.on("error", (error) => console.log(error.name, error.id));
  client.on("close", (info) => console.log(info.code));
}
main();
"""

BAD_TS = {
    "a wrong payload": 'client.request("user create", { login: "alice", pasword: "x" });',
    "a field of the wrong type": 'client.request("chat send", { to: "bob", text: 42 });',
    "a missing payload": 'client.request("user auth");',
    "an unknown command": 'client.request("user delete", {});',
    "a listener expecting the wrong payload": 'client.on("incoming message", (m: { body: string }) => m.body);',
    "a wrong reply type": 'client.request("user list").then((users: number[]) => users);',
}


def tsc(directory: Path, sources: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Type-check each source as a file of its own, in one run of tsc --noEmit --strict."""
    for name, source in sources.items():
        (directory / f"{name}.ts").write_text(source)
    binary = node_tools() / ".bin" / "tsc"
    options = ["--noEmit", "--strict", "--target", "es2022", "--module", "es2022", "--moduleResolution", "bundler"]
    return subprocess.run(
        [str(binary), *options, "--lib", "es2022,dom", *(str(directory / f"{name}.ts") for name in sources)],
        capture_output=True,
        text=True,
        timeout=NODE_TIMEOUT,
        check=False,
    )


@pytest.fixture
def typed_client(tmp_path: Path) -> Path:
    """A directory with websuckets.js and the chat's websuckets.d.ts beside it, as the guide says."""
    shutil.copy(CLIENT_JS, tmp_path / "websuckets.js")
    (tmp_path / "websuckets.d.ts").write_text(declarations(chat_spec()))
    return tmp_path


def test_typed_client_accepts_right_payloads_and_refuses_wrong_ones(typed_client: Path) -> None:
    """tsc --noEmit --strict accepts a program using the chat as declared, and fails on each kind of mistake."""
    result = tsc(typed_client, {"good": GOOD_TS})
    assert result.returncode == 0, result.stdout + result.stderr
    header = 'import { WebSucketsClient } from "./websuckets.js";\ndeclare const client: WebSucketsClient;\n'
    bad = {f"bad{n}": header + line + "\n" for n, line in enumerate(BAD_TS.values())}
    result = tsc(typed_client, bad)
    assert result.returncode != 0
    for (name, _), mistake in zip(bad.items(), BAD_TS, strict=True):
        assert f"{name}.ts(3," in result.stdout, f"{mistake} was accepted: {result.stdout}"


def test_json_schema_to_typescript() -> None:
    """The JSON Schema pydantic writes becomes the TypeScript a reader expects."""

    class Item(BaseModel):
        tags: list[str]
        size: int | None = None
        kind: str = "a"
        extra: dict[str, float] = {}
        pair: tuple[int, str] = (1, "a")

    schema = Item.model_json_schema()
    assert type_of(schema) == (
        "{ tags: string[]; size?: null | number; kind?: string; "
        "extra?: { [key: string]: number; }; pair?: [number, string]; }"
    )
    assert type_of({"enum": ["a", "b"]}) == '"a" | "b"'
    assert type_of({}) == "unknown"


def test_cli_prints_json_yaml_and_typescript(monkeypatch: pytest.MonkeyPatch) -> None:
    """websuckets asyncapi MODULE:APP [--yaml] and websuckets typescript MODULE:APP print to stdout."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    runner = CliRunner()
    result = runner.invoke(main, ["asyncapi", "quickstart:app"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["asyncapi"] == "3.0.0"
    result = runner.invoke(main, ["asyncapi", "quickstart:app", "--yaml"])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.output) == json.loads(runner.invoke(main, ["asyncapi", "quickstart:app"]).output)
    result = runner.invoke(main, ["typescript", "quickstart:app"])
    assert result.exit_code == 0, result.output
    assert "export interface Commands {" in result.output


async def test_the_page_serves_the_document_and_html() -> None:
    """AsyncAPIPage: /asyncapi.json is the document, /asyncapi a readable page naming each command."""
    app = load_example("chat.py").create_app()  # the chat turns the page on
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        status, headers, body = await http_get(port, "/asyncapi.json")
        assert (status, headers["content-type"]) == (200, "application/json")
        assert json.loads(body) == app.asyncapi(title="websuckets chat")
        status, headers, body = await http_get(port, "/asyncapi")
        assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8")
        assert b"<code>chat send</code> <span class='tag'>needs a token</span>" in body
        assert (await http_get(port, "/"))[0] == 200  # the chat's page is still there


@pytest.mark.parametrize(
    ("file", "render"),
    [
        ("chat.asyncapi.json", lambda spec: json.dumps(spec, indent=2) + "\n"),
        ("chat.d.ts", lambda spec: declarations(spec, source="websuckets typescript chat:create_app")),
    ],
)
def test_the_guides_copies_are_up_to_date(file: str, render: Any) -> None:
    """docs/schema/ holds what the commands print for the demo chat (regenerate them when this fails)."""
    docs = Path(__file__).resolve().parent.parent / "docs" / "schema"
    assert (docs / file).read_text() == render(chat_spec())
