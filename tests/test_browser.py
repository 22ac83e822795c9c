"""The demo chat in a real browser: Chromium, driven by Playwright, through websuckets.js."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import TypeVar

import pytest
from examples_loader import load_example
from playwright.sync_api import Page, expect, sync_playwright
from pydantic import BaseModel
from websockets.asyncio.server import ServerConnection
from websockets.frames import CloseCode
from websockets.http11 import Request, Response
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from websuckets import ClientEvent, CommandGroup, Context, History, Session, WebSuckets
from websuckets.handshake_auth import HandshakeAuth

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests may run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS_SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "img" / "browser-demo.png"
UPDATE_SCREENSHOTS = "WEBSUCKETS_UPDATE_SCREENSHOTS"
WAIT_MS = 5000
VIEWPORT = {"width": 1200, "height": 400}


def screenshot_path(tmp_path: Path) -> Path:
    """Where the test saves its screenshot: the documentation's image only when asked to update it."""
    if os.environ.get(UPDATE_SCREENSHOTS) == "1":
        return DOCS_SCREENSHOT
    return tmp_path / DOCS_SCREENSHOT.name


class DemoServer(threading.Thread):
    """examples/chat.py's app (or another) on a free port of 127.0.0.1, in a thread with its own event loop."""

    def __init__(self, make_app: Callable[[], WebSuckets] | None = None) -> None:
        super().__init__(name="demo-server", daemon=True)
        self.make_app = make_app or (lambda: load_example("chat.py").create_app())
        self.app: WebSuckets | None = None
        self.port = 0
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by stop() in the test's thread
            self.error = exc
        finally:
            self.ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = self.app = self.make_app()
        async with app, app.serve("127.0.0.1", 0) as server:
            self.port = server.sockets[0].getsockname()[1]
            self.ready.set()
            await self._stopping.wait()
            await app.shutdown(server)

    def call(self, function: Callable[[], T]) -> T:
        """``function()`` run in the server's thread, on its loop."""
        assert self._loop is not None

        async def run() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=5)

    def call_async(self, function: Callable[[], Awaitable[T]]) -> T:
        """``await function()`` in the server's thread, on its loop."""
        assert self._loop is not None

        async def run() -> T:
            return await function()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=5)

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopping.set)
        self.join(timeout=15)
        assert not self.is_alive(), "the demo server did not stop"
        if self.error is not None:
            raise self.error


@pytest.fixture
def demo_url() -> Iterator[str]:
    server = DemoServer()
    server.start()
    assert server.ready.wait(timeout=15), "the demo server did not start"
    if server.error is not None:
        raise server.error
    try:
        yield f"http://127.0.0.1:{server.port}/"
    finally:
        server.stop()


def sign_up_and_log_in(page: Page, url: str, login: str) -> None:
    page.goto(url)
    expect(page.locator("#connection")).to_have_text("connected", timeout=WAIT_MS)
    page.fill("#login", login)
    page.fill("#password", f"{login}-secret")
    page.click("#signup")
    expect(page.locator("#status")).to_have_text(f"signed up as {login}: now log in", timeout=WAIT_MS)
    page.click("#signin")
    expect(page.locator("#status")).to_have_text(f"logged in as {login}", timeout=WAIT_MS)


def assert_fits_its_longest_option(page: Page, selector: str) -> None:
    """The list is as wide as its longest option needs: no option's text is cut off."""
    width, needed = page.eval_on_selector(
        selector,
        """select => {
            const width = select.getBoundingClientRect().width;
            select.style.width = "max-content";
            const needed = select.getBoundingClientRect().width;
            select.style.width = "";
            return [width, needed];
        }""",
    )
    assert width >= needed - 0.5, f"{selector} is {width:.0f} px wide; its longest option needs {needed:.0f} px"


def send(page: Page, to: str, text: str) -> None:
    page.click(f"#users li[data-login='{to}']")
    expect(page.locator("#to")).to_have_value(to)
    page.fill("#text", text)
    page.click("#send")


def test_the_screenshot_goes_to_the_docs_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite leaves docs/img/browser-demo.png alone unless WEBSUCKETS_UPDATE_SCREENSHOTS=1."""
    monkeypatch.delenv(UPDATE_SCREENSHOTS, raising=False)
    assert screenshot_path(tmp_path) == tmp_path / "browser-demo.png"
    monkeypatch.setenv(UPDATE_SCREENSHOTS, "0")
    assert screenshot_path(tmp_path).parent == tmp_path
    monkeypatch.setenv(UPDATE_SCREENSHOTS, "1")
    assert screenshot_path(tmp_path) == DOCS_SCREENSHOT


def test_two_browsers_chat(demo_url: str, tmp_path: Path) -> None:
    """Alice and Bob sign up and log in on two pages, see each other online, and exchange messages."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is needed at {CHROMIUM} for the browser test: apt-get install chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            alice = browser.new_page(viewport=VIEWPORT)
            bob = browser.new_page(viewport=VIEWPORT)
            page_errors: list[str] = []
            for page in (alice, bob):
                page.on("pageerror", lambda error: page_errors.append(str(error)))
                page.on("console", lambda message: message.type == "error" and page_errors.append(message.text))
            alice.goto(demo_url)
            expect(alice.locator("#to option")).to_have_text(["choose someone online"], timeout=WAIT_MS)
            assert_fits_its_longest_option(alice, "#to")  # the hint is the longest option before anyone logs in
            sign_up_and_log_in(alice, demo_url, "alice")
            sign_up_and_log_in(bob, demo_url, "bob")

            expect(alice.locator("#users li[data-login='bob']")).to_be_visible(timeout=WAIT_MS)
            expect(bob.locator("#users li[data-login='alice']")).to_be_visible(timeout=WAIT_MS)

            send(alice, "bob", "hi bob, this came through websuckets.js")
            expect(bob.locator("#messages li")).to_have_text(
                ["alice → youhi bob, this came through websuckets.js"], timeout=WAIT_MS
            )
            send(bob, "alice", "hello alice!")
            expect(alice.locator("#messages li")).to_have_text(
                ["you → bobhi bob, this came through websuckets.js", "bob → youhello alice!"], timeout=WAIT_MS
            )

            assert_fits_its_longest_option(alice, "#to")
            assert page_errors == []
            screenshot = screenshot_path(tmp_path)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            alice.screenshot(path=screenshot)
            assert screenshot.stat().st_size > 0
        finally:
            browser.close()


def authenticating_app(static: Path) -> WebSuckets:
    """A page at / and one command saying who the connection is, behind a required handshake token."""
    app = WebSuckets(handshake_auth=HandshakeAuth())
    group = CommandGroup()

    @group.command("who")
    async def who(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("user", {"id": ctx.user.id, "subprotocol": socket.subprotocol})

    app.include_command_group(group)
    app.add_static("/", static)
    return app


TOKEN_IN_A_BROWSER = """async (token) => {
    const { connect } = await import("/websuckets.js");
    const url = location.origin.replace(/^http/, "ws") + "/";
    const client = await connect(url, { token, handshakeToken: true, reconnect: false });
    const who = await client.request("who");
    client.close();
    const bare = await new Promise((resolve) => {
        const ws = new WebSocket(url, [`websuckets.token.${token}`]);  // no "websuckets" offered
        ws.onopen = () => { ws.close(); resolve("opened"); };
        ws.onclose = () => resolve("failed");
    });
    return { who, bare };
}"""


def test_a_browser_presents_its_token_as_a_subprotocol(tmp_path: Path) -> None:
    """Chromium opens a websocket with the token as a subprotocol; the server answers 'websuckets' and verifies it.

    Offered alone, the token's subprotocol gets no answer (the server never echoes a token), and
    Chromium fails such a handshake: websuckets.js always offers 'websuckets' beside it.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is needed at {CHROMIUM} for the browser test: apt-get install chromium")
    (tmp_path / "index.html").write_text("<!doctype html><title>handshake</title>")
    server = DemoServer(lambda: authenticating_app(tmp_path))
    server.start()
    assert server.ready.wait(timeout=15), "the server did not start"
    try:
        assert server.app is not None
        app = server.app
        token = server.call(lambda: app.issue_token("alice"))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{server.port}/")
                result = page.evaluate(TOKEN_IN_A_BROWSER, token)
            finally:
                browser.close()
        assert result == {"who": {"id": "alice", "subprotocol": "websuckets"}, "bare": "failed"}
    finally:
        server.stop()


class Room(BaseModel):
    room: str


class Say(BaseModel):
    room: str
    text: str


RESUMING_PAGE = """<!doctype html>
<title>resume</title>
<p id="connection">connecting</p>
<p id="position"></p>
<p id="recovered"></p>
<ol id="messages"></ol>
<script type="module">
  import { WebSucketsClient } from "/websuckets.js";

  const client = new WebSucketsClient(location.origin.replace(/^http/, "ws") + "/", { minDelay: 50, maxDelay: 200 });
  const show = (id, text) => (document.getElementById(id).textContent = text);
  client.on("open", () => {
    show("connection", "connected");
    client.send("join", { room: "lobby" }); // at every open: the resume goes out before it
  });
  client.on("close", () => show("connection", "disconnected"));
  client.on("websuckets position", ({ offset }) => show("position", `lobby at ${offset}`));
  client.on("resumed", ({ recovered }) => show("recovered", String(recovered)));
  client.on("said", (text) => {
    const item = document.createElement("li");
    item.textContent = text;
    document.getElementById("messages").append(item);
  });
</script>
"""


def resuming_app(static: Path, accepting: threading.Event) -> WebSuckets:
    """A page at /, ``join`` and ``say`` commands and a lobby with history; handshakes get 503 unless ``accepting``."""

    def gate(connection: ServerConnection, request: Request) -> Response | None:
        if accepting.is_set():
            return None
        return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "away for a test\n")

    app = WebSuckets(history={"lobby": History(size=100)}, handshake_checks=[gate])
    group = CommandGroup()

    @group.command("join")
    async def join(socket: ServerConnection, model: Room) -> None:
        await Session.join(socket.id, model.room)

    @group.command("say")
    async def say(socket: ServerConnection, model: Say, ctx: Context) -> None:
        await Session.broadcast(ClientEvent("said", model.text), room=model.room)
        await ctx.reply("sent", model.text)

    app.include_command_group(group)
    app.add_static("/", static)
    return app


async def drop_members(app: WebSuckets, room: str) -> int:
    """Close every connection in ``room`` from the server's side (1012, as a restarting server does)."""
    members = list(app.backend.room_members(room).values())
    for user in members:
        await user.socket.close(CloseCode.SERVICE_RESTART, "dropped for a test")
    return len(members)


def say(other: ClientConnection, text: str) -> None:
    """Broadcast ``text`` to the lobby from another client, and wait for the server to have sent it."""
    other.send(json.dumps({"event": "say", "payload": {"room": "lobby", "text": text}, "id": text}))
    reply = json.loads(other.recv(timeout=WAIT_MS / 1000))
    assert (reply["event"], reply["id"]) == ("sent", text), reply


def test_a_browser_resumes_its_room_after_the_server_drops_it(tmp_path: Path) -> None:
    """Chromium reconnects by itself, resumes the lobby, and shows exactly the messages it missed, in order.

    The server drops the page's connection and refuses handshakes (503) while another client
    broadcasts to the lobby; once it accepts again the page's client reconnects, sends
    ``websuckets resume`` before the page's own join, and gets ``recovered: true``.
    """
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is needed at {CHROMIUM} for the browser test: apt-get install chromium")
    (tmp_path / "index.html").write_text(RESUMING_PAGE)
    accepting = threading.Event()
    accepting.set()
    server = DemoServer(lambda: resuming_app(tmp_path, accepting))
    server.start()
    assert server.ready.wait(timeout=15), "the server did not start"
    try:
        assert server.app is not None
        app = server.app
        with sync_playwright() as playwright, ws_connect(f"ws://127.0.0.1:{server.port}/") as other:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
            try:
                page = browser.new_page()
                page_errors: list[str] = []
                page.on("pageerror", lambda error: page_errors.append(str(error)))
                page.goto(f"http://127.0.0.1:{server.port}/")
                expect(page.locator("#position")).to_have_text("lobby at 0", timeout=WAIT_MS)
                say(other, "before")
                expect(page.locator("#messages li")).to_have_text(["before"], timeout=WAIT_MS)

                accepting.clear()
                assert server.call_async(lambda: drop_members(app, "lobby")) == 1
                expect(page.locator("#connection")).to_have_text("disconnected", timeout=WAIT_MS)
                for text in ("missed 1", "missed 2", "missed 3"):
                    say(other, text)
                accepting.set()

                expect(page.locator("#recovered")).to_have_text("true", timeout=WAIT_MS)
                expect(page.locator("#connection")).to_have_text("connected")
                expect(page.locator("#position")).to_have_text("lobby at 4")
                say(other, "live")
                expect(page.locator("#messages li")).to_have_text(
                    ["before", "missed 1", "missed 2", "missed 3", "live"], timeout=WAIT_MS
                )
                assert page_errors == []
            finally:
                browser.close()
    finally:
        server.stop()


class Count(BaseModel):
    n: int
    pause: float = 0.0


STREAMING_PAGE = """<!doctype html>
<title>streams</title>
<script type="module">
  import { WebSucketsClient } from "/websuckets.js";

  window.client = new WebSucketsClient(location.origin.replace(/^http/, "ws") + "/", { timeout: 5000 });
  window.collect = async (n) => {
    const items = [];
    for await (const message of window.client.stream("count", { n })) items.push([message.event, message.payload]);
    return items;
  };
  window.abortAt = async (n, at) => {
    const controller = new AbortController();
    const seen = [];
    try {
      for await (const message of window.client.stream("count", { n, pause: 0.01 }, { signal: controller.signal })) {
        seen.push(message.payload);
        if (message.payload === at) controller.abort(new Error("enough"));
      }
      return { seen, thrown: null };
    } catch (error) {
      return { seen, thrown: error.message };
    }
  };
  window.client.on("open", () => (document.title = "connected"));
</script>
"""


def streaming_app(static: Path, closed: list[int]) -> WebSuckets:
    """A page at / and ``count``, a stream of ``n`` integers that notes in ``closed`` when its generator closes."""
    app = WebSuckets()
    group = CommandGroup()

    @group.command("count")
    async def count(socket: ServerConnection, model: Count) -> AsyncIterator[int]:
        try:
            for i in range(model.n):
                if model.pause:
                    await asyncio.sleep(model.pause)
                yield i
        finally:
            closed.append(model.n)

    app.include_command_group(group)
    app.add_static("/", static)
    return app


def test_a_browser_streams_and_cancels_with_an_abort_signal(tmp_path: Path) -> None:
    """Chromium iterates a stream through websuckets.js, then aborts one: the server closes its generator."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is needed at {CHROMIUM} for the browser test: apt-get install chromium")
    (tmp_path / "index.html").write_text(STREAMING_PAGE)
    closed: list[int] = []
    server = DemoServer(lambda: streaming_app(tmp_path, closed))
    server.start()
    assert server.ready.wait(timeout=15), "the server did not start"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
            try:
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{server.port}/")
                expect(page).to_have_title("connected", timeout=WAIT_MS)
                assert page.evaluate("window.collect(3)") == [["count", 0], ["count", 1], ["count", 2]]
                aborted = page.evaluate("window.abortAt(1000, 2)")
            finally:
                browser.close()
        assert aborted == {"seen": [0, 1, 2], "thrown": "enough"}
        for _ in range(100):  # bounded: the cancel reaches the server, which closes the generator
            if 1000 in server.call(lambda: list(closed)):
                break
            time.sleep(0.02)
        assert server.call(lambda: list(closed)) == [3, 1000]
    finally:
        server.stop()
