"""The project template: `websuckets new` renders a project that installs, passes its own tests and serves."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import copier
import pytest
from click.testing import CliRunner
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

import websuckets
from websuckets import cli

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "app_template"
SOURCES = TEMPLATE / "template"

GENERATED_FILES = {
    ".copier-answers.yml",
    ".gitignore",
    "README.md",
    "pyproject.toml",
    "PACKAGE/__init__.py",
    "PACKAGE/__main__.py",
    "PACKAGE/app.py",
    "PACKAGE/commands/__init__.py",
    "PACKAGE/commands/notes.py",
    "PACKAGE/commands/system.py",
    "PACKAGE/models.py",
    "PACKAGE/services.py",
    "PACKAGE/settings.py",
    "tests/conftest.py",
    "tests/test_notes.py",
    "tests/test_settings.py",
    "tests/test_system.py",
}


def render(dst: Path, project_name: str, websuckets_source: str = "") -> None:
    """Render the template the way `websuckets new PATH --name NAME` does."""
    answers = {"project_name": project_name, "websuckets_source": websuckets_source}
    copier.run_copy(str(TEMPLATE), str(dst), data=answers, defaults=True, unsafe=False, quiet=True)


def files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def test_the_template_renders_the_documented_layout(tmp_path: Path) -> None:
    """ "Chat Room" becomes the package `chat_room`, named everywhere the project refers to itself."""
    dst = tmp_path / "chat"
    render(dst, "Chat Room")
    assert files(dst) == {name.replace("PACKAGE", "chat_room") for name in GENERATED_FILES}
    pyproject = (dst / "pyproject.toml").read_text()
    assert 'name = "chat-room"' in pyproject
    assert 'packages = ["chat_room"]' in pyproject
    assert '"websuckets>=0.1"' in pyproject
    assert "python -m chat_room" in (dst / "README.md").read_text()
    assert "from chat_room.app import create_app" in (dst / "tests/conftest.py").read_text()
    assert "package_name: chat_room" in (dst / ".copier-answers.yml").read_text()
    leftovers = [
        f"{name}: {marker}"
        for name in files(dst)
        for marker in ("{{", "{%", "PACKAGE", "TODO")
        if marker in (dst / name).read_text()
    ]
    assert leftovers == []


def test_the_settings_are_read_from_variables_named_after_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A project reads CHAT_ROOM_HOST, CHAT_ROOM_PORT, ...; a bare HOST (csh sets it) or PORT changes nothing."""
    dst = tmp_path / "chat"
    render(dst, "Chat Room")
    spec = importlib.util.spec_from_file_location("chat_room_settings", dst / "chat_room" / "settings.py")
    assert spec is not None
    assert spec.loader is not None
    settings = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, settings)
    spec.loader.exec_module(settings)
    found = settings.Settings.from_env({"HOST": "the-machine", "PORT": "1", "CHAT_ROOM_PORT": "8080"})
    assert (found.host, found.port) == ("localhost", 8080)
    readme = (dst / "README.md").read_text()
    assert "| `CHAT_ROOM_HOST` | `localhost` |" in readme
    assert "| `HOST`" not in readme


def test_websuckets_run_as_the_readme_shows_it_takes_the_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's `websuckets run ... --reload` serves on CHAT_ROOM_HOST, CHAT_ROOM_PORT and CHAT_ROOM_LOG_LEVEL."""
    dst = tmp_path / "chat"
    render(dst, "Chat Room")
    readme = (dst / "README.md").read_text()
    command = readme_block(readme, "While you work on it")
    assert command == ".venv/bin/websuckets run chat_room.app:app --env-prefix CHAT_ROOM --reload"
    served: list[tuple[object, ...]] = []
    monkeypatch.setattr(cli, "_run_with_reload", lambda *args: served.append(args))
    monkeypatch.chdir(dst)  # `websuckets run` imports the app from the current directory, as in the project
    environ = {
        "HOST": "the-machine",
        "CHAT_ROOM_HOST": "0.0.0.0",
        "CHAT_ROOM_PORT": "8080",
        "CHAT_ROOM_LOG_LEVEL": "DEBUG",
    }
    try:
        result = CliRunner().invoke(cli.main, shlex.split(command)[1:], env=environ)
        assert result.exit_code == 0, result.output
        spec, host, port, log_level = served[0][:4]
        assert (spec, host, port, log_level) == ("chat_room.app:app", "0.0.0.0", 8080, "debug")
        result = CliRunner().invoke(cli.main, [*shlex.split(command)[1:], "--port", "9001"], env=environ)
        assert result.exit_code == 0, result.output
        assert served[1][2] == 9001  # an option given wins over the variable
    finally:
        for name in [name for name in sys.modules if name == "chat_room" or name.startswith("chat_room.")]:
            del sys.modules[name]
    for variable in ("CHAT_ROOM_HOST", "CHAT_ROOM_PORT", "CHAT_ROOM_LOG_LEVEL"):
        assert f"| `{variable}` |" in readme


@pytest.mark.parametrize(
    ("source", "setup"),
    [
        ("/home/me/websuckets", 'python3 -m venv .venv && .venv/bin/pip install "/home/me/websuckets" -e ".[dev]"'),
        ("/tmp/websuckets-0.1.0-py3-none-any.whl", '.venv/bin/pip install "/tmp/websuckets-0.1.0-py3-none-any.whl" -e'),
        ("", 'python3 -m venv .venv && .venv/bin/pip install -e ".[dev]"\n```'),
    ],
)
def test_the_readme_installs_websuckets_from_where_the_project_was_created(
    tmp_path: Path, source: str, setup: str
) -> None:
    """The set-up line installs websuckets from the recorded clone or wheel; with none recorded, from PyPI."""
    render(tmp_path / "p", "Chat Room", source)
    readme = (tmp_path / "p" / "README.md").read_text()
    assert setup in readme
    assert ("not on PyPI yet" in readme) == bool(source)
    assert f"websuckets_source: {source or chr(39) * 2}\n" in (tmp_path / "p" / ".copier-answers.yml").read_text()


def test_the_readme_walkthrough_installs_what_its_commands_need(tmp_path: Path) -> None:
    """The README's own project set-up is the generated README's line, and its dev extra brings `--reload`'s extra."""
    walkthrough = readme_block((ROOT / "README.md").read_text(), "## Your own project")
    assert '.venv/bin/pip install "$websuckets_clone" -e ".[dev]"' in walkthrough
    assert "run my_chat.app:app --env-prefix MY_CHAT --reload" in walkthrough
    render(tmp_path / "p", "My Chat", "/clone")
    assert 'pip install "/clone" -e ".[dev]"' in (tmp_path / "p" / "README.md").read_text()
    assert '"websuckets[cli]",' in (tmp_path / "p" / "pyproject.toml").read_text()


@pytest.mark.parametrize("into", ["chat", "."])
def test_the_message_after_rendering_gives_the_readmes_commands_one_a_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], into: str
) -> None:
    """What copier prints after `copy` (and `recopy`, into "."): the README's commands, without comments to align."""
    monkeypatch.chdir(tmp_path)
    answers = {"project_name": "Chat Room", "websuckets_source": "/clone"}
    copier.run_copy(str(TEMPLATE), into, data=answers, defaults=True, unsafe=False, quiet=False)
    message = capsys.readouterr().err.split("Rendered Chat Room in ", 1)[1]
    commands = [line.removeprefix("    ") for line in message.splitlines() if line.startswith("    ")]
    readme = (tmp_path / into / "README.md").read_text()
    shown = {line for block in re.findall(r"```sh\n(.*?)\n```", readme, re.DOTALL) for line in block.splitlines()}
    assert commands == [
        *([] if into == "." else [f"cd {into}"]),
        'python3 -m venv .venv && .venv/bin/pip install "/clone" -e ".[dev]"',
        ".venv/bin/python -m chat_room",
        ".venv/bin/python -m pytest",
    ]
    assert set(commands[-3:]) <= shown
    assert message.startswith("the current directory. " if into == "." else f"{into}. ")


def test_the_install_section_names_the_wheel_this_version_builds() -> None:
    """The docs' wheel commands name the file that `pip wheel` writes for the current version."""
    install = (ROOT / "docs" / "index.md").read_text()
    assert f"dist/websuckets-{websuckets.__version__}-py3-none-any.whl" in install


def test_files_without_the_jinja_suffix_are_copied_as_they_are(tmp_path: Path) -> None:
    """What the docs include from `app_template/template/` is exactly what a project gets."""
    dst = tmp_path / "chat"
    render(dst, "Chat Room")
    verbatim = {name for name in files(SOURCES) if not name.endswith(".jinja") and "__pycache__" not in name}
    assert verbatim
    for name in verbatim:
        rendered = dst / name.replace("{{ package_name }}", "chat_room")
        assert rendered.read_text() == (SOURCES / name).read_text(), name


def test_the_generated_project_passes_ruff_with_default_settings(tmp_path: Path) -> None:
    """`ruff check` and `ruff format --check`, ignoring every configuration, find nothing to say."""
    dst = tmp_path / "chat"
    render(dst, "Chat Room")
    for command in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--isolated", "--no-cache", "."],
            cwd=dst,  # from the project's root, as its developers run it: the package is first-party
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("project_name", "package_name"),
    [("Chat Room", "chat_room"), ("  My  New-App!  ", "my_new_app"), ("3D Chat", "app_3d_chat"), ("--", "app")],
)
def test_the_package_name_is_derived_from_the_project_name(
    tmp_path: Path, project_name: str, package_name: str
) -> None:
    """Lower case, runs of other characters to `_`; a name that would not be an identifier gets `app`."""
    render(tmp_path / "p", project_name)
    assert (tmp_path / "p" / package_name / "app.py").is_file()


@pytest.mark.parametrize(
    ("project_name", "message"),
    [
        ("   ", "the project name must not be empty"),
        ("websuckets", "would shadow a package the project imports"),
        ("Class", "is a Python keyword"),
    ],
)
def test_names_that_cannot_work_are_refused(tmp_path: Path, project_name: str, message: str) -> None:
    """An empty name, or one giving a package that shadows a dependency or is a keyword, renders nothing."""
    with pytest.raises(ValueError, match=message):
        render(tmp_path / "p", project_name)
    assert not (tmp_path / "p").exists()


# --- the generated project, set up as its README says, with websuckets from this checkout ---


@dataclass(frozen=True)
class Installed:
    project: Path
    package: str
    readme: str


def clean_env(**extra: str) -> dict[str, str]:
    """This environment minus what would leak our own test run into the generated project's."""
    leaks = ("PYTEST_", "COV_CORE_", "COVERAGE_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(leaks)}
    for key in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(key, None)
    return env | extra


def run(
    command: list[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``command``; a failure shows its output."""
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, check=False, env=env or clean_env(), cwd=cwd
    )
    assert result.returncode == 0, f"{command} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def readme_block(readme: str, after: str) -> str:
    """The first ``sh`` code block of the README after the text ``after``."""
    found = re.search(re.escape(after) + r".*?```sh\n(.*?)\n```", readme, re.DOTALL)
    assert found is not None, f"no sh block after {after!r} in:\n{readme}"
    return found.group(1)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """This checkout built as a wheel and installed as the docs say; its ``websuckets new``; the project set up
    as its README says."""
    base = tmp_path_factory.mktemp("new")
    project = base / "demo"
    venv = base / "venv"
    dist = base / "dist"
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", ".", "-w", dist], cwd=ROOT)
    wheel = dist / f"websuckets-{websuckets.__version__}-py3-none-any.whl"  # the name the Install section gives
    run([sys.executable, "-m", "venv", venv])
    run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", f"{wheel}[cli]"])  # with the template it ships
    run([venv / "bin" / "websuckets", "new", project, "--name", "Demo App"])
    assert f"websuckets_source: {wheel}\n" in (project / ".copier-answers.yml").read_text()
    readme = (project / "README.md").read_text()
    setup = readme_block(readme, "Set up once")
    assert setup == f'python3 -m venv .venv && .venv/bin/pip install "{wheel}" -e ".[dev]"'
    # run the line as written, with this test's interpreter as the `python3` it names
    tools = base / "bin"
    tools.mkdir()
    (tools / "python3").symlink_to(sys.executable)
    env = clean_env(PATH=f"{tools}{os.pathsep}{os.environ.get('PATH', '')}")
    run(["bash", "-c", setup.replace(".venv/bin/pip install", ".venv/bin/pip install --quiet")], cwd=project, env=env)
    return Installed(project, "demo_app", readme)


@pytest.mark.slow
@pytest.mark.timeout(300)  # includes creating the venv and installing into it: some tens of seconds
def test_the_generated_project_passes_its_own_tests(installed: Installed) -> None:
    """Set up as its README says, the generated project's suite passes as generated, with the README's command."""
    command = readme_block(installed.readme, "Run the tests")
    assert command == ".venv/bin/python -m pytest"
    result = run([*shlex.split(command), "-p", "no:cacheprovider", "-q"], cwd=installed.project)
    tests = sum(
        len(re.findall(r"^(?:async )?def test_", path.read_text(), re.MULTILINE))
        for path in (installed.project / "tests").glob("test_*.py")
    )
    summary = re.search(r"(\d+) passed", result.stdout)
    assert summary is not None, result.stdout
    assert int(summary.group(1)) == tests > 0, result.stdout
    assert re.search(r"failed|error|warning", result.stdout.splitlines()[-1]) is None, result.stdout


@contextlib.asynccontextmanager
async def readme_server(installed: Installed, command: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """The README's ``command`` run in the generated project on the settings its environment gives (127.0.0.1,
    a free port, INFO), until it prints its address; the process and that address. Killed if still running."""
    process = await asyncio.create_subprocess_exec(
        *shlex.split(command),
        cwd=installed.project,
        # a bare HOST, as csh sets it, must not matter: the settings are named after the package
        env=clean_env(HOST="not-an-interface", DEMO_APP_HOST="127.0.0.1", DEMO_APP_PORT="0", DEMO_APP_LOG_LEVEL="INFO"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), 30)).decode()
        match = re.search(r"serving on (ws://127\.0\.0\.1:\d+)", line)
        assert match is not None, line
        yield process, match.group(1)
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_the_generated_project_reloads_on_its_settings_as_its_readme_says(installed: Installed) -> None:
    """The README's set-up brings the `cli` extra, so its `websuckets run --reload` runs, on the project's settings."""
    command = readme_block(installed.readme, "While you work on it")
    assert command == f".venv/bin/websuckets run {installed.package}.app:app --env-prefix DEMO_APP --reload"
    run([".venv/bin/python", "-c", "import watchfiles"], cwd=installed.project)
    async with readme_server(installed, command) as (process, url):
        async with connect(url) as socket:
            await socket.send(json.dumps({"event": "system ping", "id": 1}))
            assert json.loads(await asyncio.wait_for(socket.recv(), 10))["id"] == 1
        process.send_signal(signal.SIGINT)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 15)
        assert "app stopped" in stderr.decode(), (stdout + stderr).decode()  # the log level: INFO


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_the_generated_project_serves_until_ctrl_c(installed: Installed) -> None:
    """The README's `python -m PACKAGE` serves on the settings from the environment and exits cleanly on SIGINT."""
    command = readme_block(installed.readme, "Run the app")
    assert command == f".venv/bin/python -m {installed.package}"
    async with readme_server(installed, command) as (process, url):
        async with connect(url) as socket:
            await socket.send(json.dumps({"event": "notes add", "payload": {"text": "hello"}, "id": 1}))
            reply = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert reply["event"] == "note added"
            assert reply["id"] == 1
            assert reply["payload"]["text"] == "hello"
            await socket.send(json.dumps({"event": "notes add", "payload": {"text": ""}}))
            error = json.loads(await asyncio.wait_for(socket.recv(), 10))
            assert error["payload"]["name"] == "validation_error"

            process.send_signal(signal.SIGINT)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 15)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1001  # going away: the server shut down gracefully
        stdout, stderr = await asyncio.wait_for(process.communicate(), 15)
        assert process.returncode == 0, (stdout + stderr).decode()
        assert "app stopped" in stderr.decode()
