"""The project template: `websuckets new` renders a project that installs, passes its own tests and serves."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import copier
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

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


def render(dst: Path, project_name: str) -> None:
    """Render the template the way `websuckets new PATH --name NAME` does."""
    copier.run_copy(
        str(TEMPLATE), str(dst), data={"project_name": project_name}, defaults=True, unsafe=False, quiet=True
    )


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


# --- the generated project, installed with this checkout in a venv of its own ---


@dataclass(frozen=True)
class Installed:
    project: Path
    package: str
    python: Path


def clean_env(**extra: str) -> dict[str, str]:
    """This environment minus what would leak our own test run into the generated project's."""
    leaks = ("PYTEST_", "COV_CORE_", "COVERAGE_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(leaks)}
    for key in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(key, None)
    return env | extra


def run(command: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``command``; a failure shows its output."""
    result = subprocess.run(
        [str(part) for part in command], capture_output=True, text=True, check=False, env=clean_env(), cwd=cwd
    )
    assert result.returncode == 0, f"{command} exited with {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A venv with this checkout installed as a wheel; its own ``websuckets new``; the project installed there."""
    base = tmp_path_factory.mktemp("new")
    project = base / "demo"
    venv = base / "venv"
    run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "--quiet", f"{ROOT}[cli]"])  # a wheel: the template it ships
    run([venv / "bin" / "websuckets", "new", project, "--name", "Demo App"])
    run([python, "-m", "pip", "install", "--quiet", "--editable", f"{project}[dev]"])
    return Installed(project, "demo_app", python)


@pytest.mark.slow
@pytest.mark.timeout(300)  # includes creating the venv and installing into it: some tens of seconds
def test_the_generated_project_passes_its_own_tests(installed: Installed) -> None:
    """Installed with this checkout of websuckets, the generated project's suite passes as generated."""
    result = run([installed.python, "-m", "pytest", "-p", "no:cacheprovider", "-q"], cwd=installed.project)
    tests = sum(
        len(re.findall(r"^(?:async )?def test_", path.read_text(), re.MULTILINE))
        for path in (installed.project / "tests").glob("test_*.py")
    )
    summary = re.search(r"(\d+) passed", result.stdout)
    assert summary is not None, result.stdout
    assert int(summary.group(1)) == tests > 0, result.stdout
    assert re.search(r"failed|error|warning", result.stdout.splitlines()[-1]) is None, result.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_the_generated_project_serves_until_ctrl_c(installed: Installed) -> None:
    """`python -m PACKAGE` serves on the settings from the environment and exits cleanly on SIGINT."""
    process = await asyncio.create_subprocess_exec(
        installed.python,
        "-m",
        installed.package,
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
        async with connect(match.group(1)) as socket:
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
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()
