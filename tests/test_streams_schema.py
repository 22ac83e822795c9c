"""Streams in the schema: the AsyncAPI document (checked by @asyncapi/parser) and the TypeScript declarations (tsc)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from examples_loader import load_example
from test_schema import CLIENT_JS, tsc, validate

from websuckets.typescript import declarations


def streams_spec() -> dict[str, Any]:
    return load_example("streams.py").app.asyncapi()


def test_a_stream_replies_with_its_items_then_the_end() -> None:
    """The stream's operation is marked, needs an id, and answers with its item event, websuckets end and error."""
    spec = streams_spec()
    operations, messages = spec["operations"], spec["components"]["messages"]
    search = operations["books_search"]
    assert search["x-websuckets-stream"] is True
    replies = [ref["$ref"].rsplit("/", 1)[1] for ref in search["reply"]["messages"]]
    assert replies == ["books_search.event", "websuckets_end.event", "error"]
    item = messages["books_search.event"]["payload"]["properties"]
    assert item["event"] == {"const": "books search"}
    assert item["payload"] == {"$ref": "#/components/schemas/Hit"}
    assert set(spec["components"]["schemas"]["Hit"]["properties"]) == {"title", "rank"}
    end = messages["websuckets_end.event"]["payload"]["properties"]["payload"]
    assert end["required"] == ["items", "cancelled"]
    assert "id" in messages["books_search"]["payload"]["required"]
    assert "id" in messages["websuckets_cancel"]["payload"]["required"]
    assert "too_many_streams" in messages["error"]["x-websuckets-framework-errors"]


def test_the_streams_document_is_valid_for_the_reference_parser(tmp_path: Path) -> None:
    """@asyncapi/parser finds no error and no warning in the example's document."""
    file = tmp_path / "streams.json"
    file.write_text(json.dumps(streams_spec()))
    result = validate([file])
    assert result.returncode == 0, result.stdout + result.stderr
    problems = [json.loads(line) for line in result.stdout.splitlines()]
    assert [p for p in problems if p["severity"] <= 1] == []


GOOD_TS = """
import { connect } from "./websuckets.js";

async function main(): Promise<void> {
  const client = await connect("ws://localhost:9000");
  const controller = new AbortController();
  for await (const hit of client.stream("books search", { text: "python" }, { signal: controller.signal })) {
    const title: string = hit.payload.title;
    const rank: number = hit.payload.rank;
    const event: "books search" = hit.event;
    console.log(title, rank, event, hit.id);
  }
}
main();
"""

BAD_TS = {
    "a wrong payload": 'client.stream("books search", { txt: "python" });',
    "a command that does not stream": 'client.stream("websuckets cancel");',
    "an item read as the wrong type": (
        'for await (const hit of client.stream("books search", { text: "a" })) { const n: number = hit.payload.title; }'
    ),
}


def test_typed_streams_accept_right_use_and_refuse_mistakes(tmp_path: Path) -> None:
    """tsc --strict accepts iterating a stream as declared, and refuses a wrong payload, command or item type."""
    shutil.copy(CLIENT_JS, tmp_path / "websuckets.js")
    (tmp_path / "websuckets.d.ts").write_text(declarations(streams_spec()))
    result = tsc(tmp_path, {"good": GOOD_TS})
    assert result.returncode == 0, result.stdout + result.stderr
    header = 'import { WebSucketsClient } from "./websuckets.js";\ndeclare const client: WebSucketsClient;\n'
    bad = {f"bad{n}": header + f"async function f() {{ {line} }}\n" for n, line in enumerate(BAD_TS.values())}
    result = tsc(tmp_path, bad)
    assert result.returncode != 0
    for (name, _), mistake in zip(bad.items(), BAD_TS, strict=True):
        assert f"{name}.ts(3," in result.stdout, f"{mistake} was accepted: {result.stdout}"
