"""The ``websuckets`` command: ``run`` serves an app and stops gracefully; errors fit on one line."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from websuckets import WebSuckets, __version__
from websuckets.cli import _source_from_direct_url, _websuckets_source, load_app, main, template_dir

APPS = Path(__file__).parent / "apps"
ROOT = Path(__file__).resolve().parent.parent


def websuckets(*args: str, cwd: Path = APPS) -> subprocess.Popen[str]:
    """``python -m websuckets ARGS`` in ``cwd``: tests/apps, where the test apps are importable."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "websuckets", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Run ``websuckets run cli_app:app --port 0`` until it prints its address; yield it and the URL."""
    process = websuckets("run", "cli_app:app", "--host", "127.0.0.1", "--port", "0", *args)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"ws://\S+", line)
        assert found, line + (process.stderr.read() if process.stderr else "")
        yield process, found.group()
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_version() -> None:
    """``--version`` prints the package's version."""
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


HELP_IN_DOCS = re.compile(r"```console\n\$ (websuckets(?: \w+)* --help)\n(.*?)```", re.DOTALL)


def test_the_help_the_docs_show_is_the_commands_own() -> None:
    """Every ``websuckets ... --help`` the docs show is what the command prints, on an 80-column terminal."""
    shown = [
        (page.name, match.group(1), match.group(2))
        for page in sorted((ROOT / "docs").rglob("*.md"))
        for match in HELP_IN_DOCS.finditer(page.read_text())
    ]
    assert [command for _, command, _ in shown].count("websuckets --help") == 1  # the deployment guide's
    for page, command, output in shown:
        result = CliRunner().invoke(main, command.split()[1:], prog_name="websuckets", terminal_width=80)
        assert result.exit_code == 0, result.output
        assert result.output == output, f"{page}: {command}"


def test_the_deployment_guide_lists_every_option_of_run() -> None:
    """The option table of ``websuckets run`` names each of its options, and no other."""
    guide = (ROOT / "docs" / "guide" / "deployment.md").read_text()
    table = guide.split("### `websuckets run MODULE:APP`", 1)[1].split("\n| option |", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"`(--[a-z-]+)", table))
    run = main.get_command(click.Context(main), "run")
    assert run is not None
    options = {name for param in run.params for name in param.opts if name.startswith("--")} - {"--help"}
    assert listed == options


def test_env_prefix_names_a_variable_that_is_wrong() -> None:
    """``--env-prefix MY_CHAT`` reads MY_CHAT_PORT; a value that is not a port is an error naming the variable."""
    result = CliRunner().invoke(main, ["run", "cli_app:app", "--env-prefix", "MY_CHAT"], env={"MY_CHAT_PORT": "http"})
    assert result.exit_code == 2
    assert "Error: MY_CHAT_PORT='http' is not a valid --port: 'http' is not a valid integer range." in result.output


def test_a_factory_is_called_to_make_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    """``MODULE:FACTORY``, as the help says (``chat:create_app``), names a function that makes the app."""
    monkeypatch.chdir(ROOT / "examples")
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    try:
        assert isinstance(load_app("chat:create_app"), WebSuckets)
    finally:
        sys.modules.pop("chat", None)


@pytest.mark.parametrize("command", [[], ["run"], ["new"], ["asyncapi"], ["typescript"]])
def test_every_command_has_help(command: list[str]) -> None:
    """``--help`` works on the group and on every command."""
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module:app", "cannot import 'no_such_module': no module named 'no_such_module'"),
        ("cli_app:missing", "module 'cli_app' has no attribute 'missing'"),
        ("cli_app:not_an_app", "cli_app:not_an_app is not a WebSuckets app: its type is int"),
        ("cli_app", "expected MODULE:ATTRIBUTE"),
    ],
)
def test_run_names_what_is_wrong_in_one_line(spec: str, message: str) -> None:
    """A module or attribute that does not exist is a one-line error, not a traceback."""
    process = websuckets("run", spec)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode != 0
    assert message in stderr
    assert "Traceback" not in stderr


def test_run_says_when_the_port_is_taken() -> None:
    """A port already in use is a one-line error, and the only one: the app does not start, then stop."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        process = websuckets("run", "cli_app:app", "--host", "127.0.0.1", "--port", port)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert stderr == f"Error: port {port} on 127.0.0.1 is already in use\n"


def test_an_unreachable_redis_is_the_line_the_scaling_guide_shows(tmp_path: Path) -> None:
    """With Redis away, ``websuckets run`` prints the "Scaling out" guide's line (in uvloop's words, as it shows)."""
    pytest.importorskip("redis")
    pytest.importorskip("uvloop")
    guide = (ROOT / "docs" / "guide" / "scaling.md").read_text()
    shown = re.search(r"\$ websuckets run chat\.app:app\n(Error: cannot reach Redis .*)\n```", guide)
    assert shown is not None
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "away.py").write_text(
        "from websuckets import WebSuckets\n"
        "from websuckets.backends.redis import RedisBackend\n\n"
        f'app = WebSuckets(backend=RedisBackend("redis://:secret@localhost:{port}/0"))\n'
    )
    process = websuckets("run", "away:app", "--loop", "uvloop", cwd=tmp_path)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 1
    assert stderr == shown.group(1).replace(":6379", f":{port}") + "\n"


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
async def test_run_serves_then_finishes_commands_in_flight_and_closes_with_1001(stop: signal.Signals) -> None:
    """Ctrl+C or SIGTERM: a command in flight still gets its reply, then the connection closes with 1001."""
    with serving() as (process, url):
        async with connect(url) as ws:
            assert json.loads(await ws.recv())["event"] == "welcome"  # the connect hook ran
            await ws.send(json.dumps({"event": "job ping"}))
            assert json.loads(await ws.recv())["event"] == "pong"
            await ws.send(json.dumps({"event": "job run", "payload": {"seconds": 0.5}}))
            assert json.loads(await ws.recv())["event"] == "started"
            process.send_signal(stop)
            assert json.loads(await ws.recv()) == {"event": "done", "payload": 0.5}
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == CloseCode.GOING_AWAY
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr


def test_run_says_where_it_serves_in_one_line() -> None:
    """Start-up announces the address once: the printed line, not also a log line saying the same."""
    with serving("--log-level", "info") as (process, url):
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=15)
    port = url.rsplit(":", 1)[1]
    printed = f"websuckets: serving on {url} (press Ctrl+C to stop)"  # the line `serving` has read already
    announcements = [line for line in [printed, *(stdout + stderr).splitlines()] if f":{port}" in line]
    assert announcements == [printed], stdout + stderr
    assert "app stopped" in stderr  # the log is on: the line is not missing because nothing was logged


async def test_ctrl_c_drops_a_connection_that_never_sent_its_request() -> None:
    """A TCP connection still waiting to send its opening request (a browser's preconnect) does not hold up Ctrl+C."""
    with serving() as (process, url):
        host, port = url.removeprefix("ws://").rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))
        async with connect(url) as ws:  # accepted after the bare one, so the server holds both now
            assert json.loads(await ws.recv())["event"] == "welcome"
        process.send_signal(signal.SIGINT)
        try:
            assert await asyncio.wait_for(reader.read(), 15) == b""  # the server closed it
        finally:
            writer.close()
        _, stderr = process.communicate(timeout=15)
    assert process.returncode == 0, stderr
    assert "cancelling" not in stderr  # the shutdown did not have to wait for it, then cancel it


def test_new_refuses_a_directory_that_is_not_empty(tmp_path: Path) -> None:
    """``websuckets new`` into a directory with files in it is a one-line error, and writes nothing."""
    (tmp_path / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["new", str(tmp_path), "--name", "x"])
    assert result.exit_code == 1
    assert f"{tmp_path} is not empty" in result.output
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


async def test_run_reload_restarts_the_app_when_its_code_changes(tmp_path: Path) -> None:
    """``--reload`` serves the new code after a .py file changes."""
    source = (APPS / "cli_app.py").read_text()
    (tmp_path / "cli_app.py").write_text(source)
    process = websuckets("run", "cli_app:app", "--host", "127.0.0.1", "--port", "0", "--reload", cwd=tmp_path)
    try:
        assert process.stdout is not None
        first = re.search(r"ws://\S+", process.stdout.readline())
        assert first
        async with connect(first.group()) as ws:
            await ws.recv()
            await ws.send(json.dumps({"event": "job ping"}))
            assert json.loads(await ws.recv())["event"] == "pong"
        (tmp_path / "cli_app.py").write_text(source.replace('ClientEvent("pong")', 'ClientEvent("pong again")'))
        second = re.search(r"ws://\S+", process.stdout.readline())  # the restarted app prints its address
        assert second
        async with connect(second.group()) as ws:
            await ws.recv()
            await ws.send(json.dumps({"event": "job ping"}))
            assert json.loads(await ws.recv())["event"] == "pong again"
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=15)
    assert "restarting" in stderr


def test_new_reports_a_name_the_template_refuses_in_one_line(tmp_path: Path) -> None:
    """A project name the template refuses is a one-line error, and nothing is created."""
    result = CliRunner().invoke(main, ["new", str(tmp_path / "p"), "--name", "websuckets"])
    assert result.exit_code == 1
    assert "would shadow a package the project imports" in result.output
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_module:app", "cannot import 'no_such_module'"),
        ("cli_app:missing", "module 'cli_app' has no attribute 'missing'"),
        ("cli_app:app.missing", "module 'cli_app' has no attribute 'app.missing'"),
        ("cli_app:not_an_app", "is not a WebSuckets app: its type is int"),
    ],
)
def test_load_app_says_what_is_wrong(spec: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`load_app` names the module or attribute that is missing, or what it found instead of an app."""
    monkeypatch.chdir(APPS)
    monkeypatch.syspath_prepend(str(APPS))
    with pytest.raises(click.ClickException, match=re.escape(message)):
        load_app(spec)


def test_load_app_finds_the_app_and_keeps_an_inner_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app is found by ``module:attribute``; a module whose own import fails keeps its traceback."""
    monkeypatch.syspath_prepend(str(APPS))
    assert isinstance(load_app("cli_app:app"), WebSuckets)
    (tmp_path / "broken_app.py").write_text("import no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="no_such_dependency"):
        load_app("broken_app:app")


def test_the_template_is_found_beside_a_checkout() -> None:
    """From a checkout, ``websuckets new`` renders the repository's app_template/."""
    assert (template_dir() / "copier.yml").is_file()


def test_new_says_copier_is_missing_before_asking_anything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the ``cli`` extra, ``websuckets new`` names what to install at once, without asking for a name."""
    monkeypatch.setitem(sys.modules, "copier", None)  # what `import copier` finds when it is not installed
    result = CliRunner().invoke(main, ["new", str(tmp_path / "p")], input="")
    assert result.exit_code == 1
    assert "websuckets new needs copier, which is not installed" in result.output
    assert "Project name" not in result.output
    assert not (tmp_path / "p").exists()


def test_new_records_this_checkout_as_where_websuckets_comes_from() -> None:
    """Run from a checkout, ``websuckets new`` gives the project the checkout's root to install websuckets from."""
    assert _websuckets_source() == str(Path(__file__).resolve().parent.parent)


@pytest.mark.parametrize(
    ("direct_url", "source"),
    [
        ({"url": "file:///home/me/websuckets", "dir_info": {}}, "/home/me/websuckets"),
        (
            {"url": "file:///srv/my%20wheels/websuckets-0.1.0-py3-none-any.whl", "archive_info": {}},
            "/srv/my wheels/websuckets-0.1.0-py3-none-any.whl",
        ),
        (
            {"url": "https://example.org/ws.git", "vcs_info": {"vcs": "git", "commit_id": "abc123"}},
            "websuckets @ git+https://example.org/ws.git@abc123",
        ),
        (
            {"url": "https://example.org/websuckets-0.1.0.tar.gz", "archive_info": {}},
            "websuckets @ https://example.org/websuckets-0.1.0.tar.gz",
        ),
    ],
)
def test_the_source_of_an_installed_websuckets_is_what_pip_recorded(direct_url: dict[str, Any], source: str) -> None:
    """A path for a local directory or wheel, a direct reference for a repository or a remote archive."""
    assert _source_from_direct_url(direct_url) == source
