"""``StaticFiles``: a few files served over plain HTTP on the websocket server's own port.

A ``websockets`` ``process_request`` hook: a plain HTTP ``GET`` (or ``HEAD``) gets a file from a
small table of URL paths, websocket upgrade requests go on to the app. It is meant for a demo page
and the browser client (``/websuckets.js``, always offered), not as a web server: files are read
whole, on each request, with no caching.
"""

from __future__ import annotations

import mimetypes
import os
from email.utils import formatdate
from http import HTTPStatus
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from .http import is_upgrade

__all__ = ["CLIENT_JS", "StaticFiles"]

CLIENT_JS = Path(__file__).resolve().parent / "js" / "websuckets.js"
"""The browser client that ships with the package, served at ``/websuckets.js``."""

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}

INDEX = "index.html"


class StaticFiles:
    """A ``process_request`` hook serving files and directories at URL paths.

    ``static.add("/", "web/")`` serves ``web/index.html`` at ``/`` and ``web/app.js`` at
    ``/app.js``; ``static.add("/about", "about.html")`` serves one file. Paths under a directory
    cannot leave it. Pass the instance as ``process_request=`` to ``websockets`` ``serve``, or let
    `websuckets.WebSuckets.add_static` do it.
    """

    def __init__(self) -> None:
        self.files: dict[str, Path] = {}
        self.directories: dict[str, Path] = {}

    def add(self, url_path: str, target: str | os.PathLike[str]) -> None:
        """Serve ``target`` at ``url_path``: a file at that exact path, a directory as a prefix.

        Raises ``ValueError`` if ``url_path`` does not start with ``/`` and ``FileNotFoundError``
        if ``target`` does not exist.
        """
        if not url_path.startswith("/"):
            raise ValueError(f"a URL path starts with '/': {url_path!r}")
        path = Path(target).resolve()
        if path.is_dir():
            self.directories[url_path.rstrip("/") + "/"] = path
        elif path.is_file():
            self.files[url_path] = path
        else:
            raise FileNotFoundError(f"no file or directory to serve at {url_path}: {path}")

    def resolve(self, url_path: str) -> Path | None:
        """The file to serve for ``url_path`` (its query string ignored), or ``None``."""
        path = unquote(urlsplit(url_path).path)
        if path in self.files:
            return self.files[path]
        for prefix in sorted(self.directories, key=len, reverse=True):  # the longest prefix wins
            if path == prefix.rstrip("/") or path.startswith(prefix):
                found = _inside(self.directories[prefix], path[len(prefix) :])
                if found is not None:
                    return found
        return CLIENT_JS if path == "/websuckets.js" else None

    def __call__(self, connection: ServerConnection, request: Request) -> Response | None:
        """Answer a plain HTTP request with a file, 404 or 405; ``None`` for a websocket upgrade."""
        if is_upgrade(request):
            return None
        method = request.method
        if method not in ("GET", "HEAD"):
            response = connection.respond(HTTPStatus.METHOD_NOT_ALLOWED, "Method Not Allowed\n")
            response.headers["Allow"] = "GET, HEAD"
            return response
        file = self.resolve(request.path)
        if file is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        try:
            body = file.read_bytes()
        except OSError:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        return file_response(file, body, head=method == "HEAD")


def file_response(file: Path, body: bytes, *, head: bool = False) -> Response:
    """A 200 response holding ``body``, typed by ``file``'s suffix (no body for ``HEAD``)."""
    headers = Headers(
        [
            ("Date", formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", content_type(file)),
            ("Cache-Control", "no-cache"),
            ("X-Content-Type-Options", "nosniff"),
        ]
    )
    return Response(HTTPStatus.OK.value, HTTPStatus.OK.phrase, headers, b"" if head else body)


def content_type(file: Path) -> str:
    """The ``Content-Type`` for ``file``, by its suffix."""
    suffix = file.suffix.lower()
    if suffix in CONTENT_TYPES:
        return CONTENT_TYPES[suffix]
    guessed, _ = mimetypes.guess_type(file.name)
    return guessed or "application/octet-stream"


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it is a file inside ``root``; ``index.html`` for a directory."""
    relative_path = PurePosixPath(relative)
    parts = relative_path.parts
    if relative_path.is_absolute() or any(part in ("..", ".") or "\\" in part or "\x00" in part for part in parts):
        return None
    candidate = root.joinpath(*parts).resolve()
    if not candidate.is_relative_to(root):
        return None  # a symbolic link pointing out of the directory
    if candidate.is_dir():
        candidate = candidate / INDEX
    return candidate if candidate.is_file() else None
