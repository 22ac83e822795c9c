"""Static files over plain HTTP on the websocket port: `StaticFiles` and `WebSuckets.add_static`."""

from __future__ import annotations

import asyncio
import importlib.resources
import json
from pathlib import Path

import pytest
from http_get import http_get as http
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from websuckets import CommandGroup, Context, WebSuckets
from websuckets.exc import AppStateError
from websuckets.static import CLIENT_JS, StaticFiles, content_type


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory to serve, with an index, a nested file, and a secret next to it."""
    web = tmp_path / "web"
    (web / "sub").mkdir(parents=True)
    (web / "index.html").write_text("<h1>home</h1>")
    (web / "app.js").write_text("export const x = 1;")
    (web / "sub" / "index.html").write_text("sub home")
    (web / "sub" / "style.css").write_text("body {}")
    (tmp_path / "secret.txt").write_text("secret")
    return web


def make_app(site: Path) -> WebSuckets:
    app = WebSuckets()
    group = CommandGroup()

    @group.command("echo")
    async def echo(socket: ServerConnection, ctx: Context) -> None:
        await ctx.reply("echo", ctx.payload)

    app.include_command_group(group)
    app.add_static("/", site)
    app.add_static("/about.txt", site.parent / "secret.txt")
    return app


def test_resolve_files_directories_and_the_client(site: Path, tmp_path: Path) -> None:
    """Exact file routes, directory prefixes with index.html, and /websuckets.js from the package."""
    static = StaticFiles()
    static.add("/", site)
    static.add("/about", tmp_path / "secret.txt")
    assert static.resolve("/") == site / "index.html"
    assert static.resolve("/app.js?v=3") == site / "app.js"
    assert static.resolve("/sub/") == site / "sub" / "index.html"
    assert static.resolve("/sub/style.css") == site / "sub" / "style.css"
    assert static.resolve("/about") == tmp_path / "secret.txt"
    assert static.resolve("/websuckets.js") == CLIENT_JS
    assert static.resolve("/missing.js") is None


def test_resolve_refuses_to_leave_the_directory(site: Path, tmp_path: Path) -> None:
    """Dot segments, encoded ones, absolute paths and symbolic links cannot reach files outside."""
    (site / "link.txt").symlink_to(tmp_path / "secret.txt")
    static = StaticFiles()
    static.add("/static", site)
    for path in [
        "/static/../secret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/sub/../../secret.txt",
        "/static/..%2fsecret.txt",
        "/static//" + str(tmp_path / "secret.txt"),
        "/static/link.txt",
        "/secret.txt",
    ]:
        assert static.resolve(path) is None, path


def test_a_route_of_yours_wins_over_the_packaged_client(tmp_path: Path) -> None:
    """Mapping /websuckets.js yourself replaces the client the package offers there."""
    mine = tmp_path / "client.js"
    mine.write_text("// mine")
    static = StaticFiles()
    static.add("/websuckets.js", mine)
    assert static.resolve("/websuckets.js") == mine


def test_add_checks_its_arguments(tmp_path: Path) -> None:
    """A URL path must start with '/', and the target must exist."""
    static = StaticFiles()
    with pytest.raises(ValueError, match="starts with '/'"):
        static.add("index.html", tmp_path)
    with pytest.raises(FileNotFoundError):
        static.add("/x", tmp_path / "missing")


def test_content_types() -> None:
    """Types come from the suffix, with text types in UTF-8 and bytes for anything unknown."""
    assert content_type(Path("a.HTML")) == "text/html; charset=utf-8"
    assert content_type(Path("a.js")) == "text/javascript; charset=utf-8"
    assert content_type(Path("a.css")) == "text/css; charset=utf-8"
    assert content_type(Path("a.unknown-suffix")) == "application/octet-stream"


def test_the_client_ships_in_the_package() -> None:
    """websuckets.js is package data, so wheels carry it."""
    assert importlib.resources.files("websuckets").joinpath("js/websuckets.js").is_file()
    assert "export class WebSucketsClient" in CLIENT_JS.read_text()


async def test_add_static_after_start_is_refused(site: Path) -> None:
    """Static routes are configuration: adding one to a started app raises AppStateError."""
    app = make_app(site)
    async with app:
        with pytest.raises(AppStateError):
            app.add_static("/late", site)


async def test_http_and_websocket_share_the_port(site: Path) -> None:
    """Plain GETs get files, 404 (unknown or gone) or 405; a websocket upgrade on the same path reaches the app."""
    app = make_app(site)
    async with app, app.serve("127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]

        status, headers, body = await http(port, "/")
        assert (status, headers["content-type"], body) == (200, "text/html; charset=utf-8", b"<h1>home</h1>")
        assert headers["content-length"] == str(len(body))

        status, headers, body = await http(port, "/websuckets.js")
        assert (status, headers["content-type"]) == (200, "text/javascript; charset=utf-8")
        assert body == CLIENT_JS.read_bytes()

        status, headers, body = await http(port, "/sub/style.css", method="HEAD")
        assert (status, headers["content-length"], body) == (200, "7", b"")

        assert (await http(port, "/about.txt"))[2] == b"secret"
        (site.parent / "secret.txt").unlink()
        assert (await http(port, "/about.txt"))[0] == 404, "a file gone since add_static"
        assert (await http(port, "/missing"))[0] == 404
        assert (await http(port, "/../../etc/passwd"))[0] == 404
        status, headers, _ = await http(port, "/", method="DELETE")
        assert (status, headers["allow"]) == (405, "GET, HEAD")

        async with connect(f"ws://127.0.0.1:{port}/") as ws:
            await ws.send(json.dumps({"event": "echo", "payload": {"n": 1}, "id": 7}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert reply == {"event": "echo", "payload": {"n": 1}, "id": 7}


async def test_your_own_process_request_wins(site: Path) -> None:
    """`serve(process_request=...)` replaces the static hook."""

    def teapot(connection: ServerConnection, request: Request) -> Response:
        return connection.respond(418, "I'm a teapot\n")

    app = make_app(site)
    async with app, app.serve("127.0.0.1", 0, process_request=teapot) as server:
        assert (await http(server.sockets[0].getsockname()[1], "/"))[0] == 418


async def test_without_static_routes_http_is_refused() -> None:
    """An app with no static route leaves plain HTTP to websockets, which asks for an upgrade."""
    app = WebSuckets()
    async with app, app.serve("127.0.0.1", 0) as server:
        status, _, _ = await http(server.sockets[0].getsockname()[1], "/")
    assert status == 426
