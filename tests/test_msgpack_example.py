"""The MessagePack guide's example (examples/msgpack.py): in memory, and over a socket with the Python client."""

from __future__ import annotations

import base64

import ormsgpack  # noqa: F401  (in the dev install: without it these tests fail, never skip)
from examples_loader import load_example

from websuckets.client import connect
from websuckets.testing import TestClient

IMAGE = b"\x89PNG\r\n\x1a\n"


async def test_an_upload_reaches_json_and_msgpack_members_each_in_its_format() -> None:
    """Raw bytes in MessagePack, base64 in JSON, from one broadcast."""
    example = load_example("msgpack.py")
    async with TestClient(example.app) as client:
        uploader, packed, text = [await client.connect(format=f) for f in ("msgpack", "msgpack", "json")]
        for member in (packed, text):
            await member.request("thumbs join", {"room": "gallery"})
        stored = await uploader.request("thumbs upload", {"name": "dot.png", "image": IMAGE})
        assert stored.payload == {"name": "dot.png", "size": len(IMAGE)}
        assert (await packed.receive()).payload == {"name": "dot.png", "image": IMAGE}
        assert (await text.receive()).payload == {"name": "dot.png", "image": base64.b64encode(IMAGE).decode()}


async def test_the_python_client_uploads_in_msgpack() -> None:
    """connect(..., format="msgpack") over a real socket, as the guide shows."""
    example = load_example("msgpack.py")
    async with TestClient(example.app, real=True) as server, connect(server.url, format="msgpack") as client:
        reply = await client.request("thumbs upload", {"name": "dot.png", "image": IMAGE})
        assert reply.payload == {"name": "dot.png", "size": len(IMAGE)}
        reply = await client.request("thumbs join", {"room": "gallery"})
        assert reply.payload == "gallery"
