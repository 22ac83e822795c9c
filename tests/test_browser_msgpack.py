"""websuckets.js speaking MessagePack in Chromium (Playwright), with @msgpack/msgpack's browser build."""

from __future__ import annotations

import shutil
from pathlib import Path

import ormsgpack  # noqa: F401  (in the dev install: without it these tests fail, never skip)
import pytest
from playwright.sync_api import sync_playwright
from test_browser import CHROMIUM, CHROMIUM_ARGS, DemoServer
from test_msgpack import make_app

from websuckets import WebSuckets

UMD = Path(__file__).resolve().parent / "node" / "node_modules" / "@msgpack" / "msgpack" / "dist.umd" / "msgpack.min.js"

IN_A_BROWSER = """async () => {
  const { connect } = await import("/websuckets.js");
  const url = location.origin.replace(/^http/, "ws") + "/";
  const client = await connect(url, { msgpack: globalThis.MessagePack, reconnect: false });
  const plain = await connect(url, { reconnect: false });
  const protocol = await client.request("protocol");
  const blob = await client.request("blob echo", { name: "a", data: new Uint8Array([255, 0, 1]) });
  let error = null;
  try {
    await client.request("nope");
  } catch (failure) {
    error = failure.code;
  }
  const items = [];
  for await (const message of client.stream("count", { upto: 3 })) items.push(message.payload);
  const plainProtocol = await plain.request("protocol");
  client.close();
  plain.close();
  return { protocol, data: Array.from(blob.data), error, items, plainProtocol };
}"""


def test_chromium_speaks_msgpack_through_websuckets_js(tmp_path: Path) -> None:
    """The page passes the MessagePack global as the codec: subprotocol, raw bytes, error names, a stream."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is needed at {CHROMIUM} for the browser test: apt-get install chromium")
    if not UMD.exists():
        pytest.fail(f"@msgpack/msgpack is needed at {UMD}: npm ci in tests/node")
    shutil.copy(UMD, tmp_path / "msgpack.min.js")
    (tmp_path / "index.html").write_text('<!doctype html><title>msgpack</title><script src="/msgpack.min.js"></script>')

    def app() -> WebSuckets:
        made = make_app()
        made.add_static("/", tmp_path)
        return made

    server = DemoServer(app)
    server.start()
    assert server.ready.wait(timeout=15), "the server did not start"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{server.port}/")
                result = page.evaluate(IN_A_BROWSER)
            finally:
                browser.close()
    finally:
        server.stop()
    assert result == {
        "protocol": "websuckets.v1.msgpack",
        "data": [255, 0, 1],
        "error": "unknown_command",
        "items": [0, 1, 2],
        "plainProtocol": None,
    }
