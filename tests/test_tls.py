"""TLS: an ssl context passes through app.serve(...) and websuckets run --certfile/--keyfile (wss://)."""

import json
import re
import ssl
import subprocess
from pathlib import Path

import pytest
from test_cli import websuckets
from websockets.asyncio.client import connect

from websuckets import WebSuckets
from websuckets.testing import TestClient

RUN = ("run", "cli_app:app", "--host", "127.0.0.1", "--port", "0")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, made by the openssl command."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def client_context(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


async def test_serve_passes_an_ssl_context_through(certificate: tuple[Path, Path]) -> None:
    """app.serve(ssl=...) serves wss:// and the data path works over it."""
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    app = WebSuckets()
    client = TestClient(app)
    async with client, app.serve("127.0.0.1", 0, ssl=server_context) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"wss://127.0.0.1:{port}", ssl=client_context(cert)) as ws:
            await ws.send(json.dumps({"event": "nope"}))
            assert json.loads(await ws.recv())["payload"]["name"] == "unknown_command"


async def test_run_with_certfile_and_keyfile_serves_wss(certificate: tuple[Path, Path]) -> None:
    """websuckets run --certfile --keyfile prints a wss:// address and serves TLS there."""
    cert, key = certificate
    process = websuckets(*RUN, "--certfile", str(cert), "--keyfile", str(key))
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"wss://\S+", line)
        assert found, line
        async with connect(found.group(), ssl=client_context(cert)) as ws:
            assert json.loads(await ws.recv())["event"] == "welcome"
    finally:
        process.terminate()
        process.communicate(timeout=15)
